"""The compiled step ops of generation (charseq/kernels/step.cc, charseq/compiled_step.py) against
Keras' LSTMCell and GRUCell: one step of a stacked backbone from random states, in float32 and
with the bfloat16 products (native AVX512-BF16 and the portable emulation); the fallback to Keras'
step where the ops do not run; refused inputs."""

import os

import numpy as np
import pytest
import tensorflow as tf

from charseq import compiled_step, kernels
from charseq.backbone import RecurrentBackbone, portable_graph

pytestmark = pytest.mark.skipif(not kernels.available() and os.environ.get("CHARSEQ_TEST_FRESH_BUILD") != "1",
                                reason="the kernel could not be built here")

# bfloat16 keeps 8 significant bits of each product operand; one step's states stay within 2% of
# the values' scale of float32's (measured: under 0.5%).
BF16_TOLERANCE = 2e-2
NO_NATIVE_BF16 = "this CPU has no AVX512-BF16: 'bfloat16' packs float32 panels and runs the emulation"


def _backbone(cell, units, layers, vocab_size=11, features=None):
    backbone = RecurrentBackbone(cell=cell, units=units, layers=layers, vocab_size=vocab_size, embedding_dim=5,
                                 impl="compiled")
    inputs = (tf.zeros([2, 3], tf.int32) if vocab_size else tf.zeros([2, 3, features]))
    backbone(inputs)  # builds the weights
    return backbone


def _random_states(backbone, batch, seed=1):
    rng = np.random.default_rng(seed)
    return [[tf.constant(rng.normal(0, 0.7, (batch, backbone.units)).astype(np.float32))
             for _ in range(backbone.states_per_layer)] for _ in range(backbone.num_layers)]


def _compare(backbone, inputs, states, recurrence, tolerance):
    want_x, want = backbone.step(inputs, states)
    packed = compiled_step.pack(backbone, recurrence)
    assert packed is not None
    got_x, got = compiled_step.stepper(backbone, packed, recurrence)(inputs, states)
    for g, w in zip([got_x, *tf.nest.flatten(got)], [want_x, *tf.nest.flatten(want)]):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=0, atol=tolerance)
    return got_x, got


@pytest.mark.parametrize("cell", ["lstm", "gru"])
# (24, 130, 2): the second layer's step is large enough to be split over the op's threads; (1, 260, 2):
# one row, split for the size of its weights (over 512 KB a layer).
@pytest.mark.parametrize("batch,units,layers", [(1, 5, 1), (7, 17, 2), (13, 33, 3), (32, 64, 2), (24, 130, 2),
                                                (1, 260, 2)])
def test_step_equals_keras_cell_float32(cell, batch, units, layers):
    backbone = _backbone(cell, units, layers)
    ids = tf.constant(np.random.default_rng(0).integers(0, 11, batch), tf.int32)
    _compare(backbone, ids, _random_states(backbone, batch), "float32", 1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_step_reads_vectors_too(cell):
    """A backbone over real-valued inputs (no table): the first layer's x W in the op as well."""
    backbone = _backbone(cell, 19, 2, vocab_size=None, features=6)
    x = tf.constant(np.random.default_rng(2).normal(size=(5, 6)).astype(np.float32))
    _compare(backbone, x, _random_states(backbone, 5), "float32", 1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("recurrence", ["bfloat16_emulated",
                                        pytest.param("bfloat16", marks=pytest.mark.skipif(
                                            not kernels.native_bf16(), reason=NO_NATIVE_BF16))])
def test_step_in_bfloat16_is_close_to_keras_cell(cell, recurrence):
    backbone = _backbone(cell, 33, 2)
    ids = tf.constant(np.arange(9) % 11, tf.int32)
    _compare(backbone, ids, _random_states(backbone, 9), recurrence, BF16_TOLERANCE)


@pytest.mark.skipif(not kernels.native_bf16(), reason=NO_NATIVE_BF16)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_native_bfloat16_equals_the_emulation(cell):
    """The same rounded operands: the two paths differ only in the order of the float32 sums."""
    backbone = _backbone(cell, 40, 2)
    ids, states = tf.constant([1, 4, 9], tf.int32), _random_states(backbone, 3)
    results = [compiled_step.stepper(backbone, compiled_step.pack(backbone, r), r)(ids, states)
               for r in ("bfloat16", "bfloat16_emulated")]
    assert compiled_step.pack(backbone, "bfloat16")[0][2].dtype == tf.bfloat16
    for a, b in zip(*(tf.nest.flatten(r) for r in results)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-4)


def test_steps_carry_the_state_as_keras_does():
    """Fifty steps fed back into each other stay on Keras' trajectory, inside a compiled function."""
    backbone = _backbone("lstm", 24, 2)
    packed = compiled_step.pack(backbone)
    step = compiled_step.stepper(backbone, packed)

    @tf.function
    def run(step_fn, states):
        for t in range(50):
            _, states = step_fn(tf.fill([4], t % 11), states)
        return states

    states = _random_states(backbone, 4)
    for g, w in zip(tf.nest.flatten(run(step, states)), tf.nest.flatten(run(backbone.step, states))):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=0, atol=1e-5)


def test_bfloat16_policy_keeps_the_states_dtype():
    """Under mixed_bfloat16 the states come back in bfloat16, as Keras' cell gives them."""
    backbone = RecurrentBackbone(cell="lstm", units=16, layers=2, vocab_size=7, embedding_dim=4,
                                 dtype="mixed_bfloat16")
    _, states = backbone(tf.zeros([3, 2], tf.int32))
    if not backbone.use_compiled:
        pytest.skip("this CPU runs bfloat16 models on Keras' layers (no AVX512-BF16)")
    x, new = compiled_step.stepper(backbone, compiled_step.pack(backbone))(tf.constant([1, 2, 3]), states)
    want_x, _ = backbone.step(tf.constant([1, 2, 3]), states)
    assert x.dtype == tf.bfloat16 and all(s.dtype == tf.bfloat16 for s in tf.nest.flatten(new))
    np.testing.assert_allclose(tf.cast(x, tf.float32).numpy(), tf.cast(want_x, tf.float32).numpy(), atol=5e-2)


def test_falls_back_to_keras_step_where_the_ops_do_not_run():
    keras_backbone = RecurrentBackbone(cell="lstm", units=8, layers=1, vocab_size=5, impl="keras")
    keras_backbone(tf.zeros([1, 2], tf.int32))
    assert compiled_step.pack(keras_backbone) is None
    assert compiled_step.stepper(keras_backbone, None) == keras_backbone.step
    rnn = RecurrentBackbone(cell="rnn", units=8, layers=1, vocab_size=5)
    rnn(tf.zeros([1, 2], tf.int32))
    assert compiled_step.pack(rnn) is None
    backbone = _backbone("gru", 8, 1)
    with portable_graph():  # an exported graph uses TensorFlow's own ops only
        assert compiled_step.pack(backbone) is None
    unbuilt = RecurrentBackbone(cell="lstm", units=8, layers=1, vocab_size=5, impl="compiled")
    assert compiled_step.pack(unbuilt) is None


def test_refuses_panels_that_do_not_fit():
    ops = kernels.load()
    u = 8
    recurrent = ops.charseq_pack_weights(tf.ones([u, 4 * u]), gates=4)
    h = tf.zeros([2, u])
    with pytest.raises(tf.errors.InvalidArgumentError, match="packed recurrent kernel does not fit"):
        ops.charseq_lstm_step(tf.zeros([0, 0]), tf.zeros([0]), tf.zeros([2, 4 * u]),
                              recurrent[:-1], h, h)
    with pytest.raises(tf.errors.InvalidArgumentError, match="xproj must be"):
        ops.charseq_lstm_step(tf.zeros([0, 0]), tf.zeros([0]), tf.zeros([2, 3 * u]), recurrent, h, h)
    with pytest.raises(tf.errors.InvalidArgumentError, match="weights must be"):
        ops.charseq_pack_weights(tf.ones([u, 4 * u + 1]), gates=4)


@pytest.mark.parametrize("batch,depth,outputs", [(1, 256, 69), (32, 48, 17), (5, 3, 40), (37, 64, 70)])
def test_output_layer_op_equals_a_dense_layer(batch, depth, outputs):
    """The sampler's output layer as one op: x K + b, the extra bias (the banned symbols' -inf) folded in."""
    import keras

    layer = keras.layers.Dense(outputs)
    x = tf.constant(np.random.default_rng(3).normal(size=(batch, depth)).astype(np.float32))
    want = layer(x).numpy()
    banned = np.zeros(outputs, np.float32)
    banned[:2] = -np.inf
    got = compiled_step.dense(compiled_step.pack_dense(layer, tf.constant(banned)), x).numpy()
    np.testing.assert_allclose(got[:, 2:], want[:, 2:], rtol=0, atol=1e-5)
    assert np.all(got[:, :2] == -np.inf)
    ops = kernels.load()
    with pytest.raises(tf.errors.InvalidArgumentError, match="packed kernel does not fit"):
        ops.charseq_dense(x, ops.charseq_pack_weights(tf.ones([depth + 1, outputs]), gates=1), tf.zeros([outputs]))
