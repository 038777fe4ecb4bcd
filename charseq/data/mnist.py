"""MNIST-format image sets for reading row by row: Keras .npz files, IDX files, and the default source.

`load_mnist(path)` reads a Keras-style `.npz` (x_train, y_train, x_test, y_test) or a
directory holding the four IDX files (gzipped or not), so Fashion-MNIST and KMNIST work
unchanged. With no path it reads MNIST from charseq's cache, where `charseq data get mnist`
(charseq.data.datasets) puts it, downloading and verifying it first if it is not there yet.

Images come back as uint8 [n, 28, 28], labels as int64 [n]; the caller scales to [0, 1].
"""

from __future__ import annotations

import gzip
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charseq.errors import CharseqError
from charseq.files import refuse_an_empty_name

IDX_IMAGES, IDX_LABELS = 2051, 2049
IDX_NAMES = {
    "x_train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "y_train": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "x_test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "y_test": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}
IMAGE_SHAPE = (28, 28)  # the classifier's input: 28 steps of 28 pixels
IDX_DIMENSIONS = {IDX_IMAGES: 3, IDX_LABELS: 1}


@dataclass
class ImageSet:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    notes: list = field(default_factory=list)  # what was assumed about the data, said when it is loaded

    def check(self) -> "ImageSet":
        """The set as the classifier reads it (uint8 images [n, 28, 28], int64 class labels [n]),
        or a one-line error naming the file and what is wrong with it."""
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 3:
                raise CharseqError(f"{self.source}: {split} images must be [n, rows, cols], not {list(x.shape)}")
            if tuple(x.shape[1:]) != IMAGE_SHAPE:
                raise CharseqError(f"{self.source}: {split} images are {x.shape[1]}x{x.shape[2]} pixels; charseq "
                                   f"reads MNIST-format images of {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]}")
            if len(x) != len(y):
                raise CharseqError(f"{self.source}: {len(x)} {split} images but {len(y)} labels")
            if len(x) == 0:
                raise CharseqError(f"{self.source}: no {split} images")
            setattr(self, f"x_{split}", self._pixels(x, split))
            setattr(self, f"y_{split}", self._labels(y, split))
        return self

    def _pixels(self, x: np.ndarray, split: str) -> np.ndarray:
        if x.dtype == np.uint8:
            return x
        if x.dtype.kind not in "iuf":
            raise CharseqError(f"{self.source}: {split} images are of type {x.dtype}; pixels must be numbers "
                               "(uint8 0-255, or floats)")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise CharseqError(f"{self.source}: {split} images have NaN or infinite pixels")
        low, high = x.min(), x.max()
        if x.dtype.kind == "f" and low >= 0 and high <= 1:  # already scaled to [0, 1]: read them as such
            self.notes.append(f"{split} pixels are in [0, 1] and are read as such")
            return np.round(x * 255).astype(np.uint8)
        if low < 0 or high > 255:
            raise CharseqError(f"{self.source}: {split} pixels range from {low} to {high}; they must be in "
                               "0-255 (or floats in [0, 1])")
        return np.round(x).astype(np.uint8)

    def _labels(self, y: np.ndarray, split: str) -> np.ndarray:
        if y.ndim == 2 and y.shape[1] > 1 and np.isin(y, (0, 1)).all():
            raise CharseqError(f"{self.source}: {split} labels are one-hot ({list(y.shape)}); give class numbers "
                               "[n] (argmax of each row)")
        if y.ndim != 1:
            raise CharseqError(f"{self.source}: {split} labels must be [n] class numbers, not {list(y.shape)}")
        if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all()):
            raise CharseqError(f"{self.source}: {split} labels are of type {y.dtype}; they must be whole class numbers")
        return y.astype(np.int64)


# ----------------------------------------------------------------------------- IDX
def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """One IDX file (big-endian header: magic, dimension sizes; then unsigned bytes)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise CharseqError(f"cannot read {path}: {e}") from None
    if len(data) < 8:
        raise CharseqError(f"{path} is truncated (no IDX header)")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        kind = "images" if expected_magic == IDX_IMAGES else "labels"
        raise CharseqError(f"{path} is not an IDX {kind} file (magic number {magic}, expected {expected_magic})")
    ndim = data[3]
    if ndim != IDX_DIMENSIONS[expected_magic] or len(data) < 4 + 4 * ndim:
        raise CharseqError(f"{path} has an IDX header of {ndim} dimensions, expected {IDX_DIMENSIONS[expected_magic]}")
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    size = math.prod(shape)  # Python integers: a damaged header cannot overflow
    if len(data) - offset < size:
        raise CharseqError(f"{path} is truncated or its header is damaged: {len(data) - offset:,} bytes of data, "
                           f"the header ({' x '.join(map(str, shape))}) says {size:,}")
    return np.frombuffer(data, np.uint8, count=size, offset=offset).reshape(shape)


def _find_idx(directory: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        for candidate in (directory / name, directory / (name + ".gz")):
            if candidate.exists():
                return candidate
    raise CharseqError(f"{directory} has no {names[0]} file (.gz or raw); an MNIST directory holds the four "
                       "IDX files train-images, train-labels, t10k-images, t10k-labels")


def load_idx_directory(directory: Path) -> ImageSet:
    arrays = {}
    for key, names in IDX_NAMES.items():
        arrays[key] = read_idx(_find_idx(directory, names), IDX_IMAGES if key.startswith("x") else IDX_LABELS)
    return ImageSet(**arrays, source=str(directory)).check()


# ----------------------------------------------------------------------------- npz
def load_npz(path: Path) -> ImageSet:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f.files]
            if missing:
                raise CharseqError(f"{path} lacks {', '.join(missing)}; a Keras-style MNIST .npz has "
                                   "x_train, y_train, x_test, y_test")
            arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except ValueError as e:
        if "pickle" in str(e) and zipfile.is_zipfile(path):
            raise CharseqError(f"{path} holds Python objects, not plain arrays; charseq never loads pickles "
                               "(save the arrays with numpy.savez)") from None
        raise CharseqError(f"cannot read {path}: it is not an .npz file (numpy.savez's zip of arrays)") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise CharseqError(f"cannot read {path}: it is not an .npz file (numpy.savez's zip of arrays): "
                           f"{type(e).__name__}") from None
    return ImageSet(**arrays, source=str(path)).check()


# ----------------------------------------------------------------------------- default
def load_default_mnist(log=print) -> ImageSet:
    """MNIST from charseq's cache, downloaded and verified first if it is not there
    (charseq.data.datasets, like keras.datasets.mnist.load_data)."""
    from charseq.data.datasets import get_dataset

    try:
        folder = get_dataset("mnist", log=log)
    except CharseqError as e:
        raise CharseqError(e.message, *e.remedies, "--data with an .npz or IDX directory") from None
    images = load_idx_directory(folder)
    images.source = f"MNIST ({folder})"
    return images


def load_mnist(path: str | Path | None = None, log=print) -> ImageSet:
    """An MNIST-format set from an .npz, an IDX directory, or (no path) charseq's cached MNIST."""
    if path is None:
        return load_default_mnist(log)
    refuse_an_empty_name(path, "MNIST data")  # else read as the current folder
    path = Path(path)
    if not path.exists():
        raise CharseqError(f"{path} does not exist")  # given as classify-mnist --data or evaluate's FILE
    return load_idx_directory(path) if path.is_dir() else load_npz(path)
