"""End to end through `python main.py ...`: training, logs, resume after SIGTERM, post-training modes, bad input."""
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, make_image_folder, make_mnist, run_main

pytestmark = pytest.mark.slow  # every test runs python main.py

STEP_LINE = re.compile(r'^\[\s*(\d+) Epoch:\[\s*(\d+)/\s*(\d+)\] \[\s*(\d+)/\s*(\d+)\] time: \d+\.\d{4}, '
                       r'd_loss: -?\d+\.\d{8}, g_loss: -?\d+\.\d{8}$', re.M)


def mnist_args(data_dir, out_dir, *extra):
    return ['--dataset', 'mnist', '--input_height=28', '--output_height=28', '--batch_size', '16',
            '--z_dim', '5', '--data_dir', data_dir, '--out_dir', out_dir] + list(extra)


@pytest.fixture(scope='module')
def trained_mnist(tmp_path_factory):
    """A short real MNIST training run shared by the post-training tests: (args, run_dir, output)."""
    root = tmp_path_factory.mktemp('mnist_run')
    make_mnist(root / 'data')
    args = mnist_args(str(root / 'data'), str(root / 'out'))
    result = run_main(*(args + ['--train', '--train_steps', '5', '--sample_freq', '2', '--ckpt_freq', '3']))
    assert result.returncode == 0, result.stdout
    return args, str(root / 'out' / 'mnist_out28x28_z5'), result.stdout


def test_training_run_writes_log_samples_checkpoint_events(trained_mnist):
    args, run_dir, output = trained_mnist
    steps = [int(m.group(1)) for m in STEP_LINE.finditer(output)]
    assert steps == [1, 2, 3, 4, 5]
    with open(os.path.join(run_dir, 'log.txt')) as f:
        assert STEP_LINE.search(f.read())
    samples = sorted(os.listdir(os.path.join(run_dir, 'samples')))
    assert samples == ['reals.png', 'train_00000002.png', 'train_00000004.png', 'train_00000005.png']
    from PIL import Image
    grid = Image.open(os.path.join(run_dir, 'samples', 'train_00000002.png'))
    assert grid.size == (2 * 28, 10 * 28)  # ten rows, one per digit; 16 samples -> 2 columns
    checkpoints = os.listdir(os.path.join(run_dir, 'checkpoint'))
    assert 'model.b16-5.index' in checkpoints and 'model.b16-3.index' not in checkpoints  # max_to_keep 1
    assert any(name.startswith('events.out.tfevents') for name in os.listdir(os.path.join(run_dir, 'logs')))
    with open(os.path.join(run_dir, 'config.json')) as f:
        config = json.load(f)
    assert config['dataset'] == 'mnist' and config['device'] == 'cpu' and config['channels'] == 1
    assert config['conditional'] is True and config['input_width'] == 28 and config['init_checkpoint'] == ''
    assert config['precision'] == 'float32' and config['tf_version']


def test_image_folder_with_mixed_modes_and_a_corrupt_file(tmp_path):
    data_dir = tmp_path / 'data'
    make_image_folder(data_dir / 'faces', n=24)
    result = run_main('--dataset', 'faces', '--crop', '--input_height', '32', '--output_height', '16',
                      '--batch_size', '8', '--train', '--train_steps', '4', '--data_dir', data_dir,
                      '--out_dir', tmp_path / 'out', '--seed', '3')
    assert result.returncode == 0, result.stdout
    assert 'warning: skipping unreadable image' in result.stdout and 'broken_00.jpg' in result.stdout
    assert re.search(r'epoch 0 done: 3 steps .*1 unreadable images skipped', result.stdout)
    assert len(STEP_LINE.findall(result.stdout)) == 4
    run_dir = tmp_path / 'out' / 'faces_out16x16_z100_crop32x32'
    with open(str(run_dir / 'config.json')) as f:
        config = json.load(f)
    assert config['channels'] == 3  # the first image is RGB; L, RGBA and P images are converted
    assert config['conditional'] is False and (config['input_height'], config['output_width']) == (32, 16)


def test_prepare_then_train_reads_the_cache(tmp_path):
    data_dir = tmp_path / 'data'
    make_image_folder(data_dir / 'faces', n=20, modes=('L',))
    args = ['--dataset', 'faces', '--output_height', '16', '--batch_size', '4', '--data_dir', data_dir,
            '--out_dir', tmp_path / 'out']
    prepared = run_main(*(args + ['--prepare']))
    assert prepared.returncode == 0, prepared.stdout
    assert 'prepared 20 images' in prepared.stdout and '1 unreadable files left out' in prepared.stdout
    again = run_main(*(args + ['--prepare']))
    assert 'already prepared' in again.stdout
    trained = run_main(*(args + ['--train', '--train_steps', '2']))
    assert trained.returncode == 0, trained.stdout
    assert '20 prepared images' in trained.stdout
    assert 'input pipeline: graph (auto)' in trained.stdout  # a cache this small is held in memory
    assert os.path.isfile(str(tmp_path / 'out' / 'faces_out16x16_z100' / 'samples' / 'reals.png'))


def test_sigterm_saves_and_the_same_command_resumes(tmp_path):
    from tf_compat import tf
    make_mnist(tmp_path / 'data')
    args = mnist_args(str(tmp_path / 'data'), str(tmp_path / 'out'), '--train', '--train_steps', '400',
                      '--ckpt_freq', '1000', '--sample_freq', '1000')
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONUNBUFFERED='1')
    process = subprocess.Popen([sys.executable, os.path.join(REPO, 'main.py')] + args, cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    lines = []
    for line in process.stdout:
        lines.append(line)
        match = STEP_LINE.match(line.rstrip('\n'))
        if match and int(match.group(1)) >= 3:
            process.send_signal(signal.SIGTERM)
            break
    rest, _ = process.communicate(timeout=120)
    output = ''.join(lines) + rest
    assert process.returncode == 128 + signal.SIGTERM, output
    assert 'Run the same command to resume' in output
    last = max(int(m.group(1)) for m in STEP_LINE.finditer(output))
    checkpoint = os.path.join(str(tmp_path / 'out'), 'mnist_out28x28_z5', 'checkpoint', 'model.b16-%d' % last)
    assert tf.train.load_variable(checkpoint, 'global_step') == last
    # Adam's state is in the checkpoint: beta1_power is beta1^(updates + 1)
    np.testing.assert_allclose(tf.train.load_variable(checkpoint, 'd_update/beta1_power'), 0.5 ** (last + 1))

    resumed = run_main(*(args[:-6] + ['--train', '--train_steps', str(last + 2)]))
    assert resumed.returncode == 0, resumed.stdout
    assert 'resumed from %s at step %d' % (checkpoint, last) in resumed.stdout
    assert 'initialised fresh' not in resumed.stdout
    steps = [int(m.group(1)) for m in STEP_LINE.finditer(resumed.stdout)]
    batches = [int(m.group(4)) for m in STEP_LINE.finditer(resumed.stdout)]
    assert steps == [last + 1, last + 2] and batches == [last, last + 1]
    final = checkpoint[:-len(str(last))] + str(last + 2)
    np.testing.assert_allclose(tf.train.load_variable(final, 'd_update/beta1_power'), 0.5 ** (last + 3))


def test_generate_writes_pngs_and_balanced_npz(trained_mnist):
    args, run_dir, _ = trained_mnist
    result = run_main(*(args + ['--generate', '23']))
    assert result.returncode == 0, result.stdout
    folder = os.path.join(run_dir, 'generated')
    assert len([n for n in os.listdir(folder) if n.endswith('.png')]) == 23
    with np.load(os.path.join(folder, 'generated.npz')) as saved:
        assert saved['images'].shape == (23, 28, 28, 1) and saved['images'].dtype == np.uint8
        assert np.bincount(saved['labels']).tolist() == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]


def test_a_run_saved_without_conditional_still_samples_with_labels(trained_mnist, tmp_path):
    import shutil
    args, run_dir, _ = trained_mnist
    copy = tmp_path / 'out' / os.path.basename(run_dir)
    shutil.copytree(run_dir, str(copy))
    with open(str(copy / 'config.json')) as f:
        config = json.load(f)
    assert config.pop('conditional') is True
    with open(str(copy / 'config.json'), 'w') as f:
        json.dump(config, f)  # as written before config.json recorded it
    result = run_main(*(args + ['--out_dir', tmp_path / 'out', '--generate', '10']))
    assert result.returncode == 0, result.stdout
    with np.load(str(copy / 'generated' / 'generated.npz')) as saved:
        assert saved['labels'].tolist() == list(range(10))


@pytest.mark.parametrize('option,expected', [(0, ['random.png']),
                                             (1, ['sweep_z000.png', 'sweep_z004.png']),
                                             (2, None), (3, ['gif_z000.gif', 'gif_z004.gif']),
                                             (4, ['gif_merged.gif'])])
def test_visualize_options(trained_mnist, option, expected):
    import imageio
    args, run_dir, _ = trained_mnist
    folder = os.path.join(run_dir, 'visualize')
    before = set(os.listdir(folder)) if os.path.isdir(folder) else set()
    result = run_main(*(args + ['--visualize', '--visualize_option', str(option)]))
    assert result.returncode == 0, result.stdout
    assert 'visualize option %d' % option in result.stdout
    written = set(os.listdir(folder))
    for name in expected or []:
        assert name in written
    if option == 2:
        assert any(n.endswith('.gif') for n in written - before) or any(n.endswith('.gif') for n in written)
    for name in written:
        if name.endswith('.gif'):
            assert len(imageio.mimread(os.path.join(folder, name))) >= 16


def test_export_and_freeze(trained_mnist, tmp_path):
    from tf_compat import tf
    args, run_dir, _ = trained_mnist
    result = run_main(*(args + ['--export', '--freeze', '--batch_size', '4']))
    assert result.returncode == 0, result.stdout
    export = os.path.join(run_dir, 'export', 'model.b4-5')
    names = [name for name, _ in tf.train.list_variables(export)]
    assert 'generator/g_h0_lin/Matrix' in names and 'discriminator/d_h3_lin/Matrix' in names
    assert not any('adam' in name for name in names)
    # the frozen sampler loads into a fresh graph and generates
    graph_def = tf.GraphDef()
    with open(os.path.join(run_dir, 'frozen', 'sampler.pb'), 'rb') as f:
        graph_def.ParseFromString(f.read())
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name='')
        with tf.Session(graph=graph) as sess:
            images = sess.run('sampler/images:0', {'sampler/z:0': np.zeros([3, 5], np.float32),
                                                   'sampler/y:0': np.eye(10, dtype=np.float32)[:3]})
    assert images.shape == (3, 28, 28, 1) and 0 <= images.min() and images.max() <= 1


def test_freeze_of_a_tanh_generator(tmp_path):
    from tf_compat import tf
    make_image_folder(tmp_path / 'data' / 'faces', n=8, corrupt=0)
    common = ['--dataset', 'faces', '--output_height', '16', '--batch_size', '4', '--z_dim', '3',
              '--data_dir', tmp_path / 'data', '--out_dir', tmp_path / 'out']
    assert run_main(*(common + ['--train', '--train_steps', '1'])).returncode == 0
    result = run_main(*(common + ['--freeze']))
    assert result.returncode == 0, result.stdout
    graph_def = tf.GraphDef()
    with open(str(tmp_path / 'out' / 'faces_out16x16_z3' / 'frozen' / 'sampler.pb'), 'rb') as f:
        graph_def.ParseFromString(f.read())
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name='')
        with tf.Session(graph=graph) as sess:
            images = sess.run('sampler/images:0', {'sampler/z:0': np.ones([2, 3], np.float32)})
    assert images.shape == (2, 16, 16, 3) and -1 <= images.min() and images.max() <= 1


# ---- bad input: one sentence, exit status 2, no traceback ----------------------------------------------
def assert_usage_error(result, *phrases):
    assert result.returncode == 2, result.stdout
    assert 'Traceback' not in result.stdout
    message = [line for line in result.stdout.splitlines() if line.startswith('main.py: error:')]
    assert len(message) == 1, result.stdout
    for phrase in phrases:
        assert phrase in message[0], message[0]


def test_missing_data_folder_names_path_and_download_command(tmp_path):
    result = run_main('--dataset', 'celebA', '--train', '--data_dir', tmp_path / 'nowhere')
    assert_usage_error(result, str(tmp_path / 'nowhere' / 'celebA'), 'python download.py celebA')
    result = run_main('--dataset', 'mnist', '--train', '--data_dir', tmp_path / 'nowhere')
    assert_usage_error(result, 'MNIST files not found', 'python download.py mnist')


def test_crop_larger_than_images(faces_dir):
    result = run_main('--dataset', 'faces', '--crop', '--input_height', '108', '--train', '--data_dir', faces_dir)
    assert_usage_error(result, '108x108 is larger than the images', '48x40')


def test_data_set_smaller_than_one_batch(faces_dir):
    result = run_main('--dataset', 'faces', '--batch_size', '64', '--train', '--data_dir', faces_dir)
    assert_usage_error(result, 'fewer than one batch of 64')


def test_unknown_z_dist_and_bad_numbers(faces_dir):
    assert_usage_error(run_main('--z_dist', 'gaussian', '--train', '--data_dir', faces_dir), "unknown --z_dist 'gaussian'")
    assert_usage_error(run_main('--batch_size', '0', '--train'), '--batch_size must be at least 1')
    assert_usage_error(run_main('--visualize_option', '7'), '--visualize_option must be 0')
    assert_usage_error(run_main('--dataset', 'mnist', '--output_height', '64'), 'conditional 28x28')
    assert_usage_error(run_main('--epoch', 'many'), "argument --epoch: invalid int value: 'many'")


def test_test_mode_without_checkpoint_lists_trained_runs(trained_mnist, tmp_path):
    args, run_dir, _ = trained_mnist
    out_dir = os.path.dirname(run_dir)
    result = run_main('--dataset', 'mnist', '--z_dim', '7', '--out_dir', out_dir, '--generate', '4')
    assert_usage_error(result, os.path.join(out_dir, 'mnist_out28x28_z7', 'checkpoint'), 'mnist_out28x28_z5')


def test_npu_without_npu_bridge_and_loop_offload_elsewhere(mnist_dir):
    result = run_main('--dataset', 'mnist', '--train', '--device', 'npu', '--data_dir', mnist_dir)
    assert_usage_error(result, 'npu_bridge')
    result = run_main('--dataset', 'mnist', '--train', '--iterations_per_loop', '10', '--data_dir', mnist_dir)
    assert_usage_error(result, '--iterations_per_loop', 'NPU')
