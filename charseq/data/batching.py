"""Batches of variable-length sequences, and the hold-out split, shared by the heads that read
texts and pairs (the classifier, the encoder-decoder).

>>> pad_batch([np.array([5, 6, 7]), np.array([8])])
array([[5, 6, 7],
       [8, 0, 0]], dtype=int32)
>>> train, val = hold_out(10, 0.2, seed=0)
>>> len(train), len(val), sorted([*train, *val]) == list(range(10))
(8, 2, True)
"""

from __future__ import annotations

import numpy as np

from charseq.errors import CharseqError
from charseq.limits import check_number
from charseq.files import check_readable_file


def pad_batch(sequences: list[np.ndarray], max_len: int | None = None) -> np.ndarray:
    """Right-pad id sequences with 0 to the longest in the batch (cut at `max_len`)."""
    longest = max(len(s) for s in sequences)
    if max_len:
        longest = min(longest, max_len)
    out = np.zeros((len(sequences), max(1, longest)), np.int32)
    for i, s in enumerate(sequences):
        s = s[:longest]
        out[i, : len(s)] = s
    return out


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                     pool_batches: int = 50) -> list[np.ndarray]:
    """One epoch of batches of indices in which texts have similar lengths.

    Shuffle, cut into pools of `pool_batches` batches, sort each pool by length, cut it into
    batches, shuffle the batches: padding stays small and every epoch differs.
    """
    order = rng.permutation(len(lengths))
    batches = []
    pool = batch_size * pool_batches
    for start in range(0, len(order), pool):
        chunk = order[start: start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i: i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def check_split(train_file, val, val_fraction: float, what: str) -> None:
    """Before anything is read: the training file (described by `what`) and the validation file, if
    one is given, can be read, and the fraction held out without one is in (0, 1)."""
    if train_file is None:
        raise CharseqError(f"give a training file {what}")
    check_readable_file(train_file, "training file")
    if val is not None:
        check_readable_file(val, "validation file")
    check_number("val_fraction", val_fraction)


def hold_out(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, validation indices) of `n` examples: a seeded shuffle, the first
    `fraction` of it (at least one) held out for validation."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * fraction)))
    return order[n_val:], order[:n_val]


def pick(items: list, indices) -> list:
    """The items at `indices`, in that order."""
    return [items[i] for i in indices]
