"""Unit tests of the sample-quality metrics: Frechet distance, KID, the MNIST classifier and its scores,
Inception features through a stand-in frozen graph, and the run's metrics log."""
import json
import os

import numpy as np
import pytest
import scipy.linalg

import metrics
from conftest import make_mnist
from tf_compat import tf


# ---- Frechet distance ----------------------------------------------------------------------------------
def direct_frechet(mu1, sigma1, mu2, sigma2):
    """The formula with tr(sqrt(sigma1 sigma2)) from the eigenvalues of the product (real, >= 0 in theory)."""
    eigenvalues = np.clip(np.linalg.eigvals(sigma1.dot(sigma2)).real, 0, None)
    return np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sum(np.sqrt(eigenvalues))


def test_frechet_distance_of_a_distribution_to_itself_is_zero():
    rng = np.random.RandomState(0)
    mu, sigma = metrics.feature_stats(rng.randn(500, 12).dot(rng.randn(12, 12)))
    assert mu.dtype == np.float64 and sigma.shape == (12, 12)
    assert abs(metrics.frechet_distance(mu, sigma, mu, sigma)) < 1e-6 * np.trace(sigma)


def test_frechet_distance_of_diagonal_gaussians_has_the_closed_form():
    rng = np.random.RandomState(1)
    mu1, mu2 = rng.randn(16), rng.randn(16) + 1.0
    s1, s2 = rng.uniform(0.1, 3.0, 16), rng.uniform(0.1, 3.0, 16)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert metrics.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_full_covariances_matches_a_direct_computation():
    rng = np.random.RandomState(2)
    mu1, sigma1 = metrics.feature_stats(rng.randn(300, 10).dot(rng.randn(10, 10)))
    mu2, sigma2 = metrics.feature_stats(rng.randn(300, 10).dot(rng.randn(10, 10)) + 0.5)
    expected = direct_frechet(mu1, sigma1, mu2, sigma2)
    assert metrics.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-6)
    root = scipy.linalg.sqrtm(sigma1.dot(sigma2))  # the textbook formula, once more
    textbook = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * np.real(root))
    assert metrics.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(textbook, rel=1e-6)


def test_frechet_distance_of_rank_deficient_features_is_finite_and_not_negative():
    rng = np.random.RandomState(3)
    a, b = rng.randn(5, 20), rng.randn(5, 20) + 0.3  # 5 samples in 20 dimensions: covariance rank 4
    stats_a, stats_b = metrics.feature_stats(a), metrics.feature_stats(b)
    distance = metrics.frechet_distance(*(stats_a + stats_b))
    assert np.isfinite(distance) and distance > 0
    same = metrics.frechet_distance(*(stats_a + stats_a))
    assert np.isfinite(same) and abs(same) < 1e-3 * np.trace(stats_a[1])


def test_frechet_distance_rejects_an_invalid_covariance_and_mismatched_shapes():
    with pytest.raises(ValueError, match='imaginary'):
        metrics.frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match='do not match'):
        metrics.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match='N >= 2'):
        metrics.feature_stats(np.zeros((1, 4)))


# ---- KID ---------------------------------------------------------------------------------------------
def direct_mmd2(x, y):
    """Unbiased MMD^2 with the cubic kernel, pair by pair."""
    def k(a, b):
        return (a.dot(b) / len(a) + 1.0) ** 3
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_a_direct_pairwise_computation():
    rng = np.random.RandomState(4)
    x, y = rng.randn(7, 3), rng.randn(7, 3) + 0.5
    # one subset of all rows: a permutation of each set, which the estimate does not depend on
    mean, std = metrics.kernel_inception_distance(x, y, subsets=3, subset_size=100)
    assert mean == pytest.approx(direct_mmd2(x, y), rel=1e-9) and std == pytest.approx(0, abs=1e-12)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_shifted_ones():
    rng = np.random.RandomState(5)
    a, b = rng.randn(400, 16), rng.randn(400, 16)
    same, same_std = metrics.kernel_inception_distance(a, b, subsets=20, subset_size=200)
    shifted, shifted_std = metrics.kernel_inception_distance(a, b + 1.0, subsets=20, subset_size=200)
    assert abs(same) < 3 * same_std + 1e-3
    assert shifted > 0.5 and shifted > 20 * abs(same)
    again = metrics.kernel_inception_distance(a, b + 1.0, subsets=20, subset_size=200)
    assert again == (shifted, shifted_std)  # seeded subsets


# ---- the MNIST classifier ------------------------------------------------------------------------------
def test_classifier_learning_rate_decays_from_base_to_its_floor():
    assert metrics.classifier_learning_rate(0, 100) == pytest.approx(1e-3)
    assert metrics.classifier_learning_rate(50, 100) == pytest.approx(1e-3 * (0.05 + 0.95 * 0.5))
    assert metrics.classifier_learning_rate(100, 100) == pytest.approx(5e-5)


def test_digits_in_unit_range_takes_uint8_and_floats():
    digits = np.full((2, 28, 28), 255, np.uint8)
    assert metrics.digits_in_unit_range(digits).shape == (2, 28, 28, 1)
    assert metrics.digits_in_unit_range(digits).max() == 1.0
    assert metrics.digits_in_unit_range(np.full((2, 28, 28, 1), 0.5)).max() == 0.5
    with pytest.raises(ValueError, match='28, 28'):
        metrics.digits_in_unit_range(np.zeros((2, 32, 32, 1), np.uint8))


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    """A classifier trained briefly on 200 synthetic digits (cached by ensure_mnist_classifier), and
    200 further digits of each of two other draws."""
    data_dir = tmp_path_factory.mktemp('data')
    make_mnist(data_dir, n_train=200, n_test=200, seed=0)
    other = make_mnist(tmp_path_factory.mktemp('other'), n_train=200, n_test=200, seed=1)
    lines = []
    classifier = metrics.ensure_mnist_classifier(str(data_dir), steps=80, batch_size=32, log=lines.append)
    yield {'data_dir': str(data_dir), 'classifier': classifier, 'log': lines,
           'generated': metrics.load_mnist_part(other, 'train'),
           'test': metrics.load_mnist_part(os.path.join(str(data_dir), 'mnist'), 'test')}
    classifier.close()


@pytest.mark.slow
def test_classifier_learns_the_synthetic_digits_and_is_cached_with_its_accuracy(synthetic):
    folder = metrics.classifier_dir(synthetic['data_dir'])
    with open(os.path.join(folder, metrics.CLASSIFIER_INFO)) as f:
        info = json.load(f)
    assert info['test_accuracy'] > 0.9 and info['test_digits'] == 200 and info['steps'] == 80
    assert any('test accuracy' in line for line in synthetic['log'])
    assert not [name for name in os.listdir(os.path.dirname(folder)) if '.tmp' in name]
    images, labels = synthetic['generated']  # held out: not trained on, not the test digits either
    assert synthetic['classifier'].accuracy(images, labels) > 0.9

    def no_training(*args, **kwargs):
        raise AssertionError('the cached classifier should have been loaded')
    original, metrics.train_mnist_classifier = metrics.train_mnist_classifier, no_training
    try:
        with metrics.ensure_mnist_classifier(synthetic['data_dir']) as again:
            assert again.accuracy(images, labels) == synthetic['classifier'].accuracy(images, labels)
    finally:
        metrics.train_mnist_classifier = original


@pytest.mark.slow
def test_classifier_outputs_and_its_own_graph(synthetic):
    images, _ = synthetic['generated']
    with tf.Graph().as_default() as gan_graph:  # a graph of the caller's, as main.py has one
        tf.get_variable('generator/w', [3])
        classifier = metrics.MnistClassifier(metrics.classifier_dir(synthetic['data_dir']))
        assert [v.op.name for v in tf.global_variables()] == ['generator/w']
    out = classifier.run(images[:7], batch_size=3)  # uint8 and [0, 1] floats give the same results
    again = classifier.run(images[:7].astype(np.float32) / 255.0)
    classifier.close()
    assert out.logits.shape == (7, 10) and out.features.shape == (7, metrics.CLASSIFIER_FEATURES)
    np.testing.assert_allclose(out.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out.features, again.features, rtol=1e-4, atol=1e-4)
    assert all(v.op.name.startswith(metrics.CLASSIFIER_SCOPE + '/') for v in classifier.graph.get_collection(
        tf.GraphKeys.GLOBAL_VARIABLES))
    assert gan_graph is not classifier.graph
    with pytest.raises(IOError, match='no trained MNIST classifier'):
        metrics.MnistClassifier(synthetic['data_dir'])


@pytest.mark.slow
def test_mnist_scores_tell_real_digits_from_noise(synthetic):
    classifier, (test_images, test_labels) = synthetic['classifier'], synthetic['test']
    images, labels = synthetic['generated']
    reference = metrics.MnistReference(test_images, test_labels, images, labels)
    real = metrics.mnist_scores(classifier, images, labels, reference)
    noise = (np.random.RandomState(0).rand(200, 28, 28, 1) * 255).astype(np.uint8)
    fake = metrics.mnist_scores(classifier, noise, None, reference)
    assert real['n'] == fake['n'] == 200
    assert real['label_accuracy'] > 0.9 and fake['label_accuracy'] is None and fake['fd_class'] is None
    assert np.mean(classifier.predict(noise) == labels) < 0.3
    for name in ('fd', 'fd_class', 'precision', 'recall'):  # the same digits as the floor's sample
        assert real[name] == pytest.approx(real[name + '_floor'])
        assert fake[name + '_floor'] == real[name + '_floor']  # the floor is remembered
    assert fake['fd'] > 5 * real['fd']
    assert fake['precision'] < 0.5 * real['precision'] and fake['recall'] < 0.5 * real['recall']


# ---- Inception features through a stand-in graph ---------------------------------------------------
def write_fake_inception(path, weights):
    """A frozen graph shaped like classify_image_graph_def.pb: a decoded image, ExpandDims, the 299x299
    bilinear resize, (x - 128) / 128, then a 1x1 convolution with `weights` [3, D] and an average pool
    'pool_3' [N, 1, 1, D]; its recorded shapes have batch dimension 1, as the real graph's."""
    graph = tf.Graph()
    with graph.as_default():
        decoded = tf.placeholder(tf.uint8, [None, None, 3], name='DecodeJpeg')
        expanded = tf.expand_dims(tf.cast(decoded, tf.float32, name='Cast'), 0, name='ExpandDims')
        resized = tf.image.resize_bilinear(expanded, [299, 299], name='ResizeBilinear')
        normalised = tf.multiply(tf.subtract(resized, 128.0, name='Sub'), 1.0 / 128, name='Mul')
        kernel = tf.constant(weights.reshape(1, 1, 3, -1).astype(np.float32))
        h = tf.nn.conv2d(normalised, kernel, [1, 1, 1, 1], 'VALID', name='conv')
        pool = tf.nn.avg_pool(h, [1, 299, 299, 1], [1, 1, 1, 1], 'VALID', name='pool_3')
        tf.reshape(pool, [1, weights.shape[1]], name='pool_3/_reshape')
    graph_def = graph.as_graph_def(add_shapes=True)
    shapes = graph_def.node[[n.name for n in graph_def.node].index('conv')].attr['_output_shapes']
    assert shapes.list.shape[0].dim[0].size == 1  # the stand-in carries the batch-1 shapes to patch
    with open(path, 'wb') as f:
        f.write(graph_def.SerializeToString())


@pytest.fixture(scope='module')
def fake_inception(tmp_path_factory):
    weights = np.random.RandomState(6).randn(3, 8)
    path = str(tmp_path_factory.mktemp('inception') / metrics.INCEPTION_GRAPH_FILE)
    write_fake_inception(path, weights)
    with metrics.InceptionFeatures(path, batch_size=4) as extractor:
        yield extractor, weights


def test_accept_any_batch_patches_recorded_batch_dimensions():
    graph_def = tf.GraphDef()
    node = graph_def.node.add(name='x', op='Placeholder')
    shape = node.attr['_output_shapes'].list.shape.add()
    for size in (1, 5, 1):
        shape.dim.add(size=size)
    metrics.accept_any_batch(graph_def)
    assert [d.size for d in graph_def.node[0].attr['_output_shapes'].list.shape[0].dim] == [-1, 5, 1]


def test_inception_features_batch_resize_and_match_the_graph(fake_inception):
    extractor, weights = fake_inception
    colours = np.random.RandomState(7).randint(0, 256, (10, 3))
    flat = np.tile(colours[:, None, None, :], (1, 13, 17, 1)).astype(np.uint8)  # one colour per image
    features = extractor.features(flat)  # 10 images in batches of 4, 4 and 2
    assert features.shape == (10, 8) and features.dtype == np.float64
    # float32 sums over 299 x 299 positions: about 1e-3 of round-off
    np.testing.assert_allclose(features, ((colours - 128.0) / 128).dot(weights), rtol=1e-2, atol=1e-2)
    textured = np.random.RandomState(8).randint(0, 256, (5, 40, 30, 3)).astype(np.uint8)
    one_by_one = np.concatenate([extractor.features(textured[i:i + 1]) for i in range(5)])
    np.testing.assert_allclose(extractor.features(textured), one_by_one, rtol=1e-4, atol=1e-5)
    gray = flat[:3, :, :, :1]
    np.testing.assert_allclose(extractor.features(gray), extractor.features(np.repeat(gray, 3, axis=-1)))
    with pytest.raises(ValueError, match='uint8'):
        extractor.features(flat.astype(np.float32))


def test_missing_inception_graph_names_the_download(tmp_path):
    with pytest.raises(IOError, match='inception-2015-12-05.tgz'):
        metrics.InceptionFeatures(str(tmp_path / metrics.INCEPTION_GRAPH_FILE))
    assert metrics.default_inception_path('data').endswith(
        os.path.join('inception-2015-12-05', 'classify_image_graph_def.pb'))


def test_reference_stats_are_cached_and_fid_and_kid_rank_samples(fake_inception, tmp_path):
    extractor, _ = fake_inception
    rng = np.random.RandomState(9)
    reference_images = rng.randint(0, 128, (60, 12, 12, 3)).astype(np.uint8)
    path = metrics.fid_stats_path(str(tmp_path), 'faces', 'nocrop_12x12x3')
    assert path == os.path.join(str(tmp_path), 'faces_prepared', 'fid_stats_nocrop_12x12x3.npz')
    reference = metrics.reference_stats(extractor, reference_images, path, max_images=50, kid_images=40,
                                        log=lambda line: None)
    assert os.path.isfile(path) and reference.mu.shape == (8,) and reference.kid_features.shape == (40, 8)
    assert reference.images == 60

    class NoFeatures(object):
        def features(self, images):
            raise AssertionError('the cached statistics should have been loaded')
    cached = metrics.reference_stats(NoFeatures(), reference_images, path)
    np.testing.assert_allclose(cached.sigma, reference.sigma)

    alike = metrics.fid_and_kid(extractor, rng.randint(0, 128, (40, 12, 12, 3)).astype(np.uint8), reference,
                                kid_subsets=10, kid_subset_size=30)
    brighter = metrics.fid_and_kid(extractor, rng.randint(100, 256, (40, 12, 12, 3)).astype(np.uint8), reference,
                                   kid_subsets=10, kid_subset_size=30)
    assert set(alike) == {'fid', 'kid', 'kid_std', 'precision', 'recall', 'precision_floor', 'recall_floor',
                          'n'} and alike['n'] == 40
    assert brighter['fid'] > 10 * alike['fid'] and brighter['kid'] > 10 * abs(alike['kid'])
    half = reference.kid_features[:20]  # the floor: the first half of the kept features against the second
    assert (alike['precision_floor'], alike['recall_floor']) == metrics.precision_recall(
        half, reference.kid_features[20:40])
    assert brighter['precision'] < alike['precision'] and brighter['recall'] < alike['recall']


# ---- the metrics log ----------------------------------------------------------------------------------
def test_append_metrics_writes_parseable_json_lines(tmp_path):
    run_dir = str(tmp_path / 'run')
    path = metrics.append_metrics(run_dir, {'step': np.int64(100), 'fd': np.float32(12.5), 'kid': float('nan'),
                                            'settings': {'n': 1000, 'sizes': np.array([1, 2])}})
    metrics.append_metrics(run_dir, {'step': 200, 'fd': 8.25, 'label_accuracy': 0.97})
    with open(path) as f:
        lines = [json.loads(line) for line in f]
    assert [r['step'] for r in lines] == [100, 200] and lines[0]['fd'] == 12.5 and lines[0]['kid'] is None
    assert lines[0]['settings'] == {'n': 1000, 'sizes': [1, 2]} and lines[1]['label_accuracy'] == 0.97
    assert metrics.read_metrics(run_dir) == lines and metrics.read_metrics(str(tmp_path)) == []
    with open(path, 'a') as f:
        f.write('{"step": 300, "fd"')  # killed mid-write
    assert len(metrics.read_metrics(run_dir)) == 2
    with pytest.raises(ValueError, match='step'):
        metrics.append_metrics(run_dir, {'fd': 1.0})


def test_best_score_improved():
    assert metrics.best_score_improved(None, 10.0)
    assert metrics.best_score_improved(10.0, 9.0) and not metrics.best_score_improved(10.0, 10.0)
    assert not metrics.best_score_improved(10.0, 11.0)
    assert metrics.best_score_improved(0.9, 0.95, lower_is_better=False)
    assert not metrics.best_score_improved(0.9, 0.85, lower_is_better=False)
    assert not metrics.best_score_improved(10.0, float('nan')) and not metrics.best_score_improved(None, None)


def test_classifier_is_built_with_tensorflows_own_ops_whatever_form_the_gan_takes():
    import ops
    with tf.Graph().as_default() as graph, ops.impl('cpu'):  # as main.py leaves it on a CPU
        net = metrics.mnist_classifier_net(tf.zeros([2, 28, 28, 1]))
        tf.gradients(net.logits, tf.trainable_variables())
        assert ops._impl == 'cpu'
    types = set(op.type for op in graph.get_operations())
    assert 'DepthToSpace' not in types and 'LeakyReluGrad' not in types
