"""Starts N data-parallel workers of a script on this host (TF_CONFIG each, one GPU each where there are GPUs).

    python tools/launch.py --nproc 2 -- main.py --dataset mnist --input_height=28 --output_height=28 --train

Each worker gets TF_CONFIG with the cluster of all N (127.0.0.1, free ports) and its own task index, and,
where the host has GPUs, CUDA_VISIBLE_DEVICES with one GPU. Their output is shown with a "[rank k]"
prefix. Ctrl-C and SIGTERM are passed to every worker (training saves once and all stop after the same
step). When a worker fails, the others are stopped; the exit status is the first failing worker's
(0 when all succeed). Several hosts: start main.py on each with TF_CONFIG listing every host (see the
README), e.g. as a Kubeflow TFJob does.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRACE_SECONDS = 15  # after a worker fails, the others get this long to stop after SIGTERM, then SIGKILL


def free_ports(count, host='127.0.0.1'):
    """count TCP ports free on host right now (held open together, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses, index):
    """The TF_CONFIG value of worker `index` of a cluster of workers at addresses."""
    return json.dumps({'cluster': {'worker': list(addresses)}, 'task': {'type': 'worker', 'index': index}})


def gpu_count():
    """GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else what nvidia-smi lists, else 0."""
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    if visible is not None:
        return [g for g in visible.split(',') if g.strip() and g.strip() != '-1']
    try:
        listing = subprocess.run(['nvidia-smi', '-L'], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 universal_newlines=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in listing.splitlines() if l.startswith('GPU '))]


def worker_environments(nproc, host='127.0.0.1', ports=None, gpus=None, cpu=False):
    """The environment additions of each worker: TF_CONFIG, and CUDA_VISIBLE_DEVICES (one GPU each
    where there are GPUs enough; none with cpu)."""
    ports = ports or free_ports(nproc, host)
    addresses = ['%s:%d' % (host, port) for port in ports]
    gpus = [] if cpu else (gpu_count() if gpus is None else gpus)
    envs = []
    for index in range(nproc):
        env = {'TF_CONFIG': tf_config(addresses, index)}
        if cpu:
            env['CUDA_VISIBLE_DEVICES'] = ''
        elif gpus:
            env['CUDA_VISIBLE_DEVICES'] = gpus[index % len(gpus)]
        envs.append(env)
    return envs


def pump(stream, prefix, out, lock):
    """Copies stream to out line by line, each line prefixed."""
    for line in iter(stream.readline, ''):
        with lock:
            out.write(prefix + line)
            out.flush()
    stream.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     usage='%(prog)s --nproc N [--cpu] -- SCRIPT [ARGS ...]')
    parser.add_argument('--nproc', type=int, required=True, help='workers to start')
    parser.add_argument('--cpu', action='store_true', help='hide GPUs: CPU workers')
    parser.add_argument('--host', default='127.0.0.1', help='address the workers listen on [127.0.0.1]')
    parser.add_argument('command', nargs=argparse.REMAINDER, help='-- script and its arguments')
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ['--'] else args.command
    if args.nproc < 1:
        parser.error('--nproc must be at least 1')
    if not command:
        parser.error('give the script to run after --, e.g. -- main.py --train ...')
    if command[0].endswith('.py'):
        command = [sys.executable] + command
    gpus = [] if args.cpu else gpu_count()
    if gpus and len(gpus) < args.nproc:
        parser.error('%d workers but %d GPUs: one GPU each (or --cpu)' % (args.nproc, len(gpus)))

    lock = threading.Lock()
    workers, pumps = [], []
    for index, extra in enumerate(worker_environments(args.nproc, args.host, gpus=gpus, cpu=args.cpu)):
        env = dict(os.environ)
        env.update(extra)
        env['PYTHONUNBUFFERED'] = '1'
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   universal_newlines=True, start_new_session=True)
        workers.append(process)
        thread = threading.Thread(target=pump, args=(process.stdout, '[rank %d] ' % index, sys.stdout, lock),
                                  daemon=True)
        thread.start()
        pumps.append(thread)

    requested = []

    def forward(signum, frame):  # each worker has its own session: the terminal's signal comes only here
        requested.append(signum)
        for process in workers:
            if process.poll() is None:
                process.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)

    status, failed_at = 0, None
    while any(p.poll() is None for p in workers):
        time.sleep(0.2)
        for index, process in enumerate(workers):
            code = process.poll()
            if code not in (None, 0) and status == 0:
                status, failed_at = code, time.time()
                if requested:  # stopping as asked: the workers agree on the step and exit together
                    continue
                with lock:
                    print('launch.py: rank %d exited with status %d; stopping the others.' % (index, code),
                          file=sys.stderr, flush=True)
                for other in workers:
                    if other.poll() is None:
                        other.send_signal(signal.SIGTERM)
        if failed_at is not None and time.time() - failed_at > GRACE_SECONDS:
            for process in workers:
                if process.poll() is None:
                    process.kill()
    for thread in pumps:
        thread.join(5)
    if status == 0:
        status = next((p.returncode for p in workers if p.returncode), 0)
    return status if status >= 0 else 128 - status  # killed by a signal: the shell's 128 + signal


if __name__ == '__main__':
    sys.exit(main())
