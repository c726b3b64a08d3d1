"""fid.py: Inception features through a stand-in frozen graph, the cached reference statistics, FID and KID."""
import os

import numpy as np
import pytest

import fid
import metrics
from tf_compat import tf


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
    path = str(tmp_path_factory.mktemp('inception') / fid.INCEPTION_GRAPH_FILE)
    write_fake_inception(path, weights)
    with fid.InceptionFeatures(path, batch_size=4) as extractor:
        yield extractor, weights


def test_accept_any_batch_patches_recorded_batch_dimensions():
    graph_def = tf.GraphDef()
    node = graph_def.node.add(name='x', op='Placeholder')
    shape = node.attr['_output_shapes'].list.shape.add()
    for size in (1, 5, 1):
        shape.dim.add(size=size)
    fid.accept_any_batch(graph_def)
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
        fid.InceptionFeatures(str(tmp_path / fid.INCEPTION_GRAPH_FILE))
    assert fid.default_inception_path('data').endswith(
        os.path.join('inception-2015-12-05', 'classify_image_graph_def.pb'))


def test_reference_stats_are_cached_and_fid_and_kid_rank_samples(fake_inception, tmp_path):
    extractor, _ = fake_inception
    rng = np.random.RandomState(9)
    reference_images = rng.randint(0, 128, (60, 12, 12, 3)).astype(np.uint8)
    path = fid.fid_stats_path(str(tmp_path), 'faces', 'nocrop_12x12x3')
    assert path == os.path.join(str(tmp_path), 'faces_prepared', 'fid_stats_nocrop_12x12x3.npz')
    reference = fid.reference_stats(extractor, reference_images, path, max_images=50, kid_images=40,
                                        log=lambda line: None)
    assert os.path.isfile(path) and reference.mu.shape == (8,) and reference.kid_features.shape == (40, 8)
    assert reference.images == 60

    class NoFeatures(object):
        def features(self, images):
            raise AssertionError('the cached statistics should have been loaded')
    cached = fid.reference_stats(NoFeatures(), reference_images, path)
    np.testing.assert_allclose(cached.sigma, reference.sigma)

    alike = fid.fid_and_kid(extractor, rng.randint(0, 128, (40, 12, 12, 3)).astype(np.uint8), reference,
                                kid_subsets=10, kid_subset_size=30)
    brighter = fid.fid_and_kid(extractor, rng.randint(100, 256, (40, 12, 12, 3)).astype(np.uint8), reference,
                                   kid_subsets=10, kid_subset_size=30)
    assert set(alike) == {'fid', 'kid', 'kid_std', 'precision', 'recall', 'precision_floor', 'recall_floor',
                          'n'} and alike['n'] == 40
    assert brighter['fid'] > 10 * alike['fid'] and brighter['kid'] > 10 * abs(alike['kid'])
    half = reference.kid_features[:20]  # the floor: the first half of the kept features against the second
    assert (alike['precision_floor'], alike['recall_floor']) == metrics.precision_recall(
        half, reference.kid_features[20:40])
    assert brighter['precision'] < alike['precision'] and brighter['recall'] < alike['recall']
