"""Session configs per device and precision (NPU's too, built from TensorFlow's protos), and CPU bf16 training."""
import os
import platform
import re
import subprocess
import sys

import numpy as np
import pytest

import devices
import main
import npu
from conftest import run_main
from tf_compat import tf
from tensorflow.core.protobuf import rewriter_config_pb2

ON, OFF = rewriter_config_pb2.RewriterConfig.ON, rewriter_config_pb2.RewriterConfig.OFF
STEP_LOSSES = re.compile(r'd_loss: (\S+), g_loss: (\S+)$', re.M)


def npu_optimizer(config):
    custom = config.graph_options.rewrite_options.custom_optimizers
    assert [c.name for c in custom] == ['NpuOptimizer']
    return custom[0].parameter_map


def test_npu_config_field_by_field():
    precision = devices.choose_precision('npu', '')
    assert precision.mode == 'allow_mix_precision'
    config = devices.session_config('npu', precision)
    params = npu_optimizer(config)
    assert params['use_off_line'].b is True
    assert params['precision_mode'].s == b'allow_mix_precision'
    assert 'iterations_per_loop' not in params and 'enable_dump_debug' not in params
    rewrite = config.graph_options.rewrite_options
    assert rewrite.remapping == OFF and rewrite.memory_optimization == OFF


@pytest.mark.parametrize('mode', main.PRECISION_MODES)
def test_npu_precision_modes_pass_through(mode):
    params = npu_optimizer(devices.session_config('npu', devices.choose_precision('npu', mode)))
    assert params['precision_mode'].s == mode.encode()


def test_npu_loop_offload_dump_and_profiling_options():
    config = npu.session_config('force_fp16', iterations_per_loop=100, over_dump=True,
                                over_dump_path='/tmp/ovf', profiling=True,
                                profiling_options=npu.default_profiling_options('/tmp/prof'))
    params = npu_optimizer(config)
    assert params['iterations_per_loop'].i == 100 and params['enable_data_pre_proc'].b is True
    assert params['enable_dump_debug'].b is True and params['dump_path'].s == b'/tmp/ovf'
    assert params['dump_debug_mode'].s == b'all'
    assert params['profiling_mode'].b is True and b'"output": "/tmp/prof"' in params['profiling_options'].s


def test_npu_loss_scale_settings_and_rank_size(monkeypatch):
    assert npu.LOSS_SCALE_SETTINGS == dict(init_loss_scale=2 ** 32, incr_every_n_steps=1000,
                                           decr_every_n_nan_or_inf=2, decr_ratio=0.5)
    monkeypatch.delenv('RANK_SIZE', raising=False)
    assert npu.rank_size() == 1  # the port crashed here
    monkeypatch.setenv('RANK_SIZE', '8')
    assert npu.rank_size() == 8


def test_npu_is_not_available_here_and_npu_device_is_refused():
    assert not npu.available()
    with pytest.raises(devices.DeviceError, match='npu_bridge'):
        devices.choose_device('npu')
    assert devices.choose_device('auto') in ('gpu', 'cpu')


def test_gpu_configs():
    fp32 = devices.choose_precision('gpu', '')
    config = devices.session_config('gpu', fp32)
    assert fp32.compute == 'float32' and config.gpu_options.allow_growth
    assert config.graph_options.rewrite_options.auto_mixed_precision != ON
    assert devices.optimizer_wrapper('gpu', fp32) is None
    mixed = devices.choose_precision('gpu', 'allow_mix_precision')
    config = devices.session_config('gpu', mixed)
    assert mixed.compute == 'float16 mixed'
    assert config.graph_options.rewrite_options.auto_mixed_precision == ON
    assert devices.optimizer_wrapper('gpu', mixed) is not None
    assert 'force_fp16' in devices.choose_precision('gpu', 'force_fp16').note


def test_gpu_loss_scaling_skips_a_non_finite_step_and_halves_the_scale():
    wrap = devices.optimizer_wrapper('gpu', devices.choose_precision('gpu', 'allow_mix_precision'))
    with tf.Graph().as_default():
        w = tf.get_variable('w', initializer=tf.constant([1.0, 2.0]))
        x = tf.placeholder(tf.float32, [2])
        optimizer = wrap(tf.train.AdamOptimizer(0.1))
        step = optimizer.minimize(tf.reduce_sum(w * x), var_list=[w])
        scale = optimizer._loss_scale()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            assert sess.run(scale) == 2.0 ** 15  # the dynamic scale's start
            sess.run(step, {x: [1.0, 1.0]})
            updated = sess.run(w)
            assert np.allclose(updated, [0.9, 1.9]) and sess.run(scale) == 2.0 ** 15  # Adam's first step: lr
            sess.run(step, {x: [np.inf, 1.0]})  # overflowing gradients: no update, half the scale
            assert np.array_equal(sess.run(w), updated) and sess.run(scale) == 2.0 ** 14


def test_gpu_loss_scaling_wraps_both_networks_train_ops():
    import model
    wrap = devices.optimizer_wrapper('gpu', devices.choose_precision('gpu', 'allow_mix_precision'))
    with tf.Graph().as_default():
        cfg = model.net_config(16, 16, 1)
        real = tf.zeros([2, 16, 16, 1])
        ops = model.build_train_ops(real, None, model.sample_latents(2, cfg.z_dim, 'uniform_signed'), cfg,
                                    model.train_hparams(2e-4, 0.5, 1), wrap)
        scales = [v for v in tf.global_variables() if v.op.name.startswith('current_loss_scale')]
        assert len(scales) == 2  # one dynamic loss scale for D's Adam, one for G's
        weights = [v for v in tf.trainable_variables() if v.op.name.endswith(('/w', '/Matrix'))]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            before = sess.run(weights)
            sess.run(ops.step)  # in float32 here (no GPU): the wrapper scales and unscales the gradients
            after = sess.run(weights)
            assert all(not np.array_equal(a, b) for a, b in zip(before, after))
            assert sess.run(scales) == [2.0 ** 15] * 2


@pytest.mark.parametrize('mode', ['', 'must_keep_origin_dtype', 'allow_fp32_to_fp16'])
def test_cpu_float32_modes(mode):
    precision = devices.choose_precision('cpu', mode, major=2, bf16=True)
    assert precision.compute == 'float32'
    rewrite = devices.session_config('cpu', precision).graph_options.rewrite_options
    assert len(rewrite.custom_optimizers) == 0
    assert rewrite.auto_mixed_precision != ON
    if devices.tf_major() >= 2:
        assert rewrite.auto_mixed_precision_onednn_bfloat16 != ON


def test_cpu_mixed_precision_needs_tf2_and_bf16():
    with pytest.raises(devices.DeviceError, match='TensorFlow 2.x'):
        devices.choose_precision('cpu', 'allow_mix_precision', major=1, bf16=True)
    with pytest.raises(devices.DeviceError, match='bfloat16 instructions'):
        devices.choose_precision('cpu', 'allow_mix_precision', major=2, bf16=False)
    assert devices.choose_precision('cpu', 'allow_mix_precision', major=2, bf16=True).compute == 'bfloat16 mixed'


def test_cpu_bf16_flags(tmp_path):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text(u'flags\t\t: fpu sse avx512f amx_bf16 amx_tile\n')
    assert devices.cpu_has_bf16(str(cpuinfo))
    cpuinfo.write_text(u'flags\t\t: fpu sse avx2\n')
    assert not devices.cpu_has_bf16(str(cpuinfo))


@pytest.mark.skipif(devices.tf_major() < 2 or not devices.cpu_has_bf16(),
                    reason='CPU mixed precision needs TensorFlow 2.x and a CPU with bfloat16')
@pytest.mark.slow
def test_cpu_bf16_training_keeps_losses_finite_and_samples_like_float32(mnist_dir, tmp_path):
    import numpy as np
    from PIL import Image
    precision = devices.choose_precision('cpu', 'allow_mix_precision')
    rewrite = devices.session_config('cpu', precision).graph_options.rewrite_options
    assert rewrite.auto_mixed_precision_onednn_bfloat16 == ON
    grids = {}
    for mode in ('must_keep_origin_dtype', 'allow_mix_precision'):
        result = run_main('--dataset', 'mnist', '--train', '--train_steps', '12', '--batch_size', '16',
                          '--precision_mode', mode, '--data_dir', mnist_dir, '--out_dir', tmp_path / mode,
                          '--sample_freq', '12', '--seed', '4')
        assert result.returncode == 0, result.stdout
        losses = [(float(d), float(g)) for d, g in STEP_LOSSES.findall(result.stdout)]
        assert len(losses) == 12 and all(abs(d) < 100 and abs(g) < 100 for d, g in losses)  # finite, sane
        grid_path = tmp_path / mode / 'mnist_out28x28_z100' / 'samples' / 'train_00000012.png'
        grids[mode] = np.asarray(Image.open(str(grid_path)), np.float32)
    assert 'precision bfloat16 mixed' in result.stdout
    fp32, bf16 = grids['must_keep_origin_dtype'], grids['allow_mix_precision']
    # same seed, same data: after 12 steps the bf16 samples are the float32 ones up to rounding noise
    assert np.abs(fp32 - bf16).mean() < 8
    assert np.corrcoef(fp32.ravel(), bf16.ravel())[0, 1] > 0.9


@pytest.mark.slow
@pytest.mark.skipif(devices.tf_major() >= 2, reason='TF 1.15 only')
def test_cpu_mixed_precision_on_tf1_is_refused_with_a_sentence(mnist_dir):
    result = run_main('--dataset', 'mnist', '--train', '--precision_mode', 'allow_mix_precision',
                      '--data_dir', mnist_dir)
    assert result.returncode == 2 and 'needs TensorFlow 2.x' in result.stdout


def test_cpu_kernel_forms_are_for_cpus_only():
    assert devices.kernel_impl('cpu') == 'cpu'
    assert devices.kernel_impl('gpu') == devices.kernel_impl('npu') == 'ref'


# Allocates a 40 MB block (above glibc's largest automatic mmap threshold) and frees it; prints, from glibc's
# mallinfo, the bytes mapped on their own while it lived and the free bytes the heap kept after. With
# 'keep', devices.keep_freed_memory runs first.
REALLOCATE = """
import ctypes, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import devices
class MallInfo(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int) for name in ('arena ordblks smblks hblks hblkhd usmblks fsmblks '
                                                  'uordblks fordblks keepcost').split()]
mallinfo = ctypes.CDLL('libc.so.6').mallinfo
mallinfo.restype = MallInfo
if sys.argv[2] == 'keep':
    assert devices.keep_freed_memory()
block = np.ones(40 << 20, np.uint8)
mapped = mallinfo().hblkhd
del block
print(mapped, mallinfo().fordblks)
"""


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='mallopt is glibc\'s')
def test_keep_freed_memory_serves_large_blocks_from_the_heap_and_keeps_them():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def mapped_and_kept(mode):
        out = subprocess.run([sys.executable, '-c', REALLOCATE, repo, mode], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        return [int(n) for n in out.stdout.split()[-2:]]
    block = 40 << 20
    mapped, kept = mapped_and_kept('default')
    assert mapped >= block and kept < block  # mapped on its own, given back on free
    mapped, kept = mapped_and_kept('keep')
    assert mapped < block and kept >= block  # from the heap, and still there for the next step


def test_cpu_sessions_keep_freed_memory(monkeypatch):
    calls = []
    monkeypatch.setattr(devices, 'keep_freed_memory', lambda: calls.append(1))
    devices.make_session('cpu', devices.session_config('cpu', devices.choose_precision('cpu', ''))).close()
    assert calls == [1]
