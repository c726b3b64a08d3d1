"""Data-parallel scaling on this host: N CPU workers of one thread each against one worker of one thread.

    python tools/scaling.py --workers 2                  # 64x64 network and MNIST, per-worker batch 64
    python tools/scaling.py --workers 4 --networks 64x64 --steps 30 --json scaling.json
    python tools/scaling.py --smoke                      # seconds: checks that the measurement runs

Each worker trains main.py's networks (model.build_train_ops with distributed.py's averaging, as main.py
does) on synthetic in-graph data, pinned to its own core with one TensorFlow thread, after a broadcast from
rank 0. Reported per network: global images/s of one worker and of N workers (N x batch / step time of
rank 0; the ranks step together), the scaling efficiency (N workers' images/s over N x one worker's), and
the time of one all-reduce of all the networks' gradients (generator and discriminator, float32) alone.
"""
import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
NETWORKS = {  # output size, channels, labels
    '64x64': (64, 3, 0),
    'mnist': (28, 1, 10),
}


def worker(network, batch, steps, warmup, reduces):
    """One rank's measurement (TF_CONFIG describes the job; none: alone); prints one JSON line."""
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    import numpy as np
    import devices
    import distributed
    import model
    import ops
    from tf_compat import tf
    ranks = distributed.from_environment('cpu', timeout=600)
    size, channels, labels = NETWORKS[network]
    cfg = model.net_config(size, size, channels, 100, labels)
    ops.set_impl(devices.kernel_impl('cpu'))
    tf.set_random_seed(ranks.rank_seed(0))
    low, high = model.data_range(cfg)
    real = tf.random_uniform([batch, size, size, channels], low, high)
    y = tf.one_hot(tf.random_uniform([batch], 0, 10, tf.int32), 10) if labels else None
    z = model.sample_latents(batch, cfg.z_dim, 'uniform_signed')
    train_ops = model.build_train_ops(real, y, z, cfg, model.train_hparams(), ranks.optimizer_wrapper(None))
    step = ranks.sync_after(train_ops.step, model.moving_statistics())
    parameters = sum(v.get_shape().num_elements() for v in tf.trainable_variables())
    probe = ranks.all_reduce(tf.zeros([parameters])) if ranks.distributed else None
    broadcast = ranks.broadcast_op(tf.global_variables())
    config = ranks.session_config(tf.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1))
    with tf.Session(ranks.session_target(config), config=config) as sess:
        sess.run(tf.global_variables_initializer())
        if broadcast is not None:
            ranks.run(sess, broadcast, what='the broadcast')
        for _ in range(warmup):
            ranks.run(sess, step)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            ranks.run(sess, step)
            times.append(time.perf_counter() - start)
        reduce_times = []
        if probe is not None:
            ranks.run(sess, probe)
            for _ in range(reduces):
                start = time.perf_counter()
                ranks.run(sess, probe)
                reduce_times.append(time.perf_counter() - start)
    print('RESULT ' + json.dumps(dict(rank=ranks.rank, size=ranks.size, step_seconds=float(np.median(times)),
                                      allreduce_seconds=float(np.median(reduce_times)) if reduce_times else None,
                                      parameters=parameters)), flush=True)


def run_job(workers, network, batch, steps, warmup, reduces, timeout):
    """Runs `workers` worker processes (each on its own core) and returns their results, rank 0 first."""
    import launch
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else []
    envs = launch.worker_environments(workers, cpu=True) if workers > 1 else [{'CUDA_VISIBLE_DEVICES': ''}]
    processes = []
    for index, extra in enumerate(envs):
        env = dict(os.environ, **extra)
        env.update(OMP_NUM_THREADS='1', TF_NUM_INTRAOP_THREADS='1', TF_NUM_INTEROP_THREADS='1')
        command = [sys.executable, os.path.abspath(__file__), '--worker', '--networks', network, '--batch',
                   str(batch), '--steps', str(steps), '--warmup', str(warmup), '--reduces', str(reduces)]
        if cores:
            command = ['taskset', '-c', str(cores[index % len(cores)])] + command
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          universal_newlines=True))
    results = []
    for process in processes:
        output, _ = process.communicate(timeout=timeout)
        lines = [l for l in output.splitlines() if l.startswith('RESULT ')]
        if process.returncode != 0 or not lines:
            raise SystemExit('scaling.py: a worker failed (status %s):\n%s' % (process.returncode, output[-2000:]))
        results.append(json.loads(lines[-1][len('RESULT '):]))
    return sorted(results, key=lambda r: r['rank'])


def measure(network, workers, batch, steps, warmup, reduces, timeout):
    one = run_job(1, network, batch, steps, warmup, reduces, timeout)[0]
    many = run_job(workers, network, batch, steps, warmup, reduces, timeout)
    single = batch / one['step_seconds']
    combined = workers * batch / many[0]['step_seconds']
    return dict(network=network, workers=workers, batch_per_worker=batch, parameters=one['parameters'],
                one_worker_images_per_second=single, images_per_second=combined,
                efficiency=combined / (workers * single), allreduce_ms=many[0]['allreduce_seconds'] * 1000.0,
                allreduce_megabytes=4.0 * one['parameters'] / 1e6)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--workers', type=int, default=2, help='workers of the data-parallel job [2]')
    parser.add_argument('--networks', default='64x64,mnist', help='comma-separated: 64x64, mnist [both]')
    parser.add_argument('--batch', type=int, default=64, help='images per worker and step [64]')
    parser.add_argument('--steps', type=int, default=20, help='timed steps [20]')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps first [3]')
    parser.add_argument('--reduces', type=int, default=10, help='timed all-reduces of the gradients [10]')
    parser.add_argument('--smoke', action='store_true', help='MNIST, batch 4, two steps: checks that it runs')
    parser.add_argument('--json', default='', help='also write the results to this JSON file')
    parser.add_argument('--timeout', type=float, default=1800, help='seconds a job may take [1800]')
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.networks, args.batch, args.steps, args.warmup, args.reduces = 'mnist', 4, 2, 1, 2
    networks = [n.strip() for n in args.networks.split(',') if n.strip()]
    unknown = [n for n in networks if n not in NETWORKS]
    if unknown or args.workers < 2 or min(args.batch, args.steps) < 1:
        parser.error('networks are 64x64 and mnist; --workers at least 2; --batch and --steps at least 1')
    if args.worker:
        worker(networks[0], args.batch, args.steps, args.warmup, args.reduces)
        return 0
    rows = [measure(n, args.workers, args.batch, args.steps, args.warmup, args.reduces, args.timeout)
            for n in networks]
    print('%-7s %7s %6s %14s %14s %10s %14s' % ('network', 'workers', 'batch', '1 worker img/s', 'N workers img/s',
                                                'efficiency', 'all-reduce ms'))
    for r in rows:
        print('%-7s %7d %6d %14.1f %15.1f %10.3f %9.1f (%.1f MB)' % (
            r['network'], r['workers'], r['batch_per_worker'], r['one_worker_images_per_second'],
            r['images_per_second'], r['efficiency'], r['allreduce_ms'], r['allreduce_megabytes']))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
