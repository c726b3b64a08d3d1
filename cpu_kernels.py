"""CPU forms of ops.py's layer computations: equal in value and gradient, faster on CPU kernels (ops.impl('cpu'))."""
import numpy as np
from tensorflow.python.ops import gen_nn_ops

import devices
from tf_compat import tf

# A convolution whose output map (a transposed one: whose input map) has at most this many positions runs
# as a matrix product over image patches: CPU kernels block 4x4 maps poorly, 8x8 maps well.
SMALL_MAP_AREA = 16
# A transposed convolution onto at most this many channels (and the input gradient of a convolution of
# that many input channels) runs as one convolution over output phases. oneDNN (TF 2.x) writes few channels
# slowly; Eigen (TF 1.x) runs every transposed convolution at about a third of its forward speed.
PHASE_FORM_CHANNELS = 4 if devices.tf_major() >= 2 else 1 << 30


# ---- the layers' computations, as ops.py asks for them ---------------------------------------------------

def lrelu(x, leak, name):
    """max(x, leak * x), its gradient by the fused LeakyReluGrad kernel (Maximum's own takes five ops).
    Not tf.nn.leaky_relu: TF 2.x's remapper fails on LeakyRelu after a conv whose output the gradient reads."""
    with tf.get_default_graph().gradient_override_map({'Maximum': _leaky_relu_gradient(leak)}):
        return tf.maximum(x, leak * x, name=name)


def matmul(x, w):
    """x w, its input gradient as (w dy^T)^T: CPU kernels read a large weight poorly as a transposed right
    operand."""
    with tf.get_default_graph().gradient_override_map({'MatMul': _MATMUL_GRADIENT_WEIGHT_FIRST}):
        return tf.matmul(x, w)


def conv2d(x, w, stride, labels=None):
    """tf.nn.conv2d(conv_cond_concat(x, labels) or x, w, stride, 'SAME'): a matrix product over patches for
    small output maps; for few input channels, the input gradient by phases."""
    out_height, out_width = [-(-int(size) // stride) for size in x.get_shape()[1:3]]

    def convolve(inputs, weights):
        by_phases = int(inputs.get_shape()[-1]) <= PHASE_FORM_CHANNELS
        if out_height * out_width <= SMALL_MAP_AREA:
            return _conv_as_matmul(inputs, weights, stride, input_gradient_by_phases=by_phases)
        gradient = {'Conv2D': _PHASE_INPUT_GRADIENT} if by_phases else {}
        with tf.get_default_graph().gradient_override_map(gradient):
            return tf.nn.conv2d(inputs, weights, strides=[1, stride, stride, 1], padding='SAME')
    if labels is None:
        return convolve(x, w)
    return _with_label_maps(x, labels, *tf.split(w, [int(x.get_shape()[-1]), -1], axis=2), convolve=convolve)


def deconv2d(x, w, stride, out_height, out_width, labels=None):
    """tf.nn.conv2d_transpose(conv_cond_concat(x, labels) or x, w, [N, out_height, out_width, out], stride,
    'SAME'): by output phases onto few channels, else a matrix product for small input maps."""
    out_channels = int(w.get_shape()[2])
    in_height, in_width = [int(size) for size in x.get_shape()[1:3]]

    def convolve(inputs, weights):
        small_map = in_height * in_width <= SMALL_MAP_AREA
        if out_channels <= PHASE_FORM_CHANNELS:
            return _deconv_by_phases(inputs, weights, stride, out_height, out_width,
                                     weight_gradient_by_patches=small_map)
        if small_map:
            return _deconv_as_matmul(inputs, weights, stride, out_height, out_width)
        output_shape = tf.stack([tf.shape(inputs)[0], out_height, out_width, out_channels])
        return tf.nn.conv2d_transpose(inputs, weights, output_shape, strides=[1, stride, stride, 1],
                                      padding='SAME')
    if labels is None:
        return convolve(x, w)
    return _with_label_maps(x, labels, *tf.split(w, [int(x.get_shape()[-1]), -1], axis=3), convolve=convolve)


# ---- conditional layers: the label maps by linearity ------------------------------------------------------

def _with_label_maps(x, labels, feature_weights, label_weights, convolve):
    """convolve(conv_cond_concat(x, labels), weights), weights split by input channel into feature_weights and
    label_weights. The convolution is linear, and a label map is its row's mix of L constant one-hot maps:
    convolve(x, feature_weights) plus each row's labels times the convolutions of those L maps (L images a
    step, not N). Fewer FLOPs, and the big convolution keeps a channel count CPU kernels block well."""
    n_labels = int(labels.get_shape()[-1])
    height, width = [int(size) for size in x.get_shape()[1:3]]
    one_hot_maps = tf.reshape(tf.eye(n_labels, dtype=x.dtype), [n_labels, 1, 1, n_labels]) * tf.ones(
        [1, height, width, 1], dtype=x.dtype)  # L, H, W, L
    per_label = convolve(one_hot_maps, label_weights)  # L, out_h, out_w, out
    out_shape = per_label.get_shape().as_list()[1:]
    label_part = tf.matmul(tf.cast(labels, x.dtype), tf.reshape(per_label, [n_labels, -1]))
    return convolve(x, feature_weights) + tf.reshape(label_part, [-1] + out_shape)


# ---- small convolutions as matrix products ----------------------------------------------------------------
# Forward: patches x weights; the weight gradient patches^T x dy; the input gradient (dy x weights^T) summed
# back into the image (col2im).

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
    map position the sum of the window entries on it, one matrix product with the 0/1 selection (faster
    than ExtractImagePatches, its Pad and its gradient). Small maps only: the selection is dense."""
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
    input gradient by _deconv_as_phase_conv, not as (dy x w^T) and col2im (Eigen writes that product slowly)."""
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


# ---- transposed convolutions as phase convolutions ----------------------------------------------------------
# One stride-1 convolution writes every output phase (row and column parity) as channels, 12 for RGB, and
# depth_to_space interleaves them: CPU kernels vectorise over the channels they write, and Eigen's forward
# convolution is faster than its transposed one, although a 3x3 window per phase does 9/6.25 of the
# multiplies of 5x5 taps at stride 2.

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
    # One gather of w's [out] rows builds the kernel in its final layout (faster than a 0/1 tap product and a
    # 6-D transpose); w is viewed as [taps, in, out], a 3-D transpose that Eigen runs faster than a 4-D one.
    rows = _phase_kernel_rows(taps_h, taps_w, kernel_h, kernel_w, in_channels, stride)
    by_tap = tf.transpose(tf.reshape(w, [kernel_h * kernel_w, out_channels, in_channels]), [0, 2, 1])
    taps = tf.concat([tf.reshape(by_tap, [-1, out_channels]), tf.zeros([1, out_channels], w.dtype)], 0)
    phase_kernel = tf.reshape(tf.gather(taps, rows),
                              [window_h, window_w, in_channels, stride * stride * out_channels])
    if ((before_h, after_h), (before_w, after_w)) == (_same_padding(in_height, window_h, 1),
                                                      _same_padding(in_width, window_w, 1)):
        # SAME's padding, as for every 5x5 stride-2 layer: no separate Pad pass (Eigen runs it as one)
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
    """_deconv_as_phase_conv forward; backward by TensorFlow's own kernels for conv2d_transpose (a forward
    convolution and the filter gradient). weight_gradient_by_patches: the filter gradient as one matrix
    product over the windows of the output gradient instead, for small input maps."""
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


# ---- gradient overrides -----------------------------------------------------------------------------------
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


_MATMUL_GRADIENT_WEIGHT_FIRST = 'DcganMatMulGradWeightFirst'


@tf.RegisterGradient(_MATMUL_GRADIENT_WEIGHT_FIRST)
def _matmul_gradient_weight_first(op, grad):
    """MatMul's gradient (no transposes in the forward product) with the input gradient dy W^T computed as
    (W dy^T)^T; the weight gradient x^T dy as TensorFlow computes it."""
    x, w = op.inputs
    return (tf.transpose(tf.matmul(w, grad, transpose_b=True)),
            tf.matmul(x, grad, transpose_a=True))


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
