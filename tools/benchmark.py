"""Training throughput benchmark: images/s of the real training step per input, the bare-graph floor,
reachable GFLOP/s, float32 against mixed precision and peak memory, as a table and as JSON.

    python tools/benchmark.py                      # the full table (about 25 minutes on 2 cores)
    python tools/benchmark.py --quick              # a few steps of each, to see that everything runs
    python tools/benchmark.py --configs dcgan64_g2_bare --trace dcgan64_g2_bare   # where the time goes

Run it with the interpreter of the runtime to measure (.venv: TensorFlow 2.x, .venv37: TensorFlow 1.15).
Each training configuration runs in its own process (so its peak resident memory is its own) through
the code `main.py --train` runs: its input pipeline (main.py's --input_pipeline auto), model.build_train_ops,
devices.session_config, and one sess.run of the step and both losses per step. The *_reference rows time
the reference implementation's step (carpedm20/DCGAN-tensorflow, rebuilt in tools/reference_step.py) in the
same run, on this runtime and on TF 1.15 (--reference_python), so the speed-ups printed at the end compare
both on the same machine in the same hour.
The configurations run in interleaved rounds (--rounds) and each row pools its steps from all rounds, so a
machine that slows down or speeds up during the run shifts every row alike rather than the later ones.
"""
import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # the project's modules are flat files at the repository root
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # noqa: E402

# ---- what is measured ------------------------------------------------------------------------------------
# Networks: (output size, channels, label size, G updates per D update). MNIST trains with main.py's
# default of two G updates, as the reference did when it was timed.
NETS = {
    'dcgan64_g1': dict(size=64, channels=3, y_dim=0, g_steps=1),
    'dcgan64_g2': dict(size=64, channels=3, y_dim=0, g_steps=2),
    'mnist': dict(size=28, channels=1, y_dim=10, g_steps=2),
}
INPUTS = {
    'prepared': '(a) prepared uint8 cache',
    'folder': '(b) JPEG folder',
    'synthetic': '(c) in-memory synthetic',
    'bare': 'bare graph (constants)',
    'reference': "the reference's own step and input",
}
MNIST_PREPARED = '(a) idx files in memory'  # MNIST's prepared form: main.py reads the idx files into RAM
# The reference (tools/reference_step.py) always ran two G updates and float32 on a CPU.
REFERENCE_CONFIGS = ['dcgan64_g2_reference', 'mnist_reference']
DEFAULT_CONFIGS = [net + '_' + inp for net in NETS for inp in INPUTS if inp != 'reference'] + REFERENCE_CONFIGS + [
    'dcgan64_g2_synthetic_mixed', 'dcgan64_g2_bare_mixed', 'mnist_synthetic_mixed']

# GFLOP per real image of one 64x64 training step, from the forward counts of G (0.326) and D (0.324)
# through gflop_per_image (a multiply-add counts as two FLOPs).
GFLOP_PER_IMAGE_64 = {1: 3.9, 2: 5.5}
RESULT_MARK = 'BENCHMARK_RESULT '


def parse_config(name):
    """{'name', 'net', 'input', 'mixed'} of a configuration name such as dcgan64_g2_prepared_mixed."""
    parts = name.split('_')
    mixed = parts[-1] == 'mixed'
    if mixed:
        parts = parts[:-1]
    net, inp = '_'.join(parts[:-1]), parts[-1] if parts else ''
    if net not in NETS or inp not in INPUTS:
        raise ValueError('unknown configuration %r: use <net>_<input>[_mixed] with net one of %s and input '
                         'one of %s.' % (name, ', '.join(NETS), ', '.join(INPUTS)))
    if inp == 'reference' and (mixed or name not in REFERENCE_CONFIGS):
        raise ValueError('the reference ran two G updates in float32 only: its configurations are %s.'
                         % ' and '.join(REFERENCE_CONFIGS))
    return dict(name=name, net=net, input=inp, mixed=mixed)


def input_label(net, inp, tf_version=''):
    if inp == 'reference':  # the reference decoded JPEGs per batch; it held MNIST in memory as floats
        return 'reference: %s, TF %s' % ('MNIST' if net == 'mnist' else 'JPEGs', tf_version or '?')
    return MNIST_PREPARED if net == 'mnist' and inp == 'prepared' else INPUTS[inp]


# ---- small pure helpers ------------------------------------------------------------------------------------
def rate_stats(step_seconds, batch):
    """Images/s of the median step and the spread (p10, p90, min, max) of per-step rates."""
    rates = batch / np.asarray(step_seconds, np.float64)
    return dict(images_per_s=float(batch / np.median(step_seconds)), p10=float(np.percentile(rates, 10)),
                p90=float(np.percentile(rates, 90)), min=float(rates.min()), max=float(rates.max()))


def gflop_per_image(g_forward, d_forward, g_steps):
    """GFLOP per real image of one step (one D update, g_steps G updates) from forward GFLOP of G and D,
    a backward pass counted as twice its forward: the D update runs G forward, D forward and backward on the
    real and the fake batch (G + 6 D); each G update runs G and D forward, D's input gradient and G backward
    (3 G + 2 D). 64x64: 0.326 and 0.324 give 3.9 (g_steps 1) and 5.5 (g_steps 2)."""
    return (1 + 3 * g_steps) * g_forward + (6 + 2 * g_steps) * d_forward


def machine_jiffies():
    """(busy, total) clock ticks of all CPUs from /proc/stat, or None where there is none."""
    try:
        with open('/proc/stat') as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def other_cores_busy(start, end, own_cores):
    """Cores kept busy by other processes between two machine_jiffies() readings (noise indicator)."""
    if not start or not end or end[1] <= start[1]:
        return None
    machine_cores = (end[0] - start[0]) / float(end[1] - start[1]) * (os.cpu_count() or 1)
    return max(0.0, machine_cores - own_cores)


def machine_info():
    """CPU model, cores and the instruction-set flags that decide float32 and bfloat16 speed."""
    info = dict(cpu_model=platform.processor() or platform.machine(), cores=os.cpu_count(),
                platform=platform.platform(), python=platform.python_version())
    flags = set()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name') and info['cpu_model'] in ('', 'x86_64', platform.machine()):
                    info['cpu_model'] = line.split(':', 1)[1].strip()
                elif line.startswith('flags'):
                    flags = set(line.split(':', 1)[1].split())
    except OSError:
        pass
    info['flags'] = dict((name, name in flags) for name in
                         ('avx2', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_bf16', 'amx_tile'))
    info['load_average_start'] = list(os.getloadavg())
    return info


# ---- data: a JPEG folder, its prepared cache, MNIST idx files ------------------------------------------
def make_jpeg_folder(folder, n, seed=0, size=(178, 218)):
    """n smooth random RGB JPEGs of celebA's size (178 x 218): a random 6 x 7 colour field, bicubic
    upsampled, with mild noise so the files are about as large as celebA's faces (10-20 KB at quality 90).
    Returns the mean file size in KB."""
    from PIL import Image
    rng = np.random.RandomState(seed)
    os.makedirs(folder, exist_ok=True)
    total = 0
    for i in range(n):
        field = Image.fromarray(rng.randint(0, 256, (7, 6, 3)).astype(np.uint8), 'RGB')
        pixels = np.asarray(field.resize(size, Image.BICUBIC), np.float32)
        pixels += rng.normal(0, 6, pixels.shape)
        path = os.path.join(folder, '%06d.jpg' % i)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), 'RGB').save(path, quality=90)
        total += os.path.getsize(path)
    return total / 1024.0 / n


def write_idx(path, array):
    """Writes a uint8 array as an (uncompressed) idx file, the MNIST format."""
    import struct
    array = np.ascontiguousarray(array, np.uint8)
    with open(path, 'wb') as f:
        f.write(struct.pack('>HBB', 0, 0x08, array.ndim) + struct.pack('>' + 'I' * array.ndim, *array.shape))
        f.write(array.tobytes())


def prepare_data(work_dir, configs, mnist_dir, n_images, quick):
    """Writes the data the configurations need under work_dir; returns a description dict for children."""
    import data
    info = {}
    inputs = set((c['net'], c['input']) for c in configs)
    if any(net != 'mnist' and inp in ('prepared', 'folder', 'reference') for net, inp in inputs):
        folder = os.path.join(work_dir, 'faces')
        kb = make_jpeg_folder(folder, n_images)
        info.update(jpeg_folder=folder, jpeg_count=n_images, jpeg_mean_kb=round(kb, 1),
                    jpeg_content='smooth random colour fields with mild noise, 178x218, quality 90')
        if any(net != 'mnist' and inp == 'prepared' for net, inp in inputs):
            spec = data.ImageSpec(True, 108, 108, 64, 64, 3)
            info['prepared_cache'], _ = data.prepare(work_dir, 'faces', spec, data.list_images(folder, '*.jpg'))
    if ('mnist', 'prepared') in inputs or ('mnist', 'reference') in inputs:
        if mnist_dir and data.mnist_available(mnist_dir):
            info.update(mnist_dir=mnist_dir, mnist_content='real MNIST (60,000 training digits)')
        else:
            folder = os.path.join(work_dir, 'mnist')
            os.makedirs(folder, exist_ok=True)
            n = 6400 if quick else 60000
            rng = np.random.RandomState(0)
            write_idx(os.path.join(folder, 'train-images-idx3-ubyte'), rng.randint(0, 256, (n, 28, 28)))
            write_idx(os.path.join(folder, 'train-labels-idx1-ubyte'), rng.randint(0, 10, n))
            info.update(mnist_dir=folder, mnist_content='synthetic idx files (%d random digits; real MNIST '
                                                        'not found at %s)' % (n, mnist_dir))
    return info


# ---- child process: one training configuration --------------------------------------------------------
def open_source(spec, cfg):
    """The data.* source of a configuration, as main.open_dataset would pick it."""
    import data
    inp, net = spec['input'], spec['net']
    if inp == 'prepared' and net == 'mnist':
        images, labels = data.load_mnist(spec['data']['mnist_dir'])
        return data.ArraySource(images, labels)
    if inp == 'prepared':
        return data.PreparedSource(spec['data']['prepared_cache'])
    if inp == 'folder':
        paths = data.list_images(spec['data']['jpeg_folder'], '*.jpg')
        return data.FolderSource(paths, data.ImageSpec(True, 108, 108, 64, 64, 3))
    rng = np.random.RandomState(1)
    n = spec['synthetic_images']
    images = rng.randint(0, 256, (n, cfg.output_height, cfg.output_width, cfg.c_dim)).astype(np.uint8)
    labels = rng.randint(0, 10, n).astype(np.uint8) if cfg.y_dim else None
    return data.ArraySource(images, labels)


def input_batch(tf, spec, cfg, batch):
    """(uint8 images, uint8 labels, initialize(sess), source, pipeline kind): main.train's pipeline for the
    source (as main.py's --input_pipeline picks it, auto unless spec says), or constants (bare: no
    initialize, no source)."""
    import data
    import pipeline
    image_shape = [batch, cfg.output_height, cfg.output_width, cfg.c_dim]
    if spec['input'] == 'bare':
        rng = np.random.RandomState(1)
        images = tf.constant(rng.randint(0, 256, image_shape).astype(np.uint8))
        return images, tf.constant(rng.randint(0, 10, batch).astype(np.uint8)), None, None, 'constants'
    source = open_source(spec, cfg)
    steps_per_epoch = data.batches_per_epoch(len(source), batch)
    epochs = 2 + (spec['warmup'] + spec['steps'] + 10) // steps_per_epoch  # timed and traced steps
    inputs, kind = pipeline.make_input(spec.get('input_pipeline', 'auto'), source, batch, image_shape, 0,
                                       steps_per_epoch, epochs)
    return inputs.images, inputs.labels, lambda sess: inputs.initialize(sess, 0), source, kind


def input_seconds(source, batch, times=3):
    """Median wall seconds the source takes to assemble one batch (decoding, reading), measured alone."""
    import data
    order = data.epoch_permutation(len(source), 7, 0)
    seconds = []
    for i in range(times):
        t0 = time.perf_counter()
        source.batch(order[(i * batch) % len(source):][:batch], 0)
        seconds.append(time.perf_counter() - t0)
    return float(np.median(seconds))


def forward_gflop(tf, model, cfg):
    """GFLOP per image of one generator and one discriminator forward pass, counted by tf.profiler."""
    def y():
        return tf.zeros([64, cfg.y_dim]) if cfg.y_dim else None
    return count_gflop(tf, lambda: model.generator(tf.zeros([64, cfg.z_dim]), y(), cfg, True),
                       lambda: model.discriminator(tf.zeros([64, cfg.output_height, cfg.output_width, cfg.c_dim]),
                                                   y(), cfg, True))


def count_gflop(tf, *builders):
    """GFLOP per image (of a batch of 64) of the graph each builder makes, counted by tf.profiler."""
    def count(build):
        with tf.Graph().as_default() as graph:
            build()
            options = tf.profiler.ProfileOptionBuilder.float_operation()
            options['output'] = 'none'
            return tf.profiler.profile(graph, cmd='op', options=options).total_float_ops / 64e9
    return [count(build) for build in builders]


def train_hparams(model, g_steps):
    """The reference's learning rate and beta1 with g_steps; works with either TrainHParams layout."""
    if hasattr(model, 'train_hparams'):
        return model.train_hparams(g_steps=g_steps)
    return model.TrainHParams(0.0002, 0.5, g_steps)


def run_training_config(spec):
    """Builds main.py's training graph for one configuration, times its steps; returns a result dict."""
    from tf_compat import tf
    import devices
    import model
    import ops
    net = NETS[spec['net']]
    result = dict(name=spec['name'], net=spec['net'], input=spec['input'], g_steps=net['g_steps'],
                  input_label=input_label(spec['net'], spec['input']), batch=spec['batch'],
                  tf_version=tf.__version__)
    if spec.get('malloc_defaults'):  # this child only: make_session leaves malloc as it is
        devices.keep_freed_memory = lambda: False
    device = devices.choose_device(spec['device'])
    try:
        precision = devices.choose_precision(device, 'allow_mix_precision' if spec['mixed'] else '')
    except devices.DeviceError as error:
        result.update(status='n/a', precision='mixed', reason=str(error))
        return result
    result.update(device=device, precision=precision.compute)
    cfg = model.net_config(net['size'], net['size'], net['channels'], y_dim=net['y_dim'])
    # FLOPs as the convolutions define them (ops' 'ref' form), whichever form computes them
    g_forward, d_forward = forward_gflop(tf, model, cfg)
    ops.set_impl(devices.kernel_impl(device))
    result.update(g_forward_gflop=g_forward, d_forward_gflop=d_forward,
                  counted_gflop_per_image=gflop_per_image(g_forward, d_forward, net['g_steps']))

    # ---- graph: as main.train (input, networks, losses, train ops), without the sampler and summaries
    batch = spec['batch']
    started = time.time()
    tf.set_random_seed(0)
    images_u8, labels_u8, initializer, source, result['pipeline'] = input_batch(tf, spec, cfg, batch)
    low, high = model.data_range(cfg)
    real = tf.cast(images_u8, tf.float32) * ((high - low) / 255.0) + low
    y = tf.one_hot(tf.cast(labels_u8, tf.int32), 10) if cfg.y_dim else None
    z = model.sample_latents(batch, cfg.z_dim, 'uniform_signed')
    train_ops = model.build_train_ops(real, y, z, cfg, train_hparams(model, net['g_steps']),
                                      devices.optimizer_wrapper(device, precision))
    fetches = [train_ops.step, train_ops.d_loss, train_ops.g_loss]
    sess = devices.make_session(device, devices.session_config(device, precision))
    with sess:
        sess.run(tf.global_variables_initializer())
        if initializer is not None:
            initializer(sess)
        result['build_seconds'] = time.time() - started

        # only sess.run between the clock reads
        result.update(timed_steps(lambda: sess.run(fetches)[1:], spec, batch))
        if source is not None:  # what the pipeline costs per batch, with the session idle
            result['input_ms_per_batch'] = 1000 * input_seconds(source, batch)
        if spec.get('trace'):
            result['trace'] = trace_steps(tf, sess, fetches, spec)
    return result


def timed_steps(step, spec, batch):
    """Runs spec['warmup'] steps, then times spec['steps']; step() returns (d_loss, g_loss). Rates, spread,
    losses, cores busy (own and others'), page faults per step and peak resident memory, as a result dict."""
    for _ in range(spec['warmup']):
        step()
    step_seconds, losses = [], []
    cpu_start, wall_start, machine_start = os.times(), time.time(), machine_jiffies()
    faults_start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(spec['steps']):
        t0 = time.perf_counter()
        losses.append(step())
        step_seconds.append(time.perf_counter() - t0)
    cpu_end, wall, machine_end = os.times(), time.time() - wall_start, machine_jiffies()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_start
    losses = np.asarray(losses, np.float64)
    own = ((cpu_end[0] - cpu_start[0]) + (cpu_end[1] - cpu_start[1])) / max(wall, 1e-9)
    return dict(rate_stats(step_seconds, batch), status='ok', steps=spec['steps'], warmup=spec['warmup'],
                step_seconds=step_seconds, losses_finite=bool(np.isfinite(losses).all()),
                last_d_loss=float(losses[-1, 0]), last_g_loss=float(losses[-1, 1]), cpu_busy=own,
                others_busy=other_cores_busy(machine_start, machine_end, own),
                faults_per_step=faults / float(spec['steps']),
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)  # KB on Linux


def merge_rounds(results, batch):
    """One row from the results of the same configuration in several rounds: rates and spread over the
    pooled steps, each round's median kept; the first failure if any round failed."""
    failed = [r for r in results if r['status'] != 'ok']
    if failed:
        return failed[0]
    merged = dict(results[-1])  # losses and anything else per run: the last round's
    steps = [s for r in results for s in r['step_seconds']]
    merged.update(rate_stats(steps, batch), step_seconds=steps, steps=len(steps),
                  round_images_per_s=[r['images_per_s'] for r in results],
                  losses_finite=all(r['losses_finite'] for r in results),
                  cpu_busy=float(np.mean([r['cpu_busy'] for r in results])),
                  peak_rss_mb=max(r['peak_rss_mb'] for r in results))
    for key in ('others_busy', 'faults_per_step'):  # None where no round measured it
        measured = [r[key] for r in results if r.get(key) is not None]
        merged[key] = float(np.mean(measured)) if measured else None
    for r in results:
        if r.get('trace'):
            merged['trace'] = r['trace']
    return merged


def run_reference_config(spec):
    """Times the reference's step (tools/reference_step.py) on this interpreter's TensorFlow; returns a result dict."""
    from tf_compat import tf
    import data
    import reference_step
    net = NETS[spec['net']]
    size, channels, y_dim = net['size'], net['channels'], net['y_dim']
    result = dict(name=spec['name'], net=spec['net'], input=spec['input'], g_steps=net['g_steps'],
                  batch=spec['batch'], tf_version=tf.__version__, device='cpu', precision='float32',
                  input_label=input_label(spec['net'], 'reference', tf.__version__),
                  pipeline='feed_dict, decoded on the training thread')
    def labels():
        return tf.zeros([64, y_dim]) if y_dim else None
    g_forward, d_forward = count_gflop(
        tf, lambda: reference_step.generator(tf, tf.zeros([64, 100]), labels(), size, channels),
        lambda: reference_step.discriminator(tf, tf.zeros([64, size, size, channels]), labels(), reuse=False))
    result.update(g_forward_gflop=g_forward, d_forward_gflop=d_forward,
                  counted_gflop_per_image=gflop_per_image(g_forward, d_forward, net['g_steps']))
    batch = spec['batch']
    tf.set_random_seed(0)
    if y_dim:
        images, digits = data.load_mnist(spec['data']['mnist_dir'])
        batches = reference_step.array_batches(images.astype(np.float32) / 255.0,
                                               np.eye(10, dtype=np.float32)[digits], batch)
    else:
        batches = reference_step.jpeg_batches(data.list_images(spec['data']['jpeg_folder'], '*.jpg'), batch)
    graph = reference_step.build(tf, size, channels, y_dim, batch)
    rng = np.random.RandomState(0)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        result.update(timed_steps(lambda: reference_step.train_step(sess, graph, batches, rng, net['g_steps']),
                                  spec, batch))
    return result


def trace_steps(tf, sess, fetches, spec, steps=3):
    """Runs steps with a full trace; writes the last as a Chrome trace, returns op time by type and scope."""
    from tensorflow.python.client import timeline
    options = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE)
    by_type, by_scope, walls = {}, {}, []
    for _ in range(steps):
        metadata = tf.RunMetadata()
        t0 = time.perf_counter()
        sess.run(fetches, options=options, run_metadata=metadata)
        walls.append(time.perf_counter() - t0)
        for device_stats in metadata.step_stats.dev_stats:
            if device_stats.device.startswith('/host:'):  # TF 1.15 repeats the CPU's ops as /host:CPU
                continue
            for node in device_stats.node_stats:
                match = re.search(r' = ([\w:]+)\(', node.timeline_label)
                if not match:  # _SOURCE and the like: no op ran
                    continue
                op_type = match.group(1)
                seconds = node.all_end_rel_micros / 1e6 / steps
                scope = node.node_name.split('/')[0]
                if '/gradients' in node.node_name or node.node_name.startswith('gradients'):
                    scope += ' (backward)'
                for table, key in ((by_type, op_type), (by_scope, scope)):
                    table[key] = table.get(key, 0.0) + seconds
    os.makedirs(os.path.dirname(spec['trace']), exist_ok=True)
    with open(spec['trace'], 'w') as f:
        f.write(timeline.Timeline(metadata.step_stats).generate_chrome_trace_format())
    total = sum(by_type.values())

    def top(table, n):
        rows = sorted(table.items(), key=lambda item: -item[1])[:n]
        return [dict(name=k, seconds=v, share=v / total) for k, v in rows]
    return dict(file=spec['trace'], traced_step_seconds=float(np.median(walls)), op_seconds_per_step=total,
                by_op_type=top(by_type, 15), by_scope=top(by_scope, 10))


# ---- child process: the machine's reachable compute ----------------------------------------------------
def run_compute(spec):
    """Best GFLOP/s of chained float32 matmuls and convolutions (and bfloat16 matmuls where the CPU has
    them on TensorFlow 2.x), several per sess.run so that per-call overhead vanishes."""
    from tf_compat import tf
    import devices
    quick = spec['quick']
    result = dict(tf_version=tf.__version__, python=platform.python_version())
    n, chain, repeats = (1024, 2, 2) if quick else (4096, 3, 3)
    batch, size, channels = (8, 16, 32) if quick else (64, 32, 128)
    kinds = [('matmul_float32', tf.float32), ('conv2d_float32', tf.float32)]
    if devices.tf_major() >= 2 and devices.cpu_has_bf16():
        kinds.append(('matmul_bfloat16', tf.bfloat16))
    for name, dtype in kinds:
        with tf.Graph().as_default():
            if name.startswith('matmul'):
                a = tf.Variable(tf.random_normal([n, n]))
                b = tf.Variable(tf.random_normal([n, n]) / np.sqrt(n))
                x, w = tf.cast(a, dtype), tf.cast(b, dtype)
                for _ in range(chain):
                    x = tf.matmul(x, w)
                flop = chain * 2.0 * n ** 3
                shape = '%d x %d x %d, %d chained' % (n, n, n, chain)
            else:
                a = tf.Variable(tf.random_normal([batch, size, size, channels]))
                b = tf.Variable(tf.random_normal([5, 5, channels, channels]) / np.sqrt(25 * channels))
                x = a
                for _ in range(chain):
                    x = tf.nn.conv2d(x, b, [1, 1, 1, 1], 'SAME')
                flop = chain * 2.0 * batch * size * size * 25 * channels * channels
                shape = '%dx%dx%dx%d input, 5x5x%dx%d filter, stride 1, %d chained' % (
                    batch, size, size, channels, channels, channels, chain)
            out = tf.reduce_sum(tf.cast(x, tf.float32))
            with tf.Session(config=devices.session_config('cpu', devices.choose_precision('cpu', ''))) as sess:
                sess.run(tf.global_variables_initializer())
                sess.run(out)  # warm-up: oneDNN primitive creation, memory allocation
                seconds = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    sess.run(out)
                    seconds.append(time.perf_counter() - t0)
        result[name] = dict(gflops=flop / 1e9 / min(seconds), median_gflops=flop / 1e9 / float(np.median(seconds)),
                            shape=shape)
    result['reachable_float32_gflops'] = max(result['matmul_float32']['gflops'], result['conv2d_float32']['gflops'])
    return result


def merge_compute(first, second):
    """The better figure of each kernel from two compute measurements (before and after the training runs)."""
    if second.get('status') == 'error':
        return first
    merged = dict(first)
    for name, value in second.items():
        if isinstance(value, dict) and name in first:
            merged[name] = dict(value, gflops=max(value['gflops'], first[name]['gflops']),
                                gflops_start=first[name]['gflops'], gflops_end=value['gflops'])
    merged['reachable_float32_gflops'] = max(first['reachable_float32_gflops'], second['reachable_float32_gflops'])
    return merged


def child_main(spec):
    run = dict(compute=run_compute, reference=run_reference_config, train=run_training_config)[spec['kind']]
    result = run(spec)
    sys.stdout.write('\n' + RESULT_MARK + json.dumps(result) + '\n')
    sys.stdout.flush()
    return 0


# ---- parent: run the children, compare, print and save -------------------------------------------------
def run_child(spec, timeout):
    """Runs one child process; returns its result dict, or a dict with status 'error' and the output tail."""
    command = [spec.get('python') or sys.executable, os.path.abspath(__file__), '--_child', json.dumps(spec)]
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                              timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return dict(status='error', reason='did not finish within %d s' % timeout)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    return dict(status='error', reason='exit status %d; output ends: %s' % (done.returncode, done.stdout[-2000:]))


def add_derived(rows, reachable, reachable_mixed=None):
    """Ratio to the bare floor of the same network and precision, GFLOP/image, GFLOP/s, and the share of
    the reachable compute of the row's precision (float32; bfloat16 for mixed rows where it was measured)."""
    floors = dict(((r['net'], r.get('precision')), r['images_per_s']) for r in rows
                  if r['status'] == 'ok' and r['input'] == 'bare')
    for row in rows:
        if row['status'] != 'ok':
            continue
        floor = floors.get((row['net'], row['precision'])) if row['input'] != 'reference' else None
        row['ratio_to_floor'] = row['images_per_s'] / floor if floor else None
        if row['net'].startswith('dcgan64'):
            row['gflop_per_image'] = GFLOP_PER_IMAGE_64[row['g_steps']]
            row['gflop_source'] = 'counted per layer'
        else:
            row['gflop_per_image'] = row['counted_gflop_per_image']
            row['gflop_source'] = 'tf.profiler forward counts x (1+3g) G + (6+2g) D'
        row['achieved_gflops'] = row['images_per_s'] * row['gflop_per_image']
        peak = reachable_mixed if row.get('mixed') and reachable_mixed else reachable
        row['fraction_of_reachable'] = row['achieved_gflops'] / peak if peak else None


def find(rows, net, inp, mixed=False):
    for row in rows:
        if row['net'] == net and row['input'] == inp and row.get('mixed', False) == mixed and row['status'] == 'ok':
            return row
    return None


def major(tf_version):
    """1 for '1.15.0', 2 for '2.21.0' (the parent imports no TensorFlow to ask)."""
    return int(tf_version.split('.')[0])


def comparisons(rows):
    """What the rows say side by side: each real input against synthetic batches, synthetic against the bare
    graph, mixed precision against float32, and ours against the reference timed in the same run. A list of
    dicts: what (a sentence fragment) and ratio."""
    found = []

    def add(what, numerator, denominator):
        found.append(dict(what=what, ratio=numerator['images_per_s'] / denominator['images_per_s']))

    for net in NETS:
        synthetic, floor = find(rows, net, 'synthetic'), find(rows, net, 'bare')
        for inp in ('prepared', 'folder'):
            row = find(rows, net, inp)
            if row and synthetic:
                add('%s: %s / (c) in-memory synthetic' % (net, input_label(net, inp)), row, synthetic)
        if synthetic and floor:
            add('%s: (c) in-memory synthetic / bare graph' % net, synthetic, floor)
        for inp in INPUTS:
            fp32, mixed = find(rows, net, inp), find(rows, net, inp, mixed=True)
            if fp32 and mixed:
                add('%s %s: %s / float32%s' % (net, INPUTS[inp], mixed['precision'],
                                               '' if mixed['losses_finite'] else ' (losses NOT FINITE)'),
                    mixed, fp32)
    for reference in [r for r in rows if r['input'] == 'reference' and r['status'] == 'ok']:
        for inp in ('prepared', 'folder'):
            row = find(rows, reference['net'], inp)
            if row:
                add('%s %s: ours / the reference on TF %s (%.1f img/s)' % (
                    reference['net'], row['input_label'], reference['tf_version'], reference['images_per_s']),
                    row, reference)
    return found


def format_table(report):
    """The report as text: settings, reachable compute, one line per configuration, comparisons, traces."""
    lines = []
    machine, compute = report['machine'], report['compute']
    flags = ' '.join(k for k, v in sorted(machine['flags'].items()) if v) or 'none'
    settings = report['settings']
    rounds = settings.get('rounds', 1)
    lines.append('TensorFlow %s, Python %s | %s, %s cores (%s) | batch %d, %d measured steps after %d warm-up%s' % (
        report['tf_version'], machine['python'], machine['cpu_model'], machine['cores'], flags,
        settings['batch_size'], settings['steps'], settings['warmup'],
        ', in each of %d interleaved rounds (rows pool their steps)' % rounds if rounds > 1 else ''))
    lines.append('load average at start %.2f, at end %.2f (other work on this machine makes numbers noisy)' % (
        machine['load_average_start'][0], machine['load_average_end'][0]))
    if settings.get('malloc_defaults'):
        lines.append("malloc at glibc's defaults (--malloc_defaults; main.py keeps freed memory)")
    if settings.get('input_pipeline', 'auto') != 'auto':
        lines.append('input pipeline: %s for every input but bare (--input_pipeline; main.py picks auto)'
                     % settings['input_pipeline'])
    for name in ('matmul_float32', 'conv2d_float32', 'matmul_bfloat16'):
        if name in compute:
            item = compute[name]
            when = (' (before %.1f, after %.1f)' % (item['gflops_start'], item['gflops_end'])
                    if 'gflops_end' in item else '')
            lines.append('reachable %-16s %8.1f GFLOP/s best%s: %s' % (name, item['gflops'], when, item['shape']))
    lines.append('reachable float32 compute: %.1f GFLOP/s (the better of the two)' % report['reachable_gflops'])
    for key in ('jpeg_content', 'mnist_content'):
        if key in report['data']:
            extra = (' (%d files, %.1f KB each on average)' % (report['data']['jpeg_count'],
                                                                report['data']['jpeg_mean_kb'])
                     if key == 'jpeg_content' else '')
            lines.append('%s: %s%s' % ('JPEG folder' if key == 'jpeg_content' else 'MNIST', report['data'][key],
                                       extra))
    lines.append('')
    header = ('%-28s %-26s %-15s %2s %8s %17s %7s %7s %6s %7s %5s %5s %6s %8s' % (
        'config', 'input', 'precision', 'g', 'img/s', 'p10-p90 img/s', 'xfloor', 'GFLOP/s', 'xreach', 'RSS MB',
        'own', 'other', 'in ms', 'flt/step'))
    lines += [header, '-' * len(header)]
    for row in report['rows']:
        if row['status'] != 'ok':
            lines.append('%-28s %-26s %-15s %2s %s' % (row['name'], row.get('input_label', ''),
                                                      row.get('precision', ''), row.get('g_steps', ''),
                                                      '%s: %s' % (row['status'], row.get('reason', ''))))
            continue
        lines.append('%-28s %-26s %-15s %2d %8.1f %17s %7s %7.1f %6.2f %7.0f %5.2f %5s %6s %8s%s' % (
            row['name'], row['input_label'], row['precision'], row['g_steps'], row['images_per_s'],
            '%.1f-%.1f' % (row['p10'], row['p90']),
            '%.2f' % row['ratio_to_floor'] if row['ratio_to_floor'] else '-', row['achieved_gflops'],
            row['fraction_of_reachable'] or 0.0, row['peak_rss_mb'], row['cpu_busy'],
            '-' if row.get('others_busy') is None else '%.2f' % row['others_busy'],
            '%.1f' % row['input_ms_per_batch'] if 'input_ms_per_batch' in row else '-',
            '-' if row.get('faults_per_step') is None else '%.0f' % row['faults_per_step'],
            '' if row['losses_finite'] else '  LOSSES NOT FINITE'))
    lines.append('')
    lines.append('GFLOP/image: 64x64 %s counted per layer; mnist %s counted (%s). own / other: cores '
                 'busy with this process / with other processes during the timed steps; xreach: of the reachable '
                 'compute of the row\'s precision (bfloat16 matmul for mixed rows); in ms: wall time the source '
                 'takes to assemble one batch, measured alone; flt/step: minor page faults per timed step.' % (
                     '/'.join('%.1f (g %d)' % (v, k) for k, v in sorted(GFLOP_PER_IMAGE_64.items())),
                     '%.3f' % report['mnist_gflop_per_image'] if report.get('mnist_gflop_per_image') else '-',
                     'tf.profiler forward counts x (1+3g) G + (6+2g) D, which gives 3.9/5.5 for 64x64'))
    if report['comparisons']:
        lines.append('')
        lines.append('side by side (images/s ratios):')
        for item in report['comparisons']:
            lines.append('  %-86s %6.2fx' % (item['what'], item['ratio']))
    for row in report['rows']:
        trace = row.get('trace')
        if not trace:
            continue
        lines.append('')
        lines.append('trace of %s: %s (traced step %.3f s, %.3f s of op time per step over all threads)' % (
            row['name'], trace['file'], trace['traced_step_seconds'], trace['op_seconds_per_step']))
        for title, key in (('by op type', 'by_op_type'), ('by scope', 'by_scope')):
            lines.append('  %s:' % title)
            for item in trace[key]:
                lines.append('    %-48s %7.3f s %5.1f%%' % (item['name'], item['seconds'], 100 * item['share']))
    return '\n'.join(lines)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog=__doc__.split('\n', 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='few steps, small data and small compute kernels (a smoke run)')
    p.add_argument('--steps', type=int, default=None, help='measured steps per configuration and round [15; --quick 3]')
    p.add_argument('--rounds', type=int, default=None,
                   help='times every configuration runs, interleaved; its row pools the steps [2; --quick 1]')
    p.add_argument('--warmup', type=int, default=None, help='warm-up steps before measuring, each round [5; --quick 1]')
    p.add_argument('--batch_size', type=int, default=64, help='images per step [64]')
    p.add_argument('--configs', nargs='+', default=None, metavar='CONFIG',
                   help='<net>_<input>[_mixed]; nets %s, inputs %s [all, plus the mixed-precision ones: %s]'
                        % (', '.join(NETS), ', '.join(INPUTS), ' '.join(DEFAULT_CONFIGS[-3:])))
    p.add_argument('--json', default=None, help='write the report here [bench/benchmark-<tf version>.json]')
    p.add_argument('--trace', nargs='+', default=[], metavar='CONFIG',
                   help='also trace these configurations (Chrome trace in bench/) and print their top ops')
    p.add_argument('--device', default='auto', choices=('auto', 'cpu', 'gpu'), help='device to train on [auto]')
    p.add_argument('--malloc_defaults', action='store_true',
                   help="leave glibc's malloc at its defaults, not devices.keep_freed_memory, to measure what it gains")
    p.add_argument('--input_pipeline', default='auto', choices=('auto', 'host', 'graph'),
                   help="main.py's --input_pipeline for every input but bare, to compare the two [auto]")
    p.add_argument('--mnist_dir', default=os.path.join('data', 'mnist'),
                   help='folder with the MNIST idx files (python download.py mnist); synthetic digits when absent '
                        '[data/mnist]')
    p.add_argument('--images', type=int, default=None, help='JPEGs in the generated folder [640; --quick 128]')
    p.add_argument('--timeout', type=int, default=900, help='seconds allowed per configuration [900]')
    p.add_argument('--reference_python', default='auto', metavar='PYTHON',
                   help="also time the reference's step with this interpreter (its runtime, TF 1.15): a path, "
                        "none, or auto (.venv37/bin/python when this run is on TF 2.x) [auto]")
    p.add_argument('--_child', default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args._child:
        return child_main(json.loads(args._child))
    steps = args.steps if args.steps is not None else (3 if args.quick else 15)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 5)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 2)
    n_images = args.images or (128 if args.quick else 640)
    try:
        names = list(args.configs or DEFAULT_CONFIGS)
        names += [name for name in args.trace if name not in names]
        configs = [parse_config(name) for name in names]
    except ValueError as error:
        print('benchmark.py: error: %s' % error, file=sys.stderr)
        return 2
    if args.reference_python not in ('auto', 'none') and not os.access(args.reference_python, os.X_OK):
        print('benchmark.py: error: --reference_python %s is not an executable file.' % args.reference_python,
              file=sys.stderr)
        return 2
    if steps < 1 or rounds < 1 or warmup < 0 or args.batch_size < 1 or n_images < args.batch_size:
        print('benchmark.py: error: --steps, --rounds and --batch_size must be at least 1, --warmup at least 0, '
              'and --images at least --batch_size.', file=sys.stderr)
        return 2

    machine = machine_info()
    compute = run_child(dict(kind='compute', quick=args.quick), args.timeout)
    if compute.get('status') == 'error':
        print('benchmark.py: error: the compute measurement failed: %s' % compute['reason'], file=sys.stderr)
        return 1
    tf_version = compute['tf_version']
    reference_pythons = other_reference_pythons(args.reference_python, tf_version)
    out_dir = os.path.join(REPO, 'bench')
    work_dir = tempfile.mkdtemp(prefix='dcgan-bench-')
    try:
        data_info = prepare_data(work_dir, configs, args.mnist_dir, n_images, args.quick)
        rows, plan = [], []  # plan: (row index, configuration, run spec, label, where) of each child to run
        for config in configs:
            label = input_label(config['net'], config['input'])
            if config['net'] == 'mnist' and config['input'] == 'folder':
                rows.append(dict(config, status='n/a', input_label=label, g_steps=NETS['mnist']['g_steps'],
                                 precision='mixed' if config['mixed'] else 'float32',
                                 reason='MNIST has no JPEG variant (main.py reads its idx files)'))
                continue
            spec = dict(config, kind='train', batch=args.batch_size, steps=steps, warmup=warmup, device=args.device,
                        input_pipeline=args.input_pipeline, malloc_defaults=args.malloc_defaults,
                        data=data_info, synthetic_images=n_images if config['net'] != 'mnist' else 10 * n_images,
                        trace=os.path.join(out_dir, 'trace-%s-tf%s.json' % (config['name'], tf_version))
                        if config['name'] in args.trace else '')
            runs = [spec]
            if config['input'] == 'reference':  # on this runtime, and on TF 1.15, the reference's runtime
                runs = [dict(spec, kind='reference')] + [dict(spec, kind='reference', python=python)
                                                         for python in reference_pythons]
            for run in runs:
                where = ' (%s)' % os.path.relpath(run['python'], REPO) if run.get('python') else ''
                plan.append((len(rows), config, run, label, where))
                rows.append(None)
        results = dict((plan_item[0], []) for plan_item in plan)
        for round_index in range(rounds):
            for index, config, run, label, where in plan:
                if results[index] and results[index][-1]['status'] != 'ok':
                    continue  # failed in an earlier round: its row reports that failure
                if round_index:
                    run = dict(run, trace='')  # traced once, in the first round
                which = ' %d/%d' % (round_index + 1, rounds) if rounds > 1 else ''
                print('running %-28s%s ...' % (config['name'] + where, which), end=' ', file=sys.stderr, flush=True)
                result = run_child(run, args.timeout)
                results[index].append(result)
                print('%s' % ('%.1f img/s' % result['images_per_s'] if result['status'] == 'ok'
                              else '%s: %s' % (result['status'], result.get('reason', '')[:300])),
                      file=sys.stderr, flush=True)
        for index, config, run, label, where in plan:
            row = merge_rounds(results[index], args.batch_size)
            row.update(config)
            row.setdefault('input_label', label + where)
            rows[index] = row
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    machine['load_average_end'] = list(os.getloadavg())
    if not args.quick:  # again at the end: the better of the two is what the machine can reach
        compute = merge_compute(compute, run_child(dict(kind='compute', quick=False), args.timeout))
    reachable = compute['reachable_float32_gflops']
    add_derived(rows, reachable, compute.get('matmul_bfloat16', {}).get('gflops'))
    mnist = [r for r in rows if r['net'] == 'mnist' and r['status'] == 'ok']
    report = dict(tf_version=tf_version, machine=dict(machine, python=compute['python']), compute=compute,
                  reachable_gflops=reachable, data=dict((k, v) for k, v in data_info.items() if 'dir' not in k
                                                        and k not in ('jpeg_folder', 'prepared_cache')),
                  settings=dict(batch_size=args.batch_size, steps=steps, rounds=rounds, warmup=warmup,
                                quick=args.quick, device=args.device, input_pipeline=args.input_pipeline,
                                malloc_defaults=args.malloc_defaults),
                  reference_gflop_per_image=GFLOP_PER_IMAGE_64,
                  mnist_gflop_per_image=mnist[0]['gflop_per_image'] if mnist else None,
                  rows=rows, time=time.strftime('%Y-%m-%d %H:%M:%S'), git_commit=git_commit())
    report['comparisons'] = comparisons(rows)
    print(format_table(report))
    json_path = args.json or os.path.join(out_dir, 'benchmark-%s.json' % tf_version)
    if os.path.dirname(json_path):
        os.makedirs(os.path.dirname(json_path), exist_ok=True)
    with open(json_path, 'w') as f:
        json.dump(report, f, indent=1)
    print('\nwrote %s' % json_path)
    return 1 if any(r['status'] == 'error' for r in rows) else 0


def other_reference_pythons(choice, tf_version):
    """Interpreters (besides this one) to time the reference on: its runtime, TF 1.15 ('auto': the
    repository's .venv37 when this run is on TensorFlow 2.x and it exists), none, or the one given."""
    if choice == 'none':
        return []
    if choice == 'auto':
        python = os.path.join(REPO, '.venv37', 'bin', 'python')
        return [python] if major(tf_version) >= 2 and os.path.exists(python) else []
    return [] if os.path.realpath(choice) == os.path.realpath(sys.executable) else [os.path.abspath(choice)]


def git_commit():
    """The commit benchmarked (with '+changes' when the tree differs), or '' outside a git checkout."""
    try:
        commit = subprocess.check_output(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO, universal_newlines=True,
                                         stderr=subprocess.DEVNULL).strip()
        dirty = subprocess.call(['git', 'diff', '--quiet', 'HEAD'], cwd=REPO, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError):
        return ''
    return commit + ('+changes' if dirty else '')


if __name__ == '__main__':
    sys.exit(main())
