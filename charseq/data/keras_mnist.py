"""Keras' `mnist.npz` (what `keras.datasets.mnist.load_data()` keeps in ~/.keras/datasets/) read as
MNIST's four IDX files, so that `charseq data get mnist --from mnist.npz` caches it like any other
copy, checked against the same SHA-256:

    idx_bytes(archive, "t10k-labels-idx1-ubyte")    # the IDX file's bytes, from y_test.npy

The .npy format is read here by hand (a magic string, a header that is a Python literal, then the
array's bytes), so that `charseq data` still imports no numpy.
"""

from __future__ import annotations

import ast
import zipfile

from charseq.errors import CharseqError

# IDX file -> (the array holding it in the .npz, the IDX magic number: 2051 images, 2049 labels)
ARRAYS = {
    "train-images-idx3-ubyte": ("x_train", 2051),
    "train-labels-idx1-ubyte": ("y_train", 2049),
    "t10k-images-idx3-ubyte": ("x_test", 2051),
    "t10k-labels-idx1-ubyte": ("y_test", 2049),
}
NPY_MAGIC = b"\x93NUMPY"
UINT8 = ("|u1", "<u1", ">u1", "u1", "B", "|B")


def is_keras_mnist(archive: zipfile.ZipFile) -> bool:
    return {f"{array}.npy" for array, _ in ARRAYS.values()} <= set(archive.namelist())


def idx_bytes(archive: zipfile.ZipFile, name: str, where: str) -> bytes:
    """IDX file `name` (train-images-idx3-ubyte, ...) made from its array in Keras' mnist.npz."""
    array, magic = ARRAYS[name]
    shape, data = _uint8_array(archive.read(f"{array}.npy"), f"{where}: {array}")
    header = magic.to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in shape)
    return header + data


def _uint8_array(npy: bytes, where: str) -> tuple[tuple[int, ...], bytes]:
    """(shape, bytes) of a C-ordered uint8 array stored as .npy; a one-line error for anything else."""
    if not npy.startswith(NPY_MAGIC) or len(npy) < 10:
        raise CharseqError(f"{where} is not a .npy array")
    major = npy[6]
    size_bytes = 2 if major == 1 else 4
    start = 8 + size_bytes
    end = start + int.from_bytes(npy[8:start], "little")
    try:
        header = ast.literal_eval(npy[start:end].decode("latin-1"))
        descr, fortran, shape = header["descr"], header["fortran_order"], tuple(header["shape"])
        if not all(type(size) is int and size >= 0 for size in shape):
            raise ValueError(shape)
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError):
        raise CharseqError(f"{where} has a damaged .npy header") from None
    if descr not in UINT8 or fortran:
        what = f"holds {descr} values, not MNIST's bytes (uint8)" if descr not in UINT8 else "is in Fortran order"
        raise CharseqError(f"{where} {what}; classify-mnist --data reads such an .npz as it is")
    size = 1
    for dimension in shape:
        size *= dimension
    data = npy[end:]
    if len(data) != size:
        raise CharseqError(f"{where} is cut off: {len(data):,} bytes for an array of {size:,}")
    return shape, data
