"""Class probabilities from a trained classifier, in batches (texts sorted by length so padding stays small)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from charseq.data.batching import pad_batch


def predict_probabilities(model, x, max_len: int | None = None, batch_size: int = 256) -> np.ndarray:
    """Class probabilities for images [n, rows, cols] (uint8) or a list of id arrays."""
    images = isinstance(x, np.ndarray) and x.ndim == 3
    order = np.arange(len(x)) if images else np.argsort([len(s) for s in x], kind="stable")
    out = np.zeros((len(x), model.num_classes), np.float32)
    for start in range(0, len(x), batch_size):
        idx = order[start: start + batch_size]
        batch = (tf.constant(x[idx].astype(np.float32) / 255.0) if images
                 else tf.constant(pad_batch([x[i] for i in idx], max_len)))
        out[idx] = model.probabilities(batch).numpy()
    return out
