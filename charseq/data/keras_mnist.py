"""Keras' `mnist.npz` (what `keras.datasets.mnist.load_data()` keeps in ~/.keras/datasets/) read as
MNIST's four IDX files, so that `charseq data get mnist --from mnist.npz` caches it like any other
copy, checked against the same SHA-256:

    idx_bytes(archive, "t10k-labels-idx1-ubyte")    # the IDX file's bytes, from y_test.npy
    keras_copy()                                    # ~/.keras/datasets/mnist.npz, if Keras left one here

numpy reads the arrays, imported only for such a file, so that the other `charseq data` commands
start without it.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from charseq.errors import CharseqError

# IDX file -> (the array holding it in the .npz, the IDX magic number: 2051 images, 2049 labels)
ARRAYS = {
    "train-images-idx3-ubyte": ("x_train", 2051),
    "train-labels-idx1-ubyte": ("y_train", 2049),
    "t10k-images-idx3-ubyte": ("x_test", 2051),
    "t10k-labels-idx1-ubyte": ("y_test", 2049),
}


def keras_copy() -> Path | None:
    """The mnist.npz that `keras.datasets.mnist.load_data()` left on this machine, if any: in
    $KERAS_HOME/datasets, else ~/.keras/datasets, where Keras keeps it."""
    path = Path(os.environ.get("KERAS_HOME") or Path("~/.keras").expanduser(), "datasets", "mnist.npz")
    return path if path.is_file() else None


def is_keras_mnist(archive: zipfile.ZipFile) -> bool:
    return {f"{array}.npy" for array, _ in ARRAYS.values()} <= set(archive.namelist())


def idx_bytes(archive: zipfile.ZipFile, name: str, where: str) -> bytes:
    """IDX file `name` (train-images-idx3-ubyte, ...) made from its array in Keras' mnist.npz."""
    array, magic = ARRAYS[name]
    shape, data = _uint8_array(archive.read(f"{array}.npy"), f"{where}: {array}")
    header = magic.to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in shape)
    return header + data


def _uint8_array(npy: bytes, where: str) -> tuple[tuple[int, ...], bytes]:
    """(shape, bytes in C order) of a uint8 array stored as .npy; a one-line error for anything else."""
    import numpy as np  # here: the other data commands import no numpy

    try:
        array = np.load(io.BytesIO(npy), allow_pickle=False)
    except (ValueError, OSError, EOFError, SyntaxError, MemoryError):
        raise CharseqError(f"{where} is not a readable .npy array (damaged or cut off)") from None
    if array.dtype != np.uint8:
        raise CharseqError(f"{where} holds {array.dtype.str} values, not MNIST's bytes (uint8); "
                           "classify-mnist --data reads such an .npz as it is")
    return array.shape, np.ascontiguousarray(array).tobytes()
