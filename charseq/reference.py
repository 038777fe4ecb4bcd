"""Plain-numpy forward passes of the SimpleRNN, LSTM and GRU cells, for tests and for teaching.

The formulas, weight layouts and gate orders are exactly Keras' (and so the backbone's), so
a test can copy a Keras layer's weights into these functions and compare the outputs:

    SimpleRNN  h' = tanh(x W + h U + b)
    LSTM       z = x W + h U + b, split into i, f, g, o (Keras order: input, forget, cell, output)
               c' = sigmoid(f) * c + sigmoid(i) * tanh(g);  h' = sigmoid(o) * tanh(c')
    GRU        (reset_after=True, the cuDNN-compatible form) with bias [2, 3u]
               x W + b_in split into z, r, h;  h U + b_rec split likewise
               z = sigmoid(xz + hz); r = sigmoid(xr + hr); n = tanh(xh + r * hh)
               h' = z * h + (1 - z) * n
"""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def rnn_cell(x, h, kernel, recurrent_kernel, bias):
    """One SimpleRNN step: returns the new state (which is also the output)."""
    return np.tanh(x @ kernel + h @ recurrent_kernel + bias)


def lstm_cell(x, h, c, kernel, recurrent_kernel, bias):
    """One LSTM step: returns (h, c)."""
    z = x @ kernel + h @ recurrent_kernel + bias
    i, f, g, o = np.split(z, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def gru_cell(x, h, kernel, recurrent_kernel, bias):
    """One GRU step (reset gate applied after the recurrent product): returns the new state."""
    bias = np.asarray(bias).reshape(2, -1)
    xz, xr, xh = np.split(x @ kernel + bias[0], 3, axis=-1)
    hz, hr, hh = np.split(h @ recurrent_kernel + bias[1], 3, axis=-1)
    z, r = sigmoid(xz + hz), sigmoid(xr + hr)
    return z * h + (1 - z) * np.tanh(xh + r * hh)


def run_sequence(cell: str, inputs, weights, state=None):
    """Run a cell over `inputs` [time, batch, features] (or [time, features]).

    `weights` is (kernel, recurrent_kernel, bias) as Keras stores them. Returns the outputs
    at every step [time, batch, units] and the final state (h, or (h, c) for the LSTM).
    """
    kernel, recurrent_kernel, bias = (np.asarray(w, dtype=np.float64) for w in weights)
    units = recurrent_kernel.shape[0]
    inputs = np.asarray(inputs, dtype=np.float64)
    batch_shape = inputs.shape[1:-1]
    if state is None:
        zeros = np.zeros(batch_shape + (units,))
        state = (zeros, zeros.copy()) if cell == "lstm" else zeros
    outputs = []
    for x in inputs:
        if cell == "lstm":
            state = lstm_cell(x, *state, kernel, recurrent_kernel, bias)
            outputs.append(state[0])
        else:
            state = (rnn_cell if cell == "rnn" else gru_cell)(x, state, kernel, recurrent_kernel, bias)
            outputs.append(state)
    return np.stack(outputs), state


def classic_two_step_example():
    """The classic two-step RNN exercise: scalar inputs 1 and 2, a 2-unit state, one output.

    Returns the states and outputs of both steps; the first state is tanh([0.6, 0.5]).
    """
    w_cell_state = np.array([[0.1, 0.2], [0.3, 0.4]])
    w_cell_input = np.array([0.5, 0.6])
    b_cell = np.array([0.1, -0.1])
    w_output = np.array([[0.1], [0.2]])
    b_output = 0.1
    state = np.zeros(2)
    states, outputs = [], []
    for x in (1.0, 2.0):
        state = np.tanh(state @ w_cell_state + x * w_cell_input + b_cell)
        states.append(state)
        outputs.append(state @ w_output + b_output)
    return states, outputs
