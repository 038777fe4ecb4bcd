"""--optimizer adam: charseq's Adam (one ResourceApplyAdam per variable; where every gradient is
dense, one CharseqAdam op for all of them, clipping included) trains as Keras' Adam does, with
global-norm clipping and an embedding's row gradients (repeated tokens: Keras' own update), keeps
Keras' variables and their names (checkpoints), and is Keras' own update under a tf.distribute
strategy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from charseq import kernels
from charseq.optimizers import Adam
from charseq.train import TrainConfig, make_optimizer


def _model(dense=False):
    """A token model (an embedding: row gradients), or with `dense` one that reads real-valued
    steps (every gradient dense, as the MNIST-row classifier's)."""
    keras.utils.set_random_seed(3)
    first = [keras.Input((5, 2)), keras.layers.Dense(4)] if dense else [keras.Input((5,), dtype="int32"),
                                                                        keras.layers.Embedding(11, 4)]
    return keras.Sequential([*first, keras.layers.LSTM(6), keras.layers.Dense(3)])


def _train(optimizer, steps=6, dense=False):
    """Weights and optimizer variables after `steps` steps on fixed batches."""
    model = _model(dense)
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x), from_logits=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return grads, loss

    for _ in range(steps):
        x = rng.normal(size=(8, 5, 2)).astype(np.float32) if dense else rng.integers(0, 11, (8, 5))
        batch = tf.constant(x), tf.constant(rng.integers(0, 3, 8))
        grads, _ = step(*batch)
    graph = step.get_concrete_function(*batch).graph
    ops = {op.type for op in graph.get_operations()}
    return [v.numpy() for v in model.weights], [v.numpy() for v in optimizer.variables], grads, ops


@pytest.mark.parametrize("clip", [None, 0.05], ids=["unclipped", "clipped"])
def test_adam_trains_as_keras_adam(clip):
    weights, state, grads, ops = _train(Adam(learning_rate=0.05, global_clipnorm=clip))
    keras_weights, keras_state, _, keras_ops = _train(keras.optimizers.Adam(learning_rate=0.05, global_clipnorm=clip))
    assert "ResourceApplyAdam" in ops and "ResourceApplyAdam" not in keras_ops
    assert isinstance(grads[0], tf.IndexedSlices)  # the embedding's rows, tokens repeated in the batch
    for got, want in zip(weights + state, keras_weights + keras_state):
        # Up to float32 rounding in another order (an update moves a weight by about the rate, 0.05)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert not np.allclose(weights[0], _model().weights[0].numpy())  # it did train


@pytest.mark.skipif(not kernels.available(), reason="the compiled kernels do not build here")
@pytest.mark.parametrize("clip", [None, 0.05, 1e6], ids=["unclipped", "clipped", "under the norm"])
def test_adam_on_dense_gradients_is_one_op_and_trains_as_keras_adam(clip):
    weights, state, grads, ops = _train(Adam(learning_rate=0.05, global_clipnorm=clip), dense=True)
    keras_weights, keras_state, _, _ = _train(keras.optimizers.Adam(learning_rate=0.05, global_clipnorm=clip),
                                              dense=True)
    assert "CharseqAdam" in ops and "ResourceApplyAdam" not in ops
    for got, want in zip(weights + state, keras_weights + keras_state):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert not np.allclose(weights[0], _model(dense=True).weights[0].numpy())


@pytest.mark.skipif(not kernels.available(), reason="the compiled kernels do not build here")
def test_a_read_before_the_one_op_update_keeps_the_value_it_read():
    variable = keras.Variable(np.ones((4, 3), np.float32))
    optimizer = Adam(learning_rate=0.5, global_clipnorm=1.0)
    optimizer.build([variable])

    @tf.function
    def step():
        before = variable.value.read_value()  # a tensor on the variable's buffer, alive past the update
        optimizer.apply([tf.fill((4, 3), 2.0)], [variable])
        return before, variable.value.read_value()

    before, after = step()
    np.testing.assert_array_equal(before.numpy(), np.ones((4, 3)))
    np.testing.assert_allclose(after.numpy(), np.full((4, 3), 0.5), rtol=1e-4)  # a first step moves by about lr


def test_a_nan_gradient_makes_the_clipped_update_nan_as_keras_does():
    result = {}
    for name, optimizer in (("charseq", Adam(learning_rate=0.1, global_clipnorm=1.0)),
                            ("keras", keras.optimizers.Adam(learning_rate=0.1, global_clipnorm=1.0))):
        variables = [keras.Variable(np.ones(3, np.float32)), keras.Variable(np.ones(2, np.float32))]
        optimizer.apply([tf.constant([1.0, np.nan, 0.0]), tf.constant([1.0, 1.0])], variables)
        result[name] = [v.numpy() for v in variables]
    for got, want in zip(result["charseq"], result["keras"]):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(result["charseq"][1]).all()  # the norm is NaN, so every gradient is


def test_make_optimizer_gives_charseq_adam_with_keras_variable_names():
    optimizer = make_optimizer(TrainConfig(optimizer="adam", lr=1e-3, clip_norm=1.0))
    assert isinstance(optimizer, Adam) and optimizer.global_clipnorm == 1.0
    model = _model()
    optimizer.build(model.trainable_variables)
    reference = keras.optimizers.Adam(learning_rate=1e-3)
    reference.build(model.trainable_variables)
    # Below the optimizer's own name (adam, adam_1, ... in one process), as checkpoints name them.
    assert [v.path.split("/", 1)[1] for v in optimizer.variables] == [
        v.path.split("/", 1)[1] for v in reference.variables]


def test_adam_under_a_strategy_is_keras_update():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        optimizer = Adam(learning_rate=0.05)
    assert not optimizer._fused
    assert not Adam(learning_rate=0.05, amsgrad=True)._fused
