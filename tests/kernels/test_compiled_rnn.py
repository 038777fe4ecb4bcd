"""The compiled CPU LSTM and GRU kernels (charseq/kernels/, charseq/compiled_lstm.py,
charseq/compiled_gru.py) against Keras' own layers: outputs, final states and the gradients of
every weight and input, masked and unmasked, forwards and backwards, in float32 and with the
bfloat16 recurrence (native AVX512-BF16 and the portable emulation); checkpoints shared between
the two; the fallback when the kernels cannot be built. They are compiled once per machine
(cached; see charseq/kernels)."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from charseq import kernels
from charseq.compiled_gru import compiled_gru
from charseq.compiled_lstm import compiled_lstm
from charseq.backbone import RecurrentBackbone

# Skipped where the kernel cannot be built, except in CI (CHARSEQ_TEST_FRESH_BUILD=1, .ci/run): there a
# failed build fails these tests, as GCC 12's Eigen error on AVX512-FP16 CPUs once hid behind this skip.
pytestmark = pytest.mark.skipif(not kernels.available() and os.environ.get("CHARSEQ_TEST_FRESH_BUILD") != "1",
                                reason="the kernel could not be built here")


def _lengths(rng, batch, steps):
    lengths = rng.integers(0, steps + 1, batch)  # 0: a row with no real step at all
    lengths[0] = steps
    return lengths


def _assert_close(got, want, what, tolerance=1e-5):
    # Sums over many products: compare against the scale of the values, `tolerance` at that scale.
    want = np.asarray(want)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=tolerance * scale, err_msg=what)


# bfloat16 keeps 8 significant bits (a relative rounding error up to 2^-9 = 0.2%) of each operand
# of the products (the recurrent one and, as under Keras' mixed_bfloat16, the large ones around the
# loop, whose results are rounded to bfloat16 too); summed over a few steps and rows, with some
# cancellation, the results stay within 2% of the values' scale of float32's (measured: up to 1.4%).
BF16_TOLERANCE = 2e-2
NO_NATIVE_BF16 = "this CPU has no AVX512-BF16: 'bfloat16' runs the emulated path, which the bfloat16_emulated cases test"
NO_TILES = ("this CPU has no AMX tiles (or Linux does not let this process use them): 'bfloat16' runs the "
            "AVX512-BF16 path, which the bfloat16_avx512 cases test")
_needs_bf16 = pytest.mark.skipif(not kernels.native_bf16(), reason=NO_NATIVE_BF16)
# "bfloat16" is AMX where the CPU has it, else the same AVX512-BF16 path as "bfloat16_avx512".
BF16_RECURRENCES = ["bfloat16_emulated", pytest.param("bfloat16_avx512", marks=_needs_bf16),
                    pytest.param("bfloat16", marks=_needs_bf16)]


# (batch, steps, features, units) of each cell's comparisons with Keras: float32 takes them all, the
# bfloat16 recurrence the first, the middle and the last.
SHAPES = {"lstm": [(1, 1, 3, 5), (1, 7, 4, 16), (5, 1, 6, 8), (7, 9, 5, 17), (13, 6, 4, 33)],
          "gru": [(1, 1, 3, 5), (1, 7, 4, 16), (5, 1, 6, 8), (7, 9, 5, 17), (13, 6, 4, 33), (9, 5, 3, 40)]}
# (21 rows: a whole AMX tile of 16 and the rest in groups of 4 and 1; 37: two whole tiles, the
# second multiplied while the first's rows go through the epilogue, and the rest, with 32 units,
# whose gates' gradient rows the backward product reads in place on the tiles as well; 130 units:
# a product too long for that pipeline, tile by tile.)
BF16_SHAPES = {"lstm": [(1, 1, 3, 5), (7, 9, 5, 17), (13, 6, 4, 33), (21, 3, 4, 34), (37, 4, 3, 32), (18, 3, 2, 130)],
               "gru": [(1, 1, 3, 5), (7, 9, 5, 17), (9, 5, 3, 40), (21, 3, 4, 34), (37, 4, 3, 32), (18, 3, 2, 130)]}


def _cases(shapes):
    return [pytest.param(cell, *shape, id=f"{cell}-{'-'.join(map(str, shape))}") for cell in shapes for shape in shapes[cell]]


def _check(cell, *args):
    (_check_lstm if cell == "lstm" else _check_gru)(*args)


@pytest.mark.parametrize("cell,batch,steps,features,units", _cases(SHAPES))
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("backwards", [False, True], ids=["forwards", "backwards"])
def test_kernel_equals_keras_layer(cell, batch, steps, features, units, masked, backwards):
    _check(cell, batch, steps, features, units, masked, backwards, "float32", 1e-5)


@pytest.mark.parametrize("cell,batch,steps,features,units", _cases(BF16_SHAPES))
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("backwards", [False, True], ids=["forwards", "backwards"])
@pytest.mark.parametrize("recurrence", BF16_RECURRENCES)
def test_bf16_kernel_is_close_to_keras_float32_layer(cell, batch, steps, features, units, masked, backwards, recurrence):
    _check(cell, batch, steps, features, units, masked, backwards, recurrence, BF16_TOLERANCE)


def _check_lstm(batch, steps, features, units, masked, backwards, recurrence, tolerance):
    rng = np.random.default_rng(batch * 100 + steps)
    x = tf.constant(rng.normal(size=(batch, steps, features)).astype(np.float32))
    h0 = tf.constant(rng.normal(size=(batch, units)).astype(np.float32))
    c0 = tf.constant(rng.normal(size=(batch, units)).astype(np.float32))
    layer = keras.layers.LSTM(units, return_sequences=True, return_state=True, go_backwards=backwards)
    layer.build(x.shape)
    layer.cell.bias.assign(rng.normal(scale=0.5, size=4 * units).astype(np.float32))
    mask = tf.constant(np.arange(steps)[None] < _lengths(rng, batch, steps)[:, None]) if masked else None
    # A loss that reads every output and both final states with different weights.
    w_out, w_h, w_c = (rng.normal(size=s).astype(np.float32) for s in ((batch, steps, units), (batch, units), (batch, units)))

    def loss(out, h, c):
        return tf.reduce_sum(out * w_out) + tf.reduce_sum(h * w_h) + tf.reduce_sum(c * w_c)

    with tf.GradientTape() as tape:
        tape.watch([x, h0, c0])
        want = layer(x, initial_state=[h0, c0], mask=mask)
        want_grads = tape.gradient(loss(*want), [x, h0, c0, layer.cell.kernel, layer.cell.recurrent_kernel,
                                                 layer.cell.bias])
    weights = [tf.constant(w.numpy()) for w in (layer.cell.kernel, layer.cell.recurrent_kernel, layer.cell.bias)]
    with tf.GradientTape() as tape:
        tape.watch([x, h0, c0, *weights])
        got = compiled_lstm(x, *weights, h0, c0, mask=mask, go_backwards=backwards, recurrence=recurrence)
        got_grads = tape.gradient(loss(*got), [x, h0, c0, *weights])
    for name, g, w in zip(["outputs", "h", "c"], got, want):
        _assert_close(g, w, name, tolerance)
    for name, g, w in zip(["d_x", "d_h0", "d_c0", "d_kernel", "d_recurrent_kernel", "d_bias"], got_grads, want_grads):
        _assert_close(g, w, name, tolerance)


def _check_gru(batch, steps, features, units, masked, backwards, recurrence, tolerance):
    rng = np.random.default_rng(batch * 100 + steps + 7)
    x = tf.constant(rng.normal(size=(batch, steps, features)).astype(np.float32))
    h0 = tf.constant(rng.normal(size=(batch, units)).astype(np.float32))
    layer = keras.layers.GRU(units, return_sequences=True, return_state=True, go_backwards=backwards)
    layer.build(x.shape)
    layer.cell.bias.assign(rng.normal(scale=0.5, size=(2, 3 * units)).astype(np.float32))  # both biases matter
    mask = tf.constant(np.arange(steps)[None] < _lengths(rng, batch, steps)[:, None]) if masked else None
    w_out, w_h = (rng.normal(size=s).astype(np.float32) for s in ((batch, steps, units), (batch, units)))

    def loss(out, h):
        return tf.reduce_sum(out * w_out) + tf.reduce_sum(h * w_h)

    with tf.GradientTape() as tape:
        tape.watch([x, h0])
        want = layer(x, initial_state=[h0], mask=mask)
        want_grads = tape.gradient(loss(*want), [x, h0, layer.cell.kernel, layer.cell.recurrent_kernel,
                                                 layer.cell.bias])
    weights = [tf.constant(w.numpy()) for w in (layer.cell.kernel, layer.cell.recurrent_kernel, layer.cell.bias)]
    with tf.GradientTape() as tape:
        tape.watch([x, h0, *weights])
        got = compiled_gru(x, *weights, h0, mask=mask, go_backwards=backwards, recurrence=recurrence)
        got_grads = tape.gradient(loss(*got), [x, h0, *weights])
    for name, g, w in zip(["outputs", "h"], got, want):
        _assert_close(g, w, name, tolerance)
    for name, g, w in zip(["d_x", "d_h0", "d_kernel", "d_recurrent_kernel", "d_bias"], got_grads, want_grads):
        _assert_close(g, w, name, tolerance)


def _run_with_gradients(cell, recurrence, rng_seed=5, batch=24, steps=12, features=16, units=70):
    """Outputs, final states and every gradient of one compiled layer on fixed random inputs."""
    rng = np.random.default_rng(rng_seed)
    gates = 4 if cell == "lstm" else 3
    x = tf.constant(rng.normal(size=(batch, steps, features)).astype(np.float32))
    states = [tf.constant(rng.normal(size=(batch, units)).astype(np.float32)) for _ in range(2 if cell == "lstm" else 1)]
    bias_shape = (gates * units,) if cell == "lstm" else (2, gates * units)
    weights = [tf.constant(rng.normal(scale=s, size=shape).astype(np.float32)) for s, shape in
               ((0.3, (features, gates * units)), (0.15, (units, gates * units)), (0.5, bias_shape))]
    mask = tf.constant(np.arange(steps)[None] < _lengths(rng, batch, steps)[:, None])
    w_out = rng.normal(size=(batch, steps, units)).astype(np.float32)
    run = compiled_lstm if cell == "lstm" else compiled_gru
    with tf.GradientTape() as tape:
        tape.watch([x, *states, *weights])
        got = run(x, *weights, *states, mask=mask, recurrence=recurrence)
        loss = tf.reduce_sum(got[0] * w_out) + sum(tf.reduce_sum(s) for s in got[1:])
    return [np.asarray(t) for t in (*got, *tape.gradient(loss, [x, *states, *weights]))]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bf16_recurrence_rounds_and_native_matches_emulated(cell):
    """The bfloat16 recurrence really computes in bfloat16 (it differs from float32 by about bf16's
    rounding, not by float32's), and on AVX512-BF16 the native dot products give what the portable
    emulation gives, up to the order of the float32 sums (and the bf16 roundings that order flips)."""
    f32, emulated = _run_with_gradients(cell, "float32"), _run_with_gradients(cell, "bfloat16_emulated")
    for a, b in zip(emulated, f32):
        _assert_close(a, b, "emulated vs float32", BF16_TOLERANCE)
    scale = max(1.0, float(np.max(np.abs(f32[0]))))
    assert np.max(np.abs(emulated[0] - f32[0])) > 1e-4 * scale  # rounded, not float32 under another name
    if not kernels.native_bf16():
        pytest.skip(NO_NATIVE_BF16)
    native = _run_with_gradients(cell, "bfloat16_avx512")
    for a, b in zip(native, emulated):
        _assert_close(a, b, "native vs emulated", 2e-3)
    assert any(not np.array_equal(a, b) for a, b in zip(native, emulated))  # a different code path ran


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_amx_tiles_give_what_the_emulation_gives(cell):
    """On AMX tiles (16 rows of 32 bfloat16 values of depth at a time, the operands padded with zeros
    to that: 24 rows and 70 units here) the recurrence gives what the portable emulation gives, up to
    the order of the float32 sums, by another path than AVX512-BF16's dot products."""
    if not kernels.native_tiles():
        pytest.skip(NO_TILES)
    tiles, dots, emulated = (_run_with_gradients(cell, r) for r in ("bfloat16", "bfloat16_avx512", "bfloat16_emulated"))
    for a, b in zip(tiles, emulated):
        _assert_close(a, b, "tiles vs emulated", 2e-3)
    assert any(not np.array_equal(a, b) for a, b in zip(tiles, dots))


@pytest.mark.parametrize("xla", [True, False], ids=["xla-dot", "without-xla"])
@pytest.mark.parametrize("recurrence", BF16_RECURRENCES)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bf16_recurrence_adds_x_W_to_the_gates_unrounded(cell, recurrence, xla, monkeypatch):
    """With a bfloat16 recurrence x W is summed from bfloat16 operands into float32 and the ops add
    it to the gates as it is: rounding that sum to bfloat16 cost training 0.001-0.003 nats after the
    same steps. One step from zero states (no recurrent product), whose cell state (LSTM) or state
    (GRU), kept in float32, follows from x W alone, against both ways of reading x W; by XLA's
    bfloat16 dot, and by the float32 product that stands in where TensorFlow has no XLA."""
    if not xla:
        monkeypatch.setattr("charseq.compiled_lstm._bfloat16_dot", lambda: None)
    rng = np.random.default_rng(7)
    batch, features, units, gates = 16, 96, 24, 4 if cell == "lstm" else 3
    x = rng.normal(size=(batch, 1, features)).astype(np.float32)
    kernel = (rng.normal(size=(features, gates * units)) * features ** -0.5).astype(np.float32)
    recurrent = (rng.normal(size=(units, gates * units)) * 0.3).astype(np.float32)
    rounded = lambda a: np.asarray(tf.cast(tf.cast(a, tf.bfloat16), tf.float32))  # noqa: E731
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    zeros = tf.zeros([batch, units])
    if cell == "lstm":  # gates i, f, g, o: c = i g with c0 = 0
        state = lambda z: sigmoid(z[:, :units]) * np.tanh(z[:, 2 * units:3 * units])  # noqa: E731
        got = compiled_lstm(tf.constant(x), kernel, recurrent, tf.zeros([4 * units]), zeros, zeros,
                            recurrence=recurrence)[2]
    else:  # gates z, r, n: h = (1 - z) n with h0 = 0
        state = lambda z: (1 - sigmoid(z[:, :units])) * np.tanh(z[:, 2 * units:])  # noqa: E731
        got = compiled_gru(tf.constant(x), kernel, recurrent, tf.zeros([2, 3 * units]), zeros,
                           recurrence=recurrence)[1]
    x_w = rounded(x[:, 0]) @ rounded(kernel)
    want, if_rounded = state(x_w), state(rounded(x_w))
    assert np.max(np.abs(want - if_rounded)) > 5e-4  # the two readings are told apart
    _assert_close(got, want, "x W in float32", 1e-5)


@pytest.mark.parametrize("io", [tf.float32, tf.bfloat16])
def test_ops_write_outputs_and_states_in_the_type_their_readers_compute_in(io):
    """With a bfloat16 recurrence the forward ops write the outputs in bfloat16, the type the next
    layer computes in under `mixed_bfloat16` (no conversion op after the layer), and the LSTM's
    h_{t-1} of each step in the type of the recurrent kernel's gradient product (the value that
    product would round it to, with no conversion op over the sequence); with a float32 recurrence
    both are float32. The GRU's backward op reads h_{t-1} for its gate arithmetic, so that stays
    float32. The backward ops read the outputs' gradient in the outputs' type."""
    ops, rng = kernels.load(), np.random.default_rng(3)
    batch, steps, units = 5, 4, 24
    recurrence = "float32" if io == tf.float32 else "bfloat16_emulated"
    xproj = tf.constant(rng.standard_normal((batch, steps, 4 * units)), tf.float32)  # x W: float32 always
    kernel = tf.constant(rng.standard_normal((units, 4 * units)) * 0.2, tf.float32)
    h0 = tf.constant(rng.standard_normal((batch, units)), tf.float32)
    no_mask = tf.zeros([0])
    forward = ops.charseq_lstm_forward(xproj, kernel, tf.zeros([4 * units]), h0, tf.zeros_like(h0), no_mask,
                                       recurrence=recurrence, io=io)
    outputs, h_prev = forward[:2]
    assert outputs.dtype == io and h_prev.dtype == io
    want = tf.concat([tf.cast(h0, io)[:, None], outputs[:, :-1]], axis=1)  # h_{t-1}: h0, then each output
    np.testing.assert_array_equal(np.asarray(h_prev, np.float32), np.asarray(want, np.float32))
    d_gates = ops.charseq_lstm_backward(kernel, tf.zeros_like(h0), no_mask, forward[2], forward[3],
                                        tf.ones_like(outputs), h0, h0, recurrence=recurrence)[0]
    assert d_gates.dtype == io
    gru_outputs, gru_h_prev = ops.charseq_gru_forward(tf.constant(rng.standard_normal((batch, steps, 3 * units)),
                                                                  tf.float32),
                                                      kernel[:, :3 * units], tf.zeros([3 * units]),
                                                      tf.zeros([3 * units]), h0, no_mask, recurrence=recurrence,
                                                      io=io)[:2]
    assert gru_outputs.dtype == io and gru_h_prev.dtype == tf.float32


@pytest.mark.parametrize("run", [compiled_lstm, compiled_gru])
def test_compiled_layers_give_their_outputs_in_the_inputs_dtype(run):
    """The layers return outputs in the dtype of their input, whatever type the op writes them in:
    float32 in, float32 out, on a bfloat16 recurrence too (rounded to bfloat16 values there)."""
    rng = np.random.default_rng(4)
    gates = 4 if run is compiled_lstm else 3
    x = tf.constant(rng.standard_normal((3, 5, 7)), tf.float32)
    kernel = tf.constant(rng.standard_normal((7, gates * 8)) * 0.3, tf.float32)
    recurrent = tf.constant(rng.standard_normal((8, gates * 8)) * 0.3, tf.float32)
    bias = tf.zeros([gates * 8]) if run is compiled_lstm else tf.zeros([2, gates * 8])
    state = [tf.zeros([3, 8])] * (2 if run is compiled_lstm else 1)
    for dtype in (tf.float32, tf.bfloat16):
        outputs = run(tf.cast(x, dtype), kernel, recurrent, bias, *state, recurrence="bfloat16_emulated")[0]
        assert outputs.dtype == dtype
        rounded = tf.cast(tf.cast(outputs, tf.bfloat16), tf.float32)
        np.testing.assert_array_equal(np.asarray(tf.cast(outputs, tf.float32)), np.asarray(rounded))


def test_kernels_split_over_threads_equal_keras(tmp_path):
    """The widest comparisons with Keras again, in a process whose kernels split each step over four
    threads (the suite's workers compute on one thread each)."""
    from helpers import REPO

    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "4"}
    r = subprocess.run([sys.executable, "-m", "pytest", __file__, "-q", "-n", "0", "-p", "no:cacheprovider",
                        "--basetemp", str(tmp_path), "-k", "keras_layer and (33 or 40)"],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert r.returncode == 0 and " passed" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]


def test_unknown_recurrence_is_refused():
    x = tf.zeros((1, 2, 3))
    with pytest.raises(ValueError, match="recurrence must be one of"):
        compiled_lstm(x, tf.zeros((3, 8)), tf.zeros((2, 8)), tf.zeros(8), tf.zeros((1, 2)), tf.zeros((1, 2)),
                      recurrence="float16")


def _twin_backbones(**kwargs):
    """The same backbone twice, Keras' layers and the compiled kernel, with the same weights."""
    models = [RecurrentBackbone(impl=impl, **kwargs) for impl in ("keras", "compiled")]
    return models


@pytest.mark.parametrize("masking,bidirectional", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("inputs", ["ids", "vectors"])
def test_backbone_compiled_equals_keras_and_shares_checkpoints(tmp_path, masking, bidirectional, cell, inputs):
    """Ids through an embedding, or vectors through an input projection, which the compiled backbone
    folds into its first layer's kernel: the same outputs, states and gradients as Keras' layers."""
    vectors = inputs == "vectors"
    keras_bb, compiled_bb = _twin_backbones(cell=cell, units=12, layers=2, vocab_size=None if vectors else 20,
                                            embedding_dim=6, masking=masking, bidirectional=bidirectional)
    assert compiled_bb.use_compiled and not keras_bb.use_compiled
    assert compiled_bb._folds_projection() == vectors and not keras_bb._folds_projection()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 9, 5)).astype(np.float32) if vectors else rng.integers(1, 20, size=(4, 9))
    if masking:
        x[1, 5:], x[2, 1:] = 0, 0  # right-padded rows
    x = tf.constant(x, tf.float32 if vectors else tf.int32)
    keras_bb(x)
    compiled_bb(x)
    for w in keras_bb.weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype(np.float32))
    # A checkpoint written by one implementation loads into the other (same variables).
    path = str(tmp_path / "backbone.weights.h5")
    shape = (9, 5) if vectors else (9,)
    model = keras.Sequential([keras.Input(shape, dtype=x.dtype.name), keras_bb])
    model.save_weights(path)
    keras.Sequential([keras.Input(shape, dtype=x.dtype.name), compiled_bb]).load_weights(path)
    for a, b in zip(keras_bb.weights, compiled_bb.weights):
        assert a.path.split("/", 1)[1] == b.path.split("/", 1)[1]
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    results = []
    for bb in (keras_bb, compiled_bb):
        with tf.GradientTape() as tape:
            out, states = bb(x, training=True)
            loss = tf.reduce_sum(out * np.linspace(-1, 1, out.shape[-1])) + sum(tf.reduce_sum(s) for l in states for s in l)
        results.append((out, tf.nest.flatten(states), tape.gradient(loss, bb.trainable_weights)))
    (out_k, states_k, grads_k), (out_c, states_c, grads_c) = results
    _assert_close(out_c, out_k, "outputs")
    for got, want in zip(states_c, states_k):
        _assert_close(got, want, "states")
    for got, want, w in zip(grads_c, grads_k, keras_bb.trainable_weights):
        _assert_close(tf.convert_to_tensor(got), tf.convert_to_tensor(want), w.path)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_training_is_deterministic_and_matches_keras_loss(cell):
    """Same seed, same losses bit for bit on the compiled path, with dropout; and without dropout
    (whose masks the compiled op draws its own way) close to Keras' layer's."""
    def losses(impl, dropout=0.2):
        keras.utils.set_random_seed(0)
        bb = RecurrentBackbone(cell, 32, 2, dropout, vocab_size=30, embedding_dim=8, impl=impl)
        head = keras.layers.Dense(30)
        opt = keras.optimizers.Adam(3e-3)
        data = [np.random.default_rng(0).integers(1, 30, size=(4, 17))] * 8  # one batch, learnt by heart

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                out, _ = bb(x, training=True)
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, head(out), from_logits=True))
            variables = bb.trainable_weights + head.trainable_weights
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        return [float(step(tf.constant(d[:, :-1]), tf.constant(d[:, 1:]))) for d in data]

    first, second = losses("compiled"), losses("compiled")
    assert first == second
    assert first[-1] < first[0]
    np.testing.assert_allclose(losses("compiled", 0.0), losses("keras", 0.0), rtol=1e-4)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bf16_backbone_runs_the_bf16_kernel_and_trains_like_float32(cell, monkeypatch):
    """Under mixed_bfloat16 the backbone runs the kernel's bfloat16 recurrence ("auto": only on
    AVX512-BF16; elsewhere the emulated path is forced here), with float32 weights, and the same
    seed's training losses stay within bf16 noise of the float32 kernel's."""
    if not kernels.native_bf16():
        monkeypatch.setattr(kernels, "native_bf16", lambda: True)  # the kernel then emulates, as tested above

    def losses(policy):
        keras.utils.set_random_seed(0)
        bb = RecurrentBackbone(cell, 32, 2, 0.0, vocab_size=30, embedding_dim=8, dtype=policy)
        assert bb.use_compiled and bb.recurrence == ("bfloat16" if policy == "mixed_bfloat16" else "float32")
        head = keras.layers.Dense(30, dtype=policy)
        opt = keras.optimizers.Adam(3e-3)
        data = [np.random.default_rng(0).integers(1, 30, size=(4, 17))] * 12

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                out, states = bb(x, training=True)
                logits = tf.cast(head(out), tf.float32)
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            variables = bb.trainable_weights + head.trainable_weights
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss, out.dtype == tf.bfloat16, [v.dtype for v in variables]

        results = [step(tf.constant(d[:, :-1]), tf.constant(d[:, 1:])) for d in data]
        assert all(bool(r[1]) == (policy == "mixed_bfloat16") for r in results)
        assert all(dtype == "float32" for dtype in results[0][2])  # master weights stay float32
        return [float(r[0]) for r in results]

    bf16, f32 = losses("mixed_bfloat16"), losses("float32")
    np.testing.assert_allclose(bf16, f32, rtol=2e-2)
    assert bf16[-1] < bf16[0] - 0.1  # it learns


def test_auto_runs_bf16_on_the_kernel_only_with_native_bf16(monkeypatch):
    monkeypatch.setattr(kernels, "native_bf16", lambda: False)
    lstm = RecurrentBackbone("lstm", 8, 1, vocab_size=10, dtype="mixed_bfloat16")
    gru = RecurrentBackbone("gru", 8, 1, vocab_size=10, dtype="mixed_bfloat16")
    assert not lstm.use_compiled and lstm.use_fused and not gru.use_compiled
    assert RecurrentBackbone("gru", 8, 1, vocab_size=10, dtype="mixed_bfloat16", impl="compiled").use_compiled
    monkeypatch.setattr(kernels, "native_bf16", lambda: True)
    assert RecurrentBackbone("lstm", 8, 1, vocab_size=10, dtype="mixed_bfloat16", masking=True).use_compiled


def test_no_compiler_or_a_failed_build_falls_back_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CHARSEQ_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    try:
        for compiler, words in (("no-such-compiler-xyz", "no C++ compiler"), ("false", "false failed")):
            monkeypatch.setenv("CXX", compiler)
            kernels.load.cache_clear()
            assert kernels.load() is None
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and words in err[0] and "Keras' own layers instead" in err[0], err
            for cell in ("lstm", "gru"):
                bb = RecurrentBackbone(cell, 8, 1, vocab_size=10, impl="auto")
                assert not bb.use_compiled
                out, _ = bb(tf.constant([[1, 2, 3]]))
                assert out.shape == (1, 3, 8)
        # The failed build is remembered: the next process does not try again, and says where the log is.
        kernels.load.cache_clear()
        assert kernels.load() is None
        assert "failed to build before" in capsys.readouterr().err
        assert list(tmp_path.glob("charseq/kernels/*/build-failed.log"))

        monkeypatch.delenv("CXX")
        monkeypatch.setenv("CHARSEQ_KERNEL", "off")
        kernels.load.cache_clear()
        assert kernels.load() is None and capsys.readouterr().err == ""
        assert not RecurrentBackbone("lstm", 8, 1, vocab_size=10, impl="compiled").use_compiled
    finally:
        kernels.load.cache_clear()
        monkeypatch.undo()
    assert kernels.load() is not None  # back to the machine's cached build


def test_a_first_build_says_why_a_terminal_waits(tmp_path):
    """The first build takes up to a minute: in a terminal it is said before it starts (a log or a
    pipe gets only the fallback's one line, as above)."""
    import pty

    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "CHARSEQ_CACHE"}
    env.update(XDG_CACHE_HOME=str(tmp_path), CXX="false")  # a build that fails at once
    try:
        subprocess.run([sys.executable, "-c", "from charseq import kernels; kernels.load()"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=follower, env=env, timeout=300, check=True)
        said = [line for line in os.read(leader, 1 << 16).decode().splitlines() if line.startswith("charseq:")]
    finally:
        os.close(follower)
        os.close(leader)
    assert len(said) == 2 and "building the compiled LSTM and GRU kernels for this CPU" in said[0], said
    assert "false failed" in said[1] and "Keras' own layers instead" in said[1]


def test_a_compiler_with_a_launcher_is_one_command():
    """CXX="ccache g++" (or any launcher and flags) runs as the command it names, not as a file of that name."""
    assert kernels._compiler_version("env g++") == kernels._compiler_version("g++") != ""
    assert kernels._link_command(tf, "env g++", [Path("a.o")], Path("b.so"))[:3] == ["env", "g++", "-shared"]


def test_a_compiler_killed_by_a_signal_is_tried_again_next_time(tmp_path):
    """A compiler the kernel killed (out of memory) or a user stopped is no failed build: unlike a
    compiler's error, it leaves no build-failed.log that would keep every later run off the kernels."""
    killed = "sh -c 'kill -KILL $$' --"  # a "compiler" that dies by SIGKILL, as the out-of-memory killer kills
    for _ in range(2):
        with pytest.raises(RuntimeError, match="stopped by SIGKILL; the kernels will be built again next time"):
            kernels._build(tf, killed, tmp_path / "killed")
    assert not (tmp_path / "killed" / "build-failed.log").exists()
    with pytest.raises(RuntimeError, match="false failed"):
        kernels._build(tf, "false", tmp_path / "failed")
    with pytest.raises(RuntimeError, match="failed to build before"):
        kernels._build(tf, "false", tmp_path / "failed")


def test_build_is_cached_per_source_and_cpu(tmp_path, monkeypatch):
    """A fresh cache builds once (atomically renamed into place); the same key reuses it."""
    monkeypatch.delenv("CHARSEQ_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    directory = kernels.build_dir(tf, "g++")
    assert directory.parent == tmp_path / "charseq" / "kernels" and directory.name.startswith(tf.__version__)
    if os.environ.get("CHARSEQ_TEST_FRESH_BUILD") != "1":
        pytest.skip("set CHARSEQ_TEST_FRESH_BUILD=1 to compile from scratch (about 15 s)")
    library = kernels._build(tf, "g++", directory)
    assert library.exists() and [p.name for p in directory.iterdir() if p.suffix == ".so"] == ["recurrent.so"]
    mtime = library.stat().st_mtime_ns
    assert kernels._build(tf, "g++", directory) == library and library.stat().st_mtime_ns == mtime

    # A built library needs no lock to be used (a cache this user may only read; a directory where the
    # lock file goes stands for one, since root writes anywhere) and no compiler (a container without one).
    (directory / ".lock").unlink()
    (directory / ".lock").mkdir()
    assert kernels._build(tf, "g++", directory) == library
    # In a process of its own: a second copy of the library loaded here would register every op twice.
    env = {k: v for k, v in os.environ.items() if k != "CHARSEQ_CACHE"}
    env.update(XDG_CACHE_HOME=str(tmp_path), CXX="no-such-compiler-xyz")
    loaded = subprocess.run([sys.executable, "-c", "from charseq import kernels; print(kernels.load() is not None)"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert loaded.stdout.strip() == "True" and "charseq:" not in loaded.stderr, loaded.stderr
    # A cache that cannot be written is said in one line with what to do.
    (tmp_path / "file").write_text("")
    with pytest.raises(RuntimeError, match="cannot write to the kernel cache .*set CHARSEQ_CACHE"):
        kernels._build(tf, "g++", tmp_path / "file" / "kernels" / "x")
