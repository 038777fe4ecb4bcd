"""Losses shared by the heads: the masked sequence loss (language model, encoder-decoder) and its report.

>>> report = loss_report(math.log(2))  # one bit per character
>>> round(report["bits_per_char"], 6), round(report["perplexity"], 6)
(1.0, 2.0)
"""

from __future__ import annotations

import math


def sequence_loss(targets, logits, weights=None):
    """Mean cross-entropy in nats over the positions whose weight is non-zero.

    The modern form of TF1's `sequence_loss`: padding (or anything else the caller wants to
    leave out) gets weight 0. Returns (mean loss, summed loss, summed weight).
    """
    import tensorflow as tf

    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
    if weights is None:
        weights = tf.ones_like(ce)
    total = tf.reduce_sum(ce * weights)
    count = tf.reduce_sum(weights)
    return total / tf.maximum(count, 1.0), total, count


def loss_report(loss_nats: float) -> dict:
    """A loss in nats per character, also as bits per character and perplexity."""
    return {"loss_nats": loss_nats, "bits_per_char": loss_nats / math.log(2),
            "perplexity": math.exp(min(loss_nats, 700.0))}
