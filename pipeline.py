"""The training graph's input: host batches (Python threads, prefetched) or an all-TensorFlow tf.data pipeline.

Both give uint8 images [B, H, W, C] and uint8 labels [B] in the same order: the seeded per-epoch
permutation of data.epoch_permutation, from any global step on, so a resumed run continues exactly.
The host pipeline serves every source (the prepared cache is read from disk record by record). The graph
pipeline has no Python between steps, which the NPU's loop offload (--iterations_per_loop) needs; it
holds array sources in memory and decodes image files with TensorFlow's own ops.
"""
import collections
import os

import numpy as np
from PIL import Image

import data
from tf_compat import tf, tf2

Input = collections.namedtuple('Input', [
    'images',  # uint8 [B, H, W, C]
    'labels',  # uint8 [B] (zeros for unconditional data)
    'initialize',  # initialize(sess, start_step): (re)starts the pipeline at a global step
])


# A prepared cache is held in memory by the graph pipeline when it takes at most this share of the memory
# available (CelebA at 64x64 is 2.5 GB); larger ones are read from disk by the host pipeline.
MEMORY_SHARE_FOR_CACHE = 0.25


def available_memory_bytes():
    """Memory the system can give without swapping (MemAvailable), or its physical memory where
    /proc/meminfo is missing; None when neither is known."""
    try:
        with open('/proc/meminfo') as meminfo:
            for line in meminfo:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    except (ValueError, OSError, AttributeError):
        return None


def default_kind(source, epochs=1, available_bytes=None):
    """The pipeline --input_pipeline auto picks: graph for arrays in memory (MNIST) and for a prepared
    cache that fits in memory with the sample order of all `epochs`, so no Python work runs beside the
    step; host for image folders, whose host decoding replaces an unreadable file with a warning, and
    for caches too large to hold."""
    if isinstance(source, data.ArraySource):
        return 'graph'
    if isinstance(source, data.PreparedSource):
        available = available_bytes if available_bytes is not None else available_memory_bytes()
        needed = source.nbytes + len(source) * max(epochs, 1) * np.dtype(np.int64).itemsize  # images, sample order
        if available and needed <= MEMORY_SHARE_FOR_CACHE * available:
            return 'graph'
    return 'host'


def make_input(kind, source, batch, image_shape, seed, steps_per_epoch, epochs, shard=(0, 1)):
    """(Input, kind used) of --input_pipeline kind ('auto', 'host' or 'graph') for a data.* source.
    shard (rank, size): this rank's slice of every global batch of batch x size images."""
    if kind == 'auto':
        kind = default_kind(source, epochs)
    if kind == 'host':
        return host_input(source, batch, image_shape, seed, steps_per_epoch, shard=shard), kind
    if isinstance(source, data.FolderSource):
        return graph_input(source.paths, batch, image_shape, seed, steps_per_epoch, epochs, spec=source.spec,
                           on_skipped=source.graph_skipped, shard=shard), kind
    if isinstance(source, data.PreparedSource):  # mapped, not read: the graph's copy is the only one in memory
        source = data.ArraySource(np.load(source.path, mmap_mode='r'))
    return graph_input(source, batch, image_shape, seed, steps_per_epoch, epochs, shard=shard), kind


def host_input(source, batch, image_shape, seed, steps_per_epoch, prefetch=2, shard=(0, 1)):
    """Batches assembled by data.batch_stream's background thread, handed to the graph by tf.data."""
    position = {'start_step': 0}

    def batches():
        stream = data.batch_stream(source, batch, seed, position['start_step'], steps_per_epoch,
                                   rank=shard[0], size=shard[1])
        for _, _, images, labels in stream:
            yield images, (labels if labels is not None else np.zeros(batch, np.uint8))

    pipeline = tf.data.Dataset.from_generator(batches, (tf.uint8, tf.uint8), (image_shape, [batch]))
    iterator = tf.data.make_initializable_iterator(pipeline.prefetch(prefetch))

    def initialize(sess, start_step):
        position['start_step'] = start_step
        sess.run(iterator.initializer)

    images, labels = iterator.get_next()
    return Input(images, labels, initialize)


def epoch_order(n, batch, seed, epoch, steps_per_epoch, rank=0, size=1):
    """The sample indices of the steps of epoch `epoch`, int64 [steps_per_epoch, batch]: the epoch's
    permutation (data.epoch_permutation), its last partial global batch dropped; with size ranks, this
    rank's slice `rank` of each step's global batch of batch x size."""
    used = steps_per_epoch * batch * size
    order = data.epoch_permutation(n, seed, epoch)[:used].reshape(steps_per_epoch, size, batch)[:, rank]
    return np.ascontiguousarray(order, np.int64)


def step_orders(n, batch, seed, start_step, steps_per_epoch, epochs, shard=(0, 1)):
    """A tf.data.Dataset of (epoch, indices int64 [batch]) for every step from start_step (a tensor) to
    the end of `epochs` epochs. Each epoch's order is drawn when the pipeline reaches that epoch, so a
    long run holds one epoch's order at a time."""
    first_epoch = start_step // steps_per_epoch

    def one_epoch(epoch):
        order = tf.py_func(lambda e: epoch_order(n, batch, seed, int(e), steps_per_epoch, *shard), [epoch],
                           tf.int64, stateful=False)
        order.set_shape([steps_per_epoch, batch])
        return tf.data.Dataset.from_tensor_slices(order).map(lambda indices: (epoch, indices))

    return (tf.data.Dataset.range(first_epoch, tf.maximum(tf.constant(epochs, tf.int64), first_epoch + 1))
            .flat_map(one_epoch).skip(start_step % steps_per_epoch))


def graph_input(source, batch, image_shape, seed, steps_per_epoch, epochs, spec=None, prefetch=4,
                on_skipped=None, shard=(0, 1)):
    """An all-TensorFlow pipeline. source: data.ArraySource (held in memory, fed once at start) or a list
    of image file paths decoded by tf.image ops following spec (a data.ImageSpec). An unreadable file is
    replaced in its batch by another image of that batch, as the host pipeline does, so epochs keep their
    length; on_skipped(epoch, indices) is told which ones were (data.FolderSource.graph_skipped)."""
    start_step = tf.placeholder(tf.int64, [], name='start_step')
    steps = step_orders(len(source), batch, seed, start_step, steps_per_epoch, epochs, shard)
    if isinstance(source, (list, tuple)):
        paths = tf.placeholder(tf.string, [None], name='all_paths')  # fed once: keeps the graph (and .meta) small
        pipeline = steps.map(lambda epoch, indices: _decode_batch(paths, epoch, indices, spec, image_shape,
                                                                  on_skipped), num_parallel_calls=2)
        feeds = {paths: np.asarray(source)}
    else:
        images = tf.placeholder(tf.uint8, [None] + image_shape[1:], name='all_images')
        labels = tf.placeholder(tf.uint8, [None], name='all_labels')
        # Whole batches of indices, one gather each: per-image elements cost tf.data more than the copy.
        pipeline = steps.map(lambda epoch, i: (tf.gather(images, i), tf.gather(labels, i)))
        all_labels = source.labels if source.labels is not None else np.zeros(len(source), np.uint8)
        feeds = {images: np.asarray(source.images), labels: all_labels}
    pipeline = pipeline.prefetch(prefetch)
    iterator = tf.data.make_initializable_iterator(pipeline)

    def initialize(sess, start):
        feed = dict(feeds)
        feed[start_step] = start
        sess.run(iterator.initializer, feed)

    batch_images, batch_labels = iterator.get_next()
    batch_images.set_shape(image_shape)
    batch_labels.set_shape([batch])
    return Input(batch_images, batch_labels, initialize)


def _decode_batch(paths, epoch, indices, spec, image_shape, on_skipped):
    """The images of one step's indices (decoded in parallel); a file that fails to decode is replaced by
    the image of slot (its slot mod the number decoded), as data.FolderSource.batch does."""
    batch = image_shape[0]
    parallel = getattr(tf.data.experimental, 'AUTOTUNE', -1)
    decoded = (tf.data.Dataset.from_tensor_slices((tf.range(batch), indices))
               .map(lambda slot, i: (slot, _decode(tf.gather(paths, i), spec)), num_parallel_calls=parallel)
               .apply(tf.data.experimental.ignore_errors())  # unreadable files are dropped here, refilled below
               .batch(batch))
    none = tf.data.Dataset.from_tensors((tf.zeros([0], tf.int32), tf.zeros([0] + image_shape[1:], tf.uint8)))
    slots, images = tf.data.experimental.get_single_element(decoded.concatenate(none).take(1))
    count = tf.shape(slots)[0]
    found = tf.scatter_nd(tf.expand_dims(slots, 1), tf.range(count) + 1, [batch]) - 1  # slot -> decoded row
    rows = tf.where(found >= 0, found, tf.range(batch) % tf.maximum(count, 1))
    checks = [tf.Assert(count > 0, ['none of the images of a batch could be read (first:',
                                    tf.gather(paths, indices[0]), ')'])]
    if on_skipped is not None:
        def report(epoch_value, missing):
            on_skipped(int(epoch_value), missing)
            return np.int64(len(missing))
        missing = tf.boolean_mask(indices, found < 0)
        checks.append(tf.cond(count < batch, lambda: tf.py_func(report, [epoch, missing], tf.int64),
                              lambda: tf.constant(0, tf.int64)))
    with tf.control_dependencies(checks):
        images = tf.gather(images, rows)
    return images, tf.zeros([batch], tf.uint8)


def _pixels(contents):
    """The pixel count a JPEG, PNG, GIF or BMP file's header declares (int64; 0 for other formats)."""
    head = tf.io.decode_raw(tf.strings.substr(tf.strings.join([tf.strings.substr(contents, 0, 26), '\0' * 26]),
                                              0, 26), tf.uint8)
    b = tf.cast(tf.reshape(head, [26]), tf.int64)

    def number(first, count, big_endian):
        value = tf.constant(0, tf.int64)
        for k in range(count):
            value = value * 256 + b[first + k if big_endian else first + count - 1 - k]
        return value

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(contents), tf.int64)
        return shape[0] * shape[1]

    def bmp():
        width, height = number(18, 4, False), number(22, 4, False)
        signed = lambda v: tf.where(v >= 2 ** 31, v - 2 ** 32, v)  # noqa: E731  (heights may be negative)
        return tf.abs(signed(width)) * tf.abs(signed(height))

    return tf.case([(tf.logical_and(tf.equal(b[0], 0xFF), tf.equal(b[1], 0xD8)), jpeg),
                    (tf.logical_and(tf.equal(b[0], 0x89), tf.equal(b[1], ord('P'))),
                     lambda: number(16, 4, True) * number(20, 4, True)),
                    (tf.logical_and(tf.equal(b[0], ord('G')), tf.equal(b[1], ord('I'))),
                     lambda: number(6, 2, False) * number(8, 2, False)),
                    (tf.logical_and(tf.equal(b[0], ord('B')), tf.equal(b[1], ord('M'))), bmp)],
                   default=lambda: tf.constant(0, tf.int64), exclusive=True)


def _decode(path, spec):
    """One image file as uint8 [out_height, out_width, channels] with TensorFlow ops, matching
    data.load_image: any of JPEG, PNG, GIF, BMP; none over Pillow's decompression-bomb limit (an error,
    so the file is skipped); transparency composited on black; converted to
    spec.channels; centre crop as the reference; antialiased bilinear resize."""
    contents = tf.read_file(path)
    limit = Image.MAX_IMAGE_PIXELS  # over it the host pipeline skips the file too (data.UNREADABLE)
    checks = [tf.debugging.assert_less_equal(_pixels(contents), tf.constant(limit, tf.int64))] if limit else []
    with tf.control_dependencies(checks):
        image = tf.image.decode_image(contents, channels=0, expand_animations=False)
    image.set_shape([None, None, None])
    channels = tf.shape(image)[2]
    color = tf.cond(channels >= 3, lambda: image[:, :, :3], lambda: tf.tile(image[:, :, :1], [1, 1, 3]))
    opaque = tf.fill(tf.concat([tf.shape(image)[:2], [1]], 0), tf.constant(255, tf.uint8))
    alpha = tf.cond(tf.equal(channels % 2, 0), lambda: image[:, :, -1:], lambda: opaque)  # LA and RGBA
    image = tf.cast(color, tf.float32) * (tf.cast(alpha, tf.float32) / 255.0)
    if spec.channels == 1:
        image = tf.image.rgb_to_grayscale(image)
    if spec.crop:
        shape = tf.shape(image)
        top = tf.cast(tf.round((shape[0] - spec.crop_height) / 2), tf.int32)
        left = tf.cast(tf.round((shape[1] - spec.crop_width) / 2), tf.int32)
        image = tf.image.crop_to_bounding_box(image, top, left, spec.crop_height, spec.crop_width)
    image = tf2.image.resize(image, [spec.out_height, spec.out_width], method='bilinear', antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
