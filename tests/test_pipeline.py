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


def test_training_with_the_graph_pipeline(mnist_dir, tmp_path):
    result = run_main('--dataset', 'mnist', '--train', '--train_steps', '3', '--batch_size', '16',
                      '--input_pipeline', 'graph', '--data_dir', mnist_dir, '--out_dir', tmp_path)
    assert result.returncode == 0, result.stdout
    assert result.stdout.count(' Epoch:[') == 3


def test_auto_picks_the_graph_pipeline_for_data_in_memory_only(tmp_path):
    assert pipeline.default_kind(data.ArraySource(np.zeros((4, 2, 2, 1), np.uint8), None)) == 'graph'
    folder = make_image_folder(tmp_path / 'imgs', n=2, size=(8, 8), modes=('RGB',), corrupt=0, ext='png')
    spec = data.ImageSpec(False, 8, 8, 8, 8, 3)
    assert pipeline.default_kind(data.FolderSource(data.list_images(folder, '*.png'), spec)) == 'host'


@pytest.mark.parametrize('requested, used', [(None, 'graph (auto)'), ('host', 'host')])
def test_mnist_trains_from_the_graph_pipeline_by_default(mnist_dir, tmp_path, requested, used):
    extra = ('--input_pipeline', requested) if requested else ()
    result = run_main('--dataset', 'mnist', '--train', '--train_steps', '2', '--batch_size', '16',
                      '--data_dir', mnist_dir, '--out_dir', tmp_path, *extra)
    assert result.returncode == 0, result.stdout
    assert 'input pipeline: %s\n' % used in result.stdout
