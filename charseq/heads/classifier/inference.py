"""Class probabilities from a trained classifier, in batches (texts sorted by length so padding stays small)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from charseq.data.batching import pad_batch

# Padded steps of a batch of texts times the floats each step carries through the backbone: a batch
# of 256 texts of 22,000 characters (a 32-unit model) held 9 GB at once; this bound keeps a batch
# of long texts near 1 GB, and leaves batches of short texts at `batch_size`.
MAX_BATCH_FLOATS = 1 << 26


def _text_batches(order: np.ndarray, lengths: list[int], batch_size: int, width: int):
    """`order` (texts by increasing length) cut into batches of at most `batch_size` texts and,
    beyond one text, `MAX_BATCH_FLOATS` padded floats."""
    start = 0
    while start < len(order):
        end = start + 1
        while (end < len(order) and end - start < batch_size
               and (end - start + 1) * lengths[order[end]] * width <= MAX_BATCH_FLOATS):
            end += 1
        yield order[start:end]
        start = end


def predict_probabilities(model, x, max_len: int | None = None, batch_size: int = 256) -> np.ndarray:
    """Class probabilities for images [n, rows, cols] (uint8) or a list of id arrays."""
    images = isinstance(x, np.ndarray) and x.ndim == 3
    out = np.zeros((len(x), model.num_classes), np.float32)
    if images:
        batches = (np.arange(start, min(start + batch_size, len(x))) for start in range(0, len(x), batch_size))
    else:
        lengths = [min(len(s), max_len) if max_len else len(s) for s in x]
        b = model.backbone
        width = b.units * b.num_layers * (2 if b.bidirectional else 1) + (b.embedding_dim or 0)
        batches = _text_batches(np.argsort(lengths, kind="stable"), lengths, batch_size, width)
    for idx in batches:
        batch = (tf.constant(x[idx].astype(np.float32) / 255.0) if images
                 else tf.constant(pad_batch([x[i] for i in idx], max_len)))
        out[idx] = model.probabilities(batch).numpy()
    return out
