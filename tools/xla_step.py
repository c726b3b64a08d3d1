"""The training step as one XLA program: exported by TensorFlow here, timed on a GPU through jaxlib alone.

    .venv/bin/python tools/xla_step.py export --out build/xla            # TensorFlow 2.x: one program per network
    python tools/xla_step.py run build/xla --json build/xla/gpu.json     # any machine with jax and jaxlib

Why: a lent GPU machine here has jax but no TensorFlow and no package registry, and TensorFlow (a 573 MB
wheel plus CUDA libraries) cannot travel to it. So TensorFlow's XLA bridge compiles the step main.py
builds for a GPU (model.build_train_ops with native convolutions: one D update, g_steps G updates,
Adam, batch norm, latents sampled in the graph) into one HLO module: the program TensorFlow runs for
that step under XLA (tf.function(jit_compile=True)), weights and Adam slots in, updated values out.
`run` compiles it with the local XLA (cuDNN and cuBLAS on a GPU), feeds each step's updated state to
the next as a training loop does, and prints images/s with the device's reachable matrix throughput.
TensorFlow's own GPU executor (one kernel per op, no XLA) is not what this measures.

`export --check` also writes, for the 64x64 network, a twin program with the latents as an input and what
one step of a graph-mode session (main.py's way) does from a state any machine can rebuild from a seed: the
losses, and per updated value the size and the first entries of its change. `run --check` requires the
program, compiled where it runs, to do the same (small files, so the check travels with the programs).
"""
import argparse
import json
import os
import re
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # the project's modules are flat files at the repository root
sys.path.insert(0, os.path.join(REPO, 'tools'))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # noqa: E402

import benchmark  # noqa: E402  (its network table and git_commit; it imports no TensorFlow)

NETS = benchmark.NETS  # name -> output size, channels, label size, G updates per D update
BATCH = 64  # main.py's default --batch_size
CHECK_NET = 'dcgan64_g2'
# Relative error allowed per output of the check's step (run in full float32, see run_check). Float32 sums
# reorder between XLA's kernels and TensorFlow's; a gradient that is a sum of many cancelling terms (batch
# norm's gamma) then differs by up to 3% (the others by under 1%). Two same-shaped weights swapped make
# errors of 100% and more.
CHECK_TOLERANCE = 5e-2
# Outputs the check reports but does not compare:
# - biases of the 64x64 network's layers followed by batch norm: their gradient is zero in exact arithmetic
#   (the batch mean is subtracted), so both sides update them from rounding noise;
# - D's moving statistics: the D update runs D on the real and on the fake batch, each adding an update of
#   them, with no order between the two; a session may run both from the old value where XLA runs one after
#   the other. No output reads them (samples and evaluation use G alone).
NOT_COMPARED = re.compile(r'/(g_h[123]|d_h[123]_conv)/biases(/[gd]_adam(_1)?)?$|^discriminator/d_bn\d+/moving_')


# ---- export (TensorFlow 2.x) -------------------------------------------------------------------------
def export(out_dir, nets, check, batch=BATCH):
    from tf_compat import tf, tensorflow
    import devices
    import model
    if devices.tf_major() < 2:
        sys.exit('xla_step.py export needs TensorFlow 2.x (tf.function(jit_compile=True)): use .venv/bin/python')
    os.makedirs(out_dir, exist_ok=True)
    tf.enable_v2_behavior()  # wrap_function and jit_compile need eager mode; this process builds nothing else
    for net in nets:
        spec, files = _export_net(tf, tensorflow, devices, model, net, batch, check and net == CHECK_NET)
        name = program_name(net, batch)
        for suffix, data in files.items():
            with open(os.path.join(out_dir, name + suffix), 'wb') as f:
                f.write(data if isinstance(data, bytes) else data.encode())
        print('%s: %d parameters, %.2f GFLOP per image -> %s' % (
            name, len(spec['parameters']), spec['counted_gflop_per_image'], os.path.join(out_dir, name + '.hlo.pb')))


def _export_net(tf, tensorflow, devices, model, net, batch, check):
    """(spec, {file suffix: bytes or text}) of one network's step; with check, the fixed-latent twin too."""
    shape = NETS[net]
    size, channels, y_dim, g_steps = shape['size'], shape['channels'], shape['y_dim'], shape['g_steps']
    cfg = model.net_config(size, size, channels, y_dim=y_dim)
    hparams = model.train_hparams(g_steps=g_steps)
    image_spec = tf.TensorSpec([batch, size, size, channels], tf.float32)
    label_spec = tf.TensorSpec([batch], tf.int32)

    def step(real, labels, z=None):
        y = tf.one_hot(labels, 10) if y_dim else None
        if z is None:
            z = model.sample_latents(batch, cfg.z_dim, 'uniform_signed')  # main.py's default --z_dist
        ops = model.build_train_ops(real, y, z, cfg, hparams)
        with tf.control_dependencies([ops.step]):  # the losses come back once the whole step has run
            return tf.identity(ops.d_loss), tf.identity(ops.g_loss)

    rng = np.random.RandomState(0)
    inputs = [(image_spec, 'input/images', 'images', rng.uniform(-1, 1, image_spec.shape)),
              (label_spec, 'input/labels', 'labels', rng.randint(0, 10, batch))]
    program, parameters = _program(tf, tensorflow, step, inputs, lambda name, rule: rule)
    with tf.Graph().as_default():  # FLOPs as benchmark.py counts them, in a graph of their own
        gflop = benchmark.gflop_per_image(*benchmark.forward_gflop(tf, model, cfg),
                                          g_steps=g_steps)
    spec = dict(net=net, batch=batch, g_steps=g_steps, image_shape=[size, size, channels], y_dim=y_dim,
                tensorflow=tf.__version__, commit=benchmark.git_commit(), counted_gflop_per_image=gflop,
                parameters=parameters, outputs=['d_loss', 'g_loss'] + [p['name'] for p in parameters[2:]])
    files = {'.hlo.pb': program, '.json': json.dumps(spec, indent=1)}
    if check:
        z_spec = tf.TensorSpec([batch, cfg.z_dim], tf.float32)
        inputs.append((z_spec, 'input/latents', 'latents', rng.uniform(-1, 1, z_spec.shape)))
        files.update(_check_files(tf, tensorflow, step, inputs))
    return spec, files


def _program(tf, tensorflow, step, inputs, rule):
    """step(*inputs) compiled by TensorFlow's XLA bridge: (serialized HLO module, its parameters in order:
    the inputs, then every variable the step made, each with its init rule, rule(name, _init_rule(name))).
    inputs: (TensorSpec, name, init rule, example value) each."""
    wrapped = tf.wrap_function(step, [spec for spec, _, _, _ in inputs])
    compiled = tensorflow.function(lambda *args: wrapped(*args), jit_compile=True)
    examples = [tf.constant(np.asarray(value, spec.dtype.as_numpy_dtype)) for spec, _, _, value in inputs]
    compiled(*examples)  # one step through TensorFlow's XLA first: it lifts the variables out of the wrapper
    program = compiled.experimental_get_compiler_ir(*examples)(stage='hlo_serialized')
    names = dict((id(v.handle), v.name.split(':')[0])  # every variable the step made, Adam's slots too
                 for v in wrapped.graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES))
    parameters = [dict(name=name, shape=spec.shape.as_list(), dtype=spec.dtype.name, init=init)
                  for spec, name, init, _ in inputs]
    for handle in compiled.get_concrete_function(*examples).captured_inputs:
        dtype = handle._handle_data.shape_and_type[0].dtype  # a resource handle knows its variable's dtype
        value = tf.raw_ops.ReadVariableOp(resource=handle, dtype=dtype).numpy()
        name = names[id(handle)]
        parameters.append(dict(name=name, shape=list(value.shape), dtype=value.dtype.name,
                               init=rule(name, _init_rule(name))))
    return program, parameters


def program_name(net, batch):
    """File name stem of a network's program: the network, and the batch where it is not main.py's default."""
    return net if batch == BATCH else '%s-b%d' % (net, batch)


def _init_rule(name):
    """How `run` fills a parameter: the initializers of ops.py (weights N(0, 0.02), biases 0, BN gamma 1),
    Adam's slots and the step count at zero, the beta powers at their first-step values."""
    leaf = name.rsplit('/', 1)[-1]
    if leaf in ('w', 'Matrix'):
        return 'normal0.02'
    if leaf in ('gamma', 'moving_variance'):
        return 'ones'
    if leaf == 'beta1_power':
        return 'beta1'
    if leaf == 'beta2_power':
        return 'beta2'
    return 'zeros'


CHECK_SEED = 1
CHECK_HEAD = 512  # first entries of each change kept for the check


def _check_rule(name, rule):
    """The check's state: as `run` starts, but Adam's second moments at one, so that the first update is
    linear in the gradient (from zero moments Adam steps +-lr whatever the gradient's size, and the
    sign of a near-zero gradient would decide the comparison)."""
    return 'ones' if re.search(r'/[gd]_adam_1$', name) else rule


def _check_files(tf, tensorflow, step, inputs):
    """The fixed-latent program, its parameters, and one step of main.py's graph-mode session from the
    seeded check state: losses, and per updated value the norm and the first CHECK_HEAD entries of its change."""
    program, parameters = _program(tf, tensorflow, step, inputs, _check_rule)
    before = initial_values(dict(parameters=parameters), seed=CHECK_SEED)
    fed = len(inputs)
    with tf.Graph().as_default():
        feeds = [tf.placeholder(spec.dtype, spec.shape) for spec, _, _, _ in inputs]
        losses = step(*feeds)
        variables = dict((v.name.split(':')[0], v) for v in tf.global_variables())
        state = [variables[p['name']] for p in parameters[fed:]]
        with tf.Session() as sess:
            for variable, value in zip(state, before[fed:]):
                variable.load(value, sess)
            after = list(sess.run(losses, dict(zip(feeds, before[:fed])))) + sess.run(state)
    arrays = dict(losses=np.array(after[:2], np.float64))
    changes = [(a.astype(np.float64) - b.astype(np.float64)).ravel() for a, b in zip(after[2:], before[fed:])]
    arrays['change_norms'] = np.array([np.linalg.norm(c) for c in changes])
    arrays['change_heads'] = np.stack([np.pad(c[:CHECK_HEAD], (0, max(0, CHECK_HEAD - c.size)), constant_values=np.nan)
                                       for c in changes])
    import io
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    spec = dict(net=CHECK_NET, seed=CHECK_SEED, parameters=parameters,
                outputs=['d_loss', 'g_loss'] + [p['name'] for p in parameters[fed:]])
    return {'.check.hlo.pb': program, '.check.npz': buffer.getvalue(), '.check.json': json.dumps(spec, indent=1)}


# ---- run (jax + jaxlib: no TensorFlow) ---------------------------------------------------------------
def run(in_dir, nets, steps, warmup, check, json_path, profile_steps=0, profile_dir=None, batch=BATCH):
    import jax
    jax.config.update('jax_enable_x64', True)  # the step counter is int64
    device = jax.devices()[0]
    report = dict(device=device.device_kind, platform=device.platform, jax=jax.__version__, steps=steps,
                  warmup=warmup, rows=[])
    print('device: %s (%s), jax %s' % (device.device_kind, device.platform, jax.__version__))
    if check:
        report['check'] = run_check(jax, device, in_dir, batch)
    report['reachable'] = reachable_tflops(jax, device)
    for name in nets:
        name = program_name(name, batch)
        with open(os.path.join(in_dir, name + '.json')) as f:
            spec = json.load(f)
        row = time_program(jax, device, spec, os.path.join(in_dir, name + '.hlo.pb'), steps, warmup,
                           profile_steps, profile_dir)
        row.update(exported_at=spec.get('commit', ''), tensorflow=spec.get('tensorflow', ''))
        row['achieved_tflops'] = row['images_per_s'] * spec['counted_gflop_per_image'] / 1e3
        row['fraction_of_tf32'] = row['achieved_tflops'] / report['reachable']['tf32']
        row['bound_images_per_s_tf32'] = report['reachable']['tf32'] * 1e3 / spec['counted_gflop_per_image']
        report['rows'].append(row)
    print(format_table(report))
    if json_path:
        with open(json_path, 'w') as f:
            json.dump(report, f, indent=1)
        print('wrote', json_path)
    return report


def compile_program(jax, device, path, full_float32=False):
    """The exported HLO module compiled for device. Its `copy` instructions (TensorFlow's returned values)
    become identity reshapes: XLA's GPU path rejects the mhlo.copy they convert to, and a copy of a value
    is the value. full_float32: convolutions and products at HIGHEST precision (no TF32 on a GPU)."""
    from jax._src import xla_bridge
    from jax._src.interpreters import mlir
    from jax._src.lib import _jax
    from jax._src.lib.mlir import ir
    with open(path, 'rb') as f:
        module = _jax.mlir.hlo_to_stablehlo(f.read())
    with mlir.make_ir_context():
        text = ir.Module.parse(module).operation.get_asm(enable_debug_info=False)
    text = re.sub(r'mhlo\.copy (%[\w#]+) : (tensor<[^>]*>)', r'stablehlo.reshape \1 : (\2) -> \2', text)
    if full_float32:
        text = text.replace('precision DEFAULT>', 'precision HIGHEST>').replace(
            'precision = [DEFAULT, DEFAULT]', 'precision = [HIGHEST, HIGHEST]')
    backend = xla_bridge.get_backend(device.platform)
    return backend.compile_and_load(text, _jax.DeviceList((device,)), _jax.CompileOptions())


def initial_values(spec, seed=0):
    """numpy values of a program's parameters as their init rules say (input batch, weights, slots)."""
    rng = np.random.RandomState(seed)
    fill = {
        'images': lambda shape: rng.uniform(-1, 1, shape),
        'labels': lambda shape: rng.randint(0, 10, shape),
        'latents': lambda shape: rng.uniform(-1, 1, shape),
        'normal0.02': lambda shape: rng.normal(0, 0.02, shape),
        'ones': np.ones, 'zeros': np.zeros,
        'beta1': lambda shape: np.full(shape, 0.5), 'beta2': lambda shape: np.full(shape, 0.999),
    }
    return [np.asarray(fill[p['init']](p['shape']), dtype=p['dtype']) for p in spec['parameters']]


def time_program(jax, device, spec, path, steps, warmup, profile_steps=0, profile_dir=None):
    """Images/s of the step, each step's updated state fed to the next; synced per step (as sess.run) and not."""
    started = time.time()
    program = compile_program(jax, device, path)
    compile_s = time.time() - started
    values = [jax.device_put(v, device) for v in initial_values(spec)]
    inputs, state = values[:2], values[2:]

    def one_step(state):
        outs = program.execute_sharded(inputs + state).disassemble_into_single_device_arrays()
        return [o[0] for o in outs[:2]], [o[0] for o in outs[2:]]

    for _ in range(warmup):
        losses, state = one_step(state)
    jax.block_until_ready(state)
    synced = []
    for _ in range(steps):  # as a session run per step: wait for the losses each time
        t = time.perf_counter()
        losses, state = one_step(state)
        jax.block_until_ready(losses)
        synced.append(time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(steps):  # queued: the host only enqueues, as an in-graph loop (NPU iterations_per_loop)
        losses, state = one_step(state)
    jax.block_until_ready(losses)
    queued = (time.perf_counter() - t) / steps
    if profile_steps:
        folder = os.path.join(profile_dir or '.', 'profile-' + spec['net'])
        jax.profiler.start_trace(folder)
        for _ in range(profile_steps):
            losses, state = one_step(state)
            jax.block_until_ready(losses)
        jax.profiler.stop_trace()
        kernels = kernel_summary(jax, folder, profile_steps)
    d_loss, g_loss = [float(np.asarray(v)) for v in losses]
    median = float(np.median(synced))
    row = dict(net=spec['net'], g_steps=spec['g_steps'], batch=spec['batch'], compile_s=compile_s,
               step_ms=1e3 * median, step_ms_p10=1e3 * float(np.percentile(synced, 10)),
               step_ms_p90=1e3 * float(np.percentile(synced, 90)), images_per_s=spec['batch'] / median,
               queued_step_ms=1e3 * queued, queued_images_per_s=spec['batch'] / queued,
               d_loss=d_loss, g_loss=g_loss, finite=bool(np.isfinite(d_loss) and np.isfinite(g_loss)))
    print('%s: compiled in %.1f s, %.2f ms per step (%.0f images/s), queued %.2f ms, losses %.3f %.3f' % (
        spec['net'], compile_s, row['step_ms'], row['images_per_s'], row['queued_step_ms'], d_loss, g_loss))
    if profile_steps:
        row['kernels'] = kernels
        print(format_kernels(spec['net'], kernels, row['step_ms']))
    if not row['finite']:
        raise SystemExit('%s: losses not finite after %d steps' % (spec['net'], warmup + 2 * steps))
    return row


# Kernel name fragments -> kind, first match wins (cuDNN and cuBLAS kernels, then XLA's own).
KERNEL_KINDS = (
    ('convolution (cuDNN)', ('conv', 'fprop', 'dgrad', 'wgrad', 'implicit', 'xmma_', 'cudnn', 'fft')),
    ('matrix product', ('gemm', 'cublas', 'cutlass', 'matmul', 'dot')),
    ('reduction fusion', ('reduce', 'reduction', 'input_')),
    ('elementwise fusion', ('fusion', 'loop_', 'transpose', 'concatenate', 'slice', 'pad')),
    ('copy', ('memcpy', 'memset', 'copy')),
)


def kernel_kind(name):
    """The KERNEL_KINDS kind of a kernel's name, else 'other'."""
    lowered = name.lower()
    for kind, fragments in KERNEL_KINDS:
        if any(fragment in lowered for fragment in fragments):
            return kind
    return 'other'


def kernel_summary(jax, folder, steps):
    """Device time per step by kernel kind and the top kernels, from the trace jax.profiler wrote: the
    device planes' stream lines (each kernel once)."""
    import glob
    from jax.profiler import ProfileData
    paths = sorted(glob.glob(os.path.join(folder, '**', '*.xplane.pb'), recursive=True))
    if not paths:
        return dict(error='no trace written in %s' % folder)
    data = ProfileData.from_file(paths[-1])
    by_name, lines_seen = {}, []
    for plane in data.planes:
        if not plane.name.startswith('/device:'):
            continue
        for line in plane.lines:
            lines_seen.append('%s: %s' % (plane.name, line.name))
            if not line.name.startswith('Stream'):
                continue  # 'XLA Modules', 'XLA Ops' and the like repeat the stream's kernels under other names
            for event in line.events:
                total, count = by_name.get(event.name, (0.0, 0))
                by_name[event.name] = (total + event.duration_ns, count + 1)
    if not by_name:
        return dict(error='no device kernels in the trace', lines=lines_seen)
    kinds = {}
    for name, (total, count) in by_name.items():
        kind = kinds.setdefault(kernel_kind(name), [0.0, 0])
        kind[0] += total / 1e6 / steps
        kind[1] += count / float(steps)
    top = sorted(by_name.items(), key=lambda item: -item[1][0])[:12]
    return dict(trace=paths[-1], steps=steps, lines=lines_seen,
                kernel_ms_per_step=sum(t for t, _ in by_name.values()) / 1e6 / steps,
                kernels_per_step=sum(c for _, c in by_name.values()) / float(steps),
                kinds=dict((k, dict(ms_per_step=v[0], kernels_per_step=v[1])) for k, v in kinds.items()),
                top=[dict(name=n, ms_per_step=t / 1e6 / steps, per_step=c / float(steps)) for n, (t, c) in top])


def format_kernels(net, kernels, step_ms):
    if 'error' in kernels:
        return '%s profile: %s (%s)' % (net, kernels['error'], '; '.join(kernels.get('lines', [])[:8]))
    lines = ['%s profile: %.0f kernels, %.2f ms of kernel time per step (%.0f%% of the %.2f ms step)' % (
        net, kernels['kernels_per_step'], kernels['kernel_ms_per_step'],
        100 * kernels['kernel_ms_per_step'] / step_ms, step_ms)]
    for kind, value in sorted(kernels['kinds'].items(), key=lambda item: -item[1]['ms_per_step']):
        lines.append('  %-22s %6.2f ms %5.0f kernels' % (kind, value['ms_per_step'], value['kernels_per_step']))
    for entry in kernels['top']:
        lines.append('  %6.3f ms x%-3.0f %s' % (entry['ms_per_step'], entry['per_step'], entry['name'][:110]))
    return '\n'.join(lines)


def reachable_tflops(jax, device, n=8192, repeats=10):
    """TFLOP/s of an n^3 matrix product: float32 (HIGHEST precision), float32 as TF32 (XLA's default on
    GPUs with tensor cores, and TensorFlow's default there) and bfloat16."""
    import jax.numpy as jnp
    key_a, key_b = jax.random.split(jax.random.PRNGKey(0))
    result = {}
    for label, dtype, precision in (('float32', jnp.float32, 'highest'), ('tf32', jnp.float32, 'default'),
                                    ('bf16', jnp.bfloat16, 'default')):
        a = jax.device_put(jax.random.normal(key_a, (n, n), dtype), device)
        b = jax.device_put(jax.random.normal(key_b, (n, n), dtype), device)
        product = jax.jit(lambda x, y, p=precision: jnp.matmul(x, y, precision=p))
        jax.block_until_ready(product(a, b))
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            jax.block_until_ready(product(a, b))
            times.append(time.perf_counter() - t)
        result[label] = 2.0 * n ** 3 / float(np.median(times)) / 1e12
    print('reachable matrix product (n=%d): float32 %.1f, TF32 %.1f, bf16 %.1f TFLOP/s' % (
        n, result['float32'], result['tf32'], result['bf16']))
    return result


def run_check(jax, device, in_dir, batch=BATCH):
    """Runs the fixed-latent program once, in full float32, from the seeded check state: the losses, and each
    updated value's change (its norm and first entries), must match the session's within CHECK_TOLERANCE."""
    stem = os.path.join(in_dir, program_name(CHECK_NET, batch) + '.check')
    program = compile_program(jax, device, stem + '.hlo.pb', full_float32=True)  # TF32 would hide the check
    with open(stem + '.json') as f:
        spec = json.load(f)
    saved = np.load(stem + '.npz')
    before = initial_values(spec, seed=spec['seed'])
    outs = program.execute_sharded([jax.device_put(v, device) for v in before])
    outs = [np.asarray(o[0]).astype(np.float64) for o in outs.disassemble_into_single_device_arrays()]
    if len(outs) != len(spec['outputs']):
        raise SystemExit('the check program returned %d values, not %d' % (len(outs), len(spec['outputs'])))
    errors = dict((name, float(abs(got - want) / abs(want)))
                  for name, got, want in zip(('d_loss', 'g_loss'), outs[:2], saved['losses']))
    fed = len(before) - len(outs) + 2  # the inputs: the variables follow them, as they follow the losses
    for k, name in enumerate(spec['outputs'][2:]):
        change = (outs[k + 2] - before[k + fed].astype(np.float64)).ravel()
        want_head = saved['change_heads'][k][:min(CHECK_HEAD, change.size)]
        want_norm = saved['change_norms'][k]
        head_error = np.linalg.norm(change[:want_head.size] - want_head) / max(np.linalg.norm(want_head), 1e-30)
        norm_error = abs(np.linalg.norm(change) - want_norm) / max(want_norm, 1e-30)
        errors[name] = float(max(head_error, norm_error))
    compared = dict((n, e) for n, e in errors.items() if not NOT_COMPARED.search(n))
    worst_name = max(compared, key=compared.get)
    worst = compared[worst_name]
    ok = worst <= CHECK_TOLERANCE
    print('check: %d of %d outputs against TensorFlow\'s session, worst relative error %.2e (%s), '
          'losses %.1e %.1e: %s' % (len(compared), len(outs), worst, worst_name,
                                   errors['d_loss'], errors['g_loss'], 'ok' if ok else 'FAILED'))
    if not ok:
        for name in sorted(compared, key=compared.get, reverse=True)[:10]:
            print('  %-50s %.2e' % (name, compared[name]))
        raise SystemExit('the exported program does not reproduce TensorFlow\'s step')
    return dict(outputs=len(outs), compared=len(compared), worst_relative_error=worst, worst_output=worst_name,
                tolerance=CHECK_TOLERANCE, loss_errors=[errors['d_loss'], errors['g_loss']])


def format_table(report):
    lines = ['', 'XLA training step on %s (jax %s), float32 weights (convolutions and products '
             'in XLA\'s default precision: TF32 on tensor-core GPUs)' % (report['device'], report['jax']),
             'reachable: float32 %.1f, TF32 %.1f, bf16 %.1f TFLOP/s (8192^3 matrix product)' % (
                 report['reachable']['float32'], report['reachable']['tf32'], report['reachable']['bf16']),
             '%-11s %5s %8s %9s %10s %9s %10s %9s %10s' % ('network', 'batch', 'step ms', 'images/s', 'p10-p90 ms',
                                                         'queued', 'images/s', 'TFLOP/s', 'of TF32')]
    for row in report['rows']:
        lines.append('%-11s %5d %8.2f %9.0f %4.2f-%-5.2f %9.2f %10.0f %9.2f %10.3f' % (
            row['net'], row['batch'], row['step_ms'], row['images_per_s'], row['step_ms_p10'], row['step_ms_p90'],
            row['queued_step_ms'], row['queued_images_per_s'], row['achieved_tflops'], row['fraction_of_tf32']))
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog=__doc__.split('\n', 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='command')
    e = sub.add_parser('export', help='TensorFlow 2.x: write <net>.hlo.pb and <net>.json per network')
    e.add_argument('--out', default=os.path.join(REPO, 'build', 'xla'), help='folder to write [build/xla]')
    e.add_argument('--check', action='store_true', help='also write the 64x64 network\'s one-step check')
    r = sub.add_parser('run', help='jax + jaxlib: compile and time the exported programs')
    r.add_argument('folder', help='what export wrote')
    r.add_argument('--steps', type=int, default=100, help='timed steps per network, each way [100]')
    r.add_argument('--warmup', type=int, default=20, help='steps before timing [20]')
    r.add_argument('--check', action='store_true', help='first reproduce TensorFlow\'s step (export --check)')
    r.add_argument('--json', default=None, help='also write the report here')
    r.add_argument('--profile', type=int, default=0, metavar='STEPS',
                   help='then trace this many steps of each network and print device time by kernel [0]')
    r.add_argument('--profile_dir', default=None, help='where the traces go [the --json folder, else .]')
    for parser in (e, r):
        parser.add_argument('--batch', type=int, default=BATCH, help='images per step [%d]' % BATCH)
        parser.add_argument('--nets', nargs='+', default=list(NETS), choices=list(NETS), help='[all]')
    args = p.parse_args(argv)
    if args.command in ('export', 'run') and args.batch < 1:
        p.error('--batch must be at least 1')
    if args.command == 'export':
        export(args.out, args.nets, args.check, args.batch)
    elif args.command == 'run':
        if not os.path.isdir(args.folder):
            p.error('no folder %s: run `tools/xla_step.py export` first' % args.folder)
        wanted = [program_name(net, args.batch) + suffix for net in args.nets for suffix in ('.json', '.hlo.pb')]
        if args.check:
            wanted += [program_name(CHECK_NET, args.batch) + '.check' + suffix
                       for suffix in ('.hlo.pb', '.npz', '.json')]
        missing = [name for name in wanted if not os.path.isfile(os.path.join(args.folder, name))]
        if missing:
            p.error('%s lacks %s: run `tools/xla_step.py export%s%s` first' % (
                args.folder, ', '.join(missing), ' --batch %d' % args.batch if args.batch != BATCH else '',
                ' --check' if args.check else ''))
        try:
            import jax  # noqa: F401  (run's only dependency besides numpy)
        except ImportError:
            p.error('run needs jax and jaxlib (pip install jax, or jax[cuda13] for an NVIDIA GPU)')
        if args.steps < 1 or args.warmup < 0 or args.profile < 0:
            p.error('--steps must be at least 1, --warmup and --profile at least 0')
        profile_dir = args.profile_dir or (os.path.dirname(os.path.abspath(args.json)) if args.json else '.')
        run(args.folder, args.nets, args.steps, args.warmup, args.check, args.json, args.profile, profile_dir,
            args.batch)
    else:
        p.error('name a command: export or run')


if __name__ == '__main__':
    main()
