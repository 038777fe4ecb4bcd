"""Keras' LSTM layer computed by a compiled CPU kernel: the same weights, the same function.

The recurrence of the whole sequence runs inside one op forward and one op backward
(`charseq/kernels/lstm.cc`), instead of a `while_loop` of a dozen small TensorFlow ops per step.
Around it, everything that is not sequential is one large matrix product over all time steps:
the input projection x W before the loop (the forward op adds the bias), and after the backward
loop the gradients of the kernel (x^T dz), of the recurrent kernel (h_{t-1}^T dz) and of the
inputs (dz W^T). The backward op sums the bias's gradient (dz over every row and step) as it
writes dz, in float32.

It computes what `keras.layers.LSTM` computes on a CPU: gate order i, f, c, o, `sigmoid` and
`tanh`, and with a mask a masked step keeps the state and repeats the previous output (zeros
before the first real step). Float32 in and out; with `recurrence="bfloat16"` the recurrent
product h U (and its transpose backward) takes bfloat16 operands and sums in float32, on AMX tiles
or AVX512-BF16 where the CPU has them, and the large products around the loop take bfloat16
operands too, as under Keras' `mixed_bfloat16` policy. x W keeps its float32 sum (see
`input_product`); the ops write h_{t-1} of each step and the gates' gradient in bfloat16, as the
weight gradients' products take and give them, and keep the activated gates for the backward pass
in bfloat16. The outputs too are written in bfloat16 (and their gradient read so), the type the
next layer computes in under that policy; they come back in the dtype of `x`. The bias is added
to x W inside the op, in float32; the gate arithmetic, the states and the weights stay float32.
`charseq.kernels.available()` says whether the kernel could be built.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from charseq import kernels


def matmul_for(recurrence: str):
    """tf.matmul for the large products around the loop: float32, or with a bfloat16 recurrence
    bfloat16 operands (twice as fast where the CPU has native bf16) and a result in `dtype`."""
    if recurrence == "float32":
        return lambda a, b, dtype=tf.float32, **kwargs: tf.matmul(a, b, **kwargs)

    def matmul(a, b, dtype=tf.float32, **kwargs):
        return tf.cast(tf.matmul(tf.cast(a, tf.bfloat16), tf.cast(b, tf.bfloat16), **kwargs), dtype)
    return matmul


def input_product(x, kernel, recurrence):
    """x W as the forward ops read it: float32 whatever the recurrence. With a bfloat16 recurrence
    the operands are rounded to bfloat16 and summed into float32: rounding the sum itself to
    bfloat16, as TensorFlow's bfloat16 product does, cost training 0.001-0.003 nats after the same
    steps (docs/benchmarks.md, Precision), while rounding the operands costs nothing measurable."""
    if recurrence != "float32":
        x, kernel = tf.cast(x, tf.bfloat16), tf.cast(kernel, tf.bfloat16)
        dot = _bfloat16_dot()
        if dot is not None:
            # Inside the ops' custom gradient; XLA's dot has no gradient of its own for a tape to prepare.
            return dot(tf.stop_gradient(x), tf.stop_gradient(kernel))
    # float32; or, where TensorFlow has no XLA, the dot's sums of the rounded operands at float32's speed
    return tf.matmul(tf.cast(x, tf.float32), tf.cast(kernel, tf.float32))


@functools.cache
def _bfloat16_dot():
    """XLA's dot of bfloat16 operands with a float32 result (oneDNN's bfloat16 product where the CPU
    has one), or None where this TensorFlow has no XLA."""
    try:
        from tensorflow.compiler.tf2xla.python import xla
        from tensorflow.compiler.xla import xla_data_pb2
    except ImportError:
        return None
    dims = xla_data_pb2.DotDimensionNumbers(lhs_contracting_dimensions=[1], rhs_contracting_dimensions=[0])
    return tf.function(lambda a, b: xla.dot_general(a, b, dims, preferred_element_type=tf.float32),
                       jit_compile=True, reduce_retracing=True)


def input_dtype(recurrence: str):
    """The dtype the ops' sequences other than x W are read and written in: the outputs, h_{t-1},
    the stored gates and the gates' gradient. bfloat16 with a bfloat16 recurrence, so a bfloat16
    input (Keras' mixed_bfloat16) stays as it is, its gradient comes back in bfloat16, and the
    weight gradients' products read the gates' gradient as the op writes it, without a conversion."""
    return tf.float32 if recurrence == "float32" else tf.bfloat16


def compiled_lstm(x, kernel, recurrent_kernel, bias, h0, c0, mask=None, go_backwards=False,
                  recurrence="float32"):
    """Run an LSTM over `x` [batch, time, features]; returns (outputs [batch, time, units], h, c).

    `kernel` [features, 4u], `recurrent_kernel` [u, 4u], `bias` [4u] are Keras LSTMCell weights;
    `mask` [batch, time] (bool) marks the real steps. With `go_backwards` the sequence is read
    from its last step to its first and the outputs come in that order, as in Keras.
    `recurrence`: see :data:`charseq.kernels.RECURRENCES`.
    """
    ops, x, mask = kernels.sequence_inputs(x, mask, go_backwards)
    kernels.check_recurrence(recurrence)
    matmul, io = matmul_for(recurrence), input_dtype(recurrence)

    @tf.custom_gradient
    def run(x, kernel, recurrent_kernel, bias, h0, c0):
        # Batch-major throughout, as Keras' tensors are: rows of x_flat are (batch, time) pairs.
        batch, steps, features = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
        units = tf.shape(recurrent_kernel)[0]
        x_flat = tf.reshape(x, [-1, features])
        xproj = tf.reshape(input_product(x_flat, kernel, recurrence), [batch, steps, 4 * units])
        outputs, h_prev, c_states, gates, h_last, c_last = ops.charseq_lstm_forward(
            xproj, recurrent_kernel, bias, h0, c0, mask, recurrence=recurrence, io=io)

        def backward(d_outputs, d_h_last, d_c_last):
            d_outputs = tf.zeros_like(outputs) if d_outputs is None else d_outputs
            d_h_last = tf.zeros_like(h0) if d_h_last is None else d_h_last
            d_c_last = tf.zeros_like(c0) if d_c_last is None else d_c_last
            d_gates, d_h0, d_c0, d_bias = ops.charseq_lstm_backward(recurrent_kernel, c0, mask, c_states, gates,
                                                                    d_outputs, d_h_last, d_c_last,
                                                                    recurrence=recurrence)
            dz = tf.reshape(d_gates, [-1, 4 * units])
            d_x = tf.reshape(matmul(dz, kernel, transpose_b=True, dtype=x.dtype), [batch, steps, features])
            d_recurrent = matmul(tf.reshape(h_prev, [-1, units]), dz, transpose_a=True)
            return (d_x, matmul(x_flat, dz, transpose_a=True), d_recurrent, d_bias, d_h0, d_c0)

        return (outputs, h_last, c_last), backward

    f32 = [tf.cast(t, tf.float32) for t in (kernel, recurrent_kernel, bias, h0, c0)]
    outputs, h, c = run(tf.cast(x, io), *f32)
    return tf.cast(outputs, x.dtype), h, c
