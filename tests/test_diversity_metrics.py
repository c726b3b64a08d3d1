"""Precision/recall of k-nearest-neighbour manifolds and the per-class Frechet distance, against direct computations."""
import numpy as np
import pytest

import metrics


def direct_precision_recall(real, fake, k):
    """Kynkaanniemi et al. 2019 written out with loops: a point is covered when it lies within the distance
    from some point of the other set to that point's k-th nearest neighbour in its own set."""
    def radii(points):
        return [sorted(np.linalg.norm(points - p, axis=1))[k] for p in points]

    def covered(manifold, queries):
        r = radii(manifold)
        return np.mean([any(np.linalg.norm(q - m) <= rm for m, rm in zip(manifold, r)) for q in queries])
    return covered(real, fake), covered(fake, real)


def test_knn_radii_are_the_kth_neighbour_distances():
    points = np.random.RandomState(0).randn(50, 4)
    expected = [sorted(np.sum((points - p) ** 2, axis=1))[3] for p in points]
    np.testing.assert_allclose(metrics.knn_radii(points, 3, chunk=7), expected, rtol=1e-9)


def test_precision_recall_equals_the_direct_computation():
    rng = np.random.RandomState(1)
    real, fake = rng.randn(60, 5), rng.randn(45, 5) * 1.3 + 0.4
    precision, recall = metrics.precision_recall(real, fake, k=3)
    expected = direct_precision_recall(real, fake, 3)
    assert (precision, recall) == pytest.approx(expected)
    assert 0 < precision < 1 and 0 < recall < 1  # a case where both rules matter


def test_identical_sets_score_one_and_disjoint_sets_zero():
    points = np.random.RandomState(2).randn(40, 6)
    assert metrics.precision_recall(points, points.copy()) == (1.0, 1.0)
    assert metrics.precision_recall(points, points + 100.0) == (0.0, 0.0)


def test_a_collapsed_generator_keeps_precision_and_loses_recall():
    real = np.random.RandomState(3).randn(200, 3)
    collapsed = real[:20].repeat(10, axis=0) + 1e-3  # every fake is one of 20 real points
    precision, recall = metrics.precision_recall(real, collapsed)
    assert precision == 1.0 and recall < 0.5


def test_precision_recall_needs_more_rows_than_k():
    with pytest.raises(ValueError, match='more than k=3'):
        metrics.precision_recall(np.zeros((3, 2)), np.zeros((10, 2)))


def test_per_class_frechet_distance_is_the_mean_of_per_class_calls():
    rng = np.random.RandomState(4)
    a, b = rng.randn(300, 4), rng.randn(200, 4) + 0.3
    labels_a, labels_b = rng.randint(0, 3, 300), rng.randint(0, 3, 200)
    mean, each = metrics.per_class_frechet_distance(a, labels_a, b, labels_b, classes=3)
    expected = [metrics.frechet_distance(*(metrics.feature_stats(a[labels_a == c]) +
                                           metrics.feature_stats(b[labels_b == c]))) for c in range(3)]
    np.testing.assert_allclose(each, expected)
    assert mean == pytest.approx(np.mean(expected))
    with pytest.raises(ValueError, match='class 3'):
        metrics.per_class_frechet_distance(a, labels_a, b, labels_b, classes=4)
