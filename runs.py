"""Run folders (out_dir/<name>/: config.json, log.txt, checkpoint/, samples/, logs/) and checkpoint restore."""
import json
import os
import re
import sys

import numpy as np
from tf_compat import tf

CONFIG_FILE = 'config.json'
LOG_FILE = 'log.txt'
LATENTS_FILE = 'fixed_latents.npz'


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
        self.log_file.write(text)
        if '\n' in text:  # line-buffered, so the log can be followed while training runs
            self.log_file.flush()
            self.stream.flush()

    def flush(self):
        self.stream.flush()
        self.log_file.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def tee_output(run_dir):
    """Copies stdout and stderr of this process into run_dir/log.txt (appending)."""
    log_file = open(os.path.join(run_dir, LOG_FILE), 'a')
    sys.stdout = Tee(sys.stdout, log_file)
    sys.stderr = Tee(sys.stderr, log_file)
    return log_file


# ---- checkpoints ---------------------------------------------------------------------------------------
def latest_checkpoint(checkpoint_dir):
    """Path prefix of the newest checkpoint in checkpoint_dir, or None."""
    if not os.path.isdir(checkpoint_dir):
        return None
    return tf.train.latest_checkpoint(checkpoint_dir)


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
    present with another shape is an error: the checkpoint belongs to another model.
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
            raise ValueError('checkpoint %s holds %s with shape %s, but this model has %s: it was trained '
                             'with other settings (output size, z_dim, channels or data set).'
                             % (path, name, stored[name], variable.get_shape().as_list()))
        found.append(variable)
    sess.run(tf.variables_initializer(var_list))
    if found:
        tf.train.Saver(var_list=found).restore(sess, path)
    return missing
