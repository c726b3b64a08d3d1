"""Bad input files (decompression bombs, 16-bit PNGs, unreadable files in the graph pipeline) and the
sample order drawn one epoch at a time."""
import os
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import data
import pipeline
from conftest import make_image_folder, run_main
from tf_compat import tf

STEP_LINE = re.compile(r'^\[\s*(\d+) Epoch:', re.M)


def fake_png(path, width, height):
    """A PNG whose header declares width x height pixels (its pixel data is a few bytes): Pillow reads
    the size when it opens the file, before any decoding."""
    def chunk(kind, body):
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body) & 0xffffffff)
    with open(str(path), 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
                + chunk(b'IDAT', zlib.compress(b'\0' * 16)) + chunk(b'IEND', b''))
    return str(path)


def numbered_pngs(folder, n, size=8):
    """n RGB PNGs img_XXXX.png, image i filled with the value 10 * i (lossless: decoders agree exactly)."""
    os.makedirs(str(folder), exist_ok=True)
    for i in range(n):
        Image.new('RGB', (size, size), (10 * i,) * 3).save(os.path.join(str(folder), 'img_%04d.png' % i))
    return str(folder)


def take(inputs, start_step, n):
    with tf.Session() as sess:
        inputs.initialize(sess, start_step)
        return [sess.run(inputs.images) for _ in range(n)]


def take_all(inputs, start_step):
    batches = []
    with tf.Session() as sess:
        inputs.initialize(sess, start_step)
        while True:
            try:
                batches.append(sess.run(inputs.images))
            except tf.errors.OutOfRangeError:
                return batches


# ---- decompression bombs -------------------------------------------------------------------------------
@pytest.fixture
def bomb_folder(tmp_path, monkeypatch):
    """Four 8x8 images, one 12x12 (over a limit of 100 pixels: Pillow warns) and one 16x16 (over twice
    the limit: Pillow raises), with Image.MAX_IMAGE_PIXELS lowered to 100."""
    folder = numbered_pngs(tmp_path / 'imgs', 4)
    Image.new('RGB', (12, 12), (1, 2, 3)).save(str(tmp_path / 'imgs' / 'warns.png'))
    Image.new('RGB', (16, 16), (1, 2, 3)).save(str(tmp_path / 'imgs' / 'raises.png'))
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 100)
    return folder


def test_images_over_the_pixel_limit_are_skipped_and_counted(bomb_folder, capsys):
    paths = data.list_images(bomb_folder, '*.png')
    source = data.FolderSource(paths, data.ImageSpec(False, 0, 0, 8, 8, 3), workers=2)
    images, _ = source.batch(np.arange(len(paths)), epoch=0)
    assert images.shape == (6, 8, 8, 3) and source.skipped(0) == 2
    err = capsys.readouterr().err
    assert 'skipping unreadable image %s' % os.path.join(bomb_folder, 'warns.png') in err
    assert 'skipping unreadable image %s' % os.path.join(bomb_folder, 'raises.png') in err
    assert 'DecompressionBombWarning' not in err


def test_prepare_leaves_out_images_over_the_pixel_limit(bomb_folder, tmp_path):
    paths = data.list_images(bomb_folder, '*.png')
    path, skipped = data.prepare(str(tmp_path), 'imgs', data.ImageSpec(False, 0, 0, 8, 8, 3), paths, workers=2)
    assert skipped == 2 and len(data.PreparedSource(path)) == 4


def test_graph_pipeline_skips_images_over_the_pixel_limit(bomb_folder):
    source = data.FolderSource(data.list_images(bomb_folder, '*.png'), data.ImageSpec(False, 0, 0, 8, 8, 3))
    with tf.Graph().as_default():
        inputs, _ = pipeline.make_input('graph', source, 6, [6, 8, 8, 3], 0, 1, 1)
        batches = take_all(inputs, 0)
    assert len(batches) == 1 and source.skipped(0) == 2
    assert set(np.unique(batches[0])) <= {0, 10, 20, 30}  # only the 8x8 images, none of the large ones


def test_header_pixel_counts_of_every_format(tmp_path):
    paths = []
    for fmt, ext in (('JPEG', 'jpg'), ('PNG', 'png'), ('GIF', 'gif'), ('BMP', 'bmp')):
        paths.append(str(tmp_path / ('a.' + ext)))
        Image.new('RGB', (40, 30)).save(paths[-1], format=fmt)
    paths.append(fake_png(tmp_path / 'huge.png', 70000, 50000))
    with tf.Graph().as_default():
        path = tf.placeholder(tf.string, [])
        pixels = pipeline._pixels(tf.read_file(path))
        with tf.Session() as sess:
            counts = [sess.run(pixels, {path: p}) for p in paths]
    assert counts == [1200, 1200, 1200, 1200, 70000 * 50000]


# ---- 16-bit PNGs ---------------------------------------------------------------------------------------
def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path):
    wide = (np.arange(16 * 16).reshape(16, 16) * 256).astype(np.uint16)  # 0 .. 65280
    path = str(tmp_path / 'wide.png')
    Image.fromarray(wide).save(path)
    assert Image.open(path).mode in ('I', 'I;16')
    expected = np.round(wide / 257.0).astype(np.uint8)
    gray = data.load_image(path, data.ImageSpec(False, 0, 0, 16, 16, 1))
    np.testing.assert_array_equal(gray[..., 0], expected)  # clipping made it 255 (white) almost everywhere
    color = data.load_image(path, data.ImageSpec(False, 0, 0, 16, 16, 3))
    np.testing.assert_array_equal(color, np.repeat(expected[..., None], 3, axis=2))
    with tf.Graph().as_default():
        inputs = pipeline.graph_input([path], 1, [1, 16, 16, 1], 0, 1, 1, spec=data.ImageSpec(False, 0, 0, 16, 16, 1))
        graph = take(inputs, 0, 1)[0][0, ..., 0]
    assert np.abs(graph.astype(int) - expected).max() <= 1


# ---- unreadable files in the graph pipeline ------------------------------------------------------------
@pytest.mark.parametrize('start_step', [0, 4])
def test_graph_pipeline_keeps_the_epoch_length_and_the_host_batches(tmp_path, start_step):
    folder = numbered_pngs(tmp_path / 'imgs', 20)
    make_image_folder(folder, n=0, corrupt=3, ext='png')
    fake_png(os.path.join(folder, 'huge.png'), 20000, 20000)  # over twice Pillow's default limit
    paths = data.list_images(folder, '*.png')
    assert len(paths) == 24
    spec = data.ImageSpec(False, 0, 0, 8, 8, 3)
    steps_per_epoch, epochs, seed = data.batches_per_epoch(24, 5), 3, 7
    bad = {i for i, p in enumerate(paths) if 'broken' in p or 'huge' in p}
    batches, sources = {}, {}
    for kind in ('host', 'graph'):
        sources[kind] = data.FolderSource(paths, spec, workers=2)
        with tf.Graph().as_default():
            inputs, used = pipeline.make_input(kind, sources[kind], 5, [5, 8, 8, 3], seed, steps_per_epoch, epochs)
            assert used == kind
            if kind == 'graph':
                batches[kind] = take_all(inputs, start_step)
            else:
                batches[kind] = take(inputs, start_step, steps_per_epoch * epochs - start_step)
    assert len(batches['graph']) == steps_per_epoch * epochs - start_step
    for host, graph in zip(batches['host'], batches['graph']):
        np.testing.assert_array_equal(host, graph)
    for epoch in range(epochs):
        order = data.epoch_permutation(24, seed, epoch)[:steps_per_epoch * 5]
        if epoch == 0:
            order = order[start_step * 5:]
        expected = sum(1 for i in order if i in bad)
        assert sources['graph'].skipped(epoch) == sources['host'].skipped(epoch) == expected


def test_the_reals_grid_is_not_counted_in_epoch_0(tmp_path):
    import main
    folder = numbered_pngs(tmp_path / 'imgs', 7)
    make_image_folder(folder, n=0, corrupt=1, ext='png')  # broken_00.png, index 0
    seed = next(s for s in range(1000) if 0 in data.epoch_permutation(8, s, 0)[:4])
    source = data.FolderSource(data.list_images(folder, '*.png'), data.ImageSpec(False, 0, 0, 8, 8, 3), workers=2)
    grids = main.SampleGrids.__new__(main.SampleGrids)
    grids.sample_dir = str(tmp_path)
    grids.save_reals(source, seed, 4)
    assert os.path.isfile(str(tmp_path / 'reals.png')) and source.skipped(0) == 0
    source.batch(data.epoch_permutation(8, seed, 0)[:4], 0)  # the same batch as epoch 0's first step
    assert source.skipped(0) == 1


# ---- one epoch's order at a time -----------------------------------------------------------------------
def count_permutations(monkeypatch):
    drawn = []
    original = data.epoch_permutation

    def counting(n, seed, epoch):
        drawn.append(epoch)
        return original(n, seed, epoch)
    monkeypatch.setattr(data, 'epoch_permutation', counting)
    return drawn


def test_graph_pipeline_draws_each_epochs_order_when_it_starts(monkeypatch):
    drawn = count_permutations(monkeypatch)
    source = data.ArraySource(np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1))
    steps_per_epoch = data.batches_per_epoch(40, 8)
    with tf.Graph().as_default():
        inputs = pipeline.graph_input(source, 8, [8, 1, 1, 1], 3, steps_per_epoch, 1000, prefetch=1)
        batches = take(inputs, 5 * 10 + 3, 4)  # epoch 10 from its batch 3, into epoch 11
    assert 2 <= len(drawn) <= 3 and drawn[:2] == [10, 11]  # not 1000 epochs' orders up front
    expected = np.concatenate([data.epoch_permutation(40, 3, 10)[24:40], data.epoch_permutation(40, 3, 11)[:16]])
    np.testing.assert_array_equal(np.concatenate([b.ravel() for b in batches]), expected)


def test_host_pipeline_draws_each_epochs_order_when_it_starts(monkeypatch):
    drawn = count_permutations(monkeypatch)
    source = data.ArraySource(np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1))
    stream = data.batch_stream(source, 8, 3, 5 * 10 + 3, 5, prefetch=1)
    for _ in range(4):
        next(stream)
    assert 2 <= len(drawn) <= 3 and drawn[:2] == [10, 11]


# ---- through main.py -----------------------------------------------------------------------------------
def bomb_data(tmp_path):
    """A data folder of 16 images and two bombs sorted first (a_bomb.png: Pillow raises, b_bomb.png: Pillow
    warns), and a seed whose first batch (the reals grid) holds a bomb and whose first epoch holds both."""
    folder = make_image_folder(tmp_path / 'data' / 'faces', n=16, size=(16, 16), modes=('RGB',), corrupt=0,
                               ext='png')
    fake_png(os.path.join(folder, 'a_bomb.png'), 20000, 20000)
    fake_png(os.path.join(folder, 'b_bomb.png'), 10000, 10000)
    seed = next(s for s in range(1000) if {0, 1} <= set(data.epoch_permutation(18, s, 0)[:16])
                and {0, 1} & set(data.epoch_permutation(18, s, 0)[:4]))
    return str(tmp_path / 'data'), seed


def assert_no_raw_warning(output):
    assert 'DecompressionBombWarning' not in output and 'Traceback' not in output, output


@pytest.mark.slow
@pytest.mark.parametrize('kind', ['host', 'graph'])
def test_training_skips_bombs_and_counts_the_epoch_without_the_reals_grid(tmp_path, kind):
    data_dir, seed = bomb_data(tmp_path)
    result = run_main('--dataset', 'faces', '--input_fname_pattern', '*.png', '--output_height', '16',
                      '--batch_size', '4', '--train', '--train_steps', '4', '--seed', seed, '--input_pipeline',
                      kind, '--data_dir', data_dir, '--out_dir', tmp_path / 'out')
    assert result.returncode == 0, result.stdout
    assert_no_raw_warning(result.stdout)
    assert 'skipping unreadable image' in result.stdout and 'a_bomb.png' in result.stdout
    assert len(STEP_LINE.findall(result.stdout)) == 4
    assert re.search(r'epoch 0 done: 4 steps .*, 2 unreadable images skipped', result.stdout), result.stdout


@pytest.mark.slow
def test_prepare_leaves_bombs_out(tmp_path):
    data_dir, _ = bomb_data(tmp_path)
    result = run_main('--dataset', 'faces', '--input_fname_pattern', '*.png', '--output_height', '16',
                      '--prepare', '--data_dir', data_dir, '--out_dir', tmp_path / 'out')
    assert result.returncode == 0, result.stdout
    assert_no_raw_warning(result.stdout)
    assert 'prepared 16 images' in result.stdout and '2 unreadable files left out' in result.stdout
