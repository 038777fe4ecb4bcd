"""Keras' GRU layer computed by a compiled CPU kernel: the same weights, the same function.

The twin of :mod:`charseq.compiled_lstm`: the recurrence of the whole sequence runs inside one op
forward and one op backward (`charseq/kernels/gru.cc`); before the loop the input projection
x W is one large matrix product over all time steps (the op adds b_input), and after the backward
loop so are the gradients of the kernel, the recurrent kernel and the inputs.

It computes what `keras.layers.GRU` computes on a CPU with its defaults (`reset_after=True`, gate
order z, r, h, `sigmoid` and `tanh`), and with a mask a masked step keeps the state and repeats
the previous output (zeros before the first real step). Float32 in and out; `recurrence="bfloat16"`
as in :mod:`charseq.compiled_lstm` (the outputs written in bfloat16, returned in the dtype of `x`).
"""

from __future__ import annotations

import tensorflow as tf

from charseq import kernels
from charseq.compiled_lstm import input_dtype, input_product, matmul_for


def compiled_gru(x, kernel, recurrent_kernel, bias, h0, mask=None, go_backwards=False, recurrence="float32"):
    """Run a GRU over `x` [batch, time, features]; returns (outputs [batch, time, units], h).

    `kernel` [features, 3u], `recurrent_kernel` [u, 3u], `bias` [2, 3u] (input and recurrent
    biases) are Keras GRUCell weights; `mask` [batch, time] (bool) marks the real steps. With
    `go_backwards` the sequence is read from its last step to its first and the outputs come in
    that order, as in Keras. `recurrence`: see :data:`charseq.kernels.RECURRENCES`.
    """
    ops, x, mask = kernels.sequence_inputs(x, mask, go_backwards)
    kernels.check_recurrence(recurrence)
    matmul, io = matmul_for(recurrence), input_dtype(recurrence)

    @tf.custom_gradient
    def run(x, kernel, recurrent_kernel, bias, h0):
        batch, steps, features = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
        units = tf.shape(recurrent_kernel)[0]
        x_flat = tf.reshape(x, [-1, features])
        xproj = tf.reshape(input_product(x_flat, kernel, recurrence), [batch, steps, 3 * units])
        outputs, h_prev, gates, h_last = ops.charseq_gru_forward(xproj, recurrent_kernel, bias[0], bias[1], h0,
                                                                 mask, recurrence=recurrence, io=io)

        def backward(d_outputs, d_h_last):
            d_outputs = tf.zeros_like(outputs) if d_outputs is None else d_outputs
            d_h_last = tf.zeros_like(h0) if d_h_last is None else d_h_last
            d_xproj, d_m, d_h0, d_input_bias, d_recurrent_bias = ops.charseq_gru_backward(
                recurrent_kernel, mask, h_prev, gates, d_outputs, d_h_last, recurrence=recurrence)
            d_xproj = tf.reshape(d_xproj, [-1, 3 * units])
            d_m = tf.reshape(d_m, [-1, 3 * units])
            d_x = tf.reshape(matmul(d_xproj, kernel, transpose_b=True, dtype=x.dtype), [batch, steps, features])
            d_recurrent = matmul(tf.reshape(h_prev, [-1, units]), d_m, transpose_a=True)
            d_bias = tf.stack([d_input_bias, d_recurrent_bias])
            return d_x, matmul(x_flat, d_xproj, transpose_a=True), d_recurrent, d_bias, d_h0

        return (outputs, h_last), backward

    f32 = [tf.cast(t, tf.float32) for t in (kernel, recurrent_kernel, bias, h0)]
    outputs, h = run(tf.cast(x, io), *f32)
    return tf.cast(outputs, x.dtype), h
