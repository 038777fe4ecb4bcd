"""Dropout computed by a compiled CPU op: Keras' Dropout, with its seeds, at the cost of a copy.

    y = compiled_dropout(x, rate, layer.seed_generator.next())

Each element is kept with probability 1 - rate (to within 2^-17) and scaled by 1 / (1 - rate), as
`keras.layers.Dropout` does; its mask is drawn by the op (`charseq/kernels/dropout.cc`) from the
seed and the element's index alone, so the same seed gives the same mask whatever the threads, and
the gradient is the same op applied to the incoming gradient, with no mask kept in between. The
masks differ from those of TensorFlow's stateless dropout for the same seed; the seeds themselves
come from the layer's seed generator as Keras draws them, so a run's masks follow its --seed and
continue where they were on resume.
"""

from __future__ import annotations

import tensorflow as tf

from charseq import kernels


def compiled_dropout(x, rate: float, seed):
    """`x` (float32 or bfloat16) with each element zeroed with probability `rate` and the rest
    scaled by 1 / (1 - rate); `seed` [2] integers."""
    ops = kernels.load()
    seed = tf.cast(seed, tf.int64)

    @tf.custom_gradient
    def run(x):
        def backward(dy):
            return ops.charseq_dropout(dy, seed, rate=rate)
        return ops.charseq_dropout(x, seed, rate=rate), backward

    return run(x)
