"""Unit tests of the data pipeline (idx files, image loading, cache, batch order) and the small helpers."""
import os

import numpy as np
import pytest
from PIL import Image

import data
import steplog
import utils
from conftest import make_image_folder, make_mnist, write_idx


# ---- MNIST ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('compress', [False, True])
def test_mnist_raw_or_gz_train_only_by_default(tmp_path, compress):
    folder = make_mnist(tmp_path, n_train=30, n_test=10, compress=compress)
    images, labels = data.load_mnist(folder)
    assert images.shape == (30, 28, 28, 1) and images.dtype == np.uint8 and labels.shape == (30,)
    images, labels = data.load_mnist(folder, use_test=True)
    assert images.shape == (40, 28, 28, 1)


def test_truncated_idx_file_is_a_data_error(tmp_path):
    path = str(tmp_path / 'x-idx3-ubyte')
    write_idx(path, np.zeros((4, 28, 28), np.uint8))
    with open(path, 'r+b') as f:
        f.truncate(100)
    with pytest.raises(data.DataError, match='truncated'):
        data.read_idx(path)


# ---- images --------------------------------------------------------------------------------------------
def test_center_crop_box_is_the_references_celeba_window():
    assert data.center_crop_box(218, 178, 108, 108) == (35, 55, 143, 163)  # rows 55..162, cols 35..142


@pytest.mark.parametrize('mode', ['RGB', 'L', 'RGBA', 'P', 'LA', 'CMYK'])
@pytest.mark.parametrize('channels', [1, 3])
def test_every_mode_loads_with_the_chosen_channels(tmp_path, mode, channels):
    path = str(tmp_path / 'image.png' if mode != 'CMYK' else tmp_path / 'image.jpg')
    Image.fromarray((np.random.rand(50, 40, 3) * 255).astype(np.uint8)).convert(mode).save(path)
    spec = data.ImageSpec(True, 30, 30, 16, 16, channels)
    array = data.load_image(path, spec)
    assert array.shape == (16, 16, channels) and array.dtype == np.uint8


def test_without_crop_the_whole_image_is_resized(tmp_path):
    path = str(tmp_path / 'a.png')
    pixels = np.zeros((40, 40, 3), np.uint8)
    pixels[:, :20] = 255  # left half white: survives a whole-image resize, not a small centre crop
    Image.fromarray(pixels).save(path)
    whole = data.load_image(path, data.ImageSpec(False, 0, 0, 8, 8, 3))
    assert whole[:, 0].min() == 255 and whole[:, -1].max() == 0


def test_folder_source_replaces_unreadable_images_and_counts_them(tmp_path):
    folder = make_image_folder(tmp_path / 'imgs', n=6, corrupt=2)
    paths = data.list_images(folder, '*.jpg')
    source = data.FolderSource(paths, data.ImageSpec(False, 0, 0, 8, 8, 3), workers=2)
    images, labels = source.batch(np.arange(len(paths)), epoch=0)
    assert images.shape == (8, 8, 8, 3) and labels is None
    assert source.skipped(0) == 2 and source.skipped(1) == 0


def test_prepare_and_pread_source_roundtrip(tmp_path):
    folder = make_image_folder(tmp_path / 'data' / 'set', n=10, corrupt=1)
    paths = data.list_images(folder, '*.jpg')
    spec = data.ImageSpec(False, 0, 0, 8, 8, 3)
    path, skipped = data.prepare(str(tmp_path / 'data'), 'set', spec, paths)
    assert skipped == 1
    assert data.find_prepared(str(tmp_path / 'data'), 'set', spec, paths) == path
    assert data.find_prepared(str(tmp_path / 'data'), 'set', spec, paths[:-1]) is None  # other files
    source = data.PreparedSource(path)
    assert len(source) == 10
    direct = np.stack([data.load_image(p, spec) for p in paths if 'broken' not in p])
    images, _ = source.batch(np.array([3, 0, 9]), 0)
    np.testing.assert_array_equal(images, direct[[3, 0, 9]])
    assert not any(name.endswith('.tmp.npy') for name in os.listdir(os.path.dirname(path)))


# ---- order ---------------------------------------------------------------------------------------------
def test_epoch_order_is_seeded_and_differs_per_epoch():
    a, b = data.epoch_permutation(100, 0, 0), data.epoch_permutation(100, 0, 1)
    assert sorted(a) == list(range(100)) and not np.array_equal(a, b)
    np.testing.assert_array_equal(a, data.epoch_permutation(100, 0, 0))
    assert not np.array_equal(a, data.epoch_permutation(100, 1, 0))


def test_batch_stream_resumes_exactly_where_it_stopped():
    source = data.ArraySource(np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1), np.arange(50) % 10)
    steps_per_epoch = data.batches_per_epoch(50, 8)
    assert steps_per_epoch == 6  # the last partial batch is dropped
    full = data.batch_stream(source, 8, 5, 0, steps_per_epoch)
    reference = [next(full) for _ in range(10)]
    resumed = data.batch_stream(source, 8, 5, 7, steps_per_epoch)
    for expected in reference[7:]:
        got = next(resumed)
        assert got[:2] == expected[:2]
        np.testing.assert_array_equal(got[2], expected[2])
    assert reference[6][:2] == (1, 0)  # step 6 opens epoch 1
    for step, (epoch, index, images, _) in enumerate(reference):  # each epoch's own permutation, in slices
        assert (epoch, index) == divmod(step, steps_per_epoch)
        np.testing.assert_array_equal(images.ravel(), data.epoch_permutation(50, 5, epoch)[index * 8:(index + 1) * 8])


def test_batch_stream_hands_producer_errors_to_the_consumer():
    class Broken(object):
        def __len__(self):
            return 10

        def batch(self, indices, epoch):
            raise data.DataError('disk on fire')

    with pytest.raises(data.DataError, match='disk on fire'):
        next(data.batch_stream(Broken(), 2, 0, 0, 5))


def test_train_size_caps_batches():
    assert data.batches_per_epoch(60000, 64) == 937
    assert data.batches_per_epoch(60000, 64, 640) == 10


# ---- helpers -------------------------------------------------------------------------------------------
@pytest.mark.parametrize('n,shape', [(64, (8, 8)), (16, (4, 4)), (24, (4, 6)), (10, (2, 5)), (7, (3, 3)),
                                     (1, (1, 1)), (70, (7, 10))])
def test_grid_shape(n, shape):
    assert utils.grid_shape(n) == shape


def test_make_grid_places_images_row_by_row():
    images = np.arange(6, dtype=np.uint8).reshape(6, 1, 1, 1) * np.ones((6, 2, 3, 1), np.uint8)
    grid = utils.make_grid(images, 2, 3)
    assert grid.shape == (4, 9, 1)
    assert grid[0, 0, 0] == 0 and grid[0, 3, 0] == 1 and grid[2, 0, 0] == 3 and grid[3, 8, 0] == 5


def test_to_uint8_ranges():
    np.testing.assert_array_equal(utils.to_uint8(np.array([-1.0, 0.0, 1.0, 2.0]), (-1, 1)), [0, 128, 255, 255])
    np.testing.assert_array_equal(utils.to_uint8(np.array([0.0, 0.5, 1.0]), (0, 1)), [0, 128, 255])


@pytest.mark.parametrize('dist,low,high', [('uniform_signed', -1, 1), ('uniform_unsigned', 0, 1)])
def test_latent_distributions(dist, low, high):
    z = utils.latents(np.random.RandomState(0), 500, 10, dist)
    assert z.shape == (500, 10) and z.dtype == np.float32 and z.min() >= low and z.max() < high
    assert z.min() < low + 0.05 and z.max() > high - 0.05


def test_normal_latents():
    z = utils.latents(np.random.RandomState(0), 5000, 4, 'normal01')
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05


def test_step_line_is_byte_compatible_and_parses_back():
    line = steplog.format_line(12, 0, 25, 11, 1093, 4.12345, 1.38629436, 0.69314718)
    assert line == '[      12 Epoch:[ 0/25] [  11/1093] time: 4.1235, d_loss: 1.38629436, g_loss: 0.69314718'
    fields = steplog.parse_line(line)
    assert fields['step'] == 12 and fields['batches'] == 1093 and fields['g_loss'] == pytest.approx(0.69314718)
    assert steplog.parse_line('epoch 0 done') is None
    assert steplog.parse_line(line[:-3] + 'x.y') is None  # numbers that do not parse
    assert steplog.parse_line('I0101 ' + line)['step'] == 12  # a logger prefix
    assert np.isnan(steplog.parse_line(steplog.format_line(1, 0, 1, 0, 1, 0.5, float('nan'), 1.0))['d_loss'])


def test_save_image_and_gif_are_written_whole(tmp_path):
    utils.save_image(str(tmp_path / 'g.png'), np.zeros((4, 6, 1), np.uint8))
    assert Image.open(str(tmp_path / 'g.png')).size == (6, 4)
    utils.save_gif(str(tmp_path / 'a.gif'), np.zeros((5, 4, 4, 3), np.uint8))
    assert sorted(os.listdir(str(tmp_path))) == ['a.gif', 'g.png']


def test_prepared_source_keeps_the_data_set_off_the_heap(tmp_path):
    """Reading a whole prepared cache leaves resident memory about where it was (celebA's 2.5 GB cache
    at 64x64 trains in about 1.2 GB peak this way)."""
    def resident_mb():
        with open('/proc/self/status') as f:
            return int([line for line in f if line.startswith('VmRSS:')][0].split()[1]) / 1024.0

    path = str(tmp_path / 'cache.npy')
    shape = (6400, 64, 64, 3)  # 79 MB
    with open(path, 'wb') as f:  # plain writes, no memory map: the page cache is not this process's memory
        np.lib.format.write_array_header_1_0(f, {'descr': '|u1', 'fortran_order': False, 'shape': shape})
        chunk = np.random.RandomState(0).randint(0, 255, size=(640,) + shape[1:], dtype=np.uint8).tobytes()
        for _ in range(shape[0] // 640):
            f.write(chunk)
    source = data.PreparedSource(path)
    before = resident_mb()
    order = data.epoch_permutation(len(source), 0, 0)
    peak = before
    for start in range(0, len(source), 64):
        images, _ = source.batch(order[start:start + 64], 0)
        peak = max(peak, resident_mb())
    grown_mb = peak - before
    assert images.shape == (64, 64, 64, 3)
    assert grown_mb < 20, 'reading the cache grew peak memory by %.0f MB' % grown_mb
