"""The two input pipelines give the same batches in the same order, from any step on."""
import numpy as np
import pytest

import data
import pipeline
from conftest import make_image_folder, run_main
from tf_compat import tf


def take(inputs, start_step, n):
    with tf.Session() as sess:
        inputs.initialize(sess, start_step)
        return [sess.run([inputs.images, inputs.labels]) for _ in range(n)]


@pytest.mark.parametrize('make', [pipeline.host_input, pipeline.graph_input])
def test_array_source_order_and_resume(make):
    images = np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1) * np.ones((40, 2, 2, 1), np.uint8)
    source = data.ArraySource(images, (np.arange(40) % 10).astype(np.uint8))
    steps_per_epoch = data.batches_per_epoch(40, 6)
    extra = (3,) if make is pipeline.graph_input else ()
    with tf.Graph().as_default():
        inputs = make(source, 6, [6, 2, 2, 1], 9, steps_per_epoch, *extra)
        batches = take(inputs, 0, 9)
        resumed = take(inputs, 7, 2)
    for step, (batch_images, batch_labels) in enumerate(batches):
        epoch, index = divmod(step, steps_per_epoch)
        expected = data.epoch_permutation(40, 9, epoch)[index * 6:(index + 1) * 6]
        np.testing.assert_array_equal(batch_images[:, 0, 0, 0], expected)
        np.testing.assert_array_equal(batch_labels, expected % 10)
    for got, expected in zip(resumed, batches[7:]):
        np.testing.assert_array_equal(got[0], expected[0])


def test_graph_decoding_matches_pillow_decoding(tmp_path):
    folder = make_image_folder(tmp_path / 'imgs', n=6, size=(48, 40), modes=('RGB', 'L', 'RGBA', 'P'),
                               corrupt=0, ext='png')
    paths = data.list_images(folder, '*.png')
    spec = data.ImageSpec(True, 32, 32, 16, 16, 3)
    with tf.Graph().as_default():
        inputs = pipeline.graph_input(paths, 6, [6, 16, 16, 3], 0, 1, 1, spec=spec)
        images, _ = take(inputs, 0, 1)[0]
    order = data.epoch_permutation(6, 0, 0)
    for image, index in zip(images, order):
        reference = data.load_image(paths[index], spec).astype(np.float32)
        assert np.abs(image.astype(np.float32) - reference).mean() < 3  # rounding and filter edges differ slightly


def prepared_cache(tmp_path, n=30):
    path = str(tmp_path / 'cache.npy')
    np.save(path, np.random.RandomState(0).randint(0, 256, (n, 4, 4, 3)).astype(np.uint8))
    return data.PreparedSource(path)


def test_auto_holds_arrays_and_caches_that_fit_in_memory_and_decodes_folders_on_the_host(tmp_path):
    assert pipeline.default_kind(data.ArraySource(np.zeros((4, 2, 2, 1), np.uint8), None)) == 'graph'
    folder = make_image_folder(tmp_path / 'imgs', n=2, size=(8, 8), modes=('RGB',), corrupt=0, ext='png')
    spec = data.ImageSpec(False, 8, 8, 8, 8, 3)
    assert pipeline.default_kind(data.FolderSource(data.list_images(folder, '*.png'), spec)) == 'host'
    cache = prepared_cache(tmp_path)
    assert cache.nbytes == 30 * 4 * 4 * 3
    assert pipeline.default_kind(cache) == 'graph'  # 1.4 KB: fits in any machine's memory
    order_bytes = 30 * 8  # the int64 sample order of one epoch
    assert pipeline.default_kind(cache, available_bytes=4 * (cache.nbytes + order_bytes)) == 'graph'
    assert pipeline.default_kind(cache, available_bytes=4 * (cache.nbytes + order_bytes) - 1) == 'host'
    assert pipeline.default_kind(cache, 3, available_bytes=4 * (cache.nbytes + order_bytes)) == 'host'
    assert pipeline.default_kind(cache, 3, available_bytes=4 * (cache.nbytes + 3 * order_bytes)) == 'graph'
    assert pipeline.available_memory_bytes() > 0


def test_a_prepared_cache_gives_the_same_batches_from_either_pipeline(tmp_path):
    cache = prepared_cache(tmp_path)
    steps_per_epoch = data.batches_per_epoch(len(cache), 8)
    batches = {}
    for kind in ('host', 'graph'):
        with tf.Graph().as_default():
            inputs, used = pipeline.make_input(kind, cache, 8, [8, 4, 4, 3], 5, steps_per_epoch, 3)
            assert used == kind
            batches[kind] = take(inputs, 2, 5)  # from step 2 on, across the epoch boundary at step 3
    for (host_images, host_labels), (graph_images, graph_labels) in zip(batches['host'], batches['graph']):
        np.testing.assert_array_equal(host_images, graph_images)
        np.testing.assert_array_equal(host_labels, graph_labels)
    first = data.epoch_permutation(len(cache), 5, 0)[16:24]
    np.testing.assert_array_equal(batches['graph'][0][0], np.load(cache.path)[first])


# Each pipeline trains through main.py: the graph one as MNIST's default, the host one when asked for.
@pytest.mark.slow
@pytest.mark.parametrize('requested, used', [(None, 'graph (auto)'), ('host', 'host')])
def test_mnist_trains_from_the_graph_pipeline_by_default(mnist_dir, tmp_path, requested, used):
    extra = ('--input_pipeline', requested) if requested else ()
    result = run_main('--dataset', 'mnist', '--train', '--train_steps', '3', '--batch_size', '16',
                      '--data_dir', mnist_dir, '--out_dir', tmp_path, *extra)
    assert result.returncode == 0, result.stdout
    assert 'input pipeline: %s\n' % used in result.stdout
    assert result.stdout.count(' Epoch:[') == 3
