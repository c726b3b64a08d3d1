"""Data-parallel training end to end: two CPU workers on 127.0.0.1 (tools/launch.py, TF_CONFIG by hand, the
8p ModelZoo scripts) on tiny MNIST; agreement of all variables, rank 0 alone writing, stop and resume,
a lost worker, the world-size check."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, cache_narrow_classifier, make_mnist

sys.path.insert(0, os.path.join(REPO, 'tools'))
import launch  # noqa: E402

pytestmark = pytest.mark.slow  # each test starts training workers as subprocesses

MNIST = ['--dataset', 'mnist', '--input_height=28', '--output_height=28', '--train', '--batch_size', '4']
DIGEST = re.compile(r'^(?:\[rank (\d)\] )?rank (\d): step (\d+), variables sha1 ([0-9a-f]{40})$', re.M)
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONUNBUFFERED='1')


def digests(output):
    """{(rank, step): sha1} of the digest lines every rank prints after the broadcast and at the end."""
    found = {}
    for prefix, rank, step, sha in DIGEST.findall(output):
        assert not prefix or prefix == rank
        found[(int(rank), int(step))] = sha
    return found


def launch_command(data_dir, out_dir, *flags):
    return [sys.executable, os.path.join(REPO, 'tools', 'launch.py'), '--nproc', '2', '--cpu', '--',
            'main.py'] + MNIST + ['--data_dir', data_dir, '--out_dir', out_dir] + [str(f) for f in flags]


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError('timed out waiting for ' + what)


def step_lines(path):
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return re.findall(r'^\[\s*(\d+) Epoch:', f.read(), re.M)


def test_two_workers_hold_identical_variables_and_rank_0_alone_writes(mnist_dir, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / 'out')
    cache_narrow_classifier(mnist_dir, steps=5)  # for rank 0's evaluation at step 2
    result = subprocess.run(launch_command(mnist_dir, out, '--train_steps', 3, '--ema_decay', 0.9,
                                           '--eval_freq', 2, '--eval_samples', 20,
                                           '--collective_timeout', 120),
                            cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    found = digests(result.stdout)
    assert found[(0, 0)] == found[(1, 0)]  # rank 0's variables everywhere after the broadcast
    assert found[(0, 3)] == found[(1, 3)]  # and after three averaged steps: every global variable
    assert found[(0, 3)] != found[(0, 0)]
    for rank in (0, 1):  # global epoch and batch counters, mean losses: the same line on both ranks
        assert re.search(r'^\[rank %d\] \[\s+3 Epoch:\[ 0/ 1\] \[   2/  32\]' % rank, result.stdout, re.M)
    losses = [re.findall(r'^\[rank %d\] \[\s+\d+ Epoch.*(d_loss: \S+ g_loss: \S+)$' % r, result.stdout, re.M)
              for r in (0, 1)]
    assert losses[0] == losses[1] and len(losses[0]) == 3
    assert 'best ' in result.stdout  # rank 0 evaluated at step 2 and the others waited for it

    run_dir = os.path.join(out, 'mnist_out28x28_z100')
    with open(os.path.join(run_dir, 'config.json')) as f:
        assert json.load(f)['world_size'] == 2
    with open(os.path.join(run_dir, 'log.txt')) as f:
        log = f.read()
    assert 'rank 0 of 2' in log and 'rank 1' not in log  # rank 0's log only
    assert sorted(os.listdir(os.path.join(run_dir, 'checkpoint'))) == [
        'best', 'checkpoint', 'model.b4-3.data-00000-of-00001', 'model.b4-3.index', 'model.b4-3.meta']
    assert os.listdir(out) == ['mnist_out28x28_z100']

    from tf_compat import tf
    names = [name for name, _ in tf.train.list_variables(os.path.join(run_dir, 'checkpoint', 'model.b4-3'))]
    for kind in ('moving_mean', 'moving_variance', 'd_adam', 'g_adam', 'global_step', 'ExponentialMovingAverage'):
        assert any(kind in name for name in names), kind  # what the digests covered is what is saved

    # the same run folder with one worker: refused, one sentence (main.main here: the refusal comes before
    # any training, so a second interpreter would only add its start-up)
    import main
    for name in ('TF_CONFIG', 'RANK_SIZE', 'RANK_ID', 'RANK_TABLE_FILE'):
        monkeypatch.delenv(name, raising=False)
    capsys.readouterr()
    status = main.main(MNIST + ['--data_dir', mnist_dir, '--out_dir', out])
    err = capsys.readouterr().err
    assert status == 2
    assert re.match(r'^main\.py: error: the run in .* was trained on 2 rank\(s\) and this job has 1: .*\.$',
                    err.splitlines()[-1]), err


def test_sigterm_stops_both_ranks_at_one_step_and_the_same_command_resumes(mnist_dir, tmp_path):
    out = str(tmp_path / 'out')
    command = launch_command(mnist_dir, out, '--train_steps', 1000, '--ckpt_freq', 1000, '--sample_freq', 1000)
    log = os.path.join(out, 'mnist_out28x28_z100', 'log.txt')
    job = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
    try:
        wait_for(lambda: len(step_lines(log)) >= 2, 240, 'two training steps')
        job.send_signal(signal.SIGTERM)
        output, _ = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 128 + signal.SIGTERM, output[-3000:]
    stops = re.findall(r'^\[rank (\d)\] stopped at step (\d+) by SIGTERM', output, re.M)
    assert sorted(r for r, _ in stops) == ['0', '1'] and stops[0][1] == stops[1][1], output[-3000:]
    stopped = int(stops[0][1])
    found = digests(output)
    assert found[(0, stopped)] == found[(1, stopped)]
    checkpoints = os.listdir(os.path.join(out, 'mnist_out28x28_z100', 'checkpoint'))
    assert 'model.b4-%d.index' % stopped in checkpoints and len([c for c in checkpoints if c.endswith('.index')]) == 1

    command[command.index('1000')] = str(stopped + 1)  # --train_steps: one more step
    resumed = subprocess.run(command, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    again = digests(resumed.stdout)
    assert again[(0, stopped)] == again[(1, stopped)] == found[(0, stopped)]  # both ranks at the saved state
    assert again[(0, stopped + 1)] == again[(1, stopped + 1)]
    for rank in (0, 1):
        lines = re.findall(r'^\[rank %d\] \[\s*(\d+) Epoch' % rank, resumed.stdout, re.M)
        assert lines == [str(stopped + 1)]


def test_a_killed_worker_ends_the_other_with_a_sentence(mnist_dir, tmp_path):
    ports = launch.free_ports(2)
    addresses = ['127.0.0.1:%d' % p for p in ports]
    workers, logs = [], []
    for index, extra in enumerate(launch.worker_environments(2, ports=ports, cpu=True)):
        path = str(tmp_path / ('worker%d.txt' % index))
        logs.append(path)
        with open(path, 'w') as sink:
            workers.append(subprocess.Popen(
                [sys.executable, 'main.py'] + MNIST + ['--data_dir', mnist_dir, '--out_dir', str(tmp_path / 'out'),
                                                      '--train_steps', '1000', '--collective_timeout', '20'],
                cwd=REPO, env=dict(ENV, **extra), stdout=sink, stderr=subprocess.STDOUT))
    try:
        wait_for(lambda: len(step_lines(logs[1])) >= 2, 240, 'two steps on rank 1')
        workers[1].kill()
        killed_at = time.time()
        workers[0].wait(timeout=90)
        elapsed = time.time() - killed_at
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    with open(logs[0]) as f:
        output = f.read()
    assert workers[0].returncode == 1, output[-3000:]
    assert elapsed < 40
    errors = [line for line in output.splitlines() if line.startswith('main.py: error:')]
    assert len(errors) == 1 and 'rank 1 (%s) is gone' % addresses[1] in errors[0], output[-3000:]
    assert 'Traceback' not in output


def test_8p_script_with_two_ranks_on_cpu(tmp_path):
    make_mnist(tmp_path / 'data')
    out = tmp_path / 'output'
    result = subprocess.run(['bash', 'test/train_full_8p.sh', '--data_path=%s' % (tmp_path / 'data'),
                             '--dataset=mnist', '--rank_size=2', '--batch_size=4', '--train_steps=2',
                             '--output_path=%s' % out], cwd=REPO, env=dict(ENV, PYTHON=sys.executable),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    case = 'DCGAN_ID2196_for_TensorFlow_bs4_2p_acc'
    with open(str(out / '0' / (case + '.log'))) as f:
        results = dict(line.split(' = ', 1) for line in f.read().splitlines())
    assert results['CaseName'] == case and results['RankSize'] == '2' and results['BatchSize'] == '4'
    assert float(results['ActualFPS']) > 0 and results['DeviceType'] == 'cpu'
    assert sorted(os.listdir(str(out / '1'))) == ['train_1.log']  # rank 1 wrote its log only
    assert 'model.b4-2.index' in os.listdir(str(out / '0' / case / 'checkpoint'))
    for device in ('0', '1'):
        with open(str(out / device / ('train_%s.log' % device))) as f:
            log = f.read()
        assert 'rank %s of 2' % device in log and re.search(r'^\[\s+2 Epoch:\[ 0/ 1\] \[   1/  32\]', log, re.M)


def test_scaling_smoke(tmp_path):
    path = str(tmp_path / 'scaling.json')
    result = subprocess.run([sys.executable, 'tools/scaling.py', '--smoke', '--json', path], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    with open(path) as f:
        rows = json.load(f)
    assert [r['network'] for r in rows] == ['mnist'] and rows[0]['workers'] == 2
    assert rows[0]['images_per_second'] > 0 and 0 < rows[0]['efficiency'] and rows[0]['allreduce_ms'] > 0
    assert abs(rows[0]['allreduce_megabytes'] - 4 * (7065211 + 3769479) / 1e6) < 0.01
    assert 'efficiency' in result.stdout
