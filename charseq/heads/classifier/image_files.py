"""Image files (PNG, JPEG, GIF or BMP) as the pixels an image classifier reads: one grey level
0-255 per pixel, rows top to bottom, as MNIST stores its digits.

TensorFlow decodes them, so no image library is needed. A colour image is read in grey levels and
transparency is dropped; nothing is resized or inverted: the model reads what it was trained on
(MNIST: a light digit on a black background, 28x28), and a picture of another size or a dark digit
on white paper would get a confident label for pixels it never saw. The size is checked; a light
background is only said, in a warning: a data set of the user's own may draw dark on light.
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
        # Three channels, which every format decodes to (GIF and BMP refuse one); an animation's first frame.
        rgb = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    except tf.errors.OpError:
        raise CharseqError(f"{file} is not an image file charseq reads ({FORMATS})") from None
    image = np.rint(rgb.astype(np.float32) @ LUMA).clip(0, 255).astype(np.uint8)
    if image.shape != tuple(shape):
        raise CharseqError(f"{file} is {image.shape[1]}x{image.shape[0]} pixels; the model reads images of "
                           f"{shape[1]}x{shape[0]}, as it was trained on (resize it first)")
    return image


def light_background(image: np.ndarray) -> bool:
    """Whether the outer FRAME pixels of `image` (grey levels 0-255, [rows, cols]) are light on average."""
    inside = np.zeros(image.shape, bool)
    inside[FRAME:-FRAME, FRAME:-FRAME] = True
    return bool(image[~inside].mean() > 127.5)
