"""Sample-quality scores: Frechet distance, KID, precision/recall, the MNIST classifier's scores, metrics.jsonl."""
import collections
import hashlib
import json
import math
import os
import shutil
import sys
import time
import warnings

import numpy as np
import scipy
import scipy.linalg

from tf_compat import tf

from data import MNIST_FILES, epoch_permutation, find_mnist_file, read_idx
from ops import conv2d, impl, linear

# ---- Frechet distance and KID (numpy only) --------------------------------------------------------------
FD_EPS = 1e-6  # added to both covariance diagonals when the square root of their product is not finite
FD_MAX_IMAGINARY = 1e-3  # a larger imaginary part on the diagonal of that root is an error, not round-off

# scipy 1.16 deprecated sqrtm's `disp` (and with it the (root, error) pair); older scipy prints to stdout
# without disp=False.
_SQRTM_DISP = tuple(int(part) for part in scipy.__version__.split('.')[:2]) < (1, 16)


def _sqrtm(matrix):
    with warnings.catch_warnings():
        # "Matrix is singular and may not have a square root": frechet_distance checks the result instead
        warnings.simplefilter('ignore', scipy.linalg.LinAlgWarning)
        if _SQRTM_DISP:
            return scipy.linalg.sqrtm(matrix, disp=False)[0]
        return scipy.linalg.sqrtm(matrix)


def feature_stats(features):
    """Mean [D] and covariance [D, D] (float64) of features [N, D], N >= 2."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError('feature_stats needs features [N, D] with N >= 2, got shape %s' % (features.shape,))
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=FD_EPS):
    """Frechet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2), as a float:

        |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrtm(sigma1 sigma2))

    Nearly singular covariances (fewer samples than dimensions) are handled as in the TTUR reference
    code: when the root of the product is not finite, eps * I is added to both diagonals and it is taken
    again. A negligible imaginary part of the root (round-off) is dropped; a large one is a ValueError.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError('means %s, %s and covariances %s, %s do not match'
                         % (mu1.shape, mu2.shape, sigma1.shape, sigma2.shape))
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(len(mu1)) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        imaginary = np.abs(np.diagonal(covmean).imag).max()
        if imaginary > FD_MAX_IMAGINARY:
            raise ValueError('the square root of the covariance product has an imaginary part of %g: '
                             'the covariances are not valid (too few or non-finite features?)' % imaginary)
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def polynomial_kernel(x, y):
    """KID's kernel k(x, y) = (x.y / d + 1)^3 between the rows of x [M, D] and y [N, D]: [M, N]."""
    return (x.dot(y.T) / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x, y):
    """Unbiased estimate of the squared MMD between samples x [M, D] and y [N, D] (cubic kernel)."""
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def kernel_inception_distance(features1, features2, subsets=100, subset_size=1000, seed=0):
    """KID (Binkowski et al. 2018) of features [N1, D] and [N2, D]: (mean, std) of the unbiased MMD^2
    over `subsets` random subsets of min(subset_size, N1, N2) rows of each set, drawn with seed."""
    features1, features2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    size = min(subset_size, len(features1), len(features2))
    if size < 2 or features1.shape[1:] != features2.shape[1:]:
        raise ValueError('KID needs two feature sets [N, D] of the same D with N >= 2, got %s and %s'
                         % (features1.shape, features2.shape))
    rng = np.random.RandomState(seed)
    values = [mmd2_unbiased(features1[rng.choice(len(features1), size, replace=False)],
                            features2[rng.choice(len(features2), size, replace=False)])
              for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))



# ---- precision and recall of k-nearest-neighbour manifolds (numpy only) -----------------------------------
PR_NEIGHBOURS = 3  # k of Kynkaanniemi et al. 2019, "Improved precision and recall metric"


def _squared_distances(a, b):
    """Squared Euclidean distances [len(a), len(b)] between the rows of a and b (float64)."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a.dot(b.T)
    return np.maximum(d, 0.0)


def knn_radii(features, k=PR_NEIGHBOURS, chunk=1024):
    """Squared distance from each row of features [N, D] to its k-th nearest other row."""
    features = np.asarray(features, np.float64)
    radii = np.empty(len(features))
    for start in range(0, len(features), chunk):
        d = _squared_distances(features[start:start + chunk], features)
        radii[start:start + chunk] = np.partition(d, k, axis=1)[:, k]  # column 0 is the row itself
    return radii


def manifold_coverage(manifold, radii, queries, chunk=1024):
    """Fraction of query rows inside at least one ball (a manifold row, its squared radius)."""
    manifold, queries = np.asarray(manifold, np.float64), np.asarray(queries, np.float64)
    inside = 0
    for start in range(0, len(queries), chunk):
        inside += int(np.sum(np.any(_squared_distances(queries[start:start + chunk], manifold) <= radii[None, :],
                                    axis=1)))
    return inside / float(len(queries))


def precision_recall(real, fake, k=PR_NEIGHBOURS):
    """Precision (share of fake rows on the real manifold) and recall (share of real rows on the fake
    manifold) of feature sets [N, D], each manifold the union of balls reaching every row's k-th neighbour."""
    if min(len(real), len(fake)) <= k:
        raise ValueError('precision_recall needs more than k=%d rows in each set' % k)
    precision = manifold_coverage(real, knn_radii(real, k), fake)
    recall = manifold_coverage(fake, knn_radii(fake, k), real)
    return precision, recall


def per_class_frechet_distance(features1, labels1, features2, labels2, classes=10):
    """Mean over classes c of the Frechet distance between the rows of class c in each set; also the list."""
    labels1, labels2 = np.asarray(labels1), np.asarray(labels2)
    distances = []
    for c in range(classes):
        a, b = features1[labels1 == c], features2[labels2 == c]
        if min(len(a), len(b)) < 2:
            raise ValueError('per-class Frechet distance needs at least 2 rows of class %d in each set' % c)
        distances.append(frechet_distance(*(feature_stats(a) + feature_stats(b))))
    return float(np.mean(distances)), distances

# ---- the MNIST classifier ----------------------------------------------------------------------------
CLASSIFIER_SCOPE = 'mnist_classifier'  # apart from the GAN's 'generator' and 'discriminator'
CLASSIFIER_CHECKPOINT = 'classifier.ckpt'  # checkpoint prefix inside the classifier folder
CLASSIFIER_INFO = 'classifier.json'  # test accuracy and training settings, written last
CLASSIFIER_FEATURES = 1024  # width of the penultimate layer, the features of the Frechet distance
CLASSIFIER_FEATURE_WEIGHTS = CLASSIFIER_SCOPE + '/fc0/Matrix'  # [3136, width]: a saved classifier's width
CLASSIFIER_MIN_ACCURACY = 0.99  # on the 10,000 MNIST test digits

ClassifierNet = collections.namedtuple('ClassifierNet', 'logits probabilities features')


def mnist_classifier_net(images, dropout_rate=0.0, width=CLASSIFIER_FEATURES):
    """Maps digits [N, 28, 28, 1] in [0, 1] to class logits [N, 10], probabilities and the penultimate
    features [N, width] (ReLU outputs, before dropout); variables under CLASSIFIER_SCOPE. Built with
    TensorFlow's own ops whatever form the GAN's layers take (the CPU forms are for the GAN's shapes)."""
    with tf.variable_scope(CLASSIFIER_SCOPE, reuse=tf.AUTO_REUSE), impl('ref'):
        h = images
        for i, filters in enumerate((32, 64)):  # N, 14, 14, 32 -> N, 7, 7, 64
            fan_in = 25 * int(h.get_shape()[-1])
            h = tf.nn.relu(conv2d(h, filters, kernel=5, stride=1, stddev=math.sqrt(2.0 / fan_in),
                                  name='conv%d' % i))
            h = tf.nn.max_pool(h, [1, 2, 2, 1], [1, 2, 2, 1], 'SAME')
        h = tf.reshape(h, [-1, 7 * 7 * 64])  # N, 3136
        features = tf.nn.relu(linear(h, width, 'fc0', stddev=math.sqrt(2.0 / (7 * 7 * 64))))
        h = tf.nn.dropout(features, rate=dropout_rate)  # N, width
        logits = linear(h, 10, 'fc1', stddev=math.sqrt(1.0 / width))  # N, 10
        return ClassifierNet(logits, tf.nn.softmax(logits), features)


def classifier_variables():
    """The classifier's weights (its optimizer's slots and counters are not saved)."""
    return tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope=CLASSIFIER_SCOPE + '/')


def digits_in_unit_range(images):
    """Digits as float32 [N, 28, 28, 1] in [0, 1]: uint8 is divided by 255, floats are taken as they are."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:] != (28, 28, 1):
        raise ValueError('expected digits [N, 28, 28, 1] or [N, 28, 28], got shape %s' % (images.shape,))
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32)


def classifier_learning_rate(step, steps, base=1e-3, final=0.05):
    """Cosine decay of Adam's learning rate from base to final * base over the training steps."""
    progress = min(1.0, step / float(max(1, steps)))
    return base * (final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def train_mnist_classifier(images_u8, labels, out_path, steps=3000, batch_size=128, seed=0, log=print,
                           width=CLASSIFIER_FEATURES):
    """Trains the classifier with Adam and dropout on digits [N, 28, 28, 1] (uint8) and labels [N];
    saves only its weights to the folder out_path. Returns a dict of the training settings and time.
    A narrower width makes every Frechet distance cheaper (the tests use one); scores are comparable only
    between classifiers of one width."""
    labels = np.asarray(labels, np.int64)
    if len(images_u8) != len(labels) or len(labels) < batch_size:
        raise ValueError('need at least batch_size=%d digits with one label each, got %d digits and %d labels'
                         % (batch_size, len(images_u8), len(labels)))
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        images_in = tf.placeholder(tf.float32, [None, 28, 28, 1], name='images')
        labels_in = tf.placeholder(tf.int64, [None], name='labels')
        learning_rate = tf.placeholder(tf.float32, [], name='learning_rate')
        net = mnist_classifier_net(images_in, dropout_rate=0.5, width=width)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels_in, logits=net.logits))
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(net.logits, 1), labels_in), tf.float32))
        variables = classifier_variables()
        train_op = tf.train.AdamOptimizer(learning_rate).minimize(loss, var_list=variables)
        saver = tf.train.Saver(var_list=variables, max_to_keep=1)
        init = tf.global_variables_initializer()
    graph.finalize()

    per_epoch = len(labels) // batch_size
    start = time.time()
    with tf.Session(graph=graph, config=session_config()) as sess:
        sess.run(init)
        for step in range(steps):
            epoch, index = divmod(step, per_epoch)
            batch = np.sort(epoch_permutation(len(labels), seed, epoch)[index * batch_size:(index + 1) * batch_size])
            feed = {images_in: digits_in_unit_range(images_u8[batch]), labels_in: labels[batch],
                    learning_rate: classifier_learning_rate(step, steps)}
            _, loss_value, accuracy_value = sess.run([train_op, loss, accuracy], feed)
            if (step + 1) % max(1, steps // 10) == 0 or step + 1 == steps:
                log('mnist classifier: step %d/%d, loss %.4f, batch accuracy %.3f, %.0f s'
                    % (step + 1, steps, loss_value, accuracy_value, time.time() - start))
        os.makedirs(out_path, exist_ok=True)
        saver.save(sess, os.path.join(out_path, CLASSIFIER_CHECKPOINT), write_meta_graph=False, write_state=False)
    return {'steps': steps, 'batch_size': batch_size, 'seed': seed, 'width': width, 'train_digits': len(labels),
            'seconds': round(time.time() - start, 1)}


def session_config():
    config = tf.ConfigProto(allow_soft_placement=True)
    config.gpu_options.allow_growth = True  # leave the card's memory to the GAN's session beside it
    return config


class OwnSession(object):
    """Base of the scorers that run their network in a graph and session of their own; close() ends it."""

    def close(self):
        self.sess.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class MnistClassifier(OwnSession):
    """The trained classifier in its own tf.Graph and Session, so it can be used next to a GAN's graph.

    MnistClassifier(folder) loads what train_mnist_classifier saved there; close() (or `with`) frees it.
    """

    def __init__(self, path):
        prefix = os.path.join(path, CLASSIFIER_CHECKPOINT)
        if not os.path.isfile(prefix + '.index'):
            raise IOError('%s holds no trained MNIST classifier (%s.index is missing).' % (path, prefix))
        self.path = path
        self.width = int(tf.train.load_checkpoint(prefix).get_variable_to_shape_map()[CLASSIFIER_FEATURE_WEIGHTS][1])
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.images = tf.placeholder(tf.float32, [None, 28, 28, 1], name='images')
            self.net = mnist_classifier_net(self.images, width=self.width)
            saver = tf.train.Saver(var_list=classifier_variables())
        self.graph.finalize()
        self.sess = tf.Session(graph=self.graph, config=session_config())
        saver.restore(self.sess, prefix)
        self._memo = {}  # statistics (and floors) of the reference sets, which every evaluation uses again

    def run(self, images, batch_size=500):
        """ClassifierNet of numpy arrays (logits [N, 10], probabilities, features [N, width]) for digits
        [N, 28, 28(, 1)]: uint8 in [0, 255] or floats in [0, 1]."""
        outputs = []
        for start in range(0, len(images), batch_size):
            feed = {self.images: digits_in_unit_range(images[start:start + batch_size])}
            outputs.append(self.sess.run(self.net, feed))
        if not outputs:
            raise ValueError('no digits to classify')
        return ClassifierNet(*[np.concatenate(parts) for parts in zip(*outputs)])

    def predict(self, images):
        """Class labels [N] (int64) of digits."""
        return np.argmax(self.run(images).logits, axis=1)

    def accuracy(self, images, labels):
        """Fraction of digits classified as their label."""
        return float(np.mean(self.predict(images) == np.asarray(labels)))

    def remember(self, key, compute):
        """compute() the first time key is asked for, the remembered value after that."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]



def content_key(array):
    """Digest of an array's shape, type and values."""
    array = np.ascontiguousarray(array)
    return hashlib.sha1(array.tobytes() + str((array.shape, array.dtype.str)).encode()).hexdigest()


def classifier_dir(data_dir):
    """Folder of the cached MNIST classifier: <data_dir>/mnist/classifier."""
    return os.path.join(data_dir, 'mnist', 'classifier')


def load_mnist_part(folder, part):
    """One part of MNIST ('train' or 'test') as uint8 images [N, 28, 28, 1] and uint8 labels [N]."""
    image_name, label_name = MNIST_FILES[part]
    image_path, label_path = find_mnist_file(folder, image_name), find_mnist_file(folder, label_name)
    if image_path is None or label_path is None:
        raise IOError('%s is missing %s or %s (python download.py mnist fetches them).'
                      % (folder, image_name, label_name))
    return read_idx(image_path)[..., None], read_idx(label_path)


def ensure_mnist_classifier(data_dir, steps=3000, batch_size=128, seed=0, log=print, width=CLASSIFIER_FEATURES):
    """The MNIST classifier cached in <data_dir>/mnist/classifier, trained there once if missing.

    Training uses the 60,000 training digits; the test accuracy goes into classifier.json beside the
    checkpoint (below CLASSIFIER_MIN_ACCURACY it is warned about). A cached classifier keeps the width it
    was trained with. Returns a loaded MnistClassifier.
    """
    folder = classifier_dir(data_dir)
    if os.path.isfile(os.path.join(folder, CLASSIFIER_INFO)):
        return MnistClassifier(folder)
    mnist = os.path.join(data_dir, 'mnist')
    train_images, train_labels = load_mnist_part(mnist, 'train')
    test_images, test_labels = load_mnist_part(mnist, 'test')
    log('training the MNIST classifier for the sample scores once (%d steps of %d digits); it is kept in %s'
        % (steps, batch_size, folder))
    tmp = '%s.tmp%d' % (folder, os.getpid())  # renamed when complete: no half-written classifier is used
    shutil.rmtree(tmp, ignore_errors=True)
    info = train_mnist_classifier(train_images, train_labels, tmp, steps, batch_size, seed, log, width)
    with MnistClassifier(tmp) as classifier:
        info['test_accuracy'] = classifier.accuracy(test_images, test_labels)
    info['test_digits'] = len(test_labels)
    with open(os.path.join(tmp, CLASSIFIER_INFO), 'w') as f:
        json.dump(info, f, indent=1)
    log('mnist classifier: test accuracy %.4f on %d digits, trained in %.0f s'
        % (info['test_accuracy'], len(test_labels), info['seconds']))
    if info['test_accuracy'] < CLASSIFIER_MIN_ACCURACY:
        print('warning: the MNIST classifier reaches only %.4f test accuracy (expected >= %.2f); delete %s to '
              'train it again.' % (info['test_accuracy'], CLASSIFIER_MIN_ACCURACY, folder), file=sys.stderr)
    if os.path.isfile(os.path.join(folder, CLASSIFIER_INFO)):  # another process finished first: use its
        shutil.rmtree(tmp)
    else:
        shutil.rmtree(folder, ignore_errors=True)  # a folder without classifier.json is not a finished one
        os.rename(tmp, folder)
    return MnistClassifier(folder)


MnistReference = collections.namedtuple('MnistReference', 'test_images test_labels floor_images floor_labels')


def mnist_reference_sets(data_dir, floor_size=10000, seed=0):
    """MnistReference: the test digits, and a seeded sample of floor_size training digits (the real data
    every score is also computed for, as its floor); uint8 images [N, 28, 28, 1] and labels [N]."""
    mnist = os.path.join(data_dir, 'mnist')
    test_images, test_labels = load_mnist_part(mnist, 'test')
    train_images, train_labels = load_mnist_part(mnist, 'train')
    pick = np.sort(np.random.RandomState(seed).choice(len(train_images), min(floor_size, len(train_images)),
                                                      replace=False))
    return MnistReference(test_images, test_labels, train_images[pick], train_labels[pick])


def mnist_scores(classifier, generated_u8, generated_labels, reference):
    """Scores of generated digits by the MNIST classifier against an MnistReference, as a dict:

    label_accuracy: fraction of generated digits classified as the class they were generated for
        (None without generated_labels);
    fd: Frechet distance between the classifier features of the generated and of the test digits;
    fd_class: the mean over the ten classes of that distance within each class (None without
        generated_labels): a generator that ignores its latents shows here first;
    precision, recall: k-nearest-neighbour manifold precision and recall against the test digits;
    each with a `_floor`: the same score of the real training sample, what a perfect generator reaches
        at that sample size; n: number of generated digits.
    Digits are uint8 in [0, 255] or floats in [0, 1]. Use thousands of them: with fewer than the
    1,024 feature dimensions the covariance is singular and fd grows.
    """
    generated = classifier.run(generated_u8)
    test = classifier.remember(('features', content_key(reference.test_images)),
                               lambda: classifier.run(reference.test_images).features)
    scores = _feature_scores(generated.features, generated_labels, test, reference.test_labels)
    scores['label_accuracy'] = None
    if generated_labels is not None:
        scores['label_accuracy'] = float(np.mean(np.argmax(generated.logits, 1) == np.asarray(generated_labels)))
    floor = classifier.remember(  # the same at every evaluation: computed once per classifier
        ('floor', content_key(reference.floor_images), content_key(reference.test_images)),
        lambda: _feature_scores(classifier.run(reference.floor_images).features, reference.floor_labels, test,
                                reference.test_labels))
    scores.update((name + '_floor', value) for name, value in floor.items())
    scores['n'] = len(generated.features)
    return scores


def _feature_scores(features, labels, test_features, test_labels):
    """fd, fd_class (None without labels), precision and recall of features against the test features."""
    precision, recall = precision_recall(test_features, features)
    fd_class = None
    if labels is not None:
        fd_class = per_class_frechet_distance(features, labels, test_features, test_labels)[0]
    fd = frechet_distance(*(feature_stats(features) + feature_stats(test_features)))
    return {'fd': fd, 'fd_class': fd_class, 'precision': precision, 'recall': recall}


# ---- the run's metrics log ------------------------------------------------------------------------------
METRICS_FILE = 'metrics.jsonl'


def _plain(value):
    """JSON-ready value: numpy scalars and arrays to Python, non-finite floats to None (strict JSON)."""
    if isinstance(value, dict):
        return dict((str(k), _plain(v)) for k, v in value.items())
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def append_metrics(run_dir, record):
    """Appends one evaluation (a dict with at least 'step'; scores and settings) as a JSON line to
    <run_dir>/metrics.jsonl, with the wall-clock time; returns that path."""
    if 'step' not in record:
        raise ValueError("a metrics record needs its 'step'")
    line = dict(step=int(record['step']), time=round(time.time(), 3))
    line.update((k, v) for k, v in record.items() if k != 'step')
    path = os.path.join(run_dir, METRICS_FILE)
    os.makedirs(run_dir, exist_ok=True)
    with open(path, 'a') as f:
        f.write(json.dumps(_plain(line), allow_nan=False) + '\n')
    return path


def read_metrics(run_dir):
    """The records of <run_dir>/metrics.jsonl in order ([] without the file); an unfinished last line is skipped."""
    path = os.path.join(run_dir, METRICS_FILE)
    if not os.path.isfile(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            if line.endswith('\n'):
                records.append(json.loads(line))
    return records


def best_score_improved(previous_best, score, lower_is_better=True):
    """True when score beats previous_best (None: nothing yet); a missing or non-finite score never does."""
    if score is None or not math.isfinite(score):
        return False
    if previous_best is None or not math.isfinite(previous_best):
        return True
    return score < previous_best if lower_is_better else score > previous_best
