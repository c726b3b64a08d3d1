"""The graph: shapes, ranges, parameter counts, reference variable names, a training step, checkpoint compatibility."""
import numpy as np
import pytest

import model
import ops
from tf_compat import tf

# The reference's checkpoint variables (name -> shape) of the 64x64x3 networks, as carpedm20/DCGAN-tensorflow has them
REFERENCE_64 = {
    'generator/g_h0_lin/Matrix': [100, 8192], 'generator/g_h0_lin/bias': [8192],
    'generator/g_h1/w': [5, 5, 256, 512], 'generator/g_h1/biases': [256],
    'generator/g_h2/w': [5, 5, 128, 256], 'generator/g_h2/biases': [128],
    'generator/g_h3/w': [5, 5, 64, 128], 'generator/g_h3/biases': [64],
    'generator/g_h4/w': [5, 5, 3, 64], 'generator/g_h4/biases': [3],
    'discriminator/d_h0_conv/w': [5, 5, 3, 64], 'discriminator/d_h0_conv/biases': [64],
    'discriminator/d_h1_conv/w': [5, 5, 64, 128], 'discriminator/d_h1_conv/biases': [128],
    'discriminator/d_h2_conv/w': [5, 5, 128, 256], 'discriminator/d_h2_conv/biases': [256],
    'discriminator/d_h3_conv/w': [5, 5, 256, 512], 'discriminator/d_h3_conv/biases': [512],
    'discriminator/d_h4_lin/Matrix': [8192, 1], 'discriminator/d_h4_lin/bias': [1],
}
for _bn, _c in (('generator/g_bn0', 512), ('generator/g_bn1', 256), ('generator/g_bn2', 128),
                ('generator/g_bn3', 64), ('discriminator/d_bn1', 128), ('discriminator/d_bn2', 256),
                ('discriminator/d_bn3', 512)):
    for _v in ('beta', 'gamma', 'moving_mean', 'moving_variance'):
        REFERENCE_64['%s/%s' % (_bn, _v)] = [_c]

REFERENCE_MNIST = {
    'generator/g_h0_lin/Matrix': [110, 1024], 'generator/g_h0_lin/bias': [1024],
    'generator/g_h1_lin/Matrix': [1034, 6272], 'generator/g_h1_lin/bias': [6272],
    'generator/g_h2/w': [5, 5, 128, 138], 'generator/g_h2/biases': [128],
    'generator/g_h3/w': [5, 5, 1, 138], 'generator/g_h3/biases': [1],
    'discriminator/d_h0_conv/w': [5, 5, 11, 11], 'discriminator/d_h0_conv/biases': [11],
    'discriminator/d_h1_conv/w': [5, 5, 21, 74], 'discriminator/d_h1_conv/biases': [74],
    'discriminator/d_h2_lin/Matrix': [3636, 1024], 'discriminator/d_h2_lin/bias': [1024],
    'discriminator/d_h3_lin/Matrix': [1034, 1], 'discriminator/d_h3_lin/bias': [1],
}
for _bn, _c in (('generator/g_bn0', 1024), ('generator/g_bn1', 6272), ('generator/g_bn2', 128),
                ('discriminator/d_bn1', 74), ('discriminator/d_bn2', 1024)):
    for _v in ('beta', 'gamma', 'moving_mean', 'moving_variance'):
        REFERENCE_MNIST['%s/%s' % (_bn, _v)] = [_c]


@pytest.fixture(autouse=True)
def fresh_graph():
    tf.reset_default_graph()
    yield
    tf.reset_default_graph()


def mnist_cfg():
    return model.net_config(28, 28, 1, y_dim=10)


def model_variables():
    """Variables of the two networks, without the Adam slots kept beside them."""
    return dict((v.op.name, v.get_shape().as_list()) for v in tf.global_variables()
                if v.op.name.split('/')[0] in (model.GENERATOR_SCOPE, model.DISCRIMINATOR_SCOPE)
                and not v.op.name.split('/')[-1].startswith(('d_adam', 'g_adam')))


def train_graph(cfg, batch=4, g_steps=2):
    real = tf.random_uniform([batch, cfg.output_height, cfg.output_width, cfg.c_dim], *model.data_range(cfg))
    y = tf.one_hot(tf.random_uniform([batch], 0, 10, tf.int32), 10) if cfg.y_dim else None
    z = model.sample_latents(batch, cfg.z_dim, 'uniform_signed')
    return model.build_train_ops(real, y, z, cfg, model.train_hparams(2e-4, 0.5, g_steps))


@pytest.mark.parametrize('size', [28, 32, 48, 64, 96, 128])
def test_unconditional_shapes_and_ranges(size):
    cfg = model.net_config(size, size, 3)
    z = tf.placeholder(tf.float32, [None, 100])
    images = model.generator(z, None, cfg, training=True)
    logits = model.discriminator(images, None, cfg, training=True)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        out, out_logits = sess.run([images, logits], {z: np.random.uniform(-1, 1, [3, 100])})
    assert out.shape == (3, size, size, 3)
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert out_logits.shape == (3, 1)


def test_non_square_output():
    cfg = model.net_config(48, 80, 1)
    z = tf.placeholder(tf.float32, [None, 100])
    images = model.generator(z, None, cfg, training=False)
    assert images.get_shape().as_list() == [None, 48, 80, 1]
    assert model.discriminator(images, None, cfg, training=False).get_shape().as_list() == [None, 1]


def test_conditional_shapes_and_sigmoid_range():
    cfg = mnist_cfg()
    sampler = model.build_sampler(cfg)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        out = sess.run(sampler.images, {sampler.z: np.random.uniform(-1, 1, [5, 100]),
                                        sampler.y: np.eye(10)[:5]})
    assert out.shape == (5, 28, 28, 1)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_parameter_counts_match_the_reference():
    train_graph(model.net_config(64, 64, 3))
    assert model.count_parameters(model.GENERATOR_SCOPE) == 5135363
    assert model.count_parameters(model.DISCRIMINATOR_SCOPE) == 4316545
    tf.reset_default_graph()
    train_graph(mnist_cfg())
    assert model.count_parameters(model.GENERATOR_SCOPE) == 7065211
    assert model.count_parameters(model.DISCRIMINATOR_SCOPE) == 3769479
    assert (model.count_parameters(model.GENERATOR_SCOPE)
            + model.count_parameters(model.DISCRIMINATOR_SCOPE)) == 10834690


@pytest.mark.parametrize('cfg,reference', [
    (model.net_config(64, 64, 3), REFERENCE_64),
    (model.net_config(28, 28, 1, y_dim=10), REFERENCE_MNIST)])
@pytest.mark.parametrize('form', ops.IMPLS)  # the CPU forms: same variables
def test_variable_names_and_shapes_are_the_reference_table(cfg, reference, form):
    with ops.impl(form):
        train_graph(cfg)
        model.build_sampler(cfg)  # the sampler shares the generator's variables: no new ones
    assert model_variables() == reference


@pytest.mark.parametrize('rows', [1, 7, 64])
def test_sampler_takes_any_number_of_latents(rows):
    cfg = model.net_config(32, 32, 3)
    sampler = model.build_sampler(cfg)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        out = sess.run(sampler.images, {sampler.z: np.random.uniform(-1, 1, [rows, 100])})
    assert out.shape == (rows, 32, 32, 3)


def test_sampler_uses_inference_batch_norm():
    """In inference mode a sample does not depend on the other rows of its batch."""
    cfg = model.net_config(32, 32, 3)
    sampler = model.build_sampler(cfg)
    z = np.random.RandomState(0).uniform(-1, 1, [6, 100]).astype(np.float32)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        alone = sess.run(sampler.images, {sampler.z: z[:1]})
        together = sess.run(sampler.images, {sampler.z: z})
    np.testing.assert_allclose(alone[0], together[0], atol=1e-5)


@pytest.mark.parametrize('cfg', [model.net_config(32, 32, 3), model.net_config(28, 28, 1, y_dim=10)])
def test_one_step_updates_weights_and_moving_averages(cfg):
    ops = train_graph(cfg, batch=8)
    watched = ['generator/g_h0_lin/Matrix', 'discriminator/d_h0_conv/w', 'generator/g_bn0/moving_mean',
               'generator/g_bn2/moving_variance', 'discriminator/d_bn1/moving_mean',
               'discriminator/d_bn1/moving_variance']
    variables = dict((v.op.name, v) for v in tf.global_variables())
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        before = sess.run([variables[n] for n in watched])
        _, d_loss, g_loss, step = sess.run([ops.step, ops.d_loss, ops.g_loss, ops.global_step])
        after = sess.run([variables[n] for n in watched])
        assert sess.run(ops.global_step) == 1
    assert np.isfinite(d_loss) and np.isfinite(g_loss)
    for name, b, a in zip(watched, before, after):
        assert not np.allclose(b, a), '%s did not change in a training step' % name


def test_forward_pass_alone_does_not_move_averages():
    cfg = model.net_config(32, 32, 3)
    ops = train_graph(cfg)
    mean = [v for v in tf.global_variables() if v.op.name == 'generator/g_bn1/moving_mean'][0]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run([ops.d_loss, ops.model.fake])
        assert np.all(sess.run(mean) == 0)


def test_update_ops_are_collected_per_network_scope():
    cfg = model.net_config(32, 32, 3)
    train_graph(cfg, g_steps=2)
    d_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS, 'd_update/' + model.DISCRIMINATOR_SCOPE)
    g_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS, 'd_update/' + model.GENERATOR_SCOPE)
    assert len(d_ops) == 2 * 3 * 2  # real and fake pass x three batch norms x (mean, variance)
    assert len(g_ops) == 4 * 2
    assert all('/discriminator' in op.name and 'generator' not in op.name for op in d_ops)


def test_reference_checkpoint_restores(tmp_path):
    """A checkpoint written over variables with the reference's names (no Adam slots, no global step,
    step in the file name, as the reference saved) restores into the training graph."""
    import runs
    cfg = model.net_config(64, 64, 3)
    values = {}
    with tf.Graph().as_default():
        created = []
        for name, shape in sorted(REFERENCE_64.items()):
            value = np.random.RandomState(len(name)).normal(size=shape).astype(np.float32)
            values[name] = value
            created.append(tf.get_variable(name, initializer=value))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            path = tf.train.Saver(created).save(sess, str(tmp_path / 'DCGAN.model'), global_step=1200)
    ops = train_graph(cfg)
    variables = dict((v.op.name, v) for v in tf.global_variables())
    with tf.Session() as sess:
        missing = runs.restore(sess, path)
        for name, value in values.items():
            np.testing.assert_array_equal(sess.run(variables[name]), value)
        assert 'global_step' in missing and any('adam' in m.lower() for m in missing)
        assert not any(m in REFERENCE_64 for m in missing)
        sess.run(ops.step)  # and it trains from there
    assert runs.step_from_path(path) == 1200


def test_checkpoint_of_another_model_is_refused(tmp_path):
    import runs
    cfg = model.net_config(32, 32, 3)
    model.build_sampler(cfg)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        path = tf.train.Saver().save(sess, str(tmp_path / 'small'))
    tf.reset_default_graph()
    model.build_sampler(model.net_config(64, 64, 3))
    with tf.Session() as sess:
        with pytest.raises(ValueError, match='other settings'):
            runs.restore(sess, path)


def test_ema_of_generator_weights_is_updated_used_by_the_sampler_and_restored(tmp_path):
    cfg = model.net_config(16, 16, 1)
    real = tf.random_uniform([4, 16, 16, 1], -1, 1)
    hparams = model.train_hparams(1e-3, 0.5, 1, ema_decay=0.9)
    ops = model.build_train_ops(real, None, model.sample_latents(4, cfg.z_dim, 'uniform_signed'), cfg, hparams)
    sampler = model.build_sampler(cfg, use_ema=True)
    raw_sampler = model.build_sampler(cfg)
    g_vars = model.network_variables(model.GENERATOR_SCOPE)
    shadows = dict((v.op.name, v) for v in tf.global_variables() if model.EMA_SUFFIX in v.op.name)
    # exactly one shadow per generator variable (weights and batch-norm statistics), named as
    # tf.train.ExponentialMovingAverage does
    g_vars = [v for v in tf.global_variables() if v.op.name.startswith(model.GENERATOR_SCOPE + '/')
              and model.EMA_SUFFIX not in v.op.name and 'adam' not in v.op.name]
    assert len(g_vars) > len(model.network_variables(model.GENERATOR_SCOPE))
    assert sorted(shadows) == sorted(v.op.name + '/' + model.EMA_SUFFIX for v in g_vars)
    raw = [v for v in g_vars if v.op.name == 'generator/g_h0_lin/Matrix'][0]
    shadow = shadows['generator/g_h0_lin/Matrix/' + model.EMA_SUFFIX]
    z = np.random.RandomState(0).uniform(-1, 1, [3, 100])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        start = sess.run(raw)
        np.testing.assert_array_equal(start, sess.run(shadow))  # starts at the raw value
        for _ in range(3):
            sess.run(ops.step)
            previous = sess.run(shadow)
        raw_value, shadow_value = sess.run([raw, shadow])
        sess.run(ops.step)
        # one more step moves the shadow 10% of the way to the new raw value
        np.testing.assert_allclose(sess.run(shadow), 0.9 * shadow_value + 0.1 * sess.run(raw), atol=1e-6)
        assert not np.allclose(shadow_value, start) and not np.allclose(raw_value, shadow_value)
        assert not np.allclose(previous, start)
        ema_images = sess.run(sampler.images, {sampler.z: z})
        assert not np.allclose(ema_images, sess.run(raw_sampler.images, {raw_sampler.z: z}))
        # the averaged sampler reads exactly the shadows: copy the raw weights in and it matches the raw one
        path = tf.train.Saver().save(sess, str(tmp_path / 'ema'))
        sess.run([shadows[v.op.name + '/' + model.EMA_SUFFIX].assign(v) for v in g_vars])
        np.testing.assert_allclose(sess.run(sampler.images, {sampler.z: z}),
                                   sess.run(raw_sampler.images, {raw_sampler.z: z}), atol=1e-6)
    tf.reset_default_graph()
    restored = model.build_sampler(cfg, use_ema=True)  # as --generate builds it
    with tf.Session() as sess:
        import runs
        assert runs.restore(sess, path) == []
        np.testing.assert_allclose(sess.run(restored.images, {restored.z: z}), ema_images, atol=1e-5)


def test_averaged_generator_measures_its_own_batch_norm_statistics():
    # the averaged weights' statistics, not the raw generator's: one step moves the shadow moving mean of
    # g_bn0 10% of the way to the batch mean of the averaged g_h0_lin on the step's latents
    cfg = model.net_config(16, 16, 1)
    z = np.random.RandomState(1).uniform(-1, 1, [8, cfg.z_dim]).astype(np.float32)
    hparams = model.train_hparams(1e-3, 0.5, 1, ema_decay=0.5)
    ops = model.build_train_ops(tf.random_uniform([8, 16, 16, 1], -1, 1), None, tf.constant(z), cfg, hparams)
    by_name = dict((v.op.name, v) for v in tf.global_variables())
    averaged = lambda name: by_name['generator/%s/%s' % (name, model.EMA_SUFFIX)]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(3):
            sess.run(ops.step)
        before, raw_before = sess.run([averaged('g_bn0/moving_mean'), by_name['generator/g_bn0/moving_mean']])
        sess.run(ops.step)
        matrix, bias, after, raw_after = sess.run([averaged('g_h0_lin/Matrix'), averaged('g_h0_lin/bias'),
                                                   averaged('g_bn0/moving_mean'),
                                                   by_name['generator/g_bn0/moving_mean']])
    batch_mean = (z @ matrix + bias).mean(axis=0)
    np.testing.assert_allclose(after, 0.9 * before + 0.1 * batch_mean, rtol=1e-4, atol=1e-5)
    assert not np.allclose(after, raw_after, atol=1e-4) and not np.allclose(raw_after, raw_before)


def test_checkpoint_without_averaged_statistics_starts_them_from_the_raw_ones():
    cfg = model.net_config(16, 16, 1)
    hparams = model.train_hparams(1e-3, 0.5, 1, ema_decay=0.9)
    model.build_train_ops(tf.random_uniform([4, 16, 16, 1], -1, 1), None,
                          model.sample_latents(4, cfg.z_dim, 'uniform_signed'), cfg, hparams)
    raw = [v for v in model.moving_statistics(model.GENERATOR_SCOPE) if model.EMA_SUFFIX not in v.op.name]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run([v.assign(v + 0.5) for v in raw])
        missing = [v.op.name + '/' + model.EMA_SUFFIX for v in raw]
        assert model.start_averaged_statistics(sess, missing) == len(raw)
        for v in raw:
            shadow = [s for s in tf.global_variables() if s.op.name == v.op.name + '/' + model.EMA_SUFFIX][0]
            np.testing.assert_array_equal(sess.run(shadow), sess.run(v))
        assert model.start_averaged_statistics(sess, ['generator/g_h0_lin/Matrix']) == 0


def test_two_time_scale_learning_rates():
    hparams = model.train_hparams(2e-4, 0.5, 1, d_learning_rate=1e-5, g_learning_rate=5e-4)
    assert (hparams.d_learning_rate, hparams.g_learning_rate) == (1e-5, 5e-4)
    assert model.train_hparams(3e-4).d_learning_rate == model.train_hparams(3e-4).g_learning_rate == 3e-4


# Batch sizes where the gradients are well conditioned at the initial weights, so that float rounding stays
# rounding: in the conditional D, four near-identical fakes leave the batch norm of its dense layer almost
# no variance; in the 64x64 G at 16 rows, scaling z by 1 + 2e-7 moves g_h2's native gradient by 3%.
@pytest.mark.parametrize('size, channels, y_dim, batch', [(64, 3, 0, 4), (28, 1, 10, 16)])
def test_cpu_forms_give_the_same_losses_and_gradients(size, channels, y_dim, batch):
    """The networks in ops.impl('cpu') (4x4 maps as matrix products, transposed convolutions by phases: the
    image layers, every one on TF 1.x; label maps by linearity; the fused leaky ReLU gradient): the same
    losses and gradients as in 'ref' (the weights after an Adam step are no test: Adam's first step is
    lr * sign(gradient) for tiny gradients)."""
    results = []
    for cpu_forms in (False, True):
        tf.reset_default_graph()
        tf.set_random_seed(3)
        cfg = model.net_config(size, size, channels, y_dim=y_dim)
        real = tf.constant(np.random.RandomState(0).uniform(-1, 1, [batch, size, size, channels]).astype(np.float32))
        y = tf.one_hot(np.arange(batch) % y_dim, y_dim) if y_dim else None
        z = tf.constant(np.random.RandomState(1).uniform(-1, 1, [batch, 100]).astype(np.float32))
        with ops.impl('cpu' if cpu_forms else 'ref'):
            train_ops = model.build_train_ops(real, y, z, cfg, model.train_hparams(g_steps=2))
        types = set(o.type for o in tf.get_default_graph().get_operations())
        assert ('DepthToSpace' in types) == cpu_forms and ('LeakyReluGrad' in types) == cpu_forms
        im2col = [o for o in tf.get_default_graph().get_operations()  # windows [N, positions, C]; phase kernels: 2-D
                  if o.type == 'GatherV2' and o.outputs[0].get_shape().ndims == 3]
        assert bool(im2col) == (cpu_forms and size == 64)  # im2col of the 4x4 maps; 28x28 has none
        d_vars = model.network_variables(model.DISCRIMINATOR_SCOPE)
        g_vars = model.network_variables(model.GENERATOR_SCOPE)
        gradients = (tf.gradients(train_ops.loss.d_loss, d_vars) + tf.gradients(train_ops.loss.g_loss, g_vars))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            if results:  # the first graph's initial weights (op seeds differ between the graphs on TF 1.x)
                for v in d_vars + g_vars:
                    v.load(initial[v.op.name], sess)
            initial = dict((v.op.name, sess.run(v)) for v in d_vars + g_vars)
            results.append(sess.run([train_ops.loss.d_loss, train_ops.loss.g_loss] + gradients))
    scale = max(np.abs(value).max() for value in results[0])
    for native, cpu_form in zip(*results):  # atol: biases before batch norm have zero gradient plus rounding
        np.testing.assert_allclose(cpu_form, native, rtol=2e-3, atol=1e-5 * scale)
