"""ops.py's layers: their cpu_kernels forms against TensorFlow's own ops (the 'ref' form), values and gradients."""
import numpy as np
import pytest

import cpu_kernels
import devices
import ops
from tf_compat import tf


@pytest.fixture(autouse=True)
def fresh_graph():
    tf.reset_default_graph()
    yield
    tf.reset_default_graph()


def run(fetches):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(fetches)


def test_layers_build_in_the_reference_form_unless_asked():
    assert ops._impl == 'ref'
    with ops.impl('cpu'):
        assert ops._impl == 'cpu'
    assert ops._impl == 'ref'
    with pytest.raises(ValueError):
        ops.set_impl('cuda')


@pytest.mark.parametrize('leak', [0.2, 0.3])
@pytest.mark.parametrize('form', ['ref', 'cpu'])
def test_lrelu_value_and_gradient(leak, form):
    values = np.array([[-2.0, -0.5, 0.25, 3.0]], np.float32)
    x = tf.constant(values)
    with ops.impl(form):
        y = ops.lrelu(x, leak)
    upstream = tf.constant([[1.0, 2.0, 3.0, 4.0]])
    (grad,) = tf.gradients(y, [x], upstream)
    y_value, grad_value = run([y, grad])
    np.testing.assert_allclose(y_value, np.where(values > 0, values, leak * values), rtol=1e-6)
    np.testing.assert_allclose(grad_value, np.array([[leak, 2 * leak, 3.0, 4.0]]), rtol=1e-6)
    # the fused LeakyReluGrad kernel in the CPU form only; the reference differentiates tf.maximum
    types = [o.type for o in tf.get_default_graph().get_operations()]
    assert ('LeakyReluGrad' in types) == (form == 'cpu')


def test_lrelu_gradient_override_leaves_other_maximum_ops_alone():
    a, b = tf.constant([1.0, -1.0]), tf.constant([0.0, 0.0])
    with ops.impl('cpu'):
        ops.lrelu(a)
    (grad_b,) = tf.gradients(tf.maximum(a, b), [b])
    np.testing.assert_allclose(run(grad_b), [0.0, 1.0])


# (input height, input width, in channels, out channels) of the small maps the matmul path takes, with
# odd and non-square sizes so that SAME's uneven padding is exercised.
SMALL_CONVS = [(8, 8, 6, 5), (7, 5, 3, 4), (2, 3, 4, 2), (1, 1, 3, 2)]  # outputs 4x4, 4x3, 1x2, 1x1
SMALL_DECONVS = [(4, 4, 6, 5), (3, 5, 3, 4), (2, 3, 4, 2), (1, 1, 3, 2)]  # inputs of at most 16 positions
_BATCH_MATMUL = {'BatchMatMulV2', 'BatchMatMulV3'}  # col2im's op type, by TensorFlow version


def _values_and_gradients(build, x_shape, seed):
    """Output and gradients (wrt input, weights, biases) of build(x) under a fixed upstream gradient."""
    rng = np.random.RandomState(seed)
    x = tf.constant(rng.randn(*x_shape).astype(np.float32))
    y = build(x)
    upstream = tf.constant(rng.randn(*y.get_shape().as_list()).astype(np.float32))
    variables = tf.trainable_variables()
    grads = tf.gradients(y, [x] + variables, upstream)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for v in variables:  # weights of a useful scale, the same in both graphs
            sess.run(v.assign(np.random.RandomState(seed + 1).randn(*v.get_shape().as_list()).astype(np.float32)))
        return sess.run([y] + grads)


def _native_and_cpu_form(build, x_shape, seed):
    """_values_and_gradients of build(x) in ops' 'ref' form, then in its 'cpu' form (whose graph stays the
    default graph, for the callers' op-type checks)."""
    results = []
    for form in ('ref', 'cpu'):
        tf.reset_default_graph()
        with ops.impl(form):
            results.append(_values_and_gradients(build, x_shape, seed))
    return results


def _assert_same(results):
    for native, cpu_form in zip(*results):
        np.testing.assert_allclose(cpu_form, native, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('in_size, out_size', [(37, 23), (5, 1)])
def test_linear_takes_its_input_gradient_weight_first_in_the_cpu_form(in_size, out_size):
    results = _native_and_cpu_form(lambda x: ops.linear(x, out_size), [6, in_size], seed=in_size)
    operations = tf.get_default_graph().get_operations()
    weight = [o for o in operations if o.type == 'MatMul' and 'gradients' not in o.name][0].inputs[1]
    backward = [o for o in operations if 'gradients' in o.name]
    reading_weight = [o for o in backward if o.type == 'MatMul' and weight in list(o.inputs)]
    # (W dy^T)^T: the weight as the untransposed left operand, then one transpose; never as a right operand
    assert [(o.inputs[0] is weight, o.get_attr('transpose_a'), o.get_attr('transpose_b'))
            for o in reading_weight] == [(True, False, True)]
    assert 'Transpose' in [o.type for o in backward]
    _assert_same(results)


@pytest.mark.parametrize('height, width, kernel, stride', [(8, 8, 5, 2), (7, 5, 5, 2), (3, 4, 3, 1), (1, 1, 5, 2)])
def test_im2col_gathers_the_windows_and_col2im_is_its_adjoint(height, width, kernel, stride):
    rng = np.random.RandomState(height * width)
    image = rng.randn(2, height, width, 3).astype(np.float32)
    im2col, col2im = cpu_kernels._im2col_col2im(height, width, 3, kernel, kernel, stride)
    padding = [[0, 0], list(cpu_kernels._same_padding(height, kernel, stride)),
               list(cpu_kernels._same_padding(width, kernel, stride)), [0, 0]]
    expected = tf.extract_image_patches(tf.pad(tf.constant(image), padding), [1, kernel, kernel, 1],
                                        [1, stride, stride, 1], [1, 1, 1, 1], 'VALID')
    x = tf.constant(image)
    columns = im2col(x)
    other = rng.randn(*columns.get_shape().as_list()).astype(np.float32)
    summed = col2im(tf.constant(other))
    gradient = tf.gradients(columns, x, tf.constant(other))[0]
    with tf.Session() as sess:
        windows, expected, summed, gradient = sess.run([columns, expected, summed, gradient])
    np.testing.assert_array_equal(windows.reshape(expected.shape), expected)  # a gather copies exactly
    assert summed.shape == image.shape
    # <im2col(x), c> == <x, col2im(c)>, and im2col's gradient is col2im
    np.testing.assert_allclose(np.sum(windows * other), np.sum(image * summed), rtol=1e-4)
    np.testing.assert_allclose(gradient, summed, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('height, width, cin, cout', SMALL_CONVS)
@pytest.mark.parametrize('input_gradient_by_phases', [False, True])  # TF 2.x's choice for these, TF 1.x's
def test_conv_as_matmul_equals_the_convolution(monkeypatch, height, width, cin, cout, input_gradient_by_phases):
    monkeypatch.setattr(cpu_kernels, 'PHASE_FORM_CHANNELS', cin if input_gradient_by_phases else cin - 1)
    results = _native_and_cpu_form(lambda x: ops.conv2d(x, cout),
                                   [3, height, width, cin], seed=height)
    forward, backward = [], []
    for o in tf.get_default_graph().get_operations():
        (backward if 'gradients' in o.name else forward).append(o.type)
    assert 'GatherV2' in forward and not [t for t in forward if t.startswith('Conv2D')]
    if input_gradient_by_phases:  # a stride-1 convolution over the phases, never the native input gradient
        assert 'DepthToSpace' in backward and 'Conv2DBackpropInput' not in backward
    else:  # col2im: one matrix product with the 0/1 window selection, no segment sum
        assert not [t for t in backward if t.startswith('Conv2D') or t == 'DepthToSpace']
        assert _BATCH_MATMUL & set(backward) and 'UnsortedSegmentSum' not in backward
    _assert_same(results)


@pytest.mark.parametrize('height, width, cin, cout', SMALL_DECONVS)
@pytest.mark.parametrize('by_phases', [False, True])  # TF 2.x's choice onto many channels, TF 1.x's always
def test_small_map_deconv_equals_the_transposed_convolution(monkeypatch, height, width, cin, cout, by_phases):
    monkeypatch.setattr(cpu_kernels, 'PHASE_FORM_CHANNELS', cout if by_phases else cout - 1)
    out_height, out_width = 2 * height - height % 2, 2 * width  # odd sizes too: ceil(out / 2) == in
    results = _native_and_cpu_form(
        lambda x: ops.deconv2d(x, out_height, out_width, cout),
        [3, height, width, cin], seed=width)
    forward, backward = [], []
    for o in tf.get_default_graph().get_operations():
        (backward if 'gradients' in o.name else forward).append(o.type)
    if by_phases:  # the phase convolution; its filter gradient a matrix product over the gradient's windows
        assert 'DepthToSpace' in forward and 'Conv2DBackpropInput' not in forward
        assert 'GatherV2' in backward and 'Conv2DBackpropFilter' not in backward
    else:  # one matrix product and col2im (a product with the window selection), no convolution kernel
        assert not [t for t in forward + backward if t.startswith('Conv2D')]
        assert _BATCH_MATMUL & set(forward) and 'GatherV2' in backward
    _assert_same(results)


def test_large_maps_keep_the_native_convolution(monkeypatch):
    monkeypatch.setattr(cpu_kernels, 'PHASE_FORM_CHANNELS', 4)  # as on TF 2.x, so that 8 channels stay native
    x = tf.zeros([2, 16, 16, 3])
    with ops.impl('cpu'):
        ops.conv2d(tf.zeros([2, 16, 16, 8]), 4, name='c')
        ops.deconv2d(x, 32, 32, 8, name='d')
    types = set(o.type for o in tf.get_default_graph().get_operations())
    assert {'Conv2D', 'Conv2DBackpropInput'} <= types and not types & ({'GatherV2', 'DepthToSpace'} | _BATCH_MATMUL)


def test_phase_form_covers_every_transposed_convolution_on_tf1_only():
    # Eigen's transposed convolution is the slow one; oneDNN's only onto few channels (cpu_kernels comment)
    assert cpu_kernels.PHASE_FORM_CHANNELS == (4 if devices.tf_major() >= 2 else 1 << 30)


# Maps above SMALL_MAP_AREA (so the matmul form does not take them): (input height, input width, output
# height, output width, input channels of the transposed convolution, its output channels), odd sizes
# included. Onto few channels as on either runtime, then onto many as TF 1.x computes them; each test sets
# PHASE_FORM_CHANNELS to the layer's channel count, the largest that the phase form takes.
PHASE_LAYERS = [(8, 8, 16, 16, 6, 3), (5, 4, 9, 8, 4, 1), (6, 7, 11, 14, 3, 2), (3, 9, 5, 17, 2, 4),
                (8, 8, 16, 16, 6, 16), (7, 5, 14, 9, 12, 10)]


@pytest.mark.parametrize('height, width, out_height, out_width, cin, cout', PHASE_LAYERS)
def test_deconv_by_phases_equals_the_transposed_convolution(monkeypatch, height, width, out_height, out_width,
                                                            cin, cout):
    monkeypatch.setattr(cpu_kernels, 'PHASE_FORM_CHANNELS', cout)
    results = _native_and_cpu_form(
        lambda x: ops.deconv2d(x, out_height, out_width, cout),
        [3, height, width, cin], seed=width)
    types = set(o.type for o in tf.get_default_graph().get_operations())
    assert 'DepthToSpace' in types and 'Conv2DBackpropInput' not in types  # forward and backward
    _assert_same(results)


@pytest.mark.parametrize('height, width, out_height, out_width, cin, cout', PHASE_LAYERS)
def test_conv_gets_its_input_gradient_by_phases(monkeypatch, height, width, out_height, out_width, cin, cout):
    monkeypatch.setattr(cpu_kernels, 'PHASE_FORM_CHANNELS', cout)
    results = _native_and_cpu_form(lambda x: ops.conv2d(x, cin),
                                   [3, out_height, out_width, cout], seed=height)
    gradient_types = set(o.type for o in tf.get_default_graph().get_operations() if 'gradients' in o.name)
    assert 'DepthToSpace' in gradient_types and 'Conv2DBackpropInput' not in gradient_types
    _assert_same(results)


@pytest.mark.parametrize('kernel, stride, height, out_height, padded', [
    (5, 2, 8, 16, False),  # the networks' layers: the phase convolution's padding is SAME's, no Pad op
    (5, 2, 7, 14, False),
    (3, 2, 8, 16, True),  # a window padded (1, 0): explicit Pad and a VALID convolution
    (4, 3, 5, 15, True),
])
def test_phase_convolution_pads_only_where_same_would_not(monkeypatch, kernel, stride, height, out_height,
                                                          padded):
    monkeypatch.setattr(cpu_kernels, 'PHASE_FORM_CHANNELS', 3)
    results = _native_and_cpu_form(
        lambda x: ops.deconv2d(x, out_height, out_height, 3, kernel=kernel, stride=stride),
        [2, height, height, 4], seed=kernel)
    forward_types = [o.type for o in tf.get_default_graph().get_operations() if 'gradients' not in o.name]
    assert 'DepthToSpace' in forward_types and ('Pad' in forward_types) == padded
    _assert_same(results)


def _labelled_values_and_gradients(build, x_shape, n_labels, seed):
    """_values_and_gradients of build(x, labels), with random soft labels (the layer is linear in them, so
    any rows must work, not only one-hot ones)."""
    labels = tf.constant(np.random.RandomState(seed + 2).rand(x_shape[0], n_labels).astype(np.float32))
    return _values_and_gradients(lambda x: build(x, labels), x_shape, seed)


# (input height, input width, feature channels, label size, out channels): the MNIST layers' shapes
# (28x28x1, 14x14x11, 7x7x128, 14x14x128 with 10 labels) in miniature, odd and non-square sizes included.
LABELLED_LAYERS = [(28, 28, 1, 10, 11), (7, 5, 3, 4, 6), (4, 4, 6, 3, 5), (1, 2, 2, 3, 2)]


@pytest.mark.parametrize('height, width, features, n_labels, cout', LABELLED_LAYERS)
@pytest.mark.parametrize('transposed', [False, True])
@pytest.mark.parametrize('form', ['ref', 'cpu'])
def test_labels_equal_concatenating_first(height, width, features, n_labels, cout, transposed, form):
    """labels=: the label maps concatenated as the reference does ('ref'), or convolved by linearity
    (cpu_kernels._with_label_maps): the same variables, values and gradients as concatenating first."""
    def layer(x, labels=None):
        if transposed:
            return ops.deconv2d(x, 2 * height, 2 * width - width % 2, cout, name='layer', labels=labels)
        return ops.conv2d(x, cout, name='layer', labels=labels)

    def concatenated(x, labels):
        return layer(ops.conv_cond_concat(x, labels))

    results, shapes = [], []
    for build, build_form in ((concatenated, 'ref'), (layer, form)):
        tf.reset_default_graph()
        with ops.impl(build_form):
            results.append(_labelled_values_and_gradients(build, [3, height, width, features], n_labels,
                                                          seed=width))
        shapes.append([v.get_shape().as_list() for v in tf.trainable_variables()])
    label_maps = [o for o in tf.get_default_graph().get_operations()  # conv_cond_concat's [N, H, W, C + L]
                  if o.type == 'ConcatV2' and 'gradients' not in o.name and o.outputs[0].get_shape().ndims == 4]
    assert bool(label_maps) == (form == 'ref')
    assert shapes[0] == shapes[1]  # the same variables: checkpoints of either form load into the other
    for concatenated_first, with_labels in zip(*results):
        np.testing.assert_allclose(with_labels, concatenated_first, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('shape', [[16, 6], [4, 3, 2, 6]])  # the linear layers' [N, C] and the conv maps'
def test_batch_norm_normalises_by_the_batch_and_averages_the_unbiased_variance(shape):
    tf.reset_default_graph()
    values = np.random.RandomState(len(shape)).randn(*shape).astype(np.float32) * 3 + 1
    x = tf.constant(values)
    y = ops.batch_norm(x, training=True, name='bn', decay=0.5)
    updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    with tf.variable_scope('', reuse=True):
        inference = ops.batch_norm(x, training=False, name='bn')
    rows = values.reshape(-1, shape[-1])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        normalised = sess.run(y)
        sess.run(updates)
        moving_mean, moving_variance = sess.run(['bn/moving_mean:0', 'bn/moving_variance:0'])
        after_update = sess.run(inference)
    assert normalised.shape == values.shape and len(updates) == 2
    expected = (rows - rows.mean(0)) / np.sqrt(rows.var(0) + 1.001e-5)
    np.testing.assert_allclose(normalised.reshape(rows.shape), expected, rtol=1e-3, atol=1e-3)
    # one step of decay 0.5 from (0, 1): half of the batch mean, half of 1 plus the unbiased variance
    np.testing.assert_allclose(moving_mean, 0.5 * rows.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(moving_variance, 0.5 * (1 + rows.var(0, ddof=1)), rtol=1e-5)
    np.testing.assert_allclose(after_update.reshape(rows.shape),
                               (rows - moving_mean) / np.sqrt(moving_variance + 1.001e-5), rtol=1e-3, atol=1e-3)
