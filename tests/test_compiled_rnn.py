"""The compiled CPU LSTM and GRU kernels (charseq/kernels/, charseq/compiled_lstm.py,
charseq/compiled_gru.py) against Keras' own layers: outputs, final states and the gradients of
every weight and input, masked and unmasked, forwards and backwards; checkpoints shared between
the two; the fallback when the kernels cannot be built. They are compiled once per machine
(cached; see charseq/kernels)."""

import os

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


def _assert_close(got, want, what):
    # Sums over many products: compare against the scale of the values, 1e-5 at that scale.
    want = np.asarray(want)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-5 * scale, err_msg=what)


@pytest.mark.parametrize("batch,steps,features,units", [(1, 1, 3, 5), (1, 7, 4, 16), (5, 1, 6, 8),
                                                        (7, 9, 5, 17), (13, 6, 4, 33)])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("backwards", [False, True], ids=["forwards", "backwards"])
def test_kernel_equals_keras_lstm_layer(batch, steps, features, units, masked, backwards):
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
        got = compiled_lstm(x, *weights, h0, c0, mask=mask, go_backwards=backwards)
        got_grads = tape.gradient(loss(*got), [x, h0, c0, *weights])
    for name, g, w in zip(["outputs", "h", "c"], got, want):
        _assert_close(g, w, name)
    for name, g, w in zip(["d_x", "d_h0", "d_c0", "d_kernel", "d_recurrent_kernel", "d_bias"], got_grads, want_grads):
        _assert_close(g, w, name)


@pytest.mark.parametrize("batch,steps,features,units", [(1, 1, 3, 5), (1, 7, 4, 16), (5, 1, 6, 8),
                                                        (7, 9, 5, 17), (13, 6, 4, 33), (9, 5, 3, 40)])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("backwards", [False, True], ids=["forwards", "backwards"])
def test_kernel_equals_keras_gru_layer(batch, steps, features, units, masked, backwards):
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
        got = compiled_gru(x, *weights, h0, mask=mask, go_backwards=backwards)
        got_grads = tape.gradient(loss(*got), [x, h0, *weights])
    for name, g, w in zip(["outputs", "h"], got, want):
        _assert_close(g, w, name)
    for name, g, w in zip(["d_x", "d_h0", "d_kernel", "d_recurrent_kernel", "d_bias"], got_grads, want_grads):
        _assert_close(g, w, name)


def _twin_backbones(**kwargs):
    """The same backbone twice, Keras' layers and the compiled kernel, with the same weights."""
    models = [RecurrentBackbone(impl=impl, **kwargs) for impl in ("keras", "compiled")]
    return models


@pytest.mark.parametrize("masking,bidirectional", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_backbone_compiled_equals_keras_and_shares_checkpoints(tmp_path, masking, bidirectional, cell):
    keras_bb, compiled_bb = _twin_backbones(cell=cell, units=12, layers=2, vocab_size=20, embedding_dim=6,
                                            masking=masking, bidirectional=bidirectional)
    assert compiled_bb.use_compiled and not keras_bb.use_compiled
    rng = np.random.default_rng(3)
    ids = rng.integers(1, 20, size=(4, 9))
    if masking:
        ids[1, 5:], ids[2, 1:] = 0, 0  # right-padded rows
    ids = tf.constant(ids, tf.int32)
    keras_bb(ids)
    compiled_bb(ids)
    for w in keras_bb.weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype(np.float32))
    # A checkpoint written by one implementation loads into the other (same variables).
    path = str(tmp_path / "backbone.weights.h5")
    model = keras.Sequential([keras.Input((9,), dtype="int32"), keras_bb])
    model.save_weights(path)
    keras.Sequential([keras.Input((9,), dtype="int32"), compiled_bb]).load_weights(path)
    for a, b in zip(keras_bb.weights, compiled_bb.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    results = []
    for bb in (keras_bb, compiled_bb):
        with tf.GradientTape() as tape:
            out, states = bb(ids, training=True)
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
    """Same seed, same losses bit for bit on the compiled path; and close to Keras' layer's."""
    def losses(impl):
        keras.utils.set_random_seed(0)
        bb = RecurrentBackbone(cell, 32, 2, 0.2, vocab_size=30, embedding_dim=8, impl=impl)
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

    first, second, reference = losses("compiled"), losses("compiled"), losses("keras")
    assert first == second
    np.testing.assert_allclose(first, reference, rtol=1e-4)
    assert first[-1] < first[0]


def test_no_compiler_or_a_failed_build_falls_back_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CHARSEQ_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    try:
        for compiler, words in (("no-such-compiler-xyz", "no C++ compiler"), ("false", "false failed")):
            monkeypatch.setenv("CXX", compiler)
            kernels.load.cache_clear()
            assert kernels.load() is None
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and words in err[0] and "Keras' layer instead" in err[0], err
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


def test_build_is_cached_per_source_and_cpu(tmp_path, monkeypatch):
    """A fresh cache builds once (atomically renamed into place); the same key reuses it."""
    monkeypatch.delenv("CHARSEQ_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    directory = kernels.build_dir(tf, "g++")
    assert directory.parent == tmp_path / "charseq" / "kernels" and directory.name.startswith(tf.__version__)
    if os.environ.get("CHARSEQ_TEST_FRESH_BUILD") != "1":
        pytest.skip("set CHARSEQ_TEST_FRESH_BUILD=1 to compile from scratch (about 20 s)")
    library = kernels._build(tf, "g++", directory)
    assert library.exists() and [p.name for p in directory.iterdir() if p.suffix == ".so"] == ["recurrent.so"]
    mtime = library.stat().st_mtime_ns
    assert kernels._build(tf, "g++", directory) == library and library.stat().st_mtime_ns == mtime
