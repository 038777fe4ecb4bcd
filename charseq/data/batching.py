"""Batches of variable-length sequences, and the hold-out split, shared by the heads that read
texts and pairs (the classifier, the encoder-decoder).

>>> pad_batch([np.array([5, 6, 7]), np.array([8])])
array([[5, 6, 7],
       [8, 0, 0]], dtype=int32)
>>> train, val = hold_out(10, 0.2, seed=0)
>>> len(train), len(val), sorted([*train, *val]) == list(range(10))
(8, 2, True)
>>> split = split_rows(["a", "b", "a", "c", "d", "a"], [0, 1, 0, 1, 0, 1], 2, seed=0)
>>> sides = [0 if i in split.train else 1 for i in (0, 2, 5)]  # the three copies of "a"
>>> split.duplicates, len(set(sides)), len(split.train) + len(split.val)
(2, 1, 6)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charseq.errors import CharseqError
from charseq.limits import check_val_fraction
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


def check_split(train_file, val, val_fraction: float, what: str, settings: dict) -> None:
    """Before anything is read: the training file (described by `what`) and the validation file, if
    one is given, can be read, and the fraction held out without one is in (0, 1). A fraction the
    user gave (in `settings`) beside a validation file is refused: it would hold out nothing."""
    if train_file is None:
        raise CharseqError(f"give a training file {what}")
    check_readable_file(train_file, "training file")
    if val is not None:
        if settings.get("val_fraction") is not None:
            raise CharseqError("--val-fraction holds out part of the training file for validation, which --val "
                               "replaces: give one of them")
        check_readable_file(val, "validation file")
    check_val_fraction(val_fraction)


def hold_out(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, validation indices) of `n` examples: a seeded shuffle, the first
    `fraction` of it (at least one) held out for validation. The split of runs made before
    `split_rows` (kept so that they resume on the rows they were trained on)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * fraction)))
    return order[n_val:], order[:n_val]


def pick(items: list, indices) -> list:
    """The items at `indices`, in that order."""
    return [items[i] for i in indices]


@dataclass
class Split:
    train: np.ndarray  # row indices, ascending
    val: np.ndarray
    duplicates: int  # rows whose key repeats an earlier row's (kept on the same side as it)


def split_rows(keys: list | None, labels, n_val: int, seed: int) -> Split:
    """Hold out about `n_val` of the rows for validation, seeded, so that nothing leaks across:

    - rows with the same key (a text as the model reads it) fall on the same side, so a
      validation row never has its copy in training (`keys` None: every row is its own);
    - with `labels` (class ids, None for unlabelled rows), the split is stratified: each class
      gives its share of `n_val`, at least one row when it has two groups of rows or more, and
      every label keeps a row in training, so validation never holds a label training lacks.
    """
    n = len(labels) if labels is not None else len(keys)
    if n_val <= 0:
        return Split(np.arange(n), np.zeros(0, np.int64), 0 if keys is None else len(keys) - len(set(keys)))
    if keys is None:
        group = np.arange(n)
    else:
        first: dict = {}
        group = np.array([first.setdefault(k, len(first)) for k in keys], np.int64)
    n_groups = int(group.max()) + 1 if n else 0
    duplicates = n - n_groups
    labels = np.zeros(n, np.int64) if labels is None else np.asarray(labels, np.int64)
    members = [[] for _ in range(n_groups)]
    for i, g in enumerate(group):
        members[g].append(i)
    # A group is stratified by its first row's label; any other labels it holds must stay in training too.
    group_label = labels[[m[0] for m in members]] if n_groups else np.zeros(0, np.int64)
    classes, class_rows = np.unique(labels, return_counts=True)
    quota = n_val * class_rows / max(1, n)
    take = np.floor(quota).astype(np.int64)  # largest remainders: the quotas add up to n_val
    take[np.argsort(-(quota - take), kind="stable")[: max(0, n_val - int(take.sum()))]] += 1
    train_rows = dict(zip(classes.tolist(), class_rows.tolist()))
    order = np.random.default_rng(seed).permutation(n_groups)
    val_groups = []
    for c, want in zip(classes.tolist(), take.tolist()):
        mine = [g for g in order if group_label[g] == c]
        if len(mine) >= 2:
            want = max(1, want)
        taken = 0
        for g in mine:
            if taken >= want:
                break
            rows = labels[members[g]]
            held = dict(zip(*np.unique(rows, return_counts=True)))
            if any(train_rows[int(l)] - k < 1 for l, k in held.items()):
                continue  # it would take the last training row of a label
            for l, k in held.items():
                train_rows[int(l)] -= int(k)
            val_groups.append(g)
            taken += len(members[g])
    in_val = np.zeros(n, bool)
    for g in val_groups:
        in_val[members[g]] = True
    return Split(np.flatnonzero(~in_val), np.flatnonzero(in_val), duplicates)


def validation_split(keys: list, labels, fraction: float, seed: int, grouped: bool = True) -> Split:
    """A run's validation split of its training rows, as training makes it and the studio remakes it:
    `split_rows` holding out `fraction` of the rows (at least one; none for 0), or for a run made
    before that split (`grouped` False) the plain seeded `hold_out` it was trained on."""
    if grouped:
        return split_rows(keys, labels, max(1, int(round(len(keys) * fraction))) if fraction else 0, seed)
    train, val = hold_out(len(keys), fraction, seed)
    return Split(train, val, 0)


def validation_rows(data: dict, seed: int, read, split_by, grouped: bool,
                    shown: str = "its validation examples") -> tuple[list, list]:
    """A trained run's validation rows, from its config's data settings: its --val file, else the rows
    of its training file that `validation_split` holds out. `read(path)` gives the (inputs, outputs)
    columns of a file, `split_by(inputs, outputs)` the (keys, labels) the split goes by; `shown` names
    what is made of the rows, for the error saying the file they come from is gone."""
    path, role = (data["val"], "validated") if data.get("val") else (data["train"], "trained")
    if not Path(path).exists():  # a run keeps no copy of its data: what it shows needs the file where it was
        raise CharseqError(f"{path}, the file this run {role} on, is no longer there (moved or deleted); "
                           f"{shown} come from it: put it back to see them")
    if data.get("val"):
        return read(data["val"])
    inputs, outputs = read(data["train"])
    chosen = validation_split(*split_by(inputs, outputs), data["val_fraction"], seed, grouped=grouped).val
    return pick(inputs, chosen), pick(outputs, chosen)


def shared_texts(train_keys, val_keys) -> int:
    """How many of the validation rows have a key that also occurs in training."""
    seen = set(train_keys)
    return sum(1 for k in val_keys if k in seen)
