"""Everything Ascend-specific: NPU detection, the NpuOptimizer session config, loss scaling, loop offload.

npu_bridge (Ascend's TensorFlow adapter in the CANN toolkit) is imported only by the functions that
need it, so this module loads, and its session config can be built and checked, on any host.
"""
import json
import os

from tf_compat import tf
from tensorflow.core.protobuf import rewriter_config_pb2

DEFAULT_PRECISION_MODE = 'allow_mix_precision'  # what the Ascend port trains with

# Loss scaling of the Ascend port: start high and halve on two overflows, double after 1000 clean steps.
LOSS_SCALE_SETTINGS = dict(init_loss_scale=2 ** 32, incr_every_n_steps=1000, decr_every_n_nan_or_inf=2,
                           decr_ratio=0.5)


def available():
    """True when Ascend's adapter npu_bridge can be imported (an Ascend host with CANN installed)."""
    try:
        import npu_bridge.npu_init  # noqa: F401
    except ImportError:
        return False
    return True


def rank_size():
    """Number of NPU processes of the job, from RANK_SIZE; unset means a single device."""
    return int(os.environ.get('RANK_SIZE', '1') or '1')


def session_config(precision_mode=DEFAULT_PRECISION_MODE, iterations_per_loop=1, over_dump=False,
                   over_dump_path='', profiling=False, profiling_options=''):
    """ConfigProto carrying the NpuOptimizer custom optimizer, built from TensorFlow's own protos.

    It is complete and checkable without an NPU; finalize() hands it to npu_bridge on an Ascend host.
    """
    config = tf.ConfigProto(allow_soft_placement=True)
    rewrite = config.graph_options.rewrite_options
    npu_optimizer = rewrite.custom_optimizers.add()
    npu_optimizer.name = 'NpuOptimizer'
    params = npu_optimizer.parameter_map
    params['use_off_line'].b = True  # run on the Ascend device rather than the host
    params['precision_mode'].s = tf.compat.as_bytes(precision_mode)
    if iterations_per_loop > 1:
        params['iterations_per_loop'].i = iterations_per_loop
        params['enable_data_pre_proc'].b = True  # the data pipeline runs on the device side (GetNext sink)
    if over_dump:
        params['enable_dump_debug'].b = True
        params['dump_path'].s = tf.compat.as_bytes(over_dump_path)
        params['dump_debug_mode'].s = tf.compat.as_bytes('all')
    if profiling:
        params['profiling_mode'].b = True
        params['profiling_options'].s = tf.compat.as_bytes(profiling_options)
    # The Ascend graph engine does these itself; TensorFlow's versions break its fusion.
    rewrite.remapping = rewriter_config_pb2.RewriterConfig.OFF
    rewrite.memory_optimization = rewriter_config_pb2.RewriterConfig.OFF
    return config


def default_profiling_options(output_path):
    """Profiling options JSON with the traces Ascend users usually ask for, written to output_path."""
    return json.dumps({'output': output_path, 'training_trace': 'on', 'task_trace': 'on',
                       'aicpu': 'on', 'fp_point': '', 'bp_point': ''})


def finalize(config):
    """The session config as npu_bridge wants it (npu_config_proto); needs an Ascend host."""
    from npu_bridge.npu_init import npu_config_proto
    return npu_config_proto(config_proto=config)


def wrap_optimizer(optimizer):
    """Wraps an optimizer for the NPU: distributed over RANK_SIZE devices when > 1, then loss-scaled.

    The NPU computes in saturation mode (an overflow gives +-max, not inf), so only the NPU loss-scale
    optimizer can see overflows; TensorFlow's own loss scaling would miss them.
    """
    from npu_bridge.npu_init import (ExponentialUpdateLossScaleManager, NPUDistributedOptimizer,
                                     NPULossScaleOptimizer)
    distributed = rank_size() > 1
    if distributed:
        optimizer = NPUDistributedOptimizer(optimizer)
    manager = ExponentialUpdateLossScaleManager(**LOSS_SCALE_SETTINGS)
    return NPULossScaleOptimizer(optimizer, manager, is_distributed=distributed)


def set_iterations_per_loop(sess, train_op, iterations):
    """Makes one sess.run(train_op) execute `iterations` steps on the device; returns the op to run."""
    from npu_bridge.npu_init import util
    return util.set_iteration_per_loop(sess, train_op, iterations)


# HCCL broadcasts these dtypes; other variables (the int64 global step) travel as int32 and come back
HCCL_BROADCAST_DTYPES = ('float16', 'float32', 'int32', 'int8')


def broadcast_variables(variables, root_rank=0):
    """An op setting every variable to rank root_rank's value over HCCL (hccl_ops.broadcast), to run once
    after initialisation or restore. All global variables, not only the trainable ones that
    NPUBroadcastGlobalVariablesHook covers: batch-norm moving statistics, Adam slots, the global step and
    the generator's moving average must agree on every rank too."""
    from npu_bridge.npu_init import hccl_ops
    assigns = []
    with tf.name_scope('broadcast_variables'):
        for variable in variables:
            value = variable.read_value()
            dtype = value.dtype.base_dtype
            wire = value if dtype.name in HCCL_BROADCAST_DTYPES else tf.cast(value, tf.int32 if dtype.is_integer
                                                                            else tf.float32)
            received = hccl_ops.broadcast([wire], root_rank)[0]
            assigns.append(variable.assign(tf.cast(received, dtype) if received.dtype != dtype else received))
    return tf.group(*assigns)
