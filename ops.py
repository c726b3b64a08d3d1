"""The DCGAN layers (conv, deconv, linear, batch norm, leaky ReLU) as TF1 ops with the reference's variable names."""
import contextlib

import cpu_kernels
from tf_compat import tf

BN_DECAY = 0.9  # moving-average decay of the reference's batch norm
BN_EPSILON = 1e-5
INIT_STDDEV = 0.02  # Radford et al.: all weights from N(0, 0.02)

# How the layers compute: 'ref', TensorFlow's own ops as the reference uses them; 'cpu', cpu_kernels' forms,
# equal in value and gradient (tests/test_ops.py) and faster on CPU kernels. Same variables either way.
IMPLS = ('ref', 'cpu')
_impl = 'ref'


def set_impl(name):
    """Layers built from now on compute in form `name` (one of IMPLS); devices.kernel_impl picks it per device."""
    global _impl
    if name not in IMPLS:
        raise ValueError('layer form %r is none of %s' % (name, ', '.join(IMPLS)))
    _impl = name


@contextlib.contextmanager
def impl(name):
    """set_impl(name) for the layers built inside the block."""
    previous = _impl
    set_impl(name)
    try:
        yield
    finally:
        set_impl(previous)


def lrelu(x, leak=0.2, name='lrelu'):
    """Leaky ReLU max(x, leak * x) with the paper's slope 0.2; any shape."""
    if _impl == 'cpu':
        return cpu_kernels.lrelu(x, leak, name)
    return tf.maximum(x, leak * x, name=name)


def conv_cond_concat(x, y):
    """Appends the label vector y [N, L] to every position of the feature map x [N, H, W, C]: [N, H, W, C + L]."""
    x_shape = tf.shape(x)
    y_map = tf.reshape(y, [-1, 1, 1, y.get_shape()[-1]])
    y_map = y_map * tf.ones([x_shape[0], x_shape[1], x_shape[2], 1], dtype=y.dtype)
    return tf.concat([x, y_map], 3)


def _in_channels(x, labels):
    return int(x.get_shape()[-1]) + (int(labels.get_shape()[-1]) if labels is not None else 0)


def conv2d(x, out_channels, kernel=5, stride=2, stddev=INIT_STDDEV, name='conv2d', labels=None):
    """SAME convolution plus bias: [N, H, W, C] -> [N, ceil(H / stride), ceil(W / stride), out_channels].

    Variables `w` [k, k, C, out] (truncated normal) and `biases`. labels [N, L]: the conditional networks'
    label rows, appended to every position of x first (conv_cond_concat; w then has C + L input channels).
    """
    with tf.variable_scope(name):
        w = tf.get_variable('w', [kernel, kernel, _in_channels(x, labels), out_channels],
                            initializer=tf.truncated_normal_initializer(stddev=stddev))
        biases = tf.get_variable('biases', [out_channels], initializer=tf.zeros_initializer())
        if _impl == 'cpu':
            return tf.nn.bias_add(cpu_kernels.conv2d(x, w, stride, labels), biases)
        if labels is not None:
            x = conv_cond_concat(x, labels)
        return tf.nn.bias_add(tf.nn.conv2d(x, w, strides=[1, stride, stride, 1], padding='SAME'), biases)


def deconv2d(x, out_height, out_width, out_channels, kernel=5, stride=2, stddev=INIT_STDDEV,
             name='deconv2d', labels=None):
    """Transposed SAME convolution plus bias: [N, H, W, C] -> [N, out_height, out_width, out_channels].

    Variables `w` [k, k, out, C] (normal init) and `biases`, as in the reference; labels as in conv2d.
    The batch dimension is taken from x at run time, so the same graph serves any batch size.
    """
    with tf.variable_scope(name):
        w = tf.get_variable('w', [kernel, kernel, out_channels, _in_channels(x, labels)],
                            initializer=tf.random_normal_initializer(stddev=stddev))
        biases = tf.get_variable('biases', [out_channels], initializer=tf.zeros_initializer())
        if _impl == 'cpu':
            y = cpu_kernels.deconv2d(x, w, stride, out_height, out_width, labels)
        else:
            if labels is not None:
                x = conv_cond_concat(x, labels)
            output_shape = tf.stack([tf.shape(x)[0], out_height, out_width, out_channels])
            y = tf.nn.conv2d_transpose(x, w, output_shape, strides=[1, stride, stride, 1], padding='SAME')
        y.set_shape([None, out_height, out_width, out_channels])
        return tf.nn.bias_add(y, biases)


def linear(x, out_size, name='Linear', stddev=INIT_STDDEV, bias_start=0.0):
    """Fully connected layer [N, C] -> [N, out_size]; variables `Matrix` (normal init) and `bias`, as in the
    reference."""
    with tf.variable_scope(name):
        matrix = tf.get_variable('Matrix', [x.get_shape()[-1], out_size], tf.float32,
                                 tf.random_normal_initializer(stddev=stddev))
        bias = tf.get_variable('bias', [out_size], initializer=tf.constant_initializer(bias_start))
        return (cpu_kernels.matmul(x, matrix) if _impl == 'cpu' else tf.matmul(x, matrix)) + bias


def batch_norm(x, training, name, decay=BN_DECAY, epsilon=BN_EPSILON):
    """Batch norm with scale and offset of x [N, H, W, C] or [N, C] (same shape out); variables beta, gamma,
    moving_mean, moving_variance.

    In training mode the batch's statistics normalise x and the ops that move the averages towards
    them go to tf.GraphKeys.UPDATE_OPS (under the current name scope), to run with the owning network's
    train op; they are not run by merely computing the forward pass.
    """
    channels = int(x.get_shape()[-1])
    with tf.variable_scope(name):
        beta = tf.get_variable('beta', [channels], initializer=tf.zeros_initializer())
        gamma = tf.get_variable('gamma', [channels], initializer=tf.ones_initializer())
        moving_mean = tf.get_variable('moving_mean', [channels], initializer=tf.zeros_initializer(),
                                      trainable=False)
        moving_variance = tf.get_variable('moving_variance', [channels],
                                          initializer=tf.ones_initializer(), trainable=False)
        # [N, C] as [N, 1, 1, C], as the reference's contrib batch_norm does: the fused kernel, and the same
        # unbiased batch variance for the moving average as the 4-D layers.
        flat = x.get_shape().ndims == 2
        if flat:
            x = tf.reshape(x, [-1, 1, 1, channels])
        if training:
            y, mean, variance = tf.nn.fused_batch_norm(x, gamma, beta, epsilon=epsilon, is_training=True)
            for average, value in ((moving_mean, mean), (moving_variance, variance)):
                update = tf.assign_sub(average, (average - value) * (1.0 - decay))
                tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, update)
        else:
            y, _, _ = tf.nn.fused_batch_norm(x, gamma, beta, moving_mean, moving_variance, epsilon=epsilon,
                                             is_training=False)
        return tf.reshape(y, [-1, channels]) if flat else y
