"""The compiled dropout op (charseq.compiled_dropout), as the backbone uses it in training on the
compiled kernels: Keras' Dropout in what it keeps and how it scales, masks that follow the seed
and look independent, and a gradient that is the same mask applied to the incoming gradient."""

import numpy as np
import pytest
import tensorflow as tf

from charseq import kernels

pytestmark = pytest.mark.skipif(not kernels.available(), reason="the kernel could not be built here")

SHAPE = (32, 100, 257)  # 822,400 elements: the last group of random bits partial


def dropout(x, rate, seed):
    from charseq.compiled_dropout import compiled_dropout

    return compiled_dropout(x, rate, tf.constant(seed, tf.int64))


@pytest.mark.parametrize("rate", [0.1, 0.5])
@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_keeps_one_minus_rate_and_scales_what_it_keeps(rate, dtype):
    x = tf.cast(tf.random.stateless_normal(SHAPE, [1, 2]) + 3.0, dtype)  # no zeros of its own
    y = dropout(x, rate, [4, 0]).numpy().astype(np.float32)
    kept = y != 0
    n = kept.size
    assert abs(kept.mean() - (1 - rate)) < 4 * np.sqrt(rate * (1 - rate) / n)
    scale = np.float32(1) / (np.float32(1) - np.float32(rate))  # x * (1 / (1 - rate)), as TensorFlow's dropout
    expected = tf.cast(tf.cast(x, tf.float32) * scale, dtype).numpy().astype(np.float32)  # rounded once
    np.testing.assert_array_equal(y[kept], expected[kept])
    # Every position of the 16-bit draws within a 64-bit one keeps its share (mask bits, not a stripe).
    by_part = kept.reshape(-1)[: n // 4 * 4].reshape(-1, 4).mean(axis=0)
    assert np.all(np.abs(by_part - (1 - rate)) < 4 * np.sqrt(rate * (1 - rate) / (n // 4)))


def test_the_same_seed_gives_the_same_mask_and_the_next_seed_an_independent_one():
    x = tf.ones(SHAPE)
    first = dropout(x, 0.5, [7, 3]).numpy() != 0
    assert np.array_equal(first, dropout(x, 0.5, [7, 3]).numpy() != 0)
    for seed in ([7, 4], [8, 3]):  # Keras' seed generators count up the second number
        other = dropout(x, 0.5, seed).numpy() != 0
        assert abs((first == other).mean() - 0.5) < 4 * np.sqrt(0.25 / first.size)
    # Neighbours are not correlated (along the units, and from one step to the next).
    flat = first.astype(np.float32) - 0.5
    for along in (2, 1):
        neighbours = np.mean(np.take(flat, range(1, flat.shape[along]), along) * np.take(flat, range(flat.shape[along] - 1), along))
        assert abs(neighbours) < 4 * 0.25 / np.sqrt(flat.size)


def test_the_gradient_is_the_mask_on_the_incoming_gradient():
    x = tf.random.stateless_normal((8, 30, 65), [3, 4])
    weights = tf.random.stateless_normal((8, 30, 65), [5, 6])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = dropout(x, 0.25, [9, 9])
        loss = tf.reduce_sum(y * weights)
    grad = tape.gradient(loss, x).numpy()
    mask = (y.numpy() != 0) / 0.75
    np.testing.assert_allclose(grad, weights.numpy() * mask, rtol=1e-6)


def test_a_rate_out_of_range_is_refused():
    with pytest.raises(tf.errors.InvalidArgumentError, match="rate must be in"):
        dropout(tf.ones([4]), 1.0, [1, 1])


def test_the_backbone_drops_with_it_in_training_only():
    from charseq.backbone import RecurrentBackbone

    tf.keras.utils.set_random_seed(0)
    backbone = RecurrentBackbone(cell="lstm", units=32, layers=2, dropout=0.5, vocab_size=20, impl="compiled")
    ids = tf.constant(np.random.default_rng(0).integers(1, 20, (4, 12)))
    inference = backbone(ids, training=False)[0].numpy()
    assert np.count_nonzero(inference == 0) == 0
    first, second = (backbone(ids, training=True)[0].numpy() for _ in range(2))
    assert 0.4 < np.mean(first == 0) < 0.6  # the last layer's output is dropped
    assert not np.array_equal(first == 0, second == 0)  # a new seed each call, from the layer's generator
