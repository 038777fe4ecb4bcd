"""The numpy reference cells, and the backbone's Keras (and fused) cells against them."""

import numpy as np
import pytest
import tensorflow as tf

from charseq import reference
from charseq.backbone import RecurrentBackbone


def test_classic_two_step_example():
    states, outputs = reference.classic_two_step_example()
    np.testing.assert_allclose(states[0], np.tanh([0.6, 0.5]))
    # Second step by hand: tanh(s1 @ W_state + 2 * w_input + b)
    s1 = np.tanh([0.6, 0.5])
    s2 = np.tanh(s1 @ np.array([[0.1, 0.2], [0.3, 0.4]]) + 2 * np.array([0.5, 0.6]) + np.array([0.1, -0.1]))
    np.testing.assert_allclose(states[1], s2)
    np.testing.assert_allclose(outputs[0], s1 @ np.array([[0.1], [0.2]]) + 0.1)
    np.testing.assert_allclose(outputs[1], s2 @ np.array([[0.1], [0.2]]) + 0.1)
    assert outputs[0][0] == pytest.approx(0.2461, abs=1e-4)  # the figures the classic tutorial prints
    assert outputs[1][0] == pytest.approx(0.3627, abs=1e-4)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("impl", ["keras", "fused"])
def test_backbone_matches_numpy_reference(cell, impl):
    """Two stacked layers on real-valued inputs, compared step by step with plain numpy."""
    if impl == "fused" and cell != "lstm":
        pytest.skip("the fused path is LSTM-only")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6, 5)).astype(np.float32)  # batch, time, features
    backbone = RecurrentBackbone(cell=cell, units=4, layers=2, vocab_size=None, embedding_dim=7, impl=impl)
    outputs, states = backbone(x)
    for w in backbone.weights:  # make biases non-trivial too
        w.assign(rng.normal(scale=0.5, size=w.shape).astype(np.float32))
    outputs, states = backbone(x)

    proj = backbone.input_layer
    h = x @ proj.kernel.numpy() + proj.bias.numpy()
    seq = np.transpose(h, (1, 0, 2))
    for layer, layer_states in zip(backbone.rnns, states):
        c = layer.cell
        seq, final = reference.run_sequence(cell, seq, (c.kernel.numpy(), c.recurrent_kernel.numpy(), c.bias.numpy()))
        final = final if cell == "lstm" else (final,)
        for got, want in zip(layer_states, final):
            np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
    np.testing.assert_allclose(outputs.numpy(), np.transpose(seq, (1, 0, 2)), atol=1e-5)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_step_api_matches_whole_sequence(cell):
    backbone = RecurrentBackbone(cell=cell, units=8, layers=2, vocab_size=20, embedding_dim=6)
    ids = tf.constant(np.random.default_rng(1).integers(4, 20, size=(2, 9)), tf.int32)
    outputs, final = backbone(ids)
    states = backbone.zero_state(2)
    for t in range(ids.shape[1]):
        out, states = backbone.step(ids[:, t], states)
        np.testing.assert_allclose(out.numpy(), outputs[:, t].numpy(), atol=1e-5)
    for got_layer, want_layer in zip(states, final):
        for got, want in zip(got_layer, want_layer):
            np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)


def test_fused_lstm_gradients_equal_keras():
    """The hand-written backward pass gives Keras' gradients, initial and final states included."""
    rng = np.random.default_rng(2)
    ids = tf.constant(rng.integers(4, 30, size=(4, 11)), tf.int32)
    models = [RecurrentBackbone("lstm", 16, 2, 0.0, vocab_size=30, impl=impl) for impl in ("keras", "fused")]
    for m in models:
        m(ids)
    for a, b in zip(*(m.weights for m in models)):
        b.assign(a)
    init = [[tf.constant(rng.normal(size=(4, 16)), tf.float32) for _ in range(2)] for _ in range(2)]
    grads = []
    for m in models:
        with tf.GradientTape() as tape:
            tape.watch(init)
            out, states = m(ids, initial_state=init)
            loss = tf.reduce_sum(out ** 2) + tf.reduce_sum(states[1][1] * 3) + tf.reduce_sum(states[0][0])
        grads.append([tf.convert_to_tensor(g) for g in tape.gradient(loss, [*m.trainable_variables, init])])
    for ga, gb in zip(*grads):
        np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-4, atol=1e-5)


def test_masking_stops_state_at_last_real_input():
    """Right-padded sequences end with the state of their last real character."""
    backbone = RecurrentBackbone("lstm", 8, 1, vocab_size=20, masking=True)
    short = tf.constant([[5, 6, 7, 0, 0]], tf.int32)
    _, padded_state = backbone(short)
    _, exact_state = backbone(short[:, :3])
    np.testing.assert_allclose(padded_state[0][0].numpy(), exact_state[0][0].numpy(), atol=1e-6)
