"""One step of a backbone on the compiled step ops, for generation: the weights packed once.

    packed = pack(backbone)                # once per generation; None where the kernel does not run
    step = stepper(backbone, packed)       # (ids_t, states) -> (outputs, states), like backbone.step
    out_t, states = step(ids_t, states)    # one op per layer and step

Generation advances the recurrence one token at a time. Keras' cell computes a step as a dozen
small TensorFlow ops per layer, and the kernel's forward op on a length-1 sequence would pack the
recurrent weights into its panels at every step; here they are packed once
(`charseq/kernels/step.cc`), and each layer's step is one op: x W + h U in registers and the gate
arithmetic. The first layer's x W + b is a row of a table (embeddings times W, plus b) computed
once too. The sampler's output layer is one op as well (:func:`pack_dense`, :func:`dense`).

It computes what Keras' LSTMCell and GRUCell compute (default activations, the GRU with
`reset_after`), in float32; with `recurrence="bfloat16"` the products take bfloat16 operands and
sum in float32 (AVX512-BF16 where the CPU has it, else the portable emulation). Where the kernels
are not available, the backbone is not compiled (`impl="keras"`, a GPU, a SimpleRNN) or while an
exported graph is traced, `pack` returns None and `stepper` gives `backbone.step`.

A user asks for a precision in the command line's words (`charseq generate --precision`);
:func:`recurrence_of` turns it into the step ops' recurrence, or refuses it where it cannot apply.
"""

from __future__ import annotations

import tensorflow as tf

from charseq import kernels
from charseq.backbone import in_portable_graph
from charseq.errors import CharseqError
from charseq.settings import INFERENCE_PRECISIONS


def recurrence_for(backbone, recurrence: str | None = None) -> str:
    """The recurrence a step runs in: `recurrence`, or the backbone's own (bfloat16 under a
    bfloat16 policy, else float32)."""
    recurrence = recurrence or backbone.recurrence
    kernels.check_recurrence(recurrence)
    return recurrence


def runs_here(backbone) -> bool:
    """Whether this backbone's steps can run on the compiled step ops here."""
    return (backbone.use_compiled and not backbone.bidirectional and not in_portable_graph()
            and kernels.available())


def carried_states(backbone, states):
    """`states` as a loop of steps should carry them: in float32 where the step ops run, since they
    compute the states in float32 (carried in a bfloat16 model's dtype, the cell state would be
    rounded to bfloat16 at every step, which the training's sequence ops never do, and each step
    would cast four times per layer); as given where Keras' cells run, which keep their policy's."""
    if not runs_here(backbone):
        return states
    return tf.nest.map_structure(lambda s: tf.cast(s, tf.float32), states)


def recurrence_of(backbone, precision: str | None) -> str | None:
    """The recurrence the steps of `backbone` run in for `precision`: "float32", or "mixed_bfloat16"
    (bfloat16 products with float32 sums; states, output layer and softmax stay float32); None: the
    backbone's own. A CharseqError where it cannot apply: mixed_bfloat16 needs the compiled step ops
    and a CPU with AVX512-BF16 (elsewhere it would be emulated, slower than float32), and float32 on
    a bfloat16 model needs the step ops too (else load the model in float32)."""
    if precision is None:
        return None
    if precision not in INFERENCE_PRECISIONS:
        raise CharseqError(f"--precision must be one of {', '.join(INFERENCE_PRECISIONS)}, not {precision!r}")
    own = "mixed_bfloat16" if backbone.recurrence == "bfloat16" else "float32"
    if precision == "float32" and own == "float32":
        return "float32"
    if not runs_here(backbone):
        why = ("the compiled kernels are not available here" if not kernels.available()
               else f"this {backbone.cell.upper()} model does not run on the compiled step ops")
        raise CharseqError(f"--precision {precision} needs the compiled step ops ({why}); "
                           f"leave --precision out to generate in the model's {own}")
    if precision == "mixed_bfloat16" and not kernels.native_bf16():
        raise CharseqError("--precision mixed_bfloat16 needs a CPU with AVX512-BF16 (this one would emulate it, "
                           "slower than float32); leave --precision out")
    return "bfloat16" if precision == "mixed_bfloat16" else "float32"


def pack(backbone, recurrence: str | None = None) -> list[list[tf.Tensor]] | None:
    """Per layer [kernel, xproj, recurrent_kernel] (+ [recurrent_bias] for a GRU), packed for the step
    ops: `kernel` W packed (empty for the first layer of an id-reading backbone, whose x W + b is
    `xproj`, a [vocab, G u] table), `xproj` the input bias otherwise. None where the step ops do not run
    here (or not built yet). `recurrence`: see :data:`charseq.kernels.RECURRENCES`; default the backbone's."""
    if not runs_here(backbone) or not all(rnn.built for rnn in backbone.rnns):
        return None
    recurrence = recurrence_for(backbone, recurrence)
    ops = kernels.load()
    dtype = tf.bfloat16 if recurrence == "bfloat16" and kernels.native_bf16() else tf.float32
    gates = 4 if backbone.cell == "lstm" else 3

    def packed(matrix):
        return ops.charseq_pack_weights(tf.cast(matrix, tf.float32), gates=gates, T=dtype, recurrence=recurrence)

    layers = []
    for i, rnn in enumerate(backbone.rnns):
        cell = rnn.cell
        kernel, recurrent = tf.convert_to_tensor(cell.kernel), tf.convert_to_tensor(cell.recurrent_kernel)
        bias = tf.cast(tf.convert_to_tensor(cell.bias), tf.float32)
        input_bias = bias if backbone.cell == "lstm" else bias[0]
        if i == 0 and backbone.vocab_size is not None:
            embeddings = tf.cast(tf.convert_to_tensor(backbone.input_layer.embeddings), tf.float32)
            table = tf.matmul(embeddings, tf.cast(kernel, tf.float32)) + input_bias
            layer = [tf.zeros([0], dtype), table, packed(recurrent)]
        else:
            layer = [packed(kernel), input_bias, packed(recurrent)]
        layers.append(layer + ([bias[1]] if backbone.cell == "gru" else []))
    return layers


def step(backbone, packed: list, recurrence: str | None, inputs, states):
    """`backbone.step(inputs, states)` on the step ops, with `packed` from :func:`pack`; the outputs
    and states come in the states' dtype: float32 as :func:`carried_states` gives them (in a bfloat16
    model's dtype, as its cells give them, they are cast at every step)."""
    ops = kernels.load()
    recurrence = recurrence_for(backbone, recurrence)
    dtype = states[0][0].dtype
    if backbone.vocab_size is None:
        x = tf.cast(backbone.input_layer(inputs), tf.float32)
    else:
        x = tf.zeros([0, 0], tf.float32)  # the first layer's x W + b is a row of its table
    new_states = []
    for i, (layer, state) in enumerate(zip(packed, states)):
        kernel, xproj, recurrent, *recurrent_bias = layer
        if i == 0 and backbone.vocab_size is not None:
            xproj = tf.gather(xproj, inputs)
        state = [tf.cast(s, tf.float32) for s in state]
        if backbone.cell == "lstm":
            state = list(ops.charseq_lstm_step(x, kernel, xproj, recurrent, *state, recurrence=recurrence))
        else:
            state = [ops.charseq_gru_step(x, kernel, xproj, recurrent, *recurrent_bias, *state,
                                          recurrence=recurrence)]
        x = state[0]
        new_states.append([tf.cast(s, dtype) for s in state])
    return tf.cast(x, dtype), new_states


def pack_dense(layer, extra_bias=None) -> tuple[tf.Tensor, tf.Tensor] | None:
    """A model's output layer (a Dense of no activation) packed for :func:`dense`, with `extra_bias`
    added to its bias (the sampler's -inf for the symbols it never emits); None where the step ops do
    not run here."""
    if not kernels.available() or in_portable_graph() or not layer.built:
        return None
    kernel = tf.cast(tf.convert_to_tensor(layer.kernel), tf.float32)
    bias = tf.zeros([kernel.shape[1]]) if layer.bias is None else tf.cast(tf.convert_to_tensor(layer.bias), tf.float32)
    packed = kernels.load().charseq_pack_weights(kernel, gates=1, T=tf.float32, recurrence="float32")
    return packed, bias if extra_bias is None else bias + extra_bias


def dense(packed: tuple, x) -> tf.Tensor:
    """x K + b (float32) with (K, b) from :func:`pack_dense`: one op."""
    return kernels.load().charseq_dense(tf.cast(x, tf.float32), *packed)


def stepper(backbone, packed: list | None, recurrence: str | None = None):
    """(inputs, states) -> (outputs, states): :func:`step` with `packed`, or `backbone.step` where
    `packed` is None."""
    if packed is None:
        return backbone.step
    return lambda inputs, states: step(backbone, packed, recurrence, inputs, states)
