"""Image files (PNG, JPEG, GIF or BMP) as the pixels an image classifier reads: one grey level
0-255 per pixel, rows top to bottom, as MNIST stores its digits.

TensorFlow decodes them, so no image library is needed. A colour image is read in grey levels. A
digit drawn on a transparent background is read by its opacity, its strokes light on black whatever
their colour; elsewhere transparency is dropped. Nothing is resized or inverted: the model reads
what it was trained on (MNIST: a light digit on a black background, 28x28), and a picture of
another size or a dark digit on white paper would get a confident label for pixels it never saw.
The size is checked; a light background is only said, in a warning: a data set of the user's own
may draw dark on light.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from charseq.errors import CharseqError
from charseq.files import check_readable_file

FORMATS = "PNG, JPEG, GIF or BMP"
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601's weights, as PIL's grey (mode L)
# MNIST fits each digit in the middle 20x20 of black 28x28: a picture whose outer pixels are mostly
# light is a dark digit on paper, which a model trained on MNIST never saw.
FRAME = 2


def read_image(file: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """The grey levels [rows, cols] (uint8) of the image in `file`, which must be `shape` (rows, cols)."""
    path = check_readable_file(file, "image file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CharseqError(f"cannot read the image file {file} ({e.strerror})") from None
    try:
        # The channels the file has (grey or colour, with or without alpha); an animation's first frame.
        pixels = tf.io.decode_image(data, channels=0, expand_animations=False).numpy().astype(np.float32)
    except tf.errors.OpError:
        raise CharseqError(f"{file} is not an image file charseq reads ({FORMATS})") from None
    alpha = pixels[..., -1] if pixels.shape[-1] in (2, 4) else None
    colour = pixels[..., :-1] if alpha is not None else pixels
    grey = colour[..., 0] if colour.shape[-1] == 1 else colour @ LUMA
    if alpha is not None and _frame(alpha).mean() < 127.5:
        # Drawn on a transparent canvas, whose hidden colour is often black, as dark strokes often are:
        # the strokes are where it is opaque, as MNIST's ink is where it is light.
        grey = alpha
    image = np.rint(grey).clip(0, 255).astype(np.uint8)
    if image.shape != tuple(shape):
        raise CharseqError(f"{file} is {image.shape[1]}x{image.shape[0]} pixels; the model reads images of "
                           f"{shape[1]}x{shape[0]}, as it was trained on (resize it first)")
    return image


def _frame(image: np.ndarray) -> np.ndarray:
    """The outer FRAME pixels of `image` [rows, cols]: its background, where MNIST's digits never reach."""
    inside = np.zeros(image.shape, bool)
    inside[FRAME:-FRAME, FRAME:-FRAME] = True
    return image[~inside]


def light_background(image: np.ndarray) -> bool:
    """Whether the outer FRAME pixels of `image` (grey levels 0-255, [rows, cols]) are light on average."""
    return bool(_frame(image).mean() > 127.5)
