"""The counter's defaults sized to its number of lines."""

import math

from charseq.sizing import Sizing, add_stopping, finish


def size_count(lines: int, given: dict) -> Sizing:
    rule = dict(cell="lstm", layers=1, units=16, dropout=0.0, batch_size=16, lr=1e-2)
    batch = given.get("batch_size") or rule["batch_size"]
    add_stopping(rule, given, math.ceil(lines / batch), 3, 20)
    return finish(f"{lines:,} lines", rule, given, "{layers}x{units} {cell}, batch {batch_size}")
