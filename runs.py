"""Run folders (out_dir/<name>/: config.json, log.txt, checkpoint/, samples/, logs/), their lock, and
checkpoints: found from the files themselves, restored with fallback, saved with a free-space check."""
import errno
import glob
import json
import os
import re
import shutil
import sys

import numpy as np
from tf_compat import tf

CONFIG_FILE = 'config.json'
LOG_FILE = 'log.txt'
LATENTS_FILE = 'fixed_latents.npz'
LOCK_FILE = 'train.lock'  # holds the pid of the training process that has the run folder
STATE_FILE = 'checkpoint'  # TensorFlow's checkpoint state file; written here with names relative to its folder
DAMAGED_DIR = 'damaged'  # checkpoint/damaged/: checkpoints that could not be read, moved out of the way


class RunError(Exception):
    """A problem with a run folder, reported as one sentence; exit_status is main.py's exit code."""
    exit_status = 2


class CheckpointError(RunError):
    """No checkpoint of the run can be read, or the one asked for cannot."""


class CheckpointMismatch(CheckpointError, ValueError):
    """The checkpoint belongs to another model (other output size, z_dim, channels or data set)."""


class NotFinite(RunError):
    """The weights hold NaN or inf: they are not saved, the last finite checkpoint is kept."""
    exit_status = 1


class DiskFull(RunError):
    """A checkpoint could not be written for lack of space; the newest complete one is kept."""
    exit_status = 1


def default_run_name(dataset, output_height, output_width, z_dim, crop, input_height, input_width):
    """Run-folder name from the settings that shape the model; no timestamp, so every later command
    with the same settings (test mode, --generate, ...) finds the training run again."""
    name = '%s_out%dx%d_z%d' % (dataset, output_height, output_width, z_dim)
    if crop:
        name += '_crop%dx%d' % (input_height, input_width)
    return name


def subdir(run_dir, name):
    """run_dir/name, created if missing."""
    path = os.path.join(run_dir, name)
    os.makedirs(path, exist_ok=True)
    return path


def save_config(run_dir, settings):
    """Writes the run's settings as JSON (atomically)."""
    path = os.path.join(run_dir, CONFIG_FILE)
    with open(path + '.tmp', 'w') as f:
        json.dump(settings, f, indent=2, sort_keys=True, default=str)
    os.replace(path + '.tmp', path)


def world_size(run_dir):
    """Ranks the run in run_dir was trained on, from its config.json (1 when it says nothing)."""
    try:
        with open(os.path.join(run_dir, CONFIG_FILE)) as f:
            return int(json.load(f).get('world_size', 1))
    except (OSError, ValueError, TypeError, AttributeError):
        return 1


def fixed_latents(run_dir, make):
    """The run's fixed sample latents (z, y): loaded when saved earlier, else make() and saved once, so
    grids of a resumed run continue the same picture."""
    path = os.path.join(run_dir, LATENTS_FILE)
    if os.path.isfile(path):
        with np.load(path) as saved:
            return saved['z'], (saved['y'] if saved['y'].size else None)
    z, y = make()
    np.savez(path + '.tmp.npz', z=z, y=y if y is not None else np.zeros(0, np.float32))
    os.replace(path + '.tmp.npz', path)
    return z, y


class Tee(object):
    """A stream that writes to the terminal and to the run's log.txt."""

    def __init__(self, stream, log_file):
        self.stream, self.log_file = stream, log_file

    def write(self, text):
        self.stream.write(text)
        try:  # a full disk must not cost the terminal its output (nor the exit status)
            self.log_file.write(text)
            if '\n' in text:  # line-buffered, so the log can be followed while training runs
                self.log_file.flush()
        except (OSError, ValueError):
            pass
        if '\n' in text:
            self.stream.flush()

    def flush(self):
        self.stream.flush()
        try:
            self.log_file.flush()
        except (OSError, ValueError):
            pass

    def __getattr__(self, name):
        return getattr(self.stream, name)


def tee_output(run_dir):
    """Copies stdout and stderr of this process into run_dir/log.txt (appending)."""
    log_file = open(os.path.join(run_dir, LOG_FILE), 'a')
    sys.stdout = Tee(sys.stdout, log_file)
    sys.stderr = Tee(sys.stderr, log_file)
    return log_file


# ---- the run folder: writable, one training process at a time -------------------------------------------
_held_locks = []  # open lock files; the lock lasts as long as the process


def check_writable(folder, what='run folder'):
    """Creates folder if missing and writes a probe file into it; RunError (one sentence) when it cannot."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise RunError('the %s %s is a file, not a folder: choose another --out_dir/--out_name.' % (what, folder))
    probe = os.path.join(folder, '.write-test-%d' % os.getpid())
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, 'w') as f:
            f.write('ok')
        os.remove(probe)
    except OSError as error:
        raise RunError('cannot write to the %s %s (%s): choose a writable --out_dir.'
                       % (what, folder, error.strerror or error))


def lock_run(run_dir):
    """Takes an exclusive lock on run_dir (flock on run_dir/train.lock, which holds the pid) for the life
    of this process; RunError naming the other process when one holds it. The kernel drops the lock of a
    process that dies, so a stale file never blocks."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return None
    path = os.path.join(run_dir, LOCK_FILE)
    handle = open(path, 'a+')
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        handle.seek(0)
        pid = handle.read().strip() or 'unknown'
        handle.close()
        raise RunError('the run folder %s is in use by another training process (pid %s): wait for it to finish '
                       'or stop it, then run the command again.' % (run_dir, pid))
    handle.seek(0)
    handle.truncate()
    handle.write('%d\n' % os.getpid())
    handle.flush()
    _held_locks.append(handle)
    return handle


# ---- checkpoints: found from the files, not from the state file ------------------------------------------
def _prefix_step(prefix):
    return step_from_path(prefix)


def is_complete(prefix):
    """True when a checkpoint's .index is there (not empty) and every .data shard it is split into."""
    index = prefix + '.index'
    if not os.path.isfile(index) or os.path.getsize(index) == 0:
        return False
    shards = glob.glob(glob.escape(prefix) + '.data-*-of-*')
    counts = set(re.search(r'-of-(\d+)$', name).group(1) for name in shards if re.search(r'-of-(\d+)$', name))
    if len(counts) != 1:
        return False
    count = counts.pop()
    return all(os.path.isfile('%s.data-%0*d-of-%s' % (prefix, len(count), i, count)) for i in range(int(count)))


def checkpoint_files(prefix):
    """The files of one checkpoint: .index, .data shards, .meta."""
    return [path for path in glob.glob(glob.escape(prefix) + '.*')
            if re.match(r'\.(index|meta|data-\d+-of-\d+)$', path[len(prefix):])]


def _all_prefixes(checkpoint_dir):
    """Prefixes of everything in checkpoint_dir that looks like a checkpoint (complete or not)."""
    if not os.path.isdir(checkpoint_dir):
        return []
    prefixes = set()
    for name in os.listdir(checkpoint_dir):
        match = re.match(r'^(.+)\.(index|data-\d+-of-\d+)$', name)
        if match:
            prefixes.add(os.path.join(checkpoint_dir, match.group(1)))
    return sorted(prefixes, key=lambda p: (_prefix_step(p), _mtime(p)))


def _mtime(prefix):
    times = [os.path.getmtime(path) for path in checkpoint_files(prefix)]
    return max(times) if times else 0


def find_checkpoints(checkpoint_dir):
    """Complete checkpoints in checkpoint_dir, from the files themselves, oldest first (by step)."""
    return [p for p in _all_prefixes(checkpoint_dir) if is_complete(p)]


def incomplete_checkpoints(checkpoint_dir):
    return [p for p in _all_prefixes(checkpoint_dir) if not is_complete(p)]


def latest_checkpoint(checkpoint_dir):
    """Path prefix of the newest complete checkpoint in checkpoint_dir, or None."""
    found = find_checkpoints(checkpoint_dir)
    return found[-1] if found else None


def read_state(checkpoint_dir):
    """(name, problem): the checkpoint the state file names (its base name, looked up in checkpoint_dir
    whatever folder the file's path points to), and what is wrong with the file (None when nothing is)."""
    path = os.path.join(checkpoint_dir, STATE_FILE)
    if not os.path.isfile(path):
        return None, 'missing'
    try:
        with open(path, 'rb') as f:
            text = f.read(1 << 20).decode('utf-8')
    except (OSError, UnicodeDecodeError):
        return None, 'not readable text'
    if not text.strip():
        return None, 'empty'
    match = re.search(r'^model_checkpoint_path:\s*"([^"]*)"\s*$', text, re.M)
    if not match or not match.group(1).strip():
        return None, 'not a checkpoint state'
    name = os.path.basename(match.group(1).replace('\\', '/').rstrip('/'))
    if not is_complete(os.path.join(checkpoint_dir, name)):
        return name, 'names %s, whose .index or .data is missing' % name
    return name, None


def write_state(checkpoint_dir, prefixes):
    """Writes the state file atomically, naming the checkpoints (newest last) relative to its folder, so a
    copied or moved run folder finds its own files."""
    names = [os.path.basename(p) for p in prefixes]
    lines = ['model_checkpoint_path: "%s"' % names[-1]] + ['all_model_checkpoint_paths: "%s"' % n for n in names]
    path = os.path.join(checkpoint_dir, STATE_FILE)
    tmp = path + '.tmp-%d' % os.getpid()
    try:
        with open(tmp, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def clean_temp_files(checkpoint_dir):
    """Removes what failed or killed saves leave behind: TensorFlow's *.tempstate* files, *_temp* folders
    of sharded saves and temporary state files. Returns the bytes freed."""
    freed = 0
    for folder in (checkpoint_dir, os.path.join(checkpoint_dir, 'best')):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if os.path.isdir(path) and not os.path.islink(path) and '_temp' in name:
                freed += sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.isfile(path) and ('.tempstate' in name or name.startswith(STATE_FILE + '.tmp')):
                freed += os.path.getsize(path)
                os.remove(path)
    return freed


def move_aside(checkpoint_dir):
    """--restart: renames checkpoint_dir to checkpoint_dir.old-<n> (the first free n); returns the new
    path, or None when the folder holds nothing."""
    if not os.path.isdir(checkpoint_dir) or not os.listdir(checkpoint_dir):
        return None
    n = 1
    while os.path.exists('%s.old-%d' % (checkpoint_dir.rstrip('/\\'), n)):
        n += 1
    target = '%s.old-%d' % (checkpoint_dir.rstrip('/\\'), n)
    os.rename(checkpoint_dir, target)
    return target


def _move_damaged(prefix):
    folder = os.path.join(os.path.dirname(prefix), DAMAGED_DIR)
    os.makedirs(folder, exist_ok=True)
    for path in checkpoint_files(prefix):
        target = os.path.join(folder, os.path.basename(path))
        if os.path.exists(target):
            target += '.%d' % os.getpid()
        os.rename(path, target)
    return folder


PLAIN_REASONS = {  # TensorFlow's errors on reading a damaged checkpoint, in words
    'OutOfRangeError': 'a file is shorter than its index says',
    'DataLossError': 'its contents fail their checksum or format check',
    'NotFoundError': 'one of its files is missing',
}


def error_reason(error):
    """A short reason for a failed read or write: plain words for the usual TensorFlow errors, else the
    first informative line of the message."""
    name = type(error).__name__
    if name in PLAIN_REASONS:
        return PLAIN_REASONS[name]
    message = getattr(error, 'message', None) or str(error)
    lines = [line.strip() for line in message.splitlines()
             if line.strip() and not line.strip().startswith(('Graph execution error', 'Detected at node', 'File '))]
    return (lines[0] if lines else name)[:160].rstrip('.')


def restore_newest(sess, checkpoint_dir, var_list=None, move_damaged=False, log=print):
    """Restores the newest checkpoint of checkpoint_dir that can be read, found from the files themselves;
    returns (prefix, missing variable names), or (None, []) when the folder holds no checkpoint.

    Says in one line why it takes another checkpoint than the state file names. A damaged checkpoint
    (truncated, empty or altered files) is skipped with one line, and moved to checkpoint/damaged/ when
    move_damaged (training); CheckpointError when none can be read, CheckpointMismatch when the
    checkpoint belongs to another model.
    """
    candidates = find_checkpoints(checkpoint_dir)[::-1]
    if not candidates:
        incomplete = incomplete_checkpoints(checkpoint_dir)
        if incomplete:
            raise CheckpointError('%s holds only incomplete checkpoints (%s lacks its .index or a .data file), '
                                  'so there is nothing to resume from: restore the missing files, or pass --restart '
                                  'to move them aside and start over.' % (checkpoint_dir, os.path.basename(incomplete[-1])))
        return None, []
    state_name, state_problem = read_state(checkpoint_dir)
    damaged = []
    for prefix in candidates:
        try:
            missing = restore(sess, prefix, var_list)
        except CheckpointMismatch:
            raise
        except (tf.errors.OpError, ValueError) as error:
            damaged.append((prefix, error_reason(error)))
            continue
        break
    else:
        raise CheckpointError('no checkpoint in %s can be read (the newest, %s, fails with %s): restore the files '
                              'from a copy, or pass --restart to move them aside and start over.'
                              % (checkpoint_dir, os.path.basename(damaged[0][0]), damaged[0][1]))
    for bad, reason in damaged:
        where = ''
        if move_damaged:
            where = '; moved it to %s' % _move_damaged(bad)
        log('checkpoint %s is damaged (%s)%s; using the newest intact one, %s.'
            % (os.path.basename(bad), reason, where, os.path.basename(prefix)))
    name = os.path.basename(prefix)
    if not damaged and (state_problem or state_name != name):
        why = state_problem or 'names the older %s' % state_name
        log('the checkpoint state file %s is %s; using the newest complete checkpoint in the folder, %s.'
            % (os.path.join(checkpoint_dir, STATE_FILE), why, name))
    return prefix, missing


def runs_with_checkpoints(out_dir, checkpoint_subdir):
    """Names of run folders under out_dir that hold a checkpoint."""
    if not os.path.isdir(out_dir):
        return []
    return sorted(name for name in os.listdir(out_dir)
                  if latest_checkpoint(os.path.join(out_dir, name, checkpoint_subdir)))


def step_from_path(path):
    """Step number at the end of a checkpoint name (model.b64-1200 -> 1200), for checkpoints written
    without a global step variable (the reference's); 0 if there is none."""
    match = re.search(r'-(\d+)$', path)
    return int(match.group(1)) if match else 0


def restore(sess, path, var_list=None):
    """Restores the variables of var_list (default: all global variables) found in the checkpoint.

    Variables the checkpoint lacks (e.g. Adam slots in a checkpoint of the reference, which saved
    before creating its optimisers) keep their fresh initial values; returns their names. A variable
    present with another shape is a CheckpointMismatch: the checkpoint belongs to another model.
    """
    var_list = tf.global_variables() if var_list is None else var_list
    stored = dict(tf.train.list_variables(path))
    found, missing = [], []
    for variable in var_list:
        name = variable.op.name
        if name not in stored:
            missing.append(name)
            continue
        if list(stored[name]) != variable.get_shape().as_list():
            raise CheckpointMismatch('checkpoint %s holds %s with shape %s, but this model has %s: it was trained '
                                     'with other settings (output size, z_dim, channels or data set).'
                                     % (path, name, stored[name], variable.get_shape().as_list()))
        found.append(variable)
    sess.run(tf.variables_initializer(var_list))
    if found:
        tf.train.Saver(var_list=found).restore(sess, path)
    return missing


# ---- saving ----------------------------------------------------------------------------------------------
def free_bytes(folder):
    """Bytes free for this user on the disk of folder."""
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize


def is_no_space(error):
    """True for a write that failed because the disk (or quota) is full, from Python or TensorFlow."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, getattr(errno, 'EDQUOT', errno.ENOSPC)):
        return True
    return isinstance(error, tf.errors.OpError) and ('No space left' in str(error) or 'quota' in str(error).lower())


def _size(prefix):
    return sum(os.path.getsize(path) for path in checkpoint_files(prefix))


class CheckpointKeeper(object):
    """Saves a run's checkpoints and keeps the newest max_to_keep: only after a save is complete is the
    state file (relative names) rewritten and the oldest checkpoint deleted, and only checkpoints of this
    folder are ever deleted. A save first checks the free space (the size of the last checkpoint, or
    of the variables); a full disk stops with DiskFull naming the checkpoint that is kept."""

    MARGIN = 1 << 20  # state file, meta graph growth

    def __init__(self, saver, checkpoint_dir, prefix, max_to_keep, var_list=None):
        self.saver, self.checkpoint_dir, self.prefix, self.max_to_keep = saver, checkpoint_dir, prefix, max_to_keep
        self.kept = find_checkpoints(checkpoint_dir)
        self.last_saved = None  # (step, prefix) of the newest checkpoint on disk from this process or before
        if self.kept:
            self.last_saved = (step_from_path(self.kept[-1]), self.kept[-1])
        var_list = tf.global_variables() if var_list is None else var_list
        self.var_bytes = sum(int(np.prod(v.get_shape().as_list())) * v.dtype.base_dtype.size for v in var_list)
        floats = [v for v in var_list if v.dtype.base_dtype.is_floating]
        self.all_finite = tf.reduce_all(tf.stack([tf.reduce_all(tf.is_finite(v)) for v in floats])) if floats else None

    def resumed(self, prefix, step):
        """The checkpoint training resumed from: the last finite one, until the next save."""
        self.kept = [p for p in find_checkpoints(self.checkpoint_dir) if step_from_path(p) <= step] or self.kept
        self.last_saved = (step, prefix)

    def kept_sentence(self):
        if self.last_saved is None:
            return 'no checkpoint was written yet'
        return 'the checkpoint at step %d (%s) is kept' % (self.last_saved[0], self.last_saved[1])

    def needed_bytes(self):
        newest = self.kept[-1] if self.kept else None
        size = _size(newest) if newest and os.path.exists(newest + '.index') else self.var_bytes
        return int(size * 1.05) + self.MARGIN

    def _disk_full(self, step, detail):
        clean_temp_files(self.checkpoint_dir)
        return DiskFull('no space left on the disk of %s (%s): stopped at step %d without saving it; %s. Free some '
                        'space and run the same command to resume.'
                        % (self.checkpoint_dir, detail, step, self.kept_sentence()))

    def save(self, sess, step):
        """Saves the variables at step (once per step) if they are all finite; returns the checkpoint's prefix."""
        if self.last_saved and self.last_saved[0] == step and os.path.exists(self.last_saved[1] + '.index'):
            return self.last_saved[1]
        if self.all_finite is not None and not sess.run(self.all_finite):
            advice = 'resume from it' if self.last_saved else 'start again'
            raise NotFinite('the weights became non-finite (NaN or inf) by step %d, so they were not saved; %s: run '
                            'the same command with a lower --learning_rate to %s.' % (step, self.kept_sentence(), advice))
        needed, free = self.needed_bytes(), free_bytes(self.checkpoint_dir)
        if free < needed:
            raise self._disk_full(step, '%.1f MB free, a checkpoint needs %.1f MB' % (free / 1e6, needed / 1e6))
        try:
            path = self.saver.save(sess, self.prefix, global_step=step, write_state=False)
            kept = [p for p in self.kept if p != path and step_from_path(p) < step] + [path]
            dropped, kept = kept[:-self.max_to_keep], kept[-self.max_to_keep:]
            write_state(self.checkpoint_dir, kept)
        except (OSError, tf.errors.OpError) as error:
            if is_no_space(error):
                raise self._disk_full(step, error_reason(error) if isinstance(error, tf.errors.OpError)
                                      else error.strerror)
            raise
        for old in dropped:  # only after the new one and the state file naming it are written
            for file_path in checkpoint_files(old):
                os.remove(file_path)
        self.kept, self.last_saved = kept, (step, path)
        return path
