"""Training options beyond the reference's defaults: R1 penalty, label smoothing, Adam beta2, learning-rate
decay, a late-starting weight average; each changes the graph as intended and trains through main.py."""
import numpy as np
import pytest

import model
from conftest import run_main
from tf_compat import tf


@pytest.fixture(autouse=True)
def fresh_graph():
    tf.reset_default_graph()
    yield
    tf.reset_default_graph()


def test_r1_penalty_is_the_mean_squared_input_gradient():
    x = tf.constant(np.random.RandomState(0).randn(5, 3, 3, 2).astype(np.float32))
    w = np.random.RandomState(1).randn(3, 3, 2).astype(np.float32)
    linear = tf.reduce_sum(x * w, axis=[1, 2, 3])[:, None]  # gradient w at every image
    quadratic = 0.5 * tf.reduce_sum(tf.square(x), axis=[1, 2, 3])[:, None]  # gradient x
    with tf.Session() as sess:
        value_linear, value_quadratic, images = sess.run(
            [model.r1_penalty(x, linear), model.r1_penalty(x, quadratic), x])
    assert value_linear == pytest.approx(np.sum(w ** 2), rel=1e-5)
    assert value_quadratic == pytest.approx(np.mean(np.sum(images ** 2, axis=(1, 2, 3))), rel=1e-5)


def build(hparams, size=16, y_dim=0, batch=4):
    cfg = model.net_config(size, size, 1, y_dim=y_dim)
    real = tf.constant(np.random.RandomState(0).uniform(-1, 1, [batch, size, size, 1]).astype(np.float32))
    y = tf.one_hot(np.arange(batch) % y_dim, y_dim) if y_dim else None
    z = tf.constant(np.random.RandomState(1).uniform(-1, 1, [batch, 100]).astype(np.float32))
    return model.build_train_ops(real, y, z, cfg, hparams)


@pytest.mark.parametrize('y_dim', [0, 10])
def test_r1_gamma_adds_half_gamma_times_the_penalty_to_the_d_loss(y_dim):
    ops = build(model.train_hparams(r1_gamma=10.0), size=28 if y_dim else 16, y_dim=y_dim)
    loss = ops.loss
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        d_loss, real, fake, penalty = sess.run([loss.d_loss, loss.d_loss_real, loss.d_loss_fake, loss.r1_penalty])
        sess.run(ops.step)  # the penalty's own gradient (a second derivative through D) trains
        after = sess.run(loss.r1_penalty)
    assert penalty > 0 and np.isfinite(after)
    assert d_loss == pytest.approx(real + fake + 5.0 * penalty, rel=1e-5)


def test_the_reference_defaults_build_no_penalty():
    assert build(model.train_hparams()).loss.r1_penalty is None


def test_one_sided_label_smoothing_changes_only_the_real_target():
    logits = tf.constant([[0.3], [-1.2], [2.0]])
    with tf.Session() as sess:
        smoothed, zero = sess.run([model._xent(logits, 0.9), model._xent(logits, 0.0)])
    values = np.array([0.3, -1.2, 2.0])

    def xent(target):
        return np.mean(np.maximum(values, 0) - values * target + np.log1p(np.exp(-np.abs(values))))
    assert smoothed == pytest.approx(xent(0.9), rel=1e-6) and zero == pytest.approx(xent(0.0), rel=1e-6)
    ops = build(model.train_hparams(label_smoothing=0.1))
    real_logits = ops.model.real_logits
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        d_loss_real, logit_values = sess.run([ops.loss.d_loss_real, real_logits])
    l = logit_values.ravel()
    assert d_loss_real == pytest.approx(np.mean(np.maximum(l, 0) - l * 0.9 + np.log1p(np.exp(-np.abs(l)))), rel=1e-5)


def test_learning_rate_factor_falls_linearly_over_the_decay_steps():
    step = tf.placeholder(tf.int64, [])
    factor = model.learning_rate_factor(step, 100, 300)
    with tf.Session() as sess:
        values = [sess.run(factor, {step: s}) for s in (0, 100, 200, 300, 400)]
    np.testing.assert_allclose(values, [1, 1, 0.5, 0, 0])


def test_decayed_learning_rate_stops_the_weights_at_the_end():
    ops = build(model.train_hparams(learning_rate=1e-3, g_steps=1, decay_start=0, decay_end=1))
    g_vars = model.network_variables(model.GENERATOR_SCOPE)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(ops.step)  # step 0: factor 1
        before = sess.run(g_vars)
        sess.run(ops.step)  # step 1: factor 0, nothing moves
        after = sess.run(g_vars)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


def test_adam_takes_beta2():
    assert model._adam(1e-4, model.train_hparams(beta2=0.99), 'x')._beta2 == 0.99
    assert model._adam(1e-4, model.train_hparams(), 'x')._beta2 == 0.999  # Adam's default, as the reference


def test_ema_start_keeps_the_average_on_the_weights_until_then():
    ops = build(model.train_hparams(learning_rate=1e-3, g_steps=1, ema_decay=0.9, ema_start=2))
    raw = [v for v in model.network_variables(model.GENERATOR_SCOPE) if v.op.name == 'generator/g_h0_lin/Matrix'][0]
    shadow = model.ema_shadow(raw)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(2):  # steps 0 and 1: the average is the weights
            sess.run(ops.step)
            np.testing.assert_array_equal(sess.run(shadow), sess.run(raw))
        previous = sess.run(shadow)
        sess.run(ops.step)  # step 2: the average starts
        np.testing.assert_allclose(sess.run(shadow), 0.9 * previous + 0.1 * sess.run(raw), atol=1e-6)
        assert not np.allclose(sess.run(shadow), sess.run(raw))


@pytest.mark.slow
def test_main_trains_with_every_option_and_records_them(mnist_dir, tmp_path):
    import json
    import os
    out = tmp_path / 'out'
    result = run_main('--dataset', 'mnist', '--input_height=28', '--output_height=28', '--data_dir', mnist_dir,
                      '--out_dir', out, '--batch_size', 8, '--train', '--train_steps', 3, '--epoch', 1,
                      '--r1_gamma', 10, '--label_smoothing', 0.1, '--beta2', 0.99, '--lr_decay_epochs', 1,
                      '--ema_decay', 0.9, '--ema_start', 1)
    assert result.returncode == 0, result.stdout
    assert 'nan' not in result.stdout.lower()
    with open(os.path.join(str(out), 'mnist_out28x28_z100', 'config.json')) as f:
        config = json.load(f)
    assert (config['r1_gamma'], config['label_smoothing'], config['beta2'], config['lr_decay_epochs'],
            config['ema_start']) == (10, 0.1, 0.99, 1, 1)


@pytest.mark.parametrize('flag, value', [('--label_smoothing', '1'), ('--beta2', '-0.1'), ('--r1_gamma', '-1'),
                                         ('--ema_start', '-5'), ('--lr_decay_epochs', '-1')])
def test_out_of_range_options_are_refused(flag, value, mnist_dir, tmp_path, capsys):
    import main
    status = main.main(['--dataset', 'mnist', '--input_height=28', '--output_height=28', '--data_dir', mnist_dir,
                        '--out_dir', str(tmp_path), '--train', flag, value])
    err = capsys.readouterr().err
    assert status == 2 and flag in err and len(err.strip().splitlines()) == 1
