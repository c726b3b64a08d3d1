"""tools/xla_step.py: its pure helpers, and the export of the MNIST step as one XLA program (TensorFlow 2.x)."""
import json
import os
import sys

import numpy as np
import pytest

from conftest import REPO, run_script

sys.path.insert(0, os.path.join(REPO, 'tools'))
import xla_step  # noqa: E402  (imports neither TensorFlow nor jax at module level)

def run_tool(*args, timeout=300):
    return run_script(os.path.join('tools', 'xla_step.py'), *args, timeout=timeout)


def test_init_rules_follow_the_layers_initializers():
    assert xla_step._init_rule('generator/g_h1/w') == 'normal0.02'
    assert xla_step._init_rule('discriminator/d_h4_lin/Matrix') == 'normal0.02'
    assert xla_step._init_rule('generator/g_bn1/gamma') == 'ones'
    assert xla_step._init_rule('generator/g_bn1/moving_variance') == 'ones'
    assert xla_step._init_rule('generator/g_bn1/moving_mean') == 'zeros'
    assert xla_step._init_rule('generator/g_h1/w/g_adam_1') == 'zeros'  # Adam's slots start at zero
    assert xla_step._init_rule('d_update/beta1_power') == 'beta1'
    assert xla_step._init_rule('global_step') == 'zeros'
    # the check's state: Adam's second moments at one (a first update linear in the gradient), the rest as run's
    assert xla_step._check_rule('generator/g_h1/w/g_adam_1', 'zeros') == 'ones'
    assert xla_step._check_rule('discriminator/d_h1_conv/w/d_adam_1', 'zeros') == 'ones'
    assert xla_step._check_rule('generator/g_h1/w/g_adam', 'zeros') == 'zeros'
    assert xla_step._check_rule('generator/g_h1/w', 'normal0.02') == 'normal0.02'


def test_initial_values_have_each_parameters_shape_dtype_and_fill():
    spec = dict(parameters=[
        dict(name='input/images', shape=[4, 2, 2, 1], dtype='float32', init='images'),
        dict(name='input/labels', shape=[4], dtype='int32', init='labels'),
        dict(name='generator/g_h1/w', shape=[5, 5, 64, 32], dtype='float32', init='normal0.02'),
        dict(name='generator/g_bn1/gamma', shape=[32], dtype='float32', init='ones'),
        dict(name='d_update/beta2_power', shape=[], dtype='float32', init='beta2'),
        dict(name='global_step', shape=[], dtype='int64', init='zeros'),
    ])
    images, labels, w, gamma, beta2, step = xla_step.initial_values(spec)
    assert images.shape == (4, 2, 2, 1) and images.dtype == np.float32 and np.abs(images).max() <= 1
    assert labels.dtype == np.int32 and 0 <= labels.min() and labels.max() < 10
    assert w.shape == (5, 5, 64, 32) and abs(float(w.std()) - 0.02) < 0.002
    assert (gamma == 1).all() and beta2 == np.float32(0.999) and step.dtype == np.int64 and step == 0


def test_check_skips_only_what_has_no_defined_value():
    skipped = ['generator/g_h1/biases', 'generator/g_h3/biases/g_adam_1', 'discriminator/d_h2_conv/biases/d_adam',
               'discriminator/d_bn1/moving_mean', 'discriminator/d_bn3/moving_variance']
    compared = ['generator/g_h4/biases', 'discriminator/d_h0_conv/biases', 'generator/g_h0_lin/bias',
                'generator/g_bn1/moving_mean', 'generator/g_h1/w/g_adam', 'discriminator/d_h1_conv/w', 'g_loss']
    assert all(xla_step.NOT_COMPARED.search(name) for name in skipped)
    assert not any(xla_step.NOT_COMPARED.search(name) for name in compared)


def test_kernel_kinds_of_names_seen_on_an_h100():
    kind = xla_step.kernel_kind
    assert kind('sm90_xmma_dgrad_implicit_gemm_indexed_f32f32_tf32f32_f32_nhwckrsc_nhwc') == 'convolution (cuDNN)'
    assert kind('sm80_xmma_gemm_cf32cf32_f32f32_cf32_tn_n_tilesize64x32x8') == 'convolution (cuDNN)'
    assert kind('void fft2d_r2c_16x16<float>(float2*, float const*, int)') == 'convolution (cuDNN)'
    assert kind('gemm_fusion_dot_27') == 'matrix product'
    assert kind('input_multiply_reduce_fusion_1') == 'reduction fusion'
    assert kind('loop_add_subtract_fusion') == 'elementwise fusion'


def test_tables_show_the_measured_figures():
    row = dict(net='dcgan64_g2', batch=64, step_ms=8.19, images_per_s=7815.0, step_ms_p10=8.05, step_ms_p90=8.32,
               queued_step_ms=7.52, queued_images_per_s=8512.0, achieved_tflops=43.25, fraction_of_tf32=0.12)
    report = dict(device='NVIDIA H100 80GB HBM3', jax='0.11.2', rows=[row],
                  reachable=dict(float32=49.8, tf32=361.5, bf16=690.1))
    table = xla_step.format_table(report)
    assert 'NVIDIA H100 80GB HBM3' in table and '7815' in table and '361.5' in table
    kernels = dict(kernels_per_step=499.0, kernel_ms_per_step=7.44,
                   kinds={'convolution (cuDNN)': dict(ms_per_step=5.69, kernels_per_step=155.0)},
                   top=[dict(name='fft2d_r2c_16x16', ms_per_step=0.767, per_step=12.0)])
    text = xla_step.format_kernels('dcgan64_g2', kernels, 8.19)
    assert '499 kernels' in text and '91%' in text and 'fft2d_r2c_16x16' in text


def test_run_names_a_missing_folder_without_a_traceback(tmp_path):
    result = run_tool('run', tmp_path / 'nothing_here')
    assert result.returncode == 2
    assert 'xla_step.py export' in result.stdout and 'Traceback' not in result.stdout


def test_export_writes_the_mnist_step_with_every_variable(tmp_path):
    import devices
    result = run_tool('export', '--nets', 'mnist', '--out', tmp_path)
    if devices.tf_major() < 2:
        assert result.returncode != 0 and 'TensorFlow 2.x' in result.stdout and 'Traceback' not in result.stdout
        return
    assert result.returncode == 0, result.stdout
    program = (tmp_path / 'mnist.hlo.pb').read_bytes()
    assert len(program) > 10000
    spec = json.loads((tmp_path / 'mnist.json').read_text())
    names = [p['name'] for p in spec['parameters']]
    assert names[:2] == ['input/images', 'input/labels']
    assert spec['parameters'][0]['shape'] == [64, 28, 28, 1] and spec['g_steps'] == 2
    assert spec['counted_gflop_per_image'] == pytest.approx(0.53, abs=0.01)  # the layers' own count, labels included
    assert spec['outputs'][:2] == ['d_loss', 'g_loss'] and spec['outputs'][2:] == names[2:]

    # every variable main.py's training graph makes is a parameter, once: weights, BN statistics, Adam's slots
    from tf_compat import tf
    import model
    with tf.Graph().as_default():
        cfg = model.net_config(28, 28, 1, y_dim=10)
        model.build_train_ops(tf.zeros([64, 28, 28, 1]), tf.zeros([64, 10]), tf.zeros([64, cfg.z_dim]), cfg,
                              model.train_hparams(g_steps=2))
        expected = sorted(v.name.split(':')[0] for v in tf.global_variables())
    assert sorted(names[2:]) == expected
    rules = dict((p['name'], p['init']) for p in spec['parameters'])
    assert rules['generator/g_h0_lin/Matrix'] == 'normal0.02' and rules['generator/g_bn0/gamma'] == 'ones'
    assert rules['generator/g_h0_lin/Matrix/g_adam'] == 'zeros'


def test_run_names_missing_programs_without_a_traceback(tmp_path):
    (tmp_path / 'mnist.json').write_text('{}')
    result = run_tool('run', tmp_path, '--nets', 'mnist', '--batch', 256)
    assert result.returncode == 2 and 'Traceback' not in result.stdout
    assert 'mnist-b256.json' in result.stdout and 'export --batch 256' in result.stdout
    result = run_tool('run', tmp_path, '--nets', 'mnist', '--check')
    assert result.returncode == 2 and 'mnist.hlo.pb' in result.stdout and 'dcgan64_g2.check.npz' in result.stdout
