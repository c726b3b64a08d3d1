"""Training data: MNIST idx files, image folders, the prepared uint8 cache, and the prefetching batch stream."""
import concurrent.futures
import glob
import gzip
import hashlib
import json
import os
import queue
import struct
import sys
import threading
import warnings

import numpy as np
from PIL import Image

MNIST_FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}
GRAY_MODES = ('1', 'L', 'LA', 'I', 'I;16', 'F')
WIDE_MODES = ('I', 'I;16', 'I;16L', 'I;16B', 'I;16N')  # 16-bit grayscale (PNG opens as 'I;16' or 'I')


def refuse_bombs():
    """Makes Pillow's decompression-bomb warning (an image over Image.MAX_IMAGE_PIXELS) an error, as its
    error (over twice the limit) already is: such an image is unreadable like a damaged file, and no raw
    warning is printed. Again before each use, in case a caller restored the warning filters."""
    if not any(f[0] == 'error' and f[2] is Image.DecompressionBombWarning for f in warnings.filters):
        warnings.filterwarnings('error', category=Image.DecompressionBombWarning)


refuse_bombs()

# What opening or decoding an image file raises when the file cannot be used (PIL: OSError, SyntaxError,
# ValueError for damaged files).
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning)


class DataError(Exception):
    """A problem with the user's data that training cannot continue from (one sentence, no traceback)."""


# ---- MNIST ---------------------------------------------------------------------------------------------
def find_mnist_file(folder, name):
    """Path of an MNIST idx file, raw or gzip-compressed; None when neither exists."""
    for candidate in (name, name + '.gz'):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def read_idx(path):
    """Reads an idx file (raw or .gz) into a uint8 array of the shape in its header."""
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError('%s is not an idx file of unsigned bytes.' % path)
    ndim = raw[3]
    shape = struct.unpack('>' + 'I' * ndim, raw[4:4 + 4 * ndim])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError('%s is truncated: its header promises %s values, it holds %d.'
                        % (path, 'x'.join(map(str, shape)), body.size))
    return body.reshape(shape)


def load_mnist(folder, use_test=False):
    """MNIST as uint8 images [N, 28, 28, 1] and uint8 labels [N]: the 60,000 training digits, plus the
    10,000 test digits when use_test (the reference's 70,000)."""
    parts = ['train', 'test'] if use_test else ['train']
    images, labels = [], []
    for part in parts:
        image_name, label_name = MNIST_FILES[part]
        image_path, label_path = find_mnist_file(folder, image_name), find_mnist_file(folder, label_name)
        if image_path is None or label_path is None:
            raise DataError('%s is missing %s or %s.' % (folder, image_name, label_name))
        images.append(read_idx(image_path))
        labels.append(read_idx(label_path))
        if len(images[-1]) != len(labels[-1]):
            raise DataError('%s and %s hold different numbers of digits.' % (image_path, label_path))
    return np.concatenate(images)[..., None], np.concatenate(labels)


def mnist_available(folder, use_test=False):
    """True when the idx files load_mnist needs are in folder."""
    parts = ['train', 'test'] if use_test else ['train']
    return all(find_mnist_file(folder, name) for part in parts for name in MNIST_FILES[part])


# ---- image folders -------------------------------------------------------------------------------------
def list_images(folder, pattern):
    """Sorted paths of the files matching pattern in folder."""
    return sorted(glob.glob(os.path.join(folder, pattern)))


def image_channels(path):
    """1 for a grayscale image, 3 for anything else (RGB, RGBA, palette, CMYK)."""
    with Image.open(path) as image:
        return 1 if image.mode in GRAY_MODES else 3


def image_size(path):
    """(height, width) of an image, read from its header."""
    with Image.open(path) as image:
        return image.size[1], image.size[0]


def center_crop_box(height, width, crop_height, crop_width):
    """(left, top, right, bottom) of the centred crop_height x crop_width window, as the reference."""
    top = int(round((height - crop_height) / 2.0))
    left = int(round((width - crop_width) / 2.0))
    return left, top, left + crop_width, top + crop_height


def check_pixels(image):
    """Raises Image.DecompressionBombError for an image over Image.MAX_IMAGE_PIXELS (None: no limit)."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit and image.size[0] * image.size[1] > limit:
        raise Image.DecompressionBombError('image is %dx%d, over the limit of %d pixels (Image.MAX_IMAGE_PIXELS)'
                                           % (image.size[1], image.size[0], limit))


def to_mode(image, channels):
    """Converts any PIL image to 'L' (channels 1) or 'RGB' (channels 3); transparency goes on black;
    16-bit grayscale is scaled to 8 bits (not clipped, which would make it white)."""
    if image.mode in WIDE_MODES:
        wide = np.asarray(image).astype(np.float32)
        image = Image.fromarray(np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8), 'L')
    if image.mode == 'P':
        image = image.convert('RGBA')
    if image.mode in ('RGBA', 'LA') and channels == 3:
        background = Image.new('RGBA', image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image.convert('RGBA'))
    return image.convert('L' if channels == 1 else 'RGB')


def load_image(path, spec):
    """One image as uint8 [out_height, out_width, channels]: centre crop (if spec.crop), bilinear resize."""
    with Image.open(path) as image:
        check_pixels(image)  # also when Pillow's warning filter was changed
        image = to_mode(image, spec.channels)
        if spec.crop:
            height, width = image.size[1], image.size[0]
            if spec.crop_height > height or spec.crop_width > width:
                raise ValueError('image is %dx%d, smaller than the %dx%d crop'
                                 % (height, width, spec.crop_height, spec.crop_width))
            image = image.crop(center_crop_box(height, width, spec.crop_height, spec.crop_width))
        if image.size != (spec.out_width, spec.out_height):
            image = image.resize((spec.out_width, spec.out_height), Image.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    return array.reshape(spec.out_height, spec.out_width, spec.channels)


class ImageSpec(object):
    """How source images become training images: crop window, output size, channels."""

    def __init__(self, crop, crop_height, crop_width, out_height, out_width, channels):
        self.crop, self.crop_height, self.crop_width = bool(crop), crop_height, crop_width
        self.out_height, self.out_width, self.channels = out_height, out_width, channels

    def key(self):
        """File-name key of the prepared cache for these settings."""
        crop = 'crop%dx%d' % (self.crop_height, self.crop_width) if self.crop else 'nocrop'
        return '%s_%dx%dx%d' % (crop, self.out_height, self.out_width, self.channels)


def decode_all(paths, spec, pool, on_error):
    """Decodes paths in parallel; returns a list of arrays, None where a file could not be read."""
    def decode(path):
        try:
            return load_image(path, spec)
        except UNREADABLE as error:
            on_error(path, error)
            return None
    refuse_bombs()
    return list(pool.map(decode, paths))


# ---- sources: what a batch is made from ----------------------------------------------------------------
class ArraySource(object):
    """Images held in memory (MNIST): uint8 [N, H, W, C] and optional uint8 labels [N]."""

    def __init__(self, images, labels=None):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def batch(self, indices, epoch):
        order = np.sort(indices)  # fancy indexing is faster in order; restore the shuffled order after
        restore = np.argsort(np.argsort(indices))
        images = self.images[order][restore]
        labels = self.labels[order][restore] if self.labels is not None else None
        return images, labels

    def skipped(self, epoch):
        return 0


class PreparedSource(object):
    """The prepared uint8 cache (.npy), read record by record with pread: the data set stays on disk,
    and unlike a memory map the pages read do not count as the process's resident memory."""

    def __init__(self, path):
        with open(path, 'rb') as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
            self.offset = f.tell()
        if np.dtype(dtype) != np.uint8 or len(shape) != 4:
            raise DataError('%s is not a prepared image cache; delete it and run --prepare again.' % path)
        self.shape = shape
        self.record = int(np.prod(shape[1:]))
        self.fd = os.open(path, os.O_RDONLY)
        self.path = path
        self.labels = None

    def __len__(self):
        return self.shape[0]

    @property
    def nbytes(self):
        """Size of the images (what holding the cache in memory takes)."""
        return self.shape[0] * self.record

    def batch(self, indices, epoch):
        out = np.empty((len(indices),) + tuple(self.shape[1:]), np.uint8)
        for row, index in enumerate(indices):
            chunk = os.pread(self.fd, self.record, self.offset + int(index) * self.record)
            out[row] = np.frombuffer(chunk, np.uint8).reshape(self.shape[1:])
        return out, None

    def skipped(self, epoch):
        return 0


class FolderSource(object):
    """Image files decoded on the fly by a thread pool. An unreadable file is replaced in its batch by
    another image of that batch (so batches per epoch and resume positions stay fixed), warned about
    once and counted per epoch."""

    def __init__(self, paths, spec, workers=None):
        self.paths, self.spec = paths, spec
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2)
        self.bad = set()
        self.skipped_per_epoch = {}
        self.labels = None
        self._lock = threading.Lock()

    def __len__(self):
        return len(self.paths)

    def _on_error(self, path, error):
        with self._lock:
            if path not in self.bad:
                self.bad.add(path)
                print('warning: skipping unreadable image %s (%s)' % (path, error), file=sys.stderr)

    def batch(self, indices, epoch):
        """The images of indices; epoch None: a batch outside the epochs (reals.png), whose unreadable
        files are warned about but not counted."""
        arrays = decode_all([self.paths[i] for i in indices], self.spec, self.pool, self._on_error)
        good = [a for a in arrays if a is not None]
        if not good:
            raise DataError('none of the %d images of a batch could be read (first: %s).'
                            % (len(indices), self.paths[indices[0]]))
        missing = len(arrays) - len(good)
        if missing:
            self.count_skipped(epoch, missing)
            arrays = [a if a is not None else good[i % len(good)] for i, a in enumerate(arrays)]
        return np.stack(arrays), None

    def count_skipped(self, epoch, missing):
        """Counts `missing` unreadable images replaced in a batch of `epoch` (None: outside the epochs)."""
        if epoch is not None:
            with self._lock:
                self.skipped_per_epoch[epoch] = self.skipped_per_epoch.get(epoch, 0) + missing

    def graph_skipped(self, epoch, indices):
        """Warns about and counts the images of indices that the graph pipeline could not decode."""
        for index in indices:
            self._on_error(self.paths[int(index)], 'not decodable by TensorFlow or over the size limit')
        self.count_skipped(int(epoch), len(indices))

    def skipped(self, epoch):
        return self.skipped_per_epoch.get(epoch, 0)


# ---- the prepared cache --------------------------------------------------------------------------------
def file_list_digest(paths):
    """Short digest of a file list, so a cache made from other files is not used."""
    digest = hashlib.sha1()
    for path in paths:
        digest.update(os.path.basename(path).encode('utf-8') + b'\0')
    return digest.hexdigest()[:16]


def prepared_paths(data_dir, dataset, spec):
    """(array path, metadata path) of the prepared cache of a data set for these settings."""
    base = os.path.join(data_dir, dataset + '_prepared', spec.key())
    return base + '.npy', base + '.json'


def find_prepared(data_dir, dataset, spec, paths):
    """Path of a prepared cache matching these settings and files, else None."""
    array_path, meta_path = prepared_paths(data_dir, dataset, spec)
    if not (os.path.isfile(array_path) and os.path.isfile(meta_path)):
        return None
    with open(meta_path) as f:
        meta = json.load(f)
    if meta.get('files') != len(paths) or meta.get('file_digest') != file_list_digest(paths):
        print('note: %s was made from other files than %s holds now; decoding images instead '
              '(run --prepare again to refresh it).' % (array_path, os.path.dirname(paths[0])))
        return None
    return array_path


def prepare(data_dir, dataset, spec, paths, workers=None, chunk=256):
    """Decodes, crops and resizes every image once into one uint8 .npy file; returns (path, skipped).

    Written under a temporary name and renamed when complete, so an interrupted run leaves no cache
    that looks finished. Unreadable files are left out and reported.
    """
    from tqdm import tqdm
    array_path, meta_path = prepared_paths(data_dir, dataset, spec)
    os.makedirs(os.path.dirname(array_path), exist_ok=True)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2)
    bad = []
    kept = np.zeros(len(paths), bool)
    shape = (len(paths), spec.out_height, spec.out_width, spec.channels)
    tmp_path = array_path + '.tmp.npy'
    out = np.lib.format.open_memmap(tmp_path, mode='w+', dtype=np.uint8, shape=shape)
    written = 0
    with tqdm(total=len(paths), unit='img', desc='preparing %s' % dataset) as progress:
        for start in range(0, len(paths), chunk):
            batch_paths = paths[start:start + chunk]
            arrays = decode_all(batch_paths, spec, pool, lambda path, error: bad.append((path, error)))
            for offset, array in enumerate(arrays):
                if array is not None:
                    out[written] = array
                    kept[start + offset] = True
                    written += 1
            progress.update(len(batch_paths))
    out.flush()
    del out
    pool.shutdown()
    for path, error in bad:
        print('warning: left out unreadable image %s (%s)' % (path, error), file=sys.stderr)
    if written == 0:
        os.remove(tmp_path)
        raise DataError('none of the %d images in %s could be read.' % (len(paths), os.path.dirname(paths[0])))
    if written < len(paths):  # shrink: rewrite the header for the images that were kept
        full = np.load(tmp_path, mmap_mode='r')
        shrunk_path = array_path + '.tmp2.npy'
        shrunk = np.lib.format.open_memmap(shrunk_path, mode='w+', dtype=np.uint8,
                                           shape=(written,) + shape[1:])
        for start in range(0, written, 4096):
            end = min(start + 4096, written)
            shrunk[start:end] = full[start:end]
        shrunk.flush()
        del shrunk, full
        os.replace(shrunk_path, tmp_path)
    meta = {'files': len(paths), 'file_digest': file_list_digest(paths), 'images': written,
            'skipped': [os.path.basename(p) for p, _ in bad], 'spec': spec.key()}
    with open(meta_path + '.tmp', 'w') as f:
        json.dump(meta, f, indent=1)
    os.replace(tmp_path, array_path)
    os.replace(meta_path + '.tmp', meta_path)
    return array_path, len(bad)


# ---- order and batches ---------------------------------------------------------------------------------
def epoch_permutation(n, seed, epoch):
    """The shuffled order of epoch `epoch`: a function of (seed, epoch) only, so a resumed run repeats it."""
    return np.random.RandomState((seed * 1000003 + epoch) % (2 ** 32)).permutation(n)


def batches_per_epoch(n, batch_size, train_size=float('inf')):
    """Full batches per epoch (the last partial batch is dropped, as the reference)."""
    return int(min(n, train_size) // batch_size)


def batch_stream(source, batch_size, seed, start_step, steps_per_epoch, prefetch=4, rank=0, size=1):
    """Yields (epoch, batch_index, images uint8, labels or None) from global step start_step on, forever.
    With size ranks, each step's global batch is the next batch_size x size of the epoch's order and this
    rank takes its slice `rank` of it.

    A background thread assembles batches `prefetch` ahead of the consumer, so decoding overlaps
    training. An exception in that thread is raised in the consumer.
    """
    ready = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def produce():
        step, order_epoch, order = start_step, None, None
        try:
            while not stop.is_set():
                epoch, index = divmod(step, steps_per_epoch)
                if epoch != order_epoch:  # once an epoch: CelebA's permutation takes 5 ms
                    order_epoch, order = epoch, epoch_permutation(len(source), seed, epoch)
                start = (index * size + rank) * batch_size
                indices = order[start:start + batch_size]
                images, labels = source.batch(indices, epoch)
                ready.put((epoch, index, images, labels))
                step += 1
        except Exception as error:  # handed to the consumer, which re-raises it in the training thread
            ready.put(error)

    thread = threading.Thread(target=produce, name='batch-producer', daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
