"""Runs are never lost: checkpoints of copied/moved folders, damaged files, divergence, a full disk, a second process."""
import errno
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, make_mnist, run_main

import runs  # noqa: E402 (conftest puts the repository on the path)
from tf_compat import tf  # noqa: E402

STEP_LINE = re.compile(r'^\[\s*(\d+) Epoch:', re.M)


# ---- unit tests of runs.py on a tiny graph -----------------------------------------------------------------
class Tiny(object):
    """A graph with one weight vector and a global step, a session, and a CheckpointKeeper on folder."""

    def __init__(self, folder, max_to_keep=5):
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.step = tf.train.get_or_create_global_step()
            self.w = tf.get_variable('w', initializer=tf.zeros([1000]), use_resource=True)
            self.saver = tf.train.Saver(max_to_keep=100)
            self.folder = str(folder)
            os.makedirs(self.folder, exist_ok=True)
            self.keeper = runs.CheckpointKeeper(self.saver, self.folder, os.path.join(self.folder, 'model.b4'),
                                                max_to_keep)
            self.sess = tf.Session(graph=self.graph)
            self.sess.run(tf.global_variables_initializer())

    def save(self, step, value=None):
        with self.graph.as_default():
            self.sess.run([self.step.assign(step), self.w.assign(tf.fill([1000], float(step if value is None
                                                                                        else value)))])
            return self.keeper.save(self.sess, step)

    def restore(self, move_damaged=False):
        lines = []
        with self.graph.as_default():
            prefix, _ = runs.restore_newest(self.sess, self.folder, move_damaged=move_damaged, log=lines.append)
            return prefix, int(self.sess.run(self.step)), float(self.sess.run(self.w)[0]), lines


def saved_run(folder, steps=(2, 4, 6), max_to_keep=5):
    tiny = Tiny(folder, max_to_keep)
    for step in steps:
        tiny.save(step)
    return tiny


def test_state_file_names_checkpoints_relative_to_its_folder(tmp_path):
    saved_run(tmp_path / 'a' / 'checkpoint', (2, 4), max_to_keep=2)
    with open(str(tmp_path / 'a' / 'checkpoint' / 'checkpoint')) as f:
        text = f.read()
    assert str(tmp_path) not in text and 'model_checkpoint_path: "model.b4-4"' in text


def test_a_copy_resumes_from_its_own_files_and_never_deletes_the_originals(tmp_path):
    original = tmp_path / 'a' / 'checkpoint'
    saved_run(original, (2, 4), max_to_keep=2)
    copy = tmp_path / 'b' / 'checkpoint'
    shutil.copytree(str(original), str(copy))
    with open(str(copy / 'checkpoint'), 'w') as f:  # as older versions wrote it: absolute, into the original
        f.write('model_checkpoint_path: "%s/model.b4-4"\nall_model_checkpoint_paths: "%s/model.b4-2"\n'
                'all_model_checkpoint_paths: "%s/model.b4-4"\n' % (original, original, original))
    before = sorted(os.listdir(str(original)))
    tiny = Tiny(copy, max_to_keep=1)
    prefix, step, _, _ = tiny.restore()
    assert prefix == os.path.join(str(copy), 'model.b4-4') and step == 4
    tiny.keeper.resumed(prefix, step)
    tiny.save(5)
    assert sorted(os.listdir(str(original))) == before  # rotation stayed in the copy
    assert not os.path.exists(str(copy / 'model.b4-4.index')) and os.path.exists(str(copy / 'model.b4-5.index'))


@pytest.mark.parametrize('damage', ['missing', 'empty', 'garbage', 'binary', 'names a missing index'])
def test_a_bad_state_file_resumes_from_the_newest_complete_checkpoint(tmp_path, damage):
    folder = tmp_path / 'checkpoint'
    saved_run(folder)
    state = str(folder / 'checkpoint')
    if damage == 'missing':
        os.remove(state)
    else:
        content = {'empty': b'', 'garbage': b'hello world\n{}', 'binary': b'\xff\xfe\x00\x81' * 64,
                   'names a missing index': b'model_checkpoint_path: "model.b4-8"\n'}[damage]
        with open(state, 'wb') as f:
            f.write(content)
    prefix, step, value, lines = Tiny(folder).restore()
    assert step == 6 and value == 6.0 and prefix.endswith('model.b4-6')
    assert len(lines) == 1 and 'model.b4-6' in lines[0] and 'state file' in lines[0]


def test_a_newest_checkpoint_without_its_index_or_data_is_passed_over(tmp_path):
    folder = tmp_path / 'checkpoint'
    saved_run(folder)
    os.remove(str(folder / 'model.b4-6.index'))
    os.remove(str(folder / 'model.b4-4.data-00000-of-00001'))
    prefix, step, _, lines = Tiny(folder).restore()
    assert step == 2 and prefix.endswith('model.b4-2')
    assert lines and 'model.b4-6, whose .index or .data is missing' in lines[0]


def _damage(path, how):
    with open(path, 'rb') as f:
        data = f.read()
    if how == 'truncated':
        data = data[:len(data) // 2]
    elif how == 'zero-length':
        data = b''
    elif how == 'bit-flipped':
        data = data[:100] + bytes([data[100] ^ 0x10]) + data[101:]
    else:  # garbage
        data = b'this is not an sstable' * 10
    with open(path, 'wb') as f:
        f.write(data)


@pytest.mark.parametrize('part,how', [('data', 'truncated'), ('data', 'zero-length'), ('data', 'bit-flipped'),
                                      ('index', 'garbage')])
def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, part, how):
    folder = tmp_path / 'checkpoint'
    saved_run(folder)
    _damage(str(folder / ('model.b4-6.data-00000-of-00001' if part == 'data' else 'model.b4-6.index')), how)
    prefix, step, value, lines = Tiny(folder).restore(move_damaged=True)
    assert (step, value) == (4, 4.0) and prefix.endswith('model.b4-4')
    assert len(lines) == 1 and 'model.b4-6 is damaged' in lines[0] and 'model.b4-4' in lines[0]
    assert os.path.isfile(str(folder / 'damaged' / 'model.b4-6.index'))  # kept, out of the way
    assert runs.latest_checkpoint(str(folder)).endswith('model.b4-4')


def test_no_readable_checkpoint_is_one_sentence(tmp_path):
    folder = tmp_path / 'checkpoint'
    saved_run(folder, (2,))
    _damage(str(folder / 'model.b4-2.data-00000-of-00001'), 'truncated')
    with pytest.raises(runs.CheckpointError, match=r'no checkpoint in .* can be read .*--restart'):
        Tiny(folder).restore()
    os.remove(str(folder / 'model.b4-2.index'))  # only an incomplete one left: still never a fresh start
    with pytest.raises(runs.CheckpointError, match='only incomplete checkpoints'):
        Tiny(folder).restore()


def test_rotation_keeps_max_to_keep_and_only_after_a_complete_save(tmp_path):
    tiny = saved_run(tmp_path / 'checkpoint', (1, 2, 3, 4), max_to_keep=2)
    assert [os.path.basename(p) for p in runs.find_checkpoints(tiny.folder)] == ['model.b4-3', 'model.b4-4']
    tiny.keeper.saver = FailingSaver(OSError(errno.ENOSPC, 'No space left on device'))
    with pytest.raises(runs.DiskFull):
        tiny.save(5)
    assert [os.path.basename(p) for p in runs.find_checkpoints(tiny.folder)] == ['model.b4-3', 'model.b4-4']


def test_non_finite_weights_are_never_saved(tmp_path):
    tiny = saved_run(tmp_path / 'checkpoint', (1, 2), max_to_keep=1)
    with pytest.raises(runs.NotFinite, match=r'by step 3, so they were not saved; the checkpoint at step 2 .* '
                                             r'is kept: run the same command with a lower --learning_rate'):
        tiny.save(3, value=float('nan'))
    prefix, step, value, _ = Tiny(tiny.folder).restore()
    assert (step, value) == (2, 2.0)


class FailingSaver(object):
    """A Saver whose save leaves a temporary file behind and fails like a full disk."""

    def __init__(self, error):
        self.error = error

    def save(self, sess, prefix, global_step=None, write_state=True):
        with open('%s-%d.data-00000-of-00001.tempstate123' % (prefix, global_step), 'wb') as f:
            f.write(b'x' * 1000)
        raise self.error


@pytest.mark.parametrize('error', [OSError(errno.ENOSPC, 'No space left on device'),
                                   tf.errors.ResourceExhaustedError(None, None, 'model.b4-3.tempstate1; No space left '
                                                                                'on device'),
                                   tf.errors.UnknownError(None, None, 'No space left on device')])
def test_a_full_disk_stops_with_a_sentence_and_cleans_the_temporary_files(tmp_path, error):
    tiny = saved_run(tmp_path / 'checkpoint', (1, 2), max_to_keep=1)
    tiny.keeper.saver = FailingSaver(error)
    with pytest.raises(runs.DiskFull) as raised:
        tiny.save(3)
    message = str(raised.value)
    assert 'no space left on the disk of %s' % tiny.folder in message
    assert 'the checkpoint at step 2' in message and 'model.b4-2' in message and '\n' not in message
    assert not [n for n in os.listdir(tiny.folder) if 'tempstate' in n]
    assert raised.value.exit_status != 0


def test_free_space_is_checked_before_a_save(tmp_path, monkeypatch):
    tiny = saved_run(tmp_path / 'checkpoint', (1,), max_to_keep=1)
    size = sum(os.path.getsize(p) for p in runs.checkpoint_files(os.path.join(tiny.folder, 'model.b4-1')))
    monkeypatch.setattr(runs, 'free_bytes', lambda folder: size // 2)
    with pytest.raises(runs.DiskFull, match='MB free, a checkpoint needs'):
        tiny.save(2)
    assert [os.path.basename(p) for p in runs.find_checkpoints(tiny.folder)] == ['model.b4-1']


def test_clean_temp_files(tmp_path):
    folder = tmp_path / 'checkpoint'
    os.makedirs(str(folder / 'model.b4-3_temp_0a1b' ))
    for name in ('model.b4-3_temp_0a1b/part-00000-of-00001.data-00000-of-00001', 'model.b4-3.index.tempstate99',
                 'checkpoint.tmp5f2e', 'keep.txt'):
        with open(str(folder / name), 'w') as f:
            f.write('x' * 100)
    assert runs.clean_temp_files(str(folder)) == 300
    assert os.listdir(str(folder)) == ['keep.txt']


HOLD_LOCK = '''
import sys, time
sys.path.insert(0, sys.argv[2])
import runs
runs.lock_run(sys.argv[1])
print('locked', flush=True)
time.sleep(60)
'''


def test_a_second_process_is_refused_and_a_dead_ones_lock_does_not_block(tmp_path):
    run_dir = str(tmp_path)
    holder = subprocess.Popen([sys.executable, '-c', HOLD_LOCK, run_dir, REPO], stdout=subprocess.PIPE,
                              universal_newlines=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        with pytest.raises(runs.RunError, match=r'in use by another training process \(pid %d\)' % holder.pid):
            runs.lock_run(run_dir)
    finally:
        holder.kill()
        holder.wait()
    handle = runs.lock_run(run_dir)  # the file still names the dead process: no matter
    with open(os.path.join(run_dir, runs.LOCK_FILE)) as f:
        assert f.read().strip() == str(os.getpid())
    handle.close()


def test_an_unwritable_folder_is_found_at_start(tmp_path):
    with open(str(tmp_path / 'file'), 'w') as f:
        f.write('x')
    with pytest.raises(runs.RunError, match='is a file, not a folder'):
        runs.check_writable(str(tmp_path / 'file'))
    with pytest.raises(runs.RunError, match='cannot write to the run folder'):
        runs.check_writable(str(tmp_path / 'file' / 'run'))


# ---- end to end through main.py ------------------------------------------------------------------------------
def mnist_args(data_dir, out_dir, *extra):
    return ['--dataset', 'mnist', '--input_height=28', '--output_height=28', '--batch_size', '16',
            '--z_dim', '5', '--data_dir', data_dir, '--out_dir', out_dir] + list(extra)


RUN = 'mnist_out28x28_z5'


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A run trained to step 4 with checkpoints at steps 2 and 4 (max_to_keep 2): (data_dir, run folder)."""
    root = tmp_path_factory.mktemp('ckpt_run')
    make_mnist(root / 'data')
    result = run_main(*mnist_args(str(root / 'data'), str(root / 'out'), '--train', '--train_steps', '4',
                                  '--ckpt_freq', '2', '--sample_freq', '100', '--max_to_keep', '2'))
    assert result.returncode == 0, result.stdout
    return str(root / 'data'), str(root / 'out' / RUN)


def copy_run(trained, out_dir):
    target = os.path.join(str(out_dir), RUN)
    shutil.copytree(trained[1], target)
    return target


def no_traceback(output):
    return 'Traceback' not in output and 'Error:' not in output.replace('main.py: error:', '')


def listing(folder):
    return sorted((name, os.path.getmtime(os.path.join(folder, name)), os.path.getsize(os.path.join(folder, name)))
                  for name in os.listdir(folder))


@pytest.mark.slow
def test_copied_and_moved_run_folders_resume_from_their_own_files(trained, tmp_path):
    original = copy_run(trained, tmp_path / 'original')
    copy = copy_run(trained, tmp_path / 'copy')
    before = listing(os.path.join(original, 'checkpoint'))
    result = run_main(*mnist_args(trained[0], str(tmp_path / 'copy'), '--train', '--train_steps', '5',
                                  '--max_to_keep', '1'))
    assert result.returncode == 0, result.stdout
    assert 'resumed from %s at step 4.' % os.path.join(copy, 'checkpoint', 'model.b16-4') in result.stdout
    assert listing(os.path.join(original, 'checkpoint')) == before
    assert sorted(os.listdir(os.path.join(copy, 'checkpoint'))) == ['checkpoint', 'model.b16-5.data-00000-of-00001',
                                                                    'model.b16-5.index', 'model.b16-5.meta']
    moved = str(tmp_path / 'moved')
    os.makedirs(moved)
    shutil.move(original, os.path.join(moved, RUN))
    result = run_main(*mnist_args(trained[0], moved, '--train', '--train_steps', '5'))
    assert result.returncode == 0, result.stdout
    assert 'resumed from %s at step 4.' % os.path.join(moved, RUN, 'checkpoint', 'model.b16-4') in result.stdout


@pytest.mark.slow
def test_a_missing_index_and_a_garbage_state_file_resume_from_the_newest_complete(trained, tmp_path):
    run_dir = copy_run(trained, tmp_path)
    checkpoint_dir = os.path.join(run_dir, 'checkpoint')
    os.remove(os.path.join(checkpoint_dir, 'model.b16-4.index'))
    with open(os.path.join(checkpoint_dir, 'checkpoint'), 'wb') as f:
        f.write(b'\x00\xff garbage')
    result = run_main(*mnist_args(trained[0], str(tmp_path), '--train', '--train_steps', '3'))
    assert result.returncode == 0, result.stdout
    assert 'using the newest complete checkpoint in the folder, model.b16-2' in result.stdout
    assert 'resumed from %s at step 2.' % os.path.join(checkpoint_dir, 'model.b16-2') in result.stdout
    assert no_traceback(result.stdout)


@pytest.mark.slow
def test_restart_moves_the_old_checkpoints_aside(trained, tmp_path):
    run_dir = copy_run(trained, tmp_path)
    result = run_main(*mnist_args(trained[0], str(tmp_path), '--train', '--train_steps', '1', '--restart'))
    assert result.returncode == 0, result.stdout
    aside = os.path.join(run_dir, 'checkpoint.old-1')
    assert '--restart: moved the earlier checkpoints aside to %s' % aside in result.stdout
    assert 'from step 0 on' in result.stdout
    assert os.path.isfile(os.path.join(aside, 'model.b16-4.index'))
    assert os.path.isfile(os.path.join(run_dir, 'checkpoint', 'model.b16-1.index'))


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_in_every_mode(trained, tmp_path):
    run_dir = copy_run(trained, tmp_path)
    _damage(os.path.join(run_dir, 'checkpoint', 'model.b16-4.data-00000-of-00001'), 'truncated')
    generated = run_main(*mnist_args(trained[0], str(tmp_path), '--generate', '10'))
    assert generated.returncode == 0, generated.stdout
    assert re.search(r'checkpoint model.b16-4 is damaged \(.+\); using the newest intact one, '
                     r'model.b16-2\.', generated.stdout), generated.stdout
    assert 'loaded %s (step 2)' % os.path.join(run_dir, 'checkpoint', 'model.b16-2') in generated.stdout
    _damage(os.path.join(run_dir, 'checkpoint', 'model.b16-2.data-00000-of-00001'), 'zero-length')
    for mode in (['--generate', '4'], ['--visualize'], ['--evaluate'], ['--freeze'], ['--export']):
        result = run_main(*mnist_args(trained[0], str(tmp_path), *mode))
        assert result.returncode == 2, (mode, result.stdout)
        assert 'main.py: error: no checkpoint in %s can be read' % os.path.join(run_dir, 'checkpoint') in result.stdout
        assert no_traceback(result.stdout), result.stdout
    result = run_main(*mnist_args(trained[0], str(tmp_path), '--train', '--train_steps', '6'))
    assert result.returncode == 2 and no_traceback(result.stdout), result.stdout
    assert 'pass --restart to move them aside and start over' in result.stdout
    assert sorted(n for n in os.listdir(os.path.join(run_dir, 'checkpoint')) if n.endswith('.index')) == [
        'model.b16-2.index', 'model.b16-4.index']  # nothing trained over them


@pytest.mark.slow
def test_divergence_keeps_the_last_finite_checkpoint_and_the_advice_works(trained, tmp_path):
    run_dir = copy_run(trained, tmp_path)
    result = run_main(*mnist_args(trained[0], str(tmp_path), '--train', '--train_steps', '20', '--ckpt_freq', '1',
                                  '--learning_rate', '1e30'))
    assert result.returncode == 1, result.stdout
    error = [line for line in result.stdout.splitlines() if line.startswith('main.py: error:')]
    assert len(error) == 1 and 'so these weights were not saved' in error[0], result.stdout
    match = re.search(r'the newest checkpoint, step (\d+) \((\S+)\), holds finite weights: run the same command with '
                      r'a lower --learning_rate \(now 1e\+30\) to resume from it', error[0])
    assert match, error[0]
    step, prefix = int(match.group(1)), match.group(2)
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.all(np.isfinite(value)), name
    assert runs.latest_checkpoint(os.path.join(run_dir, 'checkpoint')) == prefix
    again = run_main(*mnist_args(trained[0], str(tmp_path), '--train', '--train_steps', str(step + 1)))
    assert again.returncode == 0, again.stdout
    assert 'resumed from %s at step %d.' % (prefix, step) in again.stdout


@pytest.mark.parametrize('flag', ['--learning_rate', '--beta1', '--d_learning_rate', '--g_learning_rate',
                                  '--ema_decay'])
@pytest.mark.parametrize('value', ['inf', 'nan', '-inf'])
def test_non_finite_number_flags_are_refused(mnist_dir, tmp_path, capsys, flag, value):
    import main
    status = main.main(mnist_args(mnist_dir, str(tmp_path), '--train', '--train_steps', '1', flag + '=' + value))
    assert status == 2
    assert 'main.py: error: %s must be a finite number' % flag in capsys.readouterr().err
    assert not os.path.exists(os.path.join(str(tmp_path), RUN))


@pytest.mark.slow
def test_a_second_training_process_is_refused_naming_the_first(trained, tmp_path):
    copy_run(trained, tmp_path)
    args = mnist_args(trained[0], str(tmp_path), '--train', '--train_steps', '400', '--ckpt_freq', '1000',
                      '--sample_freq', '1000')
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONUNBUFFERED='1')
    first = subprocess.Popen([sys.executable, os.path.join(REPO, 'main.py')] + args, cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    try:
        for line in first.stdout:
            if STEP_LINE.match(line):
                break
        second = run_main(*args)
        assert second.returncode == 2, second.stdout
        assert 'in use by another training process (pid %d)' % first.pid in second.stdout
        assert no_traceback(second.stdout)
    finally:
        first.kill()  # kill -9: its lock goes with it
        first.wait()
    third = run_main(*(args[:-6] + ['--train', '--train_steps', '5']))
    assert third.returncode == 0, third.stdout
    assert 'resumed from' in third.stdout and 'at step 4.' in third.stdout


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 320 MB tmpfs (root only; skipped elsewhere): a disk that fills up."""
    mount = str(tmp_path / 'disk')
    os.makedirs(mount)
    if os.geteuid() != 0 or subprocess.call(['mount', '-t', 'tmpfs', '-o', 'size=320m', 'tmpfs', mount],
                                            stderr=subprocess.DEVNULL) != 0:
        pytest.skip('mounting a tmpfs needs root')
    yield mount
    subprocess.call(['umount', '-l', mount])


def fill(path, megabytes):
    with open(path, 'wb') as f:
        for _ in range(megabytes):
            f.write(b'\0' * (1 << 20))


@pytest.mark.slow
def test_full_disk_temp_files_are_cleaned_and_a_full_disk_is_one_sentence(trained, small_tmpfs):
    run_dir = os.path.join(small_tmpfs, RUN)
    shutil.copytree(trained[1], run_dir)
    checkpoint_dir = os.path.join(run_dir, 'checkpoint')
    os.remove(os.path.join(checkpoint_dir, 'model.b16-2.index'))
    os.remove(os.path.join(checkpoint_dir, 'model.b16-2.data-00000-of-00001'))
    os.remove(os.path.join(checkpoint_dir, 'model.b16-2.meta'))
    # what a save killed by a full disk leaves: a large temporary file that keeps the disk full
    fill(os.path.join(checkpoint_dir, 'model.b16-6.data-00000-of-00001.tempstate7719'),
         runs.free_bytes(small_tmpfs) // (1 << 20) - 40)
    result = run_main(*mnist_args(trained[0], small_tmpfs, '--train', '--train_steps', '5', '--max_to_keep', '1'))
    assert result.returncode == 0, result.stdout
    assert 'MB of temporary files left by an interrupted save' in result.stdout
    assert sorted(os.listdir(checkpoint_dir)) == ['checkpoint', 'model.b16-5.data-00000-of-00001',
                                                  'model.b16-5.index', 'model.b16-5.meta']
    fill(os.path.join(small_tmpfs, 'other-data.bin'), runs.free_bytes(small_tmpfs) // (1 << 20) - 30)
    full = run_main(*mnist_args(trained[0], small_tmpfs, '--train', '--train_steps', '6', '--max_to_keep', '1'))
    assert full.returncode == 1, full.stdout
    sentence = 'main.py: error: no space left on the disk of %s' % checkpoint_dir
    assert sentence in full.stdout and 'the checkpoint at step 5' in full.stdout and no_traceback(full.stdout)
    with open(os.path.join(run_dir, 'log.txt')) as f:
        assert sentence in f.read()
    assert runs.latest_checkpoint(checkpoint_dir).endswith('model.b16-5')


@pytest.mark.slow
def test_a_read_only_run_folder_is_found_at_start(trained, small_tmpfs):
    shutil.copytree(trained[1], os.path.join(small_tmpfs, RUN))
    assert subprocess.call(['mount', '-o', 'remount,ro', small_tmpfs]) == 0
    start = time.time()
    result = run_main(*mnist_args(trained[0], small_tmpfs, '--train', '--train_steps', '6'))
    assert result.returncode == 2, result.stdout
    assert 'main.py: error: cannot write to the run folder %s' % os.path.join(small_tmpfs, RUN) in result.stdout
    assert no_traceback(result.stdout) and not STEP_LINE.search(result.stdout) and time.time() - start < 120


# ---- post-training modes: the folder says what was written --------------------------------------------------
class FakeGenerator(object):
    """Stands in for inference.Generator: grey 8x8 images whatever the latents."""

    class cfg(object):
        z_dim = 6
        y_dim = 0

    def __call__(self, z, labels=None, batch_size=256):
        return np.full((len(z), 8, 8, 1), 128, np.uint8)

    def labels_for(self, n):
        return None


def test_generate_leaves_only_the_images_of_its_npz(tmp_path):
    import inference
    out = str(tmp_path / 'generated')
    os.makedirs(out)
    with open(os.path.join(out, 'notes.txt'), 'w') as f:
        f.write('mine')
    inference.generate(FakeGenerator(), 12, 4, 'uniform_signed', out, np.random.RandomState(0))
    inference.generate(FakeGenerator(), 5, 4, 'uniform_signed', out, np.random.RandomState(0))
    pngs = sorted(n for n in os.listdir(out) if n.endswith('.png'))
    with np.load(os.path.join(out, 'generated.npz')) as saved:
        assert len(saved['images']) == len(pngs) == 5
    assert pngs == ['gen_%05d.png' % i for i in range(5)] and os.path.isfile(os.path.join(out, 'notes.txt'))


def test_visualize_option_2_reports_the_files_it_wrote(tmp_path, capsys):
    import inference
    out = str(tmp_path / 'visualize')
    inference.visualize(FakeGenerator(), 2, 4, 'uniform_signed', out, np.random.RandomState(1))
    written = len(os.listdir(out))
    assert written < FakeGenerator.cfg.z_dim  # this seed draws a dimension twice
    assert 'wrote %d file%s to' % (written, '' if written == 1 else 's') in capsys.readouterr().out
