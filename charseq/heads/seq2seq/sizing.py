"""The encoder-decoder's defaults sized to its number of training pairs (the shared parts:
charseq.sizing). Plain Python, no TensorFlow."""

from __future__ import annotations

import math

from charseq.sizing import Sizing, add_stopping, clamp, finish


def size_seq2seq(pairs: int, given: dict) -> Sizing:
    """An encoder-decoder's defaults from its number of training pairs."""
    if pairs < 20_000:
        size, rule = "small", dict(layers=1, units=256, dropout=0.2, batch_size=32, lr=3e-3)
    else:
        size, rule = "large", dict(layers=1, units=256, dropout=0.0, batch_size=128, lr=3e-3)
    rule["cell"] = "lstm"
    batch = given.get("batch_size") or rule["batch_size"]
    steps_per_epoch = math.ceil(pairs / batch)
    add_stopping(rule, given, steps_per_epoch, 5, round(clamp(2e6 / max(1, pairs), 10, 100)))
    return finish(f"{size} data set ({pairs:,} pairs)", rule, given,
                   "{layers}x{units} {cell} encoder-decoder, batch {batch_size}")
