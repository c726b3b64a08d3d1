"""Layers of the DCGAN graph (conv, deconv, linear, batch norm) as plain TF1 ops with the reference's names."""
from tensorflow.python.ops import gen_nn_ops

from tf_compat import tf

BN_DECAY = 0.9  # moving-average decay of the reference's batch norm
BN_EPSILON = 1e-5
INIT_STDDEV = 0.02  # Radford et al.: all weights from N(0, 0.02)


def lrelu(x, leak=0.2, name='lrelu'):
    """Leaky ReLU with the paper's slope 0.2."""
    # Forward max(x, leak * x) rather than tf.nn.leaky_relu: TF 2.21's remapper fails on LeakyRelu after a
    # conv whose output the gradient also reads ("Mutation::Apply error"), and then skips all its fusions.
    # Backward through the fused LeakyReluGrad kernel: Maximum's own gradient takes five elementwise ops
    # (compare, two selects, a multiply, a sum), about 5% of a 64x64 training step on a CPU.
    with tf.get_default_graph().gradient_override_map({'Maximum': _leaky_relu_gradient(leak)}):
        return tf.maximum(x, leak * x, name=name)


_LEAKY_RELU_GRADIENTS = {}  # leak -> name of its registered gradient function


def _leaky_relu_gradient(leak):
    """Name of a registered gradient for max(x, leak * x): all of it flows to x, none to leak * x."""
    if leak not in _LEAKY_RELU_GRADIENTS:
        name = 'DcganLeakyReluGrad_%r' % leak

        @tf.RegisterGradient(name)
        def _gradient(op, grad):
            return [gen_nn_ops.leaky_relu_grad(grad, op.inputs[0], alpha=leak), None]
        _LEAKY_RELU_GRADIENTS[leak] = name
    return _LEAKY_RELU_GRADIENTS[leak]


def conv2d(x, out_channels, kernel=5, stride=2, stddev=INIT_STDDEV, name='conv2d'):
    """5x5 stride-2 SAME convolution plus bias; variables `w` (truncated normal) and `biases`."""
    with tf.variable_scope(name):
        in_channels = x.get_shape()[-1]
        w = tf.get_variable('w', [kernel, kernel, in_channels, out_channels],
                            initializer=tf.truncated_normal_initializer(stddev=stddev))
        biases = tf.get_variable('biases', [out_channels], initializer=tf.zeros_initializer())
        y = tf.nn.conv2d(x, w, strides=[1, stride, stride, 1], padding='SAME')
        return tf.nn.bias_add(y, biases)


def deconv2d(x, out_height, out_width, out_channels, kernel=5, stride=2, stddev=INIT_STDDEV,
             name='deconv2d'):
    """5x5 stride-2 transposed convolution plus bias to [N, out_height, out_width, out_channels].

    The batch dimension is taken from x at run time, so the same graph serves any batch size.
    Weights are `w` [k, k, out, in] (normal init) and `biases`, as in the reference.
    """
    with tf.variable_scope(name):
        in_channels = x.get_shape()[-1]
        w = tf.get_variable('w', [kernel, kernel, out_channels, in_channels],
                            initializer=tf.random_normal_initializer(stddev=stddev))
        biases = tf.get_variable('biases', [out_channels], initializer=tf.zeros_initializer())
        output_shape = tf.stack([tf.shape(x)[0], out_height, out_width, out_channels])
        y = tf.nn.conv2d_transpose(x, w, output_shape, strides=[1, stride, stride, 1], padding='SAME')
        y.set_shape([None, out_height, out_width, out_channels])
        return tf.nn.bias_add(y, biases)


def linear(x, out_size, name='Linear', stddev=INIT_STDDEV, bias_start=0.0):
    """Fully connected layer; variables `Matrix` (normal init) and `bias`, as in the reference."""
    with tf.variable_scope(name):
        matrix = tf.get_variable('Matrix', [x.get_shape()[-1], out_size], tf.float32,
                                 tf.random_normal_initializer(stddev=stddev))
        bias = tf.get_variable('bias', [out_size], initializer=tf.constant_initializer(bias_start))
        return tf.matmul(x, matrix) + bias


def batch_norm(x, training, name, decay=BN_DECAY, epsilon=BN_EPSILON):
    """Batch norm with scale and offset; variables beta, gamma, moving_mean, moving_variance.

    In training mode the batch's statistics normalise x and the ops that move the averages towards
    them go to tf.GraphKeys.UPDATE_OPS (under the current name scope), to run with the owning network's
    train op; they are not run by merely computing the forward pass. 4-D inputs use the fused kernel.
    """
    channels = x.get_shape()[-1]
    with tf.variable_scope(name):
        beta = tf.get_variable('beta', [channels], initializer=tf.zeros_initializer())
        gamma = tf.get_variable('gamma', [channels], initializer=tf.ones_initializer())
        moving_mean = tf.get_variable('moving_mean', [channels], initializer=tf.zeros_initializer(),
                                      trainable=False)
        moving_variance = tf.get_variable('moving_variance', [channels],
                                          initializer=tf.ones_initializer(), trainable=False)
        four_d = x.get_shape().ndims == 4
        if not training:
            if four_d:
                y, _, _ = tf.nn.fused_batch_norm(x, gamma, beta, moving_mean, moving_variance,
                                                 epsilon=epsilon, is_training=False)
                return y
            return tf.nn.batch_normalization(x, moving_mean, moving_variance, beta, gamma, epsilon)
        if four_d:
            y, mean, variance = tf.nn.fused_batch_norm(x, gamma, beta, epsilon=epsilon, is_training=True)
        else:
            mean, variance = tf.nn.moments(x, [0])
            y = tf.nn.batch_normalization(x, mean, variance, beta, gamma, epsilon)
        for average, value in ((moving_mean, mean), (moving_variance, variance)):
            update = tf.assign_sub(average, (average - value) * (1.0 - decay))
            tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, update)
        return y


def conv_cond_concat(x, y):
    """Appends the label vector y [N, L] to every position of the feature map x [N, H, W, C]."""
    x_shape = tf.shape(x)
    y_map = tf.reshape(y, [-1, 1, 1, y.get_shape()[-1]])
    y_map = y_map * tf.ones([x_shape[0], x_shape[1], x_shape[2], 1], dtype=y.dtype)
    return tf.concat([x, y_map], 3)
