"""Shared pytest fixtures: tiny generated data sets (MNIST idx files, mixed-mode image folders)."""
import gzip
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # the project's modules are flat files at the repository root


def write_idx(path, array, compress=False):
    """Writes a uint8 array as an idx file (the MNIST format); gzip-compressed when asked."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack('>HBB', 0, 0x08, array.ndim) + struct.pack('>' + 'I' * array.ndim, *array.shape)
    opener = gzip.open if compress else open
    with opener(path, 'wb') as f:
        f.write(header + array.tobytes())


def make_mnist(data_dir, n_train=256, n_test=64, compress=False, seed=0):
    """Writes the four MNIST idx files of a tiny synthetic set to data_dir/mnist; returns that folder.

    Each digit class d is a bright bar at a class-dependent row, so the classes are learnable.
    """
    rng = np.random.RandomState(seed)
    folder = os.path.join(str(data_dir), 'mnist')
    os.makedirs(folder, exist_ok=True)
    suffix = '.gz' if compress else ''
    for prefix, n in (('train', n_train), ('t10k', n_test)):
        labels = rng.randint(0, 10, size=n).astype(np.uint8)
        images = (rng.rand(n, 28, 28) * 40).astype(np.uint8)
        for i, d in enumerate(labels):
            images[i, 2 + 2 * d:4 + 2 * d, 4:24] = 255
        write_idx(os.path.join(folder, '%s-images-idx3-ubyte%s' % (prefix, suffix)), images, compress)
        write_idx(os.path.join(folder, '%s-labels-idx1-ubyte%s' % (prefix, suffix)), labels, compress)
    return folder


# The tests' MNIST classifier is narrow: each Frechet distance is a 64x64 sqrtm instead of a 1024x1024 one.
CLASSIFIER_WIDTH = 64


def cache_narrow_classifier(data_dir, steps):
    """Trains the narrow classifier on data_dir's tiny MNIST and caches it where main.py looks for it."""
    import metrics
    metrics.ensure_mnist_classifier(str(data_dir), steps=steps, batch_size=32, log=lambda line: None,
                                    width=CLASSIFIER_WIDTH).close()


def make_image_folder(folder, n=24, size=(40, 48), modes=('RGB', 'L', 'RGBA', 'P'), corrupt=1, seed=0,
                      ext='jpg'):
    """Writes n small images of mixed modes (and `corrupt` unreadable files) to folder; returns it.

    JPEG cannot hold RGBA or palette images, so those modes are written as PNG content under the same
    extension: a real-world folder has such files too, and the loader must open them by content.
    """
    rng = np.random.RandomState(seed)
    os.makedirs(str(folder), exist_ok=True)
    for i in range(n):
        mode = modes[i % len(modes)]
        pixels = (rng.rand(size[1], size[0], 3) * 255).astype(np.uint8)
        image = Image.fromarray(pixels, 'RGB').convert(mode)
        fmt = 'JPEG' if mode in ('RGB', 'L') and ext == 'jpg' else 'PNG'
        image.save(os.path.join(str(folder), 'img_%04d.%s' % (i, ext)), format=fmt)
    for i in range(corrupt):
        with open(os.path.join(str(folder), 'broken_%02d.%s' % (i, ext)), 'wb') as f:
            f.write(b'\xff\xd8\xff\xe0 this is not really a jpeg')
    return str(folder)


@pytest.fixture
def mnist_dir(tmp_path):
    """A data_dir whose mnist/ sub-folder holds tiny idx files."""
    make_mnist(tmp_path / 'data')
    return str(tmp_path / 'data')


@pytest.fixture
def faces_dir(tmp_path):
    """A data_dir whose 'faces' sub-folder holds 24 mixed-mode images and one corrupt file."""
    make_image_folder(tmp_path / 'data' / 'faces')
    return str(tmp_path / 'data')


def run_script(script, *args, timeout=600, env=None, cwd=None):
    """Runs `python SCRIPT ARGS` (SCRIPT relative to the repository) as a user would; returns the
    CompletedProcess (text, both streams)."""
    full_env = dict(os.environ)
    full_env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    full_env.update(env or {})
    return subprocess.run([sys.executable, os.path.join(REPO, script)] + [str(a) for a in args],
                          cwd=cwd or REPO, env=full_env, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)


def run_main(*args, **kwargs):
    """Runs `python main.py ARGS` as a user would (run_script's keywords)."""
    return run_script('main.py', *args, **kwargs)
