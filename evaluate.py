"""Sample quality of a run as numbers: MNIST classifier scores or FID/KID, logged to metrics.jsonl."""
import concurrent.futures
import os
import sys

import numpy as np

import data
import fid
import metrics
import utils

MNIST_SAMPLES = 10000  # generated digits per evaluation (balanced over the classes)
RGB_SAMPLES = 50000  # generated images per FID, as in the TTUR paper


class EvaluationError(Exception):
    """Evaluation cannot run as asked (e.g. the Inception graph is missing): one sentence for the user."""


class Evaluator(object):
    """Scores a generator: for conditional MNIST the classifier's label accuracy and Frechet distance
    (with the real-data floor beside it); for RGB data FID and KID against the data set's cached
    reference statistics. The score to keep the best checkpoint by is `fd` or `fid` (lower is better)."""

    def __init__(self, config, cfg, log=print, trained_with=None):
        """config: the RunConfig of main.py (for RGB data its image_spec is that of the data set); cfg: the
        networks' NetConfig; trained_with: the run's saved config (its settings are recorded with each
        score), default config. Raises EvaluationError."""
        self.cfg, self.log = cfg, log
        self.seed, self.z_dist = config.seed, config.z_dist
        self.settings = settings_of(trained_with or config._asdict())
        data_dir = config.data_dir
        if cfg.y_dim:
            self.samples = config.eval_samples or MNIST_SAMPLES
            self.score_name = 'fd'
            self.classifier = metrics.ensure_mnist_classifier(data_dir, steps=config.eval_classifier_steps,
                                                              log=log)
            self.reference = metrics.mnist_reference_sets(data_dir)
        else:
            self.samples = config.eval_samples or RGB_SAMPLES
            self.score_name = 'fid'
            graph = config.inception_graph or fid.default_inception_path(data_dir)
            if not os.path.isfile(graph):
                raise EvaluationError('FID needs the Inception graph %s: run `python download.py inception '
                                      '--data_dir %s` once, or point --inception_graph to a copy.'
                                      % (graph, data_dir))
            self.extractor = fid.InceptionFeatures(graph)
            images, key = reference_images(data_dir, config.dataset, config.input_fname_pattern,
                                           config.image_spec, self.samples)
            self.reference = fid.reference_stats(
                self.extractor, images, fid.fid_stats_path(data_dir, config.dataset, key),
                max_images=max(self.samples, 10000), log=log)

    def __call__(self, generator, step, run_dir):
        """Evaluates generator (an inference.Generator) at a step; appends to metrics.jsonl; returns the record."""
        rng = np.random.RandomState(self.seed + 7919)  # the same latents at every evaluation
        z = utils.latents(rng, self.samples, self.cfg.z_dim, self.z_dist)
        labels = generator.labels_for(self.samples)
        images = generator(z, labels, batch_size=500)
        if self.cfg.y_dim:
            scores = metrics.mnist_scores(self.classifier, images, labels, self.reference)
            summary = ('fd %.3f (real-data floor %.3f), per-class fd %.3f (%.3f), precision %.3f (%.3f), '
                       'recall %.3f (%.3f), label accuracy %.4f' % tuple(
                           scores[k] for k in ('fd', 'fd_floor', 'fd_class', 'fd_class_floor', 'precision',
                                               'precision_floor', 'recall', 'recall_floor', 'label_accuracy')))
        else:
            scores = fid.fid_and_kid(self.extractor, images, self.reference)
            summary = 'FID %.3f, KID %.5f +- %.5f, precision %.3f (real-data floor %.3f), recall %.3f (%.3f)' % (
                scores['fid'], scores['kid'], scores['kid_std'], scores['precision'], scores['precision_floor'],
                scores['recall'], scores['recall_floor'])
        record = dict(scores, step=step, samples=self.samples, **self.settings)
        metrics.append_metrics(run_dir, record)
        self.log('evaluation at step %d over %d samples: %s' % (step, self.samples, summary))
        return record

    def score(self, record):
        return record.get(self.score_name)


def settings_of(config):
    """The training settings a score depends on (from a dict of flags), stored with each evaluation."""
    keys = ('dataset', 'recipe', 'batch_size', 'g_steps', 'beta1', 'beta2', 'ema_decay', 'ema_start',
            'label_smoothing', 'r1_gamma', 'lr_decay_epochs', 'z_dist', 'epoch', 'train_steps', 'seed')
    settings = dict((k, config.get(k)) for k in keys)
    settings['d_learning_rate'] = config.get('d_learning_rate') or config.get('learning_rate')
    settings['g_learning_rate'] = config.get('g_learning_rate') or config.get('learning_rate')
    return settings


def reference_images(data_dir, dataset, pattern, spec, wanted):
    """Real images of data_dir/dataset (files matching pattern, made by the data.ImageSpec spec) for the
    reference statistics, uint8 [N, H, W, C], and the cache key of their settings: the prepared cache when
    there is one (read lazily), else a seeded sample of decoded files."""
    folder = os.path.join(data_dir, dataset)
    paths = data.list_images(folder, pattern)
    prepared = data.find_prepared(data_dir, dataset, spec, paths) if paths else None
    if prepared:
        return np.load(prepared, mmap_mode='r'), spec.key()
    if not paths:
        raise EvaluationError('no images matching %s in %s for the FID reference statistics.'
                              % (pattern, folder))
    picked = sorted(np.random.RandomState(0).permutation(len(paths))[:wanted])
    print('decoding %d images of %s for the FID reference (run --prepare to make this instant)'
          % (len(picked), folder), file=sys.stderr)
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        arrays = data.decode_all([paths[i] for i in picked], spec, pool, lambda path, error: None)
    return np.stack([a for a in arrays if a is not None]), '%s_files%d' % (spec.key(), len(paths))
