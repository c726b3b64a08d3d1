"""Post-training modes of a trained run: --visualize (options 0-4), --generate N, --export, --freeze."""
import json
import os
import re
import sys

import numpy as np

import devices
import evaluate
import model
import runs
import utils
from tf_compat import tf


MNIST_CLASSES = 10  # the label size of a conditional (MNIST) model


def net_config(config):
    """The NetConfig of a run's networks, from its RunConfig (main.py): channels and labels as it found them."""
    return model.net_config(config.output_height, config.output_width, config.channels, config.z_dim,
                            MNIST_CLASSES if config.conditional else 0)


def saved_config(run_dir):
    """The saved config.json of a trained run as a dict; {} when it has none or it is not readable."""
    path = os.path.join(run_dir, runs.CONFIG_FILE)
    saved = {}
    if os.path.isfile(path):
        try:
            with open(path) as f:
                saved = json.load(f)
        except (OSError, ValueError):  # damaged: the flags decide, as for a run without config.json
            print('warning: %s is not readable JSON; using the flags of this command.' % path, file=sys.stderr)
        if not isinstance(saved, dict):
            saved = {}
    return saved


def run_modes(config, trained_with):
    """Loads the run's newest checkpoint and runs every mode config asks for (a RunConfig of main.py;
    trained_with: the run's saved config, a run trained with --ema_decay samples with the averaged
    generator); returns the exit status. Raises runs.CheckpointError, evaluate.EvaluationError."""
    cfg = net_config(config)
    use_ema = float(trained_with.get('ema_decay') or 0) > 0
    sampler = model.build_sampler(cfg, use_ema)
    global_step = tf.train.get_or_create_global_step()
    if config.export:  # the export holds both networks
        with tf.name_scope('export'):
            image = tf.placeholder(tf.float32, [None, cfg.output_height, cfg.output_width, cfg.c_dim])
            label = tf.placeholder(tf.float32, [None, cfg.y_dim]) if cfg.y_dim else None
            model.discriminator(image, label, cfg, training=False)
    run_dir = config.run_dir
    checkpoint_dir = os.path.join(run_dir, config.checkpoint_dir)
    with devices.make_session(config.device, devices.session_config(config.device, config.precision)) as sess:
        checkpoint, missing = runs.restore_newest(sess, checkpoint_dir)
        if checkpoint is None:
            raise runs.CheckpointError('no checkpoint in %s: train first with the same flags plus --train.'
                                       % checkpoint_dir)
        if 'global_step' in missing:
            sess.run(global_step.assign(runs.step_from_path(checkpoint)))
        step = int(sess.run(global_step))
        print('loaded %s (step %d)' % (checkpoint, step))
        if use_ema and model.start_averaged_statistics(sess, missing):
            print('warning: this checkpoint holds no batch-norm statistics for the averaged generator; sampling '
                  'with the raw generator\'s, which do not fit the averaged weights (train on for a few dozen '
                  'steps to measure them).', file=sys.stderr)
        generator = Generator(sess, sampler, cfg)
        rng = np.random.RandomState(config.seed)
        did = False
        if config.visualize:
            visualize(generator, config.visualize_option, config.batch_size, config.z_dist,
                      runs.subdir(run_dir, 'visualize'), rng)
            did = True
        if config.generate:
            generate(generator, config.generate, config.batch_size, config.z_dist, runs.subdir(run_dir, 'generated'),
                     rng)
            did = True
        if config.evaluate:
            evaluate.Evaluator(config, cfg, trained_with=trained_with or None)(generator, step, run_dir)
            did = True
        if config.export:
            prefix = os.path.join(runs.subdir(run_dir, 'export'), 'model.b%d' % config.batch_size)
            path = tf.train.Saver(tf.global_variables()).save(sess, prefix, global_step=step)
            print('exported the model variables (no optimiser state) to %s' % path)
            did = True
        if config.freeze:
            path = freeze(sess, runs.subdir(run_dir, 'frozen'))
            print('froze the sampler to %s: feed %s:0 [N, %d]%s, fetch %s:0 [N, %d, %d, %d]' % (
                path, sampler.z.op.name, cfg.z_dim,
                ' and %s:0 [N, %d] (one-hot digits)' % (sampler.y.op.name, cfg.y_dim) if cfg.y_dim else '',
                model.SAMPLER_OUTPUT, cfg.output_height, cfg.output_width, cfg.c_dim))
            did = True
        if not did:
            print('nothing else to do: add --visualize, --generate N, --evaluate, --export or --freeze.')
    return 0


class Generator(object):
    """Runs the sampler on numpy latents (and labels), returning uint8 images, in batches."""

    def __init__(self, sess, sampler, cfg):
        self.sess, self.sampler, self.cfg = sess, sampler, cfg
        self.value_range = model.data_range(cfg)

    def __call__(self, z, labels=None, batch_size=256):
        out = []
        for start in range(0, len(z), batch_size):
            feed = {self.sampler.z: z[start:start + batch_size]}
            if self.sampler.y is not None:
                feed[self.sampler.y] = utils.one_hot(labels[start:start + batch_size], self.cfg.y_dim)
            out.append(utils.to_uint8(self.sess.run(self.sampler.images, feed), self.value_range))
        return np.concatenate(out)

    def labels_for(self, n):
        """Balanced digit labels 0,1,...,9,0,1,... for conditional models; None otherwise."""
        return np.arange(n) % self.cfg.y_dim if self.cfg.y_dim else None


def generate(generator, n, batch_size, z_dist, out_dir, rng):
    """Writes n images as PNGs plus generated.npz (uint8 images, and balanced labels for MNIST)."""
    z = utils.latents(rng, n, generator.cfg.z_dim, z_dist)
    labels = generator.labels_for(n)
    images = generator(z, labels, batch_size)
    names = set()
    for i, image in enumerate(images):
        names.add('gen_%05d.png' % i)
        utils.save_image(os.path.join(out_dir, 'gen_%05d.png' % i), image)
    arrays = {'images': images}
    if labels is not None:
        arrays['labels'] = labels.astype(np.uint8)
    np.savez_compressed(os.path.join(out_dir, 'generated.npz'), **arrays)
    stale = [name for name in os.listdir(out_dir) if re.match(r'^gen_\d{5,}\.png$', name) and name not in names]
    for name in stale:  # left by an earlier, larger --generate: the folder matches its npz
        os.remove(os.path.join(out_dir, name))
    print('wrote %d images and generated.npz to %s%s' % (n, out_dir, ' (removed %d images of an earlier --generate)'
                                                         % len(stale) if stale else ''))


def _sweep(rng, n, z_dim, z_dist, dim, base=None):
    """n latents that differ only in dimension dim, which runs from 0 to 1 (the reference's sweep)."""
    z = np.tile(base, (n, 1)) if base is not None else utils.latents(rng, n, z_dim, z_dist)
    z[:, dim] = np.arange(n) / float(n)
    return z


def visualize(generator, option, batch_size, z_dist, out_dir, rng):
    """The reference's visualisations: 0 a random grid; 1 a grid per z dimension swept over the rows;
    2 GIFs sweeping randomly chosen dimensions of one latent; 3 a GIF per dimension; 4 one GIF of all
    dimensions swept at once, side by side."""
    z_dim = generator.cfg.z_dim
    labels = generator.labels_for(batch_size)
    written = []
    if option == 0:
        images = generator(utils.latents(rng, batch_size, z_dim, z_dist), labels)
        written.append(_grid(out_dir, 'random.png', images))
    elif option == 1:
        for dim in range(z_dim):
            images = generator(_sweep(rng, batch_size, z_dim, z_dist, dim), labels)
            written.append(_grid(out_dir, 'sweep_z%03d.png' % dim, images))
    elif option in (2, 3):
        dims = rng.randint(z_dim, size=z_dim) if option == 2 else range(z_dim)
        for dim in dims:
            base = rng.uniform(-0.2, 0.2, z_dim).astype(np.float32) if option == 2 else None
            frames = generator(_sweep(rng, batch_size, z_dim, z_dist, dim, base), labels)
            path = os.path.join(out_dir, 'gif_z%03d.gif' % dim)
            utils.save_gif(path, frames)
            written.append(path)
    else:
        sweeps = [generator(_sweep(rng, batch_size, z_dim, z_dist, dim), labels) for dim in range(z_dim)]
        rows, cols = utils.grid_shape(z_dim)
        order = list(range(batch_size)) + list(range(batch_size - 1, -1, -1))  # there and back again
        frames = [utils.make_grid(np.stack([s[t] for s in sweeps]), rows, cols) for t in order]
        path = os.path.join(out_dir, 'gif_merged.gif')
        utils.save_gif(path, frames, duration=0.08)
        written.append(path)
    written = sorted(set(written))  # option 2 may draw a dimension twice: one file
    print('visualize option %d: wrote %d file%s to %s' % (option, len(written), '' if len(written) == 1 else 's',
                                                         out_dir))


def _grid(out_dir, name, images):
    path = os.path.join(out_dir, name)
    utils.save_image(path, utils.make_grid(images))
    return path


def freeze(sess, out_dir):
    """Writes the sampler, with its variables folded into constants, as a GraphDef; returns its path."""
    graph_def = tf.graph_util.convert_variables_to_constants(
        sess, sess.graph.as_graph_def(), [model.SAMPLER_OUTPUT])
    path = os.path.join(out_dir, 'sampler.pb')
    with open(path + '.tmp', 'wb') as f:
        f.write(graph_def.SerializeToString())
    os.replace(path + '.tmp', path)
    return path
