"""Unit tests of the sample-quality scores: Frechet distance, KID, the MNIST classifier and its scores, and the
run's metrics log."""
import json
import os

import numpy as np
import pytest
import scipy.linalg

import metrics
from conftest import CLASSIFIER_WIDTH, make_mnist
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
    """A narrow classifier trained briefly on 200 synthetic digits (cached by ensure_mnist_classifier),
    and 200 further digits of each of two other draws."""
    data_dir = tmp_path_factory.mktemp('data')
    make_mnist(data_dir, n_train=200, n_test=200, seed=0)
    other = make_mnist(tmp_path_factory.mktemp('other'), n_train=200, n_test=200, seed=1)
    lines = []
    classifier = metrics.ensure_mnist_classifier(str(data_dir), steps=80, batch_size=32, log=lines.append,
                                                 width=CLASSIFIER_WIDTH)
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
    assert info['width'] == CLASSIFIER_WIDTH
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
            assert again.width == CLASSIFIER_WIDTH  # read from the checkpoint
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
    assert out.logits.shape == (7, 10) and out.features.shape == (7, CLASSIFIER_WIDTH)
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
        assert net.features.shape.as_list() == [2, metrics.CLASSIFIER_FEATURES]
        tf.gradients(net.logits, tf.trainable_variables())
        assert ops._impl == 'cpu'
    types = set(op.type for op in graph.get_operations())
    assert 'DepthToSpace' not in types and 'LeakyReluGrad' not in types
