"""The compiled recurrence ops give the same bits on one thread as on several: each output element is
computed by one thread in a fixed order, and the threads of a call meet at a barrier between steps
(forward: h_t of every unit before step t + 1's product reads it; backward: d(m) of every unit).
Many short steps whose work items (blocks of units) do not divide evenly between the threads, so
that a thread running ahead of the barrier would read rows another has not written yet; and a batch
wide enough that each thread runs every step of its own rows (sequence.h's kOwnRowsUnits), forward
and backward on every path, in parts of unequal size. Forward and backward ops, both cells, masked
and not, float32 and the bfloat16 recurrences.

Run as a script (`python test_threads.py THREADS OUT.npz`) it writes the ops' results, computed
with THREADS intra-op threads, to OUT.npz; the test compares processes with 2 and 3 threads
against one with 1 (the test's own process, where it computes on one thread). The dropout op's masks
too."""

import os
import subprocess
import sys

import numpy as np

# (batch, steps, units). 72 units: 4.5 blocks of 16 (or 9 of 8), split unevenly; 21 rows: more than an
# AMX tile's 16. 130 rows: more than two of the backward's items of rows (64 on the tiles).
SHAPES = [(21, 300, 72), (130, 30, 72)]


def _recurrences(kernels):
    return ["float32", "bfloat16_emulated"] + (["bfloat16_avx512", "bfloat16"] if kernels.native_bf16() else [])


def results() -> dict[str, np.ndarray]:
    """Every output of the LSTM's and the GRU's forward and backward ops on fixed random inputs, per
    recurrence, with and without a mask."""
    import tensorflow as tf

    from charseq import kernels

    ops = kernels.load()
    rng = np.random.default_rng(3)

    def f(*shape, scale=0.5):
        return tf.constant(rng.normal(scale=scale, size=shape).astype(np.float32))

    out = {}
    for (batch, steps, units), cell, G in [(shape, *c) for shape in SHAPES for c in (("lstm", 4), ("gru", 3))]:
        lengths = rng.integers(0, steps + 1, batch)
        mask_on = tf.constant((np.arange(steps)[None] < lengths[:, None]).astype(np.float32))
        xproj, U, h0, c0, bias, input_bias = f(batch, steps, G * units), f(units, G * units, scale=0.2), \
            f(batch, units), f(batch, units), f(G * units), f(G * units)
        d_out, d_h, d_c = f(batch, steps, units), f(batch, units), f(batch, units)
        for recurrence in _recurrences(kernels):
            # x W in float32; the outputs and their gradient, and the gates' gradients out in bfloat16
            # with a bfloat16 recurrence, as the layers run
            io = tf.float32 if recurrence == "float32" else tf.bfloat16
            xp, d_o = xproj, tf.cast(d_out, io)
            for masked, mask in (("unmasked", tf.zeros([0])), ("masked", mask_on)):
                if cell == "lstm":
                    fwd = ops.charseq_lstm_forward(xp, U, bias, h0, c0, mask, recurrence=recurrence, io=io)
                    bwd = ops.charseq_lstm_backward(U, c0, mask, fwd[2], fwd[3], d_o, d_h, d_c,
                                                    recurrence=recurrence)
                else:
                    fwd = ops.charseq_gru_forward(xp, U, input_bias, bias, h0, mask, recurrence=recurrence, io=io)
                    bwd = ops.charseq_gru_backward(U, mask, fwd[1], fwd[2], d_o, d_h, recurrence=recurrence)
                for i, t in enumerate([*fwd, *bwd]):
                    out[f"{batch}-{cell}-{recurrence}-{masked}-{i}"] = tf.cast(t, tf.float32).numpy()
    # The dropout op: its mask from the seed and each element's index, whichever thread draws it (an
    # odd size, so that the last group is partial).
    x = f(64, 99, 257, scale=1.0)
    for dtype in (tf.float32, tf.bfloat16):
        out[f"dropout-{dtype.name}"] = tf.cast(
            ops.charseq_dropout(tf.cast(x, dtype), tf.constant([5, 2], tf.int64), rate=0.3), tf.float32).numpy()
    out["threads"] = np.array(tf.config.threading.get_intra_op_parallelism_threads())
    return out


def test_ops_give_the_same_bits_on_one_and_on_several_threads(tmp_path):
    import pytest

    from charseq import kernels
    from helpers import REPO

    if not kernels.available():
        pytest.skip("the kernel could not be built here")
    # One thread here already (the suite's workers compute on one): that result needs no process of its own.
    here = {1: results()} if os.environ.get("TF_NUM_INTRAOP_THREADS") == "1" else {}
    runs = {}
    for threads in {1, 2, 3} - here.keys():  # 3: more threads than this machine may have cores
        env = {**os.environ, "TF_NUM_INTRAOP_THREADS": str(threads), "PYTHONPATH": str(REPO)}
        path = tmp_path / f"{threads}.npz"
        runs[threads] = (path, subprocess.Popen([sys.executable, __file__, str(threads), str(path)], env=env, cwd=REPO,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    got = {threads: {k: v for k, v in values.items() if k != "threads"} for threads, values in here.items()}
    for threads, (path, proc) in runs.items():
        stderr = proc.communicate(timeout=300)[1]
        assert proc.returncode == 0, stderr[-3000:]
        got[threads] = dict(np.load(path))
        assert int(got[threads].pop("threads")) == threads
    one = got.pop(1)
    # Every output of the four ops, for each shape, and the dropout op's
    assert len(one) == len(SHAPES) * len(_recurrences(kernels)) * 2 * (6 + 4 + 4 + 5) + 2
    for threads, there in got.items():
        assert there.keys() == one.keys()
        for name, value in there.items():
            assert np.array_equal(value, one[name]), f"{name} differs between 1 and {threads} threads"


if __name__ == "__main__":
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[1]))
    np.savez(sys.argv[2], **results())
