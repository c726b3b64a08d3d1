"""The Ascend ModelZoo test scripts (test/train_full_1p.sh, test/train_performance_1p.sh) end to end on CPU."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, make_image_folder, make_mnist

TEST_DIR = os.path.join(REPO, 'test')
NETWORK = 'DCGAN_ID2196_for_TensorFlow'
STEP_LINE = re.compile(r'^\[\s*(\d+) Epoch:\[\s*\d+/\s*\d+\] \[\s*\d+/\s*\d+\] time: \d+\.\d{4}, '
                       r'd_loss: -?\d+\.\d{8}, g_loss: -?\d+\.\d{8}$', re.M)
RESULT_KEYS = ['Network', 'RankSize', 'BatchSize', 'DeviceType', 'CaseName', 'ActualFPS', 'TrainingTime',
               'TrainAccuracy', 'ActualLoss', 'E2ETrainingTime']

spec = importlib.util.spec_from_file_location('parse_log', os.path.join(TEST_DIR, 'parse_log.py'))
parse_log = importlib.util.module_from_spec(spec)
spec.loader.exec_module(parse_log)


def run_script(script, *args, cwd=REPO, env=None, timeout=300):
    """Runs `bash <script> ARGS` as a user would (script relative to cwd); stdout and stderr together."""
    full_env = dict(os.environ, PYTHON=sys.executable, TF_CPP_MIN_LOG_LEVEL='2')
    full_env.pop('ASCEND_DEVICE_ID', None)
    full_env.update(env or {})
    return subprocess.run(['bash', script] + [str(a) for a in args], cwd=cwd, env=full_env, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)


def read_results(path):
    """The key = value lines of <CaseName>.log as an ordered list of pairs."""
    with open(path) as f:
        lines = f.read().splitlines()
    assert all(re.match(r'^\w+ = \S+$', line) for line in lines), lines
    return [tuple(line.split(' = ', 1)) for line in lines]


def check_results(output_dir, case_name, batch_size, stdout, device_id='0'):
    """Checks the closing block, <CaseName>.log and the loss file of a successful run; returns the results."""
    pairs = read_results(os.path.join(output_dir, case_name + '.log'))
    assert [key for key, _ in pairs] == RESULT_KEYS
    results = dict(pairs)
    assert results['Network'] == NETWORK and results['CaseName'] == case_name
    assert int(results['RankSize']) == 1 and int(results['BatchSize']) == batch_size
    assert results['DeviceType'] in ('cpu', 'gpu', 'npu')
    assert float(results['ActualFPS']) > 0 and float(results['TrainingTime']) > 0
    assert abs(float(results['TrainingTime']) - batch_size / float(results['ActualFPS'])) < 0.01
    assert results['TrainAccuracy'] == 'None'
    float(results['ActualLoss'])
    assert int(results['E2ETrainingTime']) >= 0
    assert 'Final Performance images/sec : %s\n' % results['ActualFPS'] in stdout
    assert 'Final Train Accuracy : None\n' in stdout
    assert 'E2E Training Duration sec : %s\n' % results['E2ETrainingTime'] in stdout

    with open(os.path.join(output_dir, 'train_%s.log' % device_id)) as f:
        log = f.read()
    d_losses = re.findall(r'd_loss: (\S+),', log)
    with open(os.path.join(output_dir, 'train_%s_loss.txt' % case_name)) as f:
        losses = f.read().splitlines()
    assert losses == d_losses and [float(x) for x in losses]
    assert results['ActualLoss'] == losses[-1]
    return results, log


def check_run_folder(run_dir, last_step, batch_size):
    """Checkpoint, samples and event files of the run landed in its folder under the output folder."""
    checkpoints = os.listdir(os.path.join(run_dir, 'checkpoint'))
    assert 'model.b%d-%d.index' % (batch_size, last_step) in checkpoints
    assert 'train_%08d.png' % last_step in os.listdir(os.path.join(run_dir, 'samples'))
    assert any(name.startswith('events.out.tfevents') for name in os.listdir(os.path.join(run_dir, 'logs')))


@pytest.fixture(scope='module')
def faces_data(tmp_path_factory):
    """A data_path with celebA/ holding 24 celebA-sized (178x218) images."""
    root = tmp_path_factory.mktemp('ascend_data')
    make_image_folder(root / 'celebA', n=24, size=(178, 218), modes=('RGB',), corrupt=0)
    return str(root)


# ---- the FPS and loss computation ----------------------------------------------------------------------
def step_lines(times, d_loss='0.50000000'):
    return ['[%8d Epoch:[ 0/ 1] [%4d/%4d] time: %4.4f, d_loss: %s, g_loss: 1.00000000\n'
            % (i + 1, i, len(times), t, d_loss) for i, t in enumerate(times)]


def test_fps_skips_warmup_lines_and_averages_the_rest():
    # 20 steps: the first 5 (max(5, 10%)) are warm-up; the rest take 0.5 s per step.
    times = [10.0 + i for i in range(5)] + [15.0 + 0.5 * i for i in range(15)]
    steps = parse_log.parse_steps(['run folder x | device npu | precision npu allow_mix_precision | TF\n']
                                  + step_lines(times))
    assert len(steps) == 20 and parse_log.kept_after_warmup(steps)[0][0] == 6
    assert parse_log.images_per_second(steps, 64) == pytest.approx(128.0)
    # 100 lines: 10% (10) are skipped
    steps = parse_log.parse_steps(step_lines([1000.0] * 10 + [float(i) for i in range(90)]))
    assert parse_log.kept_after_warmup(steps)[0][0] == 11
    assert parse_log.images_per_second(steps, 2) == pytest.approx(2.0)


def test_fps_with_few_lines():
    steps = parse_log.parse_steps(step_lines([5.0, 6.0, 6.25, 6.5]))  # too few to skip 5: skip the first
    assert parse_log.images_per_second(steps, 4) == pytest.approx(16.0)
    steps = parse_log.parse_steps(step_lines([2.0]))  # one line: time since training start
    assert parse_log.images_per_second(steps, 4) == pytest.approx(2.0)
    assert parse_log.parse_steps(['epoch 0 done: 6 steps\n', 'hello\n']) == []


def test_device_from_the_start_line_else_machine():
    assert parse_log.device_of(['x\n', 'run folder o/r | device gpu | precision float32 | TensorFlow 1.15\n']) == 'gpu'
    assert parse_log.device_of(['no start line\n']) == os.uname().machine


# ---- the scripts end to end ----------------------------------------------------------------------------
@pytest.mark.slow
def test_full_script_from_repo_root(faces_data, tmp_path):
    out = tmp_path / 'out'
    result = run_script('test/train_full_1p.sh', '--data_path=%s' % faces_data, '--batch_size=4',
                        '--train_epochs=1', '--output_path=%s' % out, '--data_dump_flag', '--data_dump_step=3')
    assert result.returncode == 0, result.stdout
    case_name = NETWORK + '_bs4_1p_acc'
    results, log = check_results(str(out), case_name, 4, result.stdout)
    assert [int(s) for s in STEP_LINE.findall(log)] == [1, 2, 3, 4, 5, 6]  # 24 images, batch 4, 1 epoch
    assert re.search(r'^run folder .* \| device %s \| precision float32 \|' % results['DeviceType'], log, re.M)
    assert '--data_dump_flag/--data_dump_step are not supported' in log
    assert '--input_height=108 --crop --output_height=64' in log
    check_run_folder(str(out / case_name), 6, 4)
    assert sorted(os.listdir(str(out))) == sorted([case_name, case_name + '.log', 'train_0.log',
                                                   'train_%s_loss.txt' % case_name])


@pytest.mark.slow
def test_performance_script_from_test_dir_with_default_output(faces_data):
    # data_path given relative to test/, and pointing at the image folder itself (the ModelZoo habit)
    data_path = os.path.relpath(os.path.join(faces_data, 'celebA'), TEST_DIR)
    out = os.path.join(TEST_DIR, 'output', '7')
    shutil.rmtree(out, ignore_errors=True)
    try:
        result = run_script('train_performance_1p.sh', '--data_path=' + data_path, '--batch_size=4',
                            '--train_steps=8', '--precision_mode=must_keep_origin_dtype', cwd=TEST_DIR,
                            env={'ASCEND_DEVICE_ID': '7'})
        assert result.returncode == 0, result.stdout
        case_name = NETWORK + '_bs4_1p_perf'
        results, log = check_results(out, case_name, 4, result.stdout, device_id='7')
        assert [int(s) for s in STEP_LINE.findall(log)] == list(range(1, 9))  # --train_steps over 2 epochs
        assert '--data_dir %s --dataset celebA' % os.path.realpath(faces_data) in log
        assert 'RANK_SIZE=1 ASCEND_DEVICE_ID=7 JOB_ID=' in log
        assert '--precision_mode must_keep_origin_dtype' in log
        check_run_folder(os.path.join(out, case_name), 8, 4)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if not os.listdir(os.path.join(TEST_DIR, 'output')):
        os.rmdir(os.path.join(TEST_DIR, 'output'))


@pytest.mark.slow
def test_mnist_then_a_run_started_from_its_checkpoint(tmp_path):
    make_mnist(tmp_path / 'data', n_train=96)
    out = tmp_path / 'out'
    perf = run_script('test/train_performance_1p.sh', '--data_path=%s' % (tmp_path / 'data'), '--dataset=mnist',
                      '--batch_size=16', '--train_steps=4', '--output_path=%s' % out)
    assert perf.returncode == 0, perf.stdout
    perf_case = NETWORK + '_bs16_1p_perf'
    results, log = check_results(str(out), perf_case, 16, perf.stdout)
    assert '--input_height=28 --output_height=28' in log and 'MNIST digits' in log
    check_run_folder(str(out / perf_case), 4, 16)

    full = run_script('test/train_full_1p.sh', '--data_path=%s' % (tmp_path / 'data'), '--dataset=mnist',
                      '--batch_size=16', '--train_steps=2', '--output_path=%s' % out,
                      '--ckpt_path=%s' % (out / perf_case))  # a run folder: its checkpoint/ is used
    assert full.returncode == 0, full.stdout
    full_case = NETWORK + '_bs16_1p_acc'
    results, log = check_results(str(out), full_case, 16, full.stdout)
    assert re.search(r'initialised from .*%s/checkpoint/model.b16-4 at step 4' % perf_case, log)
    assert [int(s) for s in STEP_LINE.findall(log)] == [1, 2]  # a new run: steps count from 0
    check_run_folder(str(out / full_case), 2, 16)


@pytest.mark.slow
def test_failed_training_exits_with_main_py_status_and_no_results(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    out = tmp_path / 'out'
    case_name = NETWORK + '_bs64_1p_acc'
    (out / case_name).mkdir(parents=True)  # an earlier run: removed, a rerun is a new run
    result = run_script('test/train_full_1p.sh', '--data_path=%s' % empty, '--output_path=%s' % out)
    assert result.returncode == 2, result.stdout  # main.py's status for a usage error
    assert '[Error] training failed: main.py exited with status 2' in result.stdout
    assert 'data folder %s/celebA does not exist' % os.path.realpath(str(empty)) in result.stdout  # log tail
    assert 'Final Performance' not in result.stdout
    assert not (out / (case_name + '.log')).exists() and not (out / case_name).exists()
    with open(str(out / 'train_0.log')) as f:
        assert 'removed the earlier run folder' in f.read()


FAKE_PYTHON = '''#!/bin/sh
# stands in for the interpreter: prints a canned log for main.py, runs the real Python otherwise
if [ "$1" = main.py ]; then cat "$FAKE_LOG"; exit "$FAKE_STATUS"; fi
exec "$REAL_PYTHON" "$@"
'''


@pytest.mark.parametrize('status', [0, 3])
def test_no_step_lines_or_a_failing_status_is_a_failure(tmp_path, faces_data, status):
    fake = tmp_path / 'python'
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log = tmp_path / 'canned.log'
    log.write_text('run folder x | device cpu | precision float32 | TensorFlow 0\n' +
                   ''.join(step_lines([1.0, 2.0])) * (status != 0) + 'Traceback: something broke\n')
    result = run_script('test/train_full_1p.sh', '--data_path=%s' % faces_data, '--output_path=%s' % tmp_path,
                        env={'PYTHON': str(fake), 'REAL_PYTHON': sys.executable, 'FAKE_LOG': str(log),
                             'FAKE_STATUS': str(status)})
    assert result.returncode == (1 if status == 0 else status), result.stdout
    reason = 'main.py wrote no step line' if status == 0 else 'main.py exited with status 3'
    assert '[Error] training failed: %s' % reason in result.stdout
    assert 'Traceback: something broke' in result.stdout and 'Final Performance' not in result.stdout
    assert not (tmp_path / (NETWORK + '_bs64_1p_acc.log')).exists()


def test_fps_of_a_canned_log_end_to_end(tmp_path, faces_data):
    fake = tmp_path / 'python'
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log = tmp_path / 'canned.log'
    log.write_text('run folder x | device npu | precision npu allow_mix_precision | TensorFlow 1.15.0\n'
                   + ''.join(step_lines([30.0] * 5 + [40.0 + 0.25 * i for i in range(11)], 'nan')))
    result = run_script('test/train_performance_1p.sh', '--data_path=%s' % faces_data, '--batch_size=32',
                        '--output_path=%s' % tmp_path,
                        env={'PYTHON': str(fake), 'REAL_PYTHON': sys.executable, 'FAKE_LOG': str(log),
                             'FAKE_STATUS': '0'})
    assert result.returncode == 0, result.stdout
    results = dict(read_results(str(tmp_path / (NETWORK + '_bs32_1p_perf.log'))))
    assert results['ActualFPS'] == '128.00' and results['TrainingTime'] == '0.2500'  # 32 images per 0.25 s
    assert results['DeviceType'] == 'npu' and results['ActualLoss'] == 'nan'


@pytest.mark.parametrize('args, message', [
    ([], '[Error] para "data_path" must be config'),
    (['--batch_size=4'], '[Error] para "data_path" must be config'),
    (['--data_path=/tmp', '--epochs=3'], '[Error] unknown argument "--epochs=3" (see --help)'),
    (['--data_path=/tmp', '--batch_size=0'], '[Error] --batch_size must be an integer >= 1, got "0"'),
    (['--data_path=/no/such/folder'], '[Error] --data_path=/no/such/folder is not a folder'),
    (['--data_path'], '[Error] --data_path takes a value'),
])
def test_argument_errors(args, message):
    for script in ('train_full_1p.sh', 'train_performance_1p.sh'):
        result = run_script(script, *args, cwd=TEST_DIR)
        assert result.returncode == 1 and message in result.stdout, result.stdout
        assert 'Final Performance' not in result.stdout


def test_help_lists_one_argument_per_line():
    result = run_script('test/train_performance_1p.sh', '--help')
    assert result.returncode == 0
    for name in ('data_path', 'dataset', 'batch_size', 'train_epochs', 'train_steps', 'precision_mode',
                 'output_path', 'ckpt_path', 'over_dump', 'profiling', 'data_dump_flag', 'data_dump_step'):
        assert len(re.findall(r'^  --%s\b' % name, result.stdout, re.M)) == 1, name
    assert 'stop at this global step; 0: the epochs decide [1000]' in result.stdout
