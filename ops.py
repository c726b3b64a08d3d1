"""Layers of the DCGAN graph (conv, deconv, linear, batch norm) as plain TF1 ops with the reference's names."""
import numpy as np
from tensorflow.python.ops import gen_nn_ops

import devices
from tf_compat import tf

BN_DECAY = 0.9  # moving-average decay of the reference's batch norm
BN_EPSILON = 1e-5
INIT_STDDEV = 0.02  # Radford et al.: all weights from N(0, 0.02)


def lrelu(x, leak=0.2, name='lrelu'):
    """Leaky ReLU with the paper's slope 0.2."""
    # Forward max(x, leak * x) rather than tf.nn.leaky_relu: TF 2.21's remapper fails on LeakyRelu after a
    # conv whose output the gradient also reads ("Mutation::Apply error"), and then skips all its fusions.
    # Backward through the fused LeakyReluGrad kernel: Maximum's own gradient takes five elementwise ops
    # (compare, two selects, a multiply, a sum), about 6% of a 64x64 training step on a CPU.
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


# cpu_forms: two layer shapes that CPU kernels run poorly are computed in another, equal form.
# A convolution whose output map (a transposed one: whose input map) has at most SMALL_MAP_AREA positions
# runs as a matrix product: 4x4 maps gain on every CPU runtime measured, 8x8 maps lose.
SMALL_MAP_AREA = 16
# A transposed convolution onto at most PHASE_FORM_CHANNELS channels (and the input gradient of a convolution
# of that many input channels) runs as one convolution over output phases. oneDNN (TF 2.x) gains only onto
# few channels, the image layer and the first layer's input gradient (every layer so: 64x64 step -10%);
# Eigen (TF 1.x), whose transposed convolution runs at about a third of its forward convolution's speed,
# gains on every layer (64x64 step +10%, MNIST +13-21%; same-session tools/benchmark.py runs on TF 1.15).
# Where both apply (on TF 1.x, the 4x4-map layers), the phase form computes the transposed convolution and
# the convolution's input gradient, and matrix products over windows compute the forward convolution and
# the weight gradients (Eigen, batch 64: g_h1 forward 54 ms against 75 as a matrix product, d_h3_conv's
# input gradient 52 against 70).
PHASE_FORM_CHANNELS = 4 if devices.tf_major() >= 2 else 1 << 30


def conv2d(x, out_channels, kernel=5, stride=2, stddev=INIT_STDDEV, name='conv2d', cpu_forms=False,
           labels=None):
    """5x5 stride-2 SAME convolution plus bias; variables `w` (truncated normal) and `biases`.

    cpu_forms: forms that run faster on a CPU: one matrix product over image patches when the output map
    is small (_conv_as_matmul); for an input of at most PHASE_FORM_CHANNELS, the input gradient by phases
    (_conv_gradient_by_phases, or _conv_as_matmul's). Same variables, same values and gradients up to float
    rounding.
    labels: label rows [N, L] that the conditional networks append to every position of x first; the
    result is the convolution of conv_cond_concat(x, labels), computed as in _with_label_maps.
    """
    with tf.variable_scope(name):
        in_channels = int(x.get_shape()[-1]) + (int(labels.get_shape()[-1]) if labels is not None else 0)
        w = tf.get_variable('w', [kernel, kernel, in_channels, out_channels],
                            initializer=tf.truncated_normal_initializer(stddev=stddev))
        biases = tf.get_variable('biases', [out_channels], initializer=tf.zeros_initializer())
        out_height, out_width = [-(-int(size) // stride) for size in x.get_shape()[1:3]]

        def convolve(inputs, weights):
            by_phases = cpu_forms and int(inputs.get_shape()[-1]) <= PHASE_FORM_CHANNELS
            if cpu_forms and out_height * out_width <= SMALL_MAP_AREA:
                return _conv_as_matmul(inputs, weights, stride, input_gradient_by_phases=by_phases)
            gradient = {'Conv2D': _PHASE_INPUT_GRADIENT} if by_phases else {}
            with tf.get_default_graph().gradient_override_map(gradient):
                return tf.nn.conv2d(inputs, weights, strides=[1, stride, stride, 1], padding='SAME')
        if labels is None:
            y = convolve(x, w)
        else:
            features = int(x.get_shape()[-1])
            y = _with_label_maps(x, labels, *tf.split(w, [features, -1], axis=2), convolve=convolve)
        return tf.nn.bias_add(y, biases)


def deconv2d(x, out_height, out_width, out_channels, kernel=5, stride=2, stddev=INIT_STDDEV,
             name='deconv2d', cpu_forms=False, labels=None):
    """5x5 stride-2 transposed convolution plus bias to [N, out_height, out_width, out_channels].

    The batch dimension is taken from x at run time, so the same graph serves any batch size.
    Weights are `w` [k, k, out, in] (normal init) and `biases`, as in the reference.
    cpu_forms: as in conv2d: a convolution over output phases onto at most PHASE_FORM_CHANNELS
    (_deconv_by_phases, its weight gradient a matrix product when the input map is small), else a matrix
    product when the input map is small (_deconv_as_matmul). labels: as in conv2d.
    """
    with tf.variable_scope(name):
        in_channels = int(x.get_shape()[-1]) + (int(labels.get_shape()[-1]) if labels is not None else 0)
        w = tf.get_variable('w', [kernel, kernel, out_channels, in_channels],
                            initializer=tf.random_normal_initializer(stddev=stddev))
        biases = tf.get_variable('biases', [out_channels], initializer=tf.zeros_initializer())
        in_height, in_width = [int(size) for size in x.get_shape()[1:3]]

        def convolve(inputs, weights):
            small_map = cpu_forms and in_height * in_width <= SMALL_MAP_AREA
            if cpu_forms and out_channels <= PHASE_FORM_CHANNELS:
                return _deconv_by_phases(inputs, weights, stride, out_height, out_width,
                                         weight_gradient_by_patches=small_map)
            if small_map:
                return _deconv_as_matmul(inputs, weights, stride, out_height, out_width)
            output_shape = tf.stack([tf.shape(inputs)[0], out_height, out_width, out_channels])
            return tf.nn.conv2d_transpose(inputs, weights, output_shape, strides=[1, stride, stride, 1],
                                          padding='SAME')
        if labels is None:
            y = convolve(x, w)
        else:
            features = int(x.get_shape()[-1])
            y = _with_label_maps(x, labels, *tf.split(w, [features, -1], axis=3), convolve=convolve)
        y.set_shape([None, out_height, out_width, out_channels])
        return tf.nn.bias_add(y, biases)


def _with_label_maps(x, labels, feature_weights, label_weights, convolve):
    """convolve(conv_cond_concat(x, labels), weights), where weights splits by input channel into
    feature_weights (x's channels) and label_weights (the label channels), split off w by tf.split (its
    gradient is one concat, where two slices would each write a full-size zero-padded gradient).

    The convolution is linear in its input, so it is convolve(x, feature_weights) plus the convolution of
    the label maps alone; and a label map is its row's mix of L constant one-hot maps, so that second part
    is each row's labels times the convolutions of those L maps, computed once per step (L images, not N).
    Same variables and result (up to float rounding) as concatenating first; the layer's FLOPs drop by the
    label channels' share (138 -> 128 input channels in the MNIST generator, 21 -> 11 and 11 -> 1 in its
    discriminator), and the big convolution keeps a channel count that CPU kernels block well.
    """
    n_labels = int(labels.get_shape()[-1])
    height, width = [int(size) for size in x.get_shape()[1:3]]
    one_hot_maps = tf.reshape(tf.eye(n_labels, dtype=x.dtype), [n_labels, 1, 1, n_labels]) * tf.ones(
        [1, height, width, 1], dtype=x.dtype)  # L, H, W, L
    per_label = convolve(one_hot_maps, label_weights)  # L, out_h, out_w, out
    out_shape = per_label.get_shape().as_list()[1:]
    label_part = tf.matmul(tf.cast(labels, x.dtype), tf.reshape(per_label, [n_labels, -1]))
    return convolve(x, feature_weights) + tf.reshape(label_part, [-1] + out_shape)


# ---- small convolutions as matrix products ------------------------------------------------------------
# On a CPU, oneDNN (and Eigen) run a 5x5 stride-2 convolution onto a 4x4 map at half the speed they reach
# on the larger layers (64 x 4 x 4 output rows are too few to block well), while one matrix product over
# the image patches runs near the machine's peak. Forward and backward then become: patches x weights;
# the weight gradient patches^T x dy; the input gradient (dy x weights^T) summed back into the image.

def _same_padding(size, kernel, stride):
    """(before, after) padding of one spatial axis that makes a VALID convolution equal to SAME."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _window_selection(height, width, kernel_h, kernel_w, stride):
    """0/1 matrix [out_h * out_w * kernel_h * kernel_w, height * width] of a SAME convolution of a
    height x width map: row (oh, ow, kh, kw) picks the map position under tap (kh, kw) of output (oh, ow),
    and is all zero where that tap falls on the padding."""
    out_h, out_w = -(-height // stride), -(-width // stride)
    top, left = _same_padding(height, kernel_h, stride)[0], _same_padding(width, kernel_w, stride)[0]
    selection = np.zeros([out_h, out_w, kernel_h, kernel_w, height, width], np.float32)
    for oh in range(out_h):
        for ow in range(out_w):
            for kh in range(kernel_h):
                for kw in range(kernel_w):
                    row, column = oh * stride + kh - top, ow * stride + kw - left
                    if 0 <= row < height and 0 <= column < width:
                        selection[oh, ow, kh, kw, row, column] = 1.0
    return selection.reshape([out_h * out_w * kernel_h * kernel_w, height * width])


def _im2col_col2im(height, width, channels, kernel_h, kernel_w, stride):
    """The pair of adjoint maps between a map [N, height, width, channels] and its SAME convolution's
    windows [N, out_h * out_w * kernel_h * kernel_w, channels], each the other's gradient:
    im2col, a gather of the map's positions (one zero position appended for the padding); col2im, each
    map position the sum of the window entries on it, one matrix product with the 0/1 selection.
    oneDNN (TF 2.21, batch 64, the 8x8 maps of d_h3_conv and g_h1): the gather takes the place of
    ExtractImagePatches and its Pad, the product that of ExtractImagePatches' gradient (a segment sum)
    and of summing 25 padded taps, each pair 5-15 ms faster. Only for small maps: the selection has
    out_h * out_w * kernel_h * kernel_w * height * width entries (25,600 for 8x8)."""
    selection = _window_selection(height, width, kernel_h, kernel_w, stride)
    nonzero_rows, positions = np.nonzero(selection)
    index = np.full(selection.shape[0], height * width, np.int32)  # the appended zero position
    index[nonzero_rows] = positions

    def gather(image):
        flat = tf.reshape(image, [-1, height * width, channels])
        return tf.gather(tf.pad(flat, [[0, 0], [0, 1], [0, 0]]), index, axis=1)

    def scatter(columns):
        summed = tf.matmul(tf.constant(selection.T, dtype=columns.dtype)[None], columns)
        return tf.reshape(summed, [-1, height, width, channels])

    @tf.custom_gradient
    def im2col(image):
        return gather(image), scatter

    @tf.custom_gradient
    def col2im(columns):
        return scatter(columns), gather
    return im2col, col2im


def _patches(x, kernel_h, kernel_w, stride):
    """The k x k windows of a SAME convolution of x as rows [N * out_h * out_w, k*k*C], in (row, column,
    channel) order: the left operand of a convolution as one matrix product (im2col)."""
    height, width, channels = [int(d) for d in x.get_shape()[1:]]
    im2col = _im2col_col2im(height, width, channels, kernel_h, kernel_w, stride)[0]
    return tf.reshape(im2col(x), [-1, kernel_h * kernel_w * channels])


def _conv_as_matmul(x, w, stride, input_gradient_by_phases=False):
    """tf.nn.conv2d(x, w, stride, 'SAME') as im2col and one matrix product. input_gradient_by_phases: the
    input gradient by _deconv_as_phase_conv, not as (dy x w^T) and col2im, im2col's gradient (Eigen, TF 1.15,
    d_h3_conv at batch 64: 52 ms against 70 when col2im was ExtractImagePatches' gradient, and Eigen writes
    that [1024, 6400] product slowly; oneDNN, TF 2.21: 52 against 38 then, less now, so there it stays)."""
    kernel_h, kernel_w, in_channels, out_channels = [int(d) for d in w.get_shape()]
    height, width = [int(d) for d in x.get_shape()[1:3]]

    def conv(x, w):
        patches = _patches(x, kernel_h, kernel_w, stride)
        y = tf.matmul(patches, tf.reshape(w, [kernel_h * kernel_w * in_channels, out_channels]))
        return tf.reshape(y, [-1, -(-height // stride), -(-width // stride), out_channels]), patches

    if not input_gradient_by_phases:
        return conv(x, w)[0]

    @tf.custom_gradient
    def conv_by_phases_gradient(x, w):
        y, patches = conv(x, w)

        def gradient(dy):
            weight_gradient = tf.matmul(patches, tf.reshape(dy, [-1, out_channels]), transpose_a=True)
            return (_deconv_as_phase_conv(dy, w, stride, height, width),
                    tf.reshape(weight_gradient, w.get_shape()))
        return y, gradient
    return conv_by_phases_gradient(x, tf.convert_to_tensor(w))


def _deconv_as_matmul(x, w, stride, out_height, out_width):
    """tf.nn.conv2d_transpose(x, w, [N, out_height, out_width, out], stride, 'SAME') as one matrix product
    (each input position's k x k x out contribution) and col2im (the contributions summed into place)."""
    kernel_h, kernel_w, out_channels, in_channels = [int(d) for d in w.get_shape()]
    in_height, in_width = [int(d) for d in x.get_shape()[1:3]]
    columns = tf.matmul(tf.reshape(x, [-1, in_channels]),
                        tf.reshape(w, [kernel_h * kernel_w * out_channels, in_channels]), transpose_b=True)
    # Row (i, j, kh, kw) of the columns is tap (kh, kw) of input position (i, j): the window entry
    # (i, j, kh, kw) of a SAME convolution of the output map, so col2im sums them into place.
    assert [-(-out_height // stride), -(-out_width // stride)] == [in_height, in_width], 'not SAME sizes'
    col2im = _im2col_col2im(out_height, out_width, out_channels, kernel_h, kernel_w, stride)[1]
    return col2im(tf.reshape(columns, [-1, in_height * in_width * kernel_h * kernel_w, out_channels]))


# ---- transposed convolutions as phase convolutions ------------------------------------------------------
# oneDNN's transposed convolution (and the input gradient of a convolution) vectorises over the channels of
# the map it writes: onto an RGB image (64x64x3 from 32x32x64) it takes ~12 ms, as long as onto 16
# channels. One stride-1 convolution that writes every output phase (row and column parity) as channels,
# 12 for RGB, interleaved by depth_to_space, gives the same result in ~5 ms (TF 2.21). Eigen (TF 1.15) runs
# its forward convolution about three times as fast as its transposed one, so there the phase form wins
# on every layer although its 3x3 window per phase does 9/6.25 of the multiplies of 5x5 taps at stride 2.


def _phase_taps(in_size, out_size, kernel, stride):
    """One spatial axis of a SAME transposed convolution as a stride-1 convolution over phases.

    Output row stride * m + r takes input rows m + t for t in a window [t_first, t_first + window), through
    kernel tap taps[r][t - t_first] (None: that phase has no such tap). Returns (taps, pad_before,
    pad_after, grid): the input padded so, a VALID convolution with the window gives at least grid =
    ceil(out_size / stride) rows, the first grid of which are the phase grid.
    """
    top = _same_padding(out_size, kernel, stride)[0]
    # Tap kh of input row i lands on output row stride * i + kh - top.
    by_phase = []
    for r in range(stride):
        shift, phase = divmod(r + top, stride)
        by_phase.append({shift - a: stride * a + phase for a in range(kernel) if stride * a + phase < kernel})
    t_first = min(min(taps) for taps in by_phase)
    window = max(max(taps) for taps in by_phase) - t_first + 1
    grid = -(-out_size // stride)
    pad_before = -t_first
    pad_after = max(0, grid - 1 + t_first + window - 1 - (in_size - 1))
    taps = [[by_phase[r].get(t_first + j) for j in range(window)] for r in range(stride)]
    return taps, pad_before, pad_after, grid


def _phase_kernel_rows(taps_h, taps_w, kernel_h, kernel_w, in_channels, stride):
    """Row indices that gather the phase kernel [window_h, window_w, in, stride * stride * out] from the rows
    (kh, kw, in) of w transposed to [kh, kw, in, out], with one zero row appended (row kh * kw * in): entry
    (a, b, ci, p, q) is phase (p, q)'s tap under window position (a, b) for input channel ci, or the zero
    row where that phase has no such tap."""
    window_h, window_w = len(taps_h[0]), len(taps_w[0])
    rows = np.full([window_h, window_w, in_channels, stride, stride], kernel_h * kernel_w * in_channels, np.int32)
    for a in range(window_h):
        for b in range(window_w):
            for p in range(stride):
                for q in range(stride):
                    if taps_h[p][a] is not None and taps_w[q][b] is not None:
                        tap = taps_h[p][a] * kernel_w + taps_w[q][b]
                        rows[a, b, :, p, q] = tap * in_channels + np.arange(in_channels)
    return rows.reshape([-1])


def _deconv_as_phase_conv(x, w, stride, out_height, out_width):
    """tf.nn.conv2d_transpose(x, w, [N, out_height, out_width, out], stride, 'SAME') as one stride-1
    convolution onto stride * stride * out channels (one per output phase) and depth_to_space."""
    kernel_h, kernel_w, out_channels, in_channels = [int(d) for d in w.get_shape()]
    in_height, in_width = [int(d) for d in x.get_shape()[1:3]]
    taps_h, before_h, after_h, grid_h = _phase_taps(in_height, out_height, kernel_h, stride)
    taps_w, before_w, after_w, grid_w = _phase_taps(in_width, out_width, kernel_w, stride)
    window_h, window_w = len(taps_h[0]), len(taps_w[0])
    # One gather of w's [out] rows builds the kernel in its final layout. Eigen (TF 1.15) took 22 ms for
    # g_h1's as a product with a 0/1 tap selection and a 6-D transpose, 9 ms so (oneDNN 4.3 against 3.7).
    rows = _phase_kernel_rows(taps_h, taps_w, kernel_h, kernel_w, in_channels, stride)
    # [taps, in, out]: Eigen transposes this 3-D view in half the time of the same transpose in 4-D
    by_tap = tf.transpose(tf.reshape(w, [kernel_h * kernel_w, out_channels, in_channels]), [0, 2, 1])
    taps = tf.concat([tf.reshape(by_tap, [-1, out_channels]), tf.zeros([1, out_channels], w.dtype)], 0)
    phase_kernel = tf.reshape(tf.gather(taps, rows),
                              [window_h, window_w, in_channels, stride * stride * out_channels])
    if ((before_h, after_h), (before_w, after_w)) == (_same_padding(in_height, window_h, 1),
                                                      _same_padding(in_width, window_w, 1)):
        # SAME's padding, as for every 5x5 stride-2 layer (other kernels and strides can pad unevenly).
        # Eigen (TF 1.15) pads as a separate pass: 17 ms against 9 for the 3x3 convolution onto 12 channels
        # of a 64x32x32x64 map.
        phases = tf.nn.conv2d(x, phase_kernel, strides=[1, 1, 1, 1], padding='SAME')
    else:
        x = tf.pad(x, [[0, 0], [before_h, after_h], [before_w, after_w], [0, 0]])
        phases = tf.nn.conv2d(x, phase_kernel, strides=[1, 1, 1, 1], padding='VALID')
    if phases.get_shape().as_list()[1:3] != [grid_h, grid_w]:
        phases = tf.slice(phases, [0, 0, 0, 0], [-1, grid_h, grid_w, -1])
    image = tf.nn.depth_to_space(phases, stride)  # N, stride * grid_h, stride * grid_w, out
    if image.get_shape().as_list()[1:3] != [out_height, out_width]:
        image = tf.slice(image, [0, 0, 0, 0], [-1, out_height, out_width, -1])
    return image


def _deconv_by_phases(x, w, stride, out_height, out_width, weight_gradient_by_patches=False):
    """_deconv_as_phase_conv forward; backward by TensorFlow's own kernels for conv2d_transpose: a forward
    convolution (the input gradient) and the filter gradient, which run fast on either runtime.
    weight_gradient_by_patches: the filter gradient as one matrix product over the windows of the output
    gradient instead, for small input maps (Eigen, TF 1.15: 34 against 60 ms onto `g_h1`'s 4x4 maps)."""
    kernel_h, kernel_w, _, in_channels = [int(d) for d in w.get_shape()]

    @tf.custom_gradient
    def deconv(x, w):
        def gradient(dy):
            strides = [1, stride, stride, 1]
            if weight_gradient_by_patches:  # [k*k*out, in], the layout of w
                weight_gradient = tf.reshape(tf.matmul(_patches(dy, kernel_h, kernel_w, stride),
                                                       tf.reshape(x, [-1, in_channels]), transpose_a=True),
                                             w.get_shape())
            else:
                weight_gradient = tf.nn.conv2d_backprop_filter(dy, tf.shape(w), x, strides, 'SAME')
            return tf.nn.conv2d(dy, w, strides, 'SAME'), weight_gradient
        return _deconv_as_phase_conv(x, w, stride, out_height, out_width), gradient
    return deconv(x, tf.convert_to_tensor(w))


_PHASE_INPUT_GRADIENT = 'DcganConv2DPhaseInputGradient'


@tf.RegisterGradient(_PHASE_INPUT_GRADIENT)
def _conv_gradient_by_phases(op, grad):
    """Conv2D's gradient with the input gradient, a transposed convolution onto the input's channels,
    computed by _deconv_as_phase_conv; the weight gradient by TensorFlow's own kernel."""
    x, w = op.inputs
    strides = op.get_attr('strides')
    height, width = [int(d) for d in x.get_shape()[1:3]]
    return (_deconv_as_phase_conv(grad, w, strides[1], height, width),
            tf.nn.conv2d_backprop_filter(x, tf.shape(w), grad, strides, op.get_attr('padding')))


def linear(x, out_size, name='Linear', stddev=INIT_STDDEV, bias_start=0.0, cpu_forms=False):
    """Fully connected layer; variables `Matrix` (normal init) and `bias`, as in the reference.
    cpu_forms: the input gradient as a product with the weight untransposed (_matmul_gradient_weight_first)."""
    with tf.variable_scope(name):
        matrix = tf.get_variable('Matrix', [x.get_shape()[-1], out_size], tf.float32,
                                 tf.random_normal_initializer(stddev=stddev))
        bias = tf.get_variable('bias', [out_size], initializer=tf.constant_initializer(bias_start))
        gradient = {'MatMul': _MATMUL_GRADIENT_WEIGHT_FIRST} if cpu_forms else {}
        with tf.get_default_graph().gradient_override_map(gradient):
            return tf.matmul(x, matrix) + bias


_MATMUL_GRADIENT_WEIGHT_FIRST = 'DcganMatMulGradWeightFirst'


@tf.RegisterGradient(_MATMUL_GRADIENT_WEIGHT_FIRST)
def _matmul_gradient_weight_first(op, grad):
    """MatMul's gradient (no transposes in the forward product) with the input gradient dy W^T computed as
    (W dy^T)^T. CPU kernels read the large weight poorly as a transposed right operand: on a 2-core AMD
    EPYC, MNIST's d_h2_lin (W 3636x1024, batch 64) 3.6 ms against 1.6, g_h1_lin (1034x6272) 3.7 against 2.4
    on TF 2.21; 5.1 against 2.1 and 9.8 against 4.4 on TF 1.15 (/tmp-only timing of the single products).
    The weight gradient x^T dy as TensorFlow computes it."""
    x, w = op.inputs
    return (tf.transpose(tf.matmul(w, grad, transpose_b=True)),
            tf.matmul(x, grad, transpose_a=True))


def batch_norm(x, training, name, decay=BN_DECAY, epsilon=BN_EPSILON):
    """Batch norm with scale and offset; variables beta, gamma, moving_mean, moving_variance.

    In training mode the batch's statistics normalise x and the ops that move the averages towards
    them go to tf.GraphKeys.UPDATE_OPS (under the current name scope), to run with the owning network's
    train op; they are not run by merely computing the forward pass. x: [N, H, W, C] or [N, C].
    """
    channels = int(x.get_shape()[-1])
    with tf.variable_scope(name):
        beta = tf.get_variable('beta', [channels], initializer=tf.zeros_initializer())
        gamma = tf.get_variable('gamma', [channels], initializer=tf.ones_initializer())
        moving_mean = tf.get_variable('moving_mean', [channels], initializer=tf.zeros_initializer(),
                                      trainable=False)
        moving_variance = tf.get_variable('moving_variance', [channels],
                                          initializer=tf.ones_initializer(), trainable=False)
        # The fused kernel for [N, C] too, as [N, 1, 1, C] (as the reference's contrib batch_norm does): one
        # pass each way instead of moments and five elementwise ops, and the same unbiased batch variance
        # for the moving average as the 4-D layers.
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


def conv_cond_concat(x, y):
    """Appends the label vector y [N, L] to every position of the feature map x [N, H, W, C]."""
    x_shape = tf.shape(x)
    y_map = tf.reshape(y, [-1, 1, 1, y.get_shape()[-1]])
    y_map = y_map * tf.ones([x_shape[0], x_shape[1], x_shape[2], 1], dtype=y.dtype)
    return tf.concat([x, y_map], 3)
