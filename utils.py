"""Small pure helpers: latents, dynamic ranges, sample grids, image and GIF files."""
import math
import os

import numpy as np
from PIL import Image

Z_DISTS = ('uniform_signed', 'uniform_unsigned', 'normal01')

def latents(rng, n, z_dim, z_dist):
    """Latent vectors [n, z_dim] float32 from --z_dist, drawn with a numpy RandomState."""
    if z_dist == 'normal01':
        return rng.normal(0.0, 1.0, size=(n, z_dim)).astype(np.float32)
    low = -1.0 if z_dist == 'uniform_signed' else 0.0
    return rng.uniform(low, 1.0, size=(n, z_dim)).astype(np.float32)


def one_hot(labels, depth=10):
    """float32 one-hot rows of integer labels."""
    return np.eye(depth, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


def to_uint8(images, value_range):
    """Float images in value_range (e.g. (-1, 1) or (0, 1)) to uint8 [0, 255], clipped."""
    low, high = value_range
    scaled = (np.asarray(images, np.float32) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def grid_shape(n):
    """(rows, cols) for n images: the most square exact factorisation, or a near-square grid with blank
    cells when n has no factorisation at most 2.5 times as wide as it is tall."""
    rows = int(math.floor(math.sqrt(n)))
    while rows > 1 and n % rows:
        rows -= 1
    cols = n // rows
    if cols > 2.5 * rows:
        cols = int(math.ceil(math.sqrt(n)))
        rows = int(math.ceil(n / float(cols)))
    return rows, cols


def make_grid(images, rows=None, cols=None):
    """uint8 images [N, H, W, C] laid out row by row in a [rows*H, cols*W, C] grid (blank cells black)."""
    images = np.asarray(images)
    n, height, width, channels = images.shape
    if rows is None or cols is None:
        rows, cols = grid_shape(n)
    grid = np.zeros((rows * height, cols * width, channels), dtype=images.dtype)
    for i in range(min(n, rows * cols)):
        r, c = divmod(i, cols)
        grid[r * height:(r + 1) * height, c * width:(c + 1) * width] = images[i]
    return grid


def _pil(array):
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array)


def save_image(path, array):
    """Writes a uint8 image [H, W] or [H, W, C] as PNG, atomically (readers never see half a file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + '.tmp'
    _pil(array).save(tmp, format='PNG')
    os.replace(tmp, path)


def save_gif(path, frames, duration=0.1):
    """Writes uint8 frames [T, H, W, C] as a looping GIF with imageio, atomically."""
    import imageio
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    frames = [f[..., 0] if f.shape[-1] == 1 else f for f in np.asarray(frames)]
    tmp = path + '.tmp.gif'
    imageio.mimsave(tmp, frames, duration=duration, loop=0)
    os.replace(tmp, path)


def class_rows_labels(n_classes, cols):
    """Labels for a grid with one class per row: [0]*cols + [1]*cols + ...; n_classes*cols labels."""
    return np.repeat(np.arange(n_classes), cols)
