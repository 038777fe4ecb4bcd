"""A CPU fast path for Keras' LSTM layer: the same weights and the same function, fewer ops.

On a GPU, Keras runs `LSTM` through cuDNN. On a CPU it runs the cell step by step in a
`while_loop`, and automatic differentiation of that loop does two small matrix products per
step for the recurrent weights. This module computes exactly the same LSTM (Keras' gate order
i, f, c, o; `tanh`/`sigmoid`) the way cuDNN does:

* the input projection of the whole sequence is one large matrix product before the loop;
* the loop does only the recurrent product and the gate arithmetic (kept in float32 even
  under a bfloat16 policy: only the matrix products run in bfloat16);
* a hand-written backward pass runs the loop in reverse for the state gradients alone, then
  gets the weight gradients from three large matrix products over all time steps at once.

On a CPU it trains faster than `keras.layers.LSTM` under the same bfloat16 policy
(docs/benchmarks.md, "How the backbone runs"). It is used only
where it computes the same thing as Keras: an LSTM with default activations and no mask.
"""

from __future__ import annotations

import tensorflow as tf

_F32 = tf.float32


def fused_lstm(x, kernel, recurrent_kernel, bias, h0, c0):
    """Run an LSTM over `x` [batch, time, features]. Returns (outputs [batch, time, units], h, c).

    `kernel` [features, 4u], `recurrent_kernel` [u, 4u] and `bias` [4u] are Keras LSTMCell
    weights; matrix products run in the dtype of `x`, gate arithmetic in float32.
    """
    dtype = x.dtype

    @tf.custom_gradient
    def run(x, kernel, recurrent_kernel, bias, h0, c0):
        units = tf.shape(recurrent_kernel)[0]
        batch, steps, features = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
        w, u = tf.cast(kernel, dtype), tf.cast(recurrent_kernel, dtype)
        x_tm = tf.transpose(x, [1, 0, 2])  # time-major for the loop
        x_flat = tf.reshape(x_tm, [-1, features])
        xw = tf.reshape(tf.cast(tf.matmul(x_flat, w), _F32) + tf.cast(bias, _F32),
                        [steps, batch, 4 * units])

        def forward(t, h, c, hs, cs, gates):
            z = xw[t] + tf.cast(tf.matmul(h, u), _F32)
            i, f, g, o = tf.split(z, 4, axis=1)
            i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
            c = f * c + i * g
            h = tf.cast(o * tf.tanh(c), dtype)
            return t + 1, h, c, hs.write(t, h), cs.write(t, c), gates.write(t, tf.concat([i, f, g, o], 1))

        _, h_last, c_last, hs, cs, gs = tf.while_loop(
            lambda t, *_: t < steps, forward,
            (0, tf.cast(h0, dtype), tf.cast(c0, _F32), tf.TensorArray(dtype, steps),
             tf.TensorArray(_F32, steps), tf.TensorArray(_F32, steps)))
        hs_all, cs_all, gates_all = hs.stack(), cs.stack(), gs.stack()

        def backward(d_out, d_h_last, d_c_last):
            d_out = tf.zeros_like(hs_all, _F32) if d_out is None else tf.cast(tf.transpose(d_out, [1, 0, 2]), _F32)
            d_h = tf.zeros([batch, units], _F32) if d_h_last is None else tf.cast(d_h_last, _F32)
            d_c = tf.zeros([batch, units], _F32) if d_c_last is None else tf.cast(d_c_last, _F32)
            c_prev_all = tf.concat([tf.cast(c0, _F32)[None], cs_all[:-1]], 0)

            def step_back(k, d_h, d_c, d_zs):
                t = steps - 1 - k
                i, f, g, o = tf.split(gates_all[t], 4, axis=1)
                tanh_c = tf.tanh(cs_all[t])
                d_h = d_h + d_out[t]
                d_c = d_c + d_h * o * (1 - tanh_c * tanh_c)
                d_z = tf.concat([d_c * g * i * (1 - i), d_c * c_prev_all[t] * f * (1 - f),
                                 d_c * i * (1 - g * g), d_h * tanh_c * o * (1 - o)], 1)
                d_z_low = tf.cast(d_z, dtype)
                d_h = tf.cast(tf.matmul(d_z_low, u, transpose_b=True), _F32)
                return k + 1, d_h, d_c * f, d_zs.write(t, d_z_low)

            _, d_h0, d_c0, d_zs = tf.while_loop(
                lambda k, *_: k < steps, step_back, (0, d_h, d_c, tf.TensorArray(dtype, steps)))
            d_z_flat = tf.reshape(d_zs.stack(), [-1, 4 * units])
            h_prev_flat = tf.reshape(tf.concat([tf.cast(h0, dtype)[None], hs_all[:-1]], 0), [-1, units])
            d_x = tf.transpose(tf.reshape(tf.matmul(d_z_flat, w, transpose_b=True), [steps, batch, features]),
                               [1, 0, 2])
            d_kernel = tf.matmul(x_flat, d_z_flat, transpose_a=True)
            d_recurrent = tf.matmul(h_prev_flat, d_z_flat, transpose_a=True)
            d_bias = tf.reduce_sum(tf.cast(d_z_flat, _F32), 0)
            return (tf.cast(d_x, x.dtype), tf.cast(d_kernel, kernel.dtype),
                    tf.cast(d_recurrent, recurrent_kernel.dtype), tf.cast(d_bias, bias.dtype),
                    tf.cast(d_h0, h0.dtype), tf.cast(d_c0, c0.dtype))

        outputs = tf.transpose(hs_all, [1, 0, 2])
        return (outputs, h_last, tf.cast(c_last, dtype)), backward

    return run(x, kernel, recurrent_kernel, bias, h0, c0)
