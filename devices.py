"""Device choice (NPU, GPU, CPU), precision per device, and the tf.Session config of each."""
import collections
import ctypes
import ctypes.util
import re

from tf_compat import tf
from tensorflow.core.protobuf import rewriter_config_pb2

import npu

MIXED_MODES = ('allow_mix_precision', 'force_fp16')  # modes that ask for reduced precision on GPU/CPU

# What a run computes in, decided once from device, precision flag, TensorFlow and CPU.
Precision = collections.namedtuple('Precision', [
    'mode',  # the --precision_mode value in force
    'compute',  # 'float32', 'float16 mixed', 'bfloat16 mixed' or 'npu <mode>'
    'note',  # a sentence for the log when the flag could not be honoured as asked, else ''
])


class DeviceError(Exception):
    """A device or precision request this host cannot honour (one sentence for the user)."""


def tf_major():
    """1 for TensorFlow 1.x, 2 for 2.x."""
    return int(tf.__version__.split('.')[0])


def gpu_available():
    """True when TensorFlow sees a GPU."""
    return bool(tf.config.experimental.list_physical_devices('GPU'))


def cpu_has_bf16(cpuinfo_path='/proc/cpuinfo'):
    """True when the CPU computes bfloat16 natively (AVX512_BF16 or AMX), which oneDNN's rewrite needs."""
    try:
        with open(cpuinfo_path) as f:
            flags = f.read()
    except OSError:
        return False
    return bool(re.search(r'\b(avx512_bf16|amx_bf16)\b', flags))


def choose_device(requested):
    """The device to run on: 'npu', 'gpu' or 'cpu'. auto: NPU if npu_bridge imports, else GPU, else CPU."""
    if requested == 'npu':
        if not npu.available():
            raise DeviceError('--device npu needs Ascend\'s TensorFlow adapter npu_bridge (CANN toolkit), '
                              'which is not installed in this Python; use --device auto, gpu or cpu here.')
        return 'npu'
    if requested == 'gpu':
        if not gpu_available():
            raise DeviceError('--device gpu: TensorFlow %s sees no GPU on this host (check the CUDA '
                              'install, or use --device cpu).' % tf.__version__)
        return 'gpu'
    if requested == 'cpu':
        return 'cpu'
    if npu.available():
        return 'npu'
    return 'gpu' if gpu_available() else 'cpu'


def choose_precision(device, requested, major=None, bf16=None):
    """Precision of a run. requested '' means the device's default: the Ascend port's mixed precision
    on the NPU, float32 on GPU and CPU. A mixed mode asked for explicitly where this host cannot run it
    is an error; nothing silently falls back."""
    major = tf_major() if major is None else major
    if device == 'npu':
        mode = requested or npu.DEFAULT_PRECISION_MODE
        return Precision(mode, 'npu ' + mode, '')
    mode = requested or 'must_keep_origin_dtype'
    if mode not in MIXED_MODES:
        return Precision(mode, 'float32', '')
    if device == 'gpu':
        note = '' if mode == 'allow_mix_precision' else (
            'force_fp16 on a GPU runs as automatic mixed precision (TensorFlow has no all-fp16 mode).')
        return Precision(mode, 'float16 mixed', note)
    bf16 = cpu_has_bf16() if bf16 is None else bf16
    if major < 2:
        raise DeviceError('--precision_mode %s on a CPU needs TensorFlow 2.x (oneDNN bfloat16); '
                          'TensorFlow %s has no CPU mixed precision: use --precision_mode '
                          'must_keep_origin_dtype (float32).' % (mode, tf.__version__))
    if not bf16:
        raise DeviceError('--precision_mode %s on a CPU needs bfloat16 instructions (AVX512_BF16 or AMX), '
                          'which this CPU lacks: use --precision_mode must_keep_origin_dtype (float32).' % mode)
    return Precision(mode, 'bfloat16 mixed', '')


def kernel_impl(device):
    """The form the layers compute in (ops.set_impl): 'cpu', cpu_kernels' equal forms that CPU kernels run
    faster, on a CPU (gains in docs/performance.md); 'ref', TensorFlow's own ops, on GPUs and NPUs."""
    return 'cpu' if device == 'cpu' else 'ref'


def session_config(device, precision, npu_options=None):
    """tf.ConfigProto for the device and precision (NPU: npu.session_config, not yet finalized)."""
    if device == 'npu':
        return npu.session_config(precision.mode, **(npu_options or {}))
    config = tf.ConfigProto(allow_soft_placement=True)
    rewrite = config.graph_options.rewrite_options
    if device == 'gpu':
        config.gpu_options.allow_growth = True  # share the card; take memory as the graph needs it
        if precision.compute == 'float16 mixed':
            rewrite.auto_mixed_precision = rewriter_config_pb2.RewriterConfig.ON
    elif precision.compute == 'bfloat16 mixed':
        rewrite.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    return config


def optimizer_wrapper(device, precision):
    """Function wrapping each Adam for loss scaling where the precision needs it, else None.

    float16 on a GPU: TensorFlow's dynamic loss scaling. bfloat16 has float32's range and needs none.
    """
    if device == 'npu':
        return npu.wrap_optimizer
    if precision.compute == 'float16 mixed':
        return _dynamic_loss_scale
    return None


def _dynamic_loss_scale(optimizer):
    if tf_major() < 2:
        from tensorflow.python.training.experimental import loss_scale_optimizer
        return loss_scale_optimizer.MixedPrecisionLossScaleOptimizer(optimizer, 'dynamic')
    return tf.mixed_precision.MixedPrecisionLossScaleOptimizer(optimizer, 'dynamic')


def make_session(device, config, target=''):
    """The tf.Session for the device; on the NPU the config goes through npu_bridge first. On a CPU the
    step's tensors are host memory, so malloc is first told to keep freed memory (keep_freed_memory).
    target: a tf.train.Server's, where the ranks meet over TensorFlow collectives."""
    if device == 'npu':
        config = npu.finalize(config)
    elif device == 'cpu':
        keep_freed_memory()
    return tf.Session(target, config=config)


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4


def keep_freed_memory(keep_bytes=1 << 30, pad_bytes=64 << 20):
    """Has glibc's malloc keep the memory a step frees for the next step. A CPU step allocates and frees
    about 100 MB of activations; by default each large block is mapped afresh and unmapped on free, and
    freed heap tops and emptied thread heaps go back to the system, so their pages fault in again every
    step. Here no block is mapped on its own, up to keep_bytes of freed heap top are kept, and pad_bytes
    of slack keeps emptied thread heaps (the gain: docs/performance.md). Returns True where applied,
    False where the C library has no mallopt (not glibc)."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6').mallopt
    except (OSError, AttributeError):
        return False
    settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, keep_bytes), (_M_TOP_PAD, pad_bytes))
    return all([bool(mallopt(parameter, value)) for parameter, value in settings])  # a list: every one is set
