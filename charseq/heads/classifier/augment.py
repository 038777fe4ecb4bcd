"""Images moved, turned, scaled and bent for training, in two halves: what is random is drawn in
numpy from the step's generator (so that a batch stays a pure function of seed and step), and the
pixels are resampled by TensorFlow ops inside the compiled training step, on every core, rather
than in numpy on one core before each step.

A distortion is the inverse map from each output pixel to where it reads in the input, about the
image's centre: a rotation and scaling (cos/scale, sin/scale), a shift (dy, dx) and optionally an
elastic field; pixels are read with bilinear interpolation, zeros outside the image.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

ELASTIC_GRID = 4  # control points per side of an elastic field: a wavelength of about 9 pixels on 28


def draw_shifts(n: int, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """[n, 4] distortions that only move each image by whole pixels, up to `max_shift` in each
    direction (zeros fill the border)."""
    dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
    return np.stack([np.ones(n), np.zeros(n), max_shift - dy, max_shift - dx], axis=1).astype(np.float32)


def draw_distortions(n: int, max_shift: float, max_degrees: float, max_scale: float,
                     rng: np.random.Generator, elastic: float = 0.0) -> tuple[np.ndarray, np.ndarray | None]:
    """For each of `n` images: a turn by up to `max_degrees`, a scaling by a factor within
    1 ± `max_scale` and a shift by up to `max_shift` pixels, the small affine distortions that
    Simard et al. (2003) found to help on MNIST beyond shifts alone, as [n, 4] distortions. With
    `elastic`, also Simard's elastic distortion: displacements of standard deviation `elastic`
    pixels at a 4x4 grid of control points, [n, 2, 4, 4] (interpolated linearly in between, a cheap
    stand-in for his Gaussian-smoothed noise); else None."""
    angle = np.deg2rad(rng.uniform(-max_degrees, max_degrees, n)).astype(np.float32)
    scale = rng.uniform(1 - max_scale, 1 + max_scale, n).astype(np.float32)
    dy, dx = rng.uniform(-max_shift, max_shift, (2, n)).astype(np.float32)
    distortions = np.stack([np.cos(angle) / scale, np.sin(angle) / scale, dy, dx], axis=1)
    # Drawn last, so that the affine draws of runs without it stay as they were.
    if not elastic:
        return distortions, None
    field = rng.normal(0, elastic, (2, n, ELASTIC_GRID, ELASTIC_GRID)).astype(np.float32)
    return distortions, np.ascontiguousarray(field.transpose(1, 0, 2, 3))  # rows first, as a batch is split


def _hat_weights(points: int, size: int) -> np.ndarray:
    """[size, points]: linear interpolation from `points` evenly spaced over `size` pixels to each pixel."""
    spacing = (size - 1) / (points - 1)
    return np.maximum(0, 1 - np.abs(np.arange(size)[:, None] - np.arange(points)[None] * spacing) / spacing,
                      dtype=np.float32)


def distort(images, distortions, field=None) -> tf.Tensor:
    """`images` [n, rows, cols] (pixel values, any dtype) resampled by `distortions` [n, 4] and the
    elastic `field` [n, 2, 4, 4] (or None): float32 [n, rows, cols] on the same scale."""
    images = tf.convert_to_tensor(images)
    rows, cols = images.shape[1], images.shape[2]
    n = tf.shape(images)[0]
    cos, sin, dy, dx = (d[:, None, None] for d in tf.unstack(tf.convert_to_tensor(distortions, tf.float32), axis=1))
    cy, cx = (rows - 1) / 2, (cols - 1) / 2
    y = tf.range(rows, dtype=tf.float32)[None, :, None] - cy - dy  # [n, rows, 1]: about the centre
    x = tf.range(cols, dtype=tf.float32)[None, None, :] - cx - dx  # [n, 1, cols]
    # Source coordinates in the image framed by zeros (one pixel before, two after, so that the four
    # neighbours of a clipped coordinate exist): a source outside the image reads 0.
    src_y, src_x = cos * y - sin * x + (cy + 1), sin * y + cos * x + (cx + 1)
    if field is not None:
        field = tf.convert_to_tensor(field, tf.float32)
        down, across = tf.constant(_hat_weights(ELASTIC_GRID, rows)), tf.constant(_hat_weights(ELASTIC_GRID, cols))
        src_y = src_y + tf.einsum("rp,npq,cq->nrc", down, field[:, 0], across)
        src_x = src_x + tf.einsum("rp,npq,cq->nrc", down, field[:, 1], across)
    src_y = tf.clip_by_value(src_y, 0.0, rows + 1.0)
    src_x = tf.clip_by_value(src_x, 0.0, cols + 1.0)
    y0, x0 = tf.floor(src_y), tf.floor(src_x)
    fy, fx = src_y - y0, src_x - x0
    width = cols + 3
    framed = tf.reshape(tf.pad(tf.cast(images, tf.float32), [[0, 0], [1, 2], [1, 2]]), [-1])
    corner = (tf.cast(y0, tf.int32) * width + tf.cast(x0, tf.int32)
              + (tf.range(n) * (rows + 3) * width)[:, None, None])  # the top-left of the four neighbours
    top = (1 - fx) * tf.gather(framed, corner) + fx * tf.gather(framed, corner + 1)
    bottom = (1 - fx) * tf.gather(framed, corner + width) + fx * tf.gather(framed, corner + width + 1)
    return (1 - fy) * top + fy * bottom
