"""The shared recurrent backbone: every head (language model, classifier, encoder-decoder) uses it.

    backbone = RecurrentBackbone(cell="lstm", units=256, layers=3, dropout=0.5, vocab_size=80)
    backbone = RecurrentBackbone.of(BackboneConfig(units=256, layers=3), vocab_size=80)  # a head's way
    outputs, states = backbone(ids)             # whole sequences, for training
    out_t, states = backbone.step(ids_t, states)  # one input at a time, for generation

Inputs are either token ids (an `Embedding`) or real-valued vectors such as the rows of an
image (a `Dense` projection, `vocab_size=None`). The recurrent layers are Keras' own
SimpleRNN / LSTM / GRU with their default activations and no recurrent dropout, so on a GPU
Keras dispatches them to cuDNN; dropout is applied between layers instead, as in Zaremba et
al. (2014). Padding is masked when `masking=True` (ids: padding id 0; vectors: all-zero
steps); padding must be on the right, which is what cuDNN accepts.
"""

from __future__ import annotations

import contextlib
import numbers
import threading

import keras
import tensorflow as tf
from keras import ops

from charseq import kernels
from charseq.compiled_dropout import compiled_dropout
from charseq.compiled_gru import compiled_gru
from charseq.compiled_lstm import compiled_lstm
from charseq.fused_lstm import fused_lstm
from charseq.limits import check_number
from charseq.precision import resolve_precision
from charseq.settings import CELLS, IMPLS, BackboneConfig
_portable = threading.local()


@contextlib.contextmanager
def portable_graph():
    """Inside this block backbones run Keras' layers instead of the compiled kernel, so that a graph
    traced here (an exported SavedModel) needs nothing but TensorFlow's own ops to run."""
    before = getattr(_portable, "on", False)
    _portable.on = True
    try:
        yield
    finally:
        _portable.on = before


def in_portable_graph() -> bool:
    """Whether a graph traced now must run on TensorFlow's own ops (inside :func:`portable_graph`)."""
    return getattr(_portable, "on", False)

# The Keras layer of each cell name (the names are charseq.settings.CELLS, which the CLI offers).
CELL_LAYERS = dict(zip(CELLS, (keras.layers.SimpleRNN, keras.layers.LSTM, keras.layers.GRU)))


def _check_sizes(**sizes) -> None:
    """Each size a positive whole number, as Keras' layers check their `units`: a wrong one is said here,
    by its name, rather than as a shape error deep inside the first call."""
    for name, value in sizes.items():
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")


@keras.saving.register_keras_serializable(package="charseq")
class RecurrentBackbone(keras.layers.Layer):
    """Embedding (or input projection), then `layers` stacked recurrent layers with dropout between.

    Args:
        cell: "rnn" (SimpleRNN), "lstm" or "gru".
        units: state size of every recurrent layer.
        layers: how many recurrent layers are stacked.
        dropout: dropout rate on the input of every layer after the first, and on the output.
        input_dropout: dropout rate on the first layer's input (the embedding or input projection).
        vocab_size: number of token ids (embedding input); None for real-valued vectors.
        embedding_dim: size of the embedding or of the input projection.
        masking: mask padding so that each sequence's state stops at its last real input.
        l2: L2 penalty on the input and recurrent kernels (added to the model's losses).
        bidirectional: every layer also reads the sequence backwards (outputs and states of both
            directions concatenated; for classifiers and encoders, not for generation).
        impl: "keras" runs Keras' own layers (cuDNN on a GPU); "compiled" runs LSTM and GRU
            layers through the compiled CPU kernels of :mod:`charseq.compiled_lstm` and
            :mod:`charseq.compiled_gru` (same weights and function, masked or not; under a
            bfloat16 policy with their bfloat16 recurrence); "fused" runs unmasked LSTM layers
            through :func:`charseq.fused_lstm.fused_lstm`; "auto" picks compiled for an LSTM or
            GRU on a CPU (in bfloat16 only where the CPU has AVX512-BF16), fused for an unmasked
            bfloat16 LSTM elsewhere, keras otherwise (and on a GPU). Where the kernels cannot be
            built, "compiled" and "auto" run Keras' layers (one line on stderr).
    """

    def __init__(self, cell: str = "lstm", units: int = 256, layers: int = 1, dropout: float = 0.0,
                 vocab_size: int | None = None, embedding_dim: int = 64, masking: bool = False,
                 l2: float = 0.0, bidirectional: bool = False, impl: str = "auto", input_dropout: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        if cell not in CELL_LAYERS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
        _check_sizes(units=units, layers=layers, embedding_dim=embedding_dim,
                     **({"vocab_size": vocab_size} if vocab_size is not None else {}))
        for name, rate in (("dropout", dropout), ("input_dropout", input_dropout), ("l2", l2)):
            check_number(name, rate, name)  # the ranges of the command line's --dropout, --input-dropout, --l2
        self.cell, self.units, self.num_layers = cell, units, layers
        self.dropout_rate, self.vocab_size, self.embedding_dim = dropout, vocab_size, embedding_dim
        self.masking, self.l2 = masking, l2
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {', '.join(IMPLS)}, not {impl!r}")
        self.impl, self.bidirectional = impl, bidirectional
        # [batch, time] ids or [batch, time, features] vectors: Keras checks a call's inputs against this
        # and names a wrong rank (one sequence without its batch axis, say) before any kernel runs.
        self.input_spec = keras.InputSpec(ndim=2 if vocab_size is not None else 3)
        on_cpu = not tf.config.list_physical_devices("GPU")  # on a GPU Keras dispatches to cuDNN
        float32 = self.dtype_policy.compute_dtype == "float32"
        bfloat16 = self.dtype_policy.compute_dtype == "bfloat16"
        # The compiled kernels are faster than Keras' layer on a CPU (docs/benchmarks.md, "How the
        # backbone runs"). Their bfloat16 recurrence is chosen by "auto" only on AVX512-BF16, where its
        # dot products run natively; elsewhere it is emulated (correct, no faster), so bfloat16 takes the fused path.
        self.recurrence = "bfloat16" if bfloat16 else "float32"
        self.use_compiled = (cell in ("lstm", "gru") and (float32 or bfloat16) and kernels.available() and (
            impl == "compiled" or (impl == "auto" and on_cpu and (float32 or kernels.native_bf16()))))
        self.use_fused = cell == "lstm" and not masking and not self.use_compiled and (impl == "fused" or (
            impl == "auto" and self.dtype_policy.compute_dtype == "bfloat16" and on_cpu))
        reg = keras.regularizers.L2(l2) if l2 else None
        policy = self.dtype_policy
        if vocab_size is not None:
            self.input_layer = keras.layers.Embedding(
                vocab_size, embedding_dim, mask_zero=masking, embeddings_regularizer=reg,
                # N(0, 1) as in PyTorch, not Keras' U(-0.05, 0.05): with tiny inputs an LSTM
                # language model sits on the unigram plateau for ~100 steps before it learns.
                embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
                dtype=policy, name="embedding")
        else:
            self.input_layer = keras.layers.Dense(
                embedding_dim, kernel_regularizer=reg, dtype=policy, name="input_projection")
        def rnn(name, backwards=False):
            return CELL_LAYERS[cell](units, return_sequences=True, return_state=True, go_backwards=backwards,
                                     kernel_regularizer=reg, recurrent_regularizer=reg, dtype=policy, name=name)
        self.rnns = [rnn(f"{cell}_{i}") for i in range(layers)]
        self.backward_rnns = [rnn(f"{cell}_{i}_backward", True) for i in range(layers)] if bidirectional else []
        self.dropouts = [keras.layers.Dropout(dropout, dtype=policy, name=f"dropout_{i}") for i in range(layers)]
        # Made last and only when asked for: a Dropout layer takes its seed from the global generator,
        # so one made earlier would change every other layer's dropout masks for the same --seed.
        self.input_dropout_rate = input_dropout
        self.input_dropout = keras.layers.Dropout(input_dropout, dtype=policy, name="input_dropout") \
            if input_dropout else None

    def build(self, input_shape):
        """Create every sublayer's weights for inputs of `input_shape` ([batch, time] ids or [batch,
        time, features]), in the order a first call creates them (so a seed gives the same weights):
        Keras builds a layer this way when it loads a model of one's own that holds the backbone."""
        time_major = tuple(input_shape[:2])
        self.input_layer.build(input_shape)
        width = self.embedding_dim
        for i, rnn in enumerate(self.rnns):
            for layer in (rnn, *self.backward_rnns[i:i + 1]):
                if not layer.built:
                    layer.build((*time_major, width))
            width = self.units * (2 if self.bidirectional else 1)
        self.built = True

    @property
    def states_per_direction(self) -> int:
        return 2 if self.cell == "lstm" else 1

    @property
    def states_per_layer(self) -> int:
        return self.states_per_direction * (2 if self.bidirectional else 1)

    @classmethod
    def of(cls, config: BackboneConfig, vocab_size: int | None = None, masking: bool = False, **layer_kwargs):
        """The backbone `config` describes (its precision resolved to a dtype policy), reading ids
        below `vocab_size` or, with None, real-valued vectors; `layer_kwargs` go to the Keras layer (name)."""
        return cls(cell=config.cell, units=config.units, layers=config.layers, dropout=config.dropout,
                   vocab_size=vocab_size, embedding_dim=config.embedding_dim, masking=masking, l2=config.l2,
                   bidirectional=config.bidirectional, impl=config.impl, input_dropout=config.input_dropout,
                   dtype=resolve_precision(config.precision), **layer_kwargs)

    def _mask(self, inputs):
        if not self.masking:
            return None
        if self.vocab_size is not None:
            return ops.not_equal(inputs, 0)
        return ops.any(ops.not_equal(inputs, 0), axis=-1)

    def compute_mask(self, inputs, previous_mask=None):
        # The outputs carry the padding mask on, as Keras' own recurrent layers do, so that a layer
        # after the backbone (GlobalAveragePooling1D, a loss) leaves padding out; states have no time axis.
        return [self._mask(inputs)]

    def call(self, inputs, initial_state=None, training=False):
        """Run whole sequences. Returns (outputs [batch, time, units (x2 if bidirectional)], states per layer).

        `inputs` are [batch, time] token ids (or [batch, time, features] real-valued steps without a
        `vocab_size`); `initial_state`, a list of every layer's states as this returns them, carries
        on from an earlier call (None: zeros); `training` turns dropout on. With `bidirectional`, a
        layer's states are its forward states followed by its backward ones.
        """
        mask = self._mask(inputs)
        folded = self._folds_projection()
        x = inputs if folded else self.input_layer(inputs)
        if self.input_dropout is not None:
            x = self._drop(self.input_dropout, x, training)
        states = []
        n = self.states_per_direction
        for i, (rnn, drop) in enumerate(zip(self.rnns, self.dropouts)):
            if i > 0:
                x = self._drop(drop, x, training)
            init = None if initial_state is None else list(initial_state[i])
            fold = folded and i == 0
            out, *layer_state = self._run(rnn, x, init and init[:n], mask, training, fold=fold)
            if self.bidirectional:
                back, *back_state = self._run(self.backward_rnns[i], x, init and init[n:], mask, training,
                                              backwards=True, fold=fold)
                out = ops.concatenate([out, ops.flip(back, axis=1)], axis=-1)  # realign reversed outputs
                layer_state += back_state
            x = out
            states.append(layer_state)
        x = self._drop(self.dropouts[-1], x, training) if self.num_layers else x
        return x, states

    def _drop(self, layer, x, training):
        """Keras `Dropout` layer `layer` on x; where the layers run on the compiled kernels, as one
        compiled op with the layer's seeds (charseq.compiled_dropout: 4x faster than TensorFlow's
        stateless dropout on a CPU)."""
        if training and layer.rate > 0 and self._on_kernels():
            return compiled_dropout(x, layer.rate, layer.seed_generator.next())
        return layer(x, training=training)

    def _folds_projection(self) -> bool:
        """Whether the input projection runs folded into the first layer's kernel: x (P W) + (p W + b)
        in place of (x P + p) W + b. Both are linear in x, so the function and every weight's gradient
        are the same up to rounding; the folded form has no projected sequence to compute, add the bias
        to, cast, and take the gradient of (dz W^T, then its own x^T product and bias sum): the
        MNIST-row step is 8% faster in bfloat16, 18% in float32. Only on the compiled kernels
        (Keras' layers read the projected sequence) and with nothing between the two (input dropout)."""
        return self.vocab_size is None and self.input_dropout is None and self._on_kernels()

    def _on_kernels(self) -> bool:
        """Whether the layers run on the compiled kernels here (not while a portable graph is traced)."""
        return self.use_compiled and not in_portable_graph()

    def _run(self, rnn, x, init, mask, training, backwards=False, fold=False):
        if self._on_kernels():
            weights, init = self._cell_inputs(rnn, x, init, fold)
            run = compiled_lstm if self.cell == "lstm" else compiled_gru
            out = run(x, *weights, *init, mask=mask, go_backwards=backwards, recurrence=self.recurrence)
            return [ops.cast(t, self.compute_dtype) for t in out]
        if self.use_fused and mask is None:
            # Keras' go_backwards reads the sequence reversed and returns reversed outputs; so does this.
            return self._fused(rnn, ops.flip(x, axis=1) if backwards else x, init)
        return rnn(x, initial_state=init, mask=mask, training=training)

    def _fused(self, rnn, x, initial_state):
        x = ops.cast(x, self.compute_dtype)
        weights, initial_state = self._cell_inputs(rnn, x, initial_state)
        return fused_lstm(x, *weights, *initial_state)

    def _cell_inputs(self, rnn, x, initial_state, fold=False):
        """An LSTM or GRU layer's (kernel, recurrent kernel, bias) as tensors, and its initial
        state ((h, c) or (h,)): zeros if none. With `fold`, x is the input projection's input and the
        weights are the first layer's with the projection folded in (:meth:`_folds_projection`)."""
        if fold and not self.input_layer.built:
            self.input_layer.build(x.shape)
        if not rnn.built:
            rnn.build((*x.shape[:-1], self.embedding_dim) if fold else x.shape)
        cell = rnn.cell
        if initial_state is None:
            zeros = ops.zeros((ops.shape(x)[0], self.units), dtype=self.compute_dtype)
            initial_state = [zeros] * self.states_per_direction
        weights = [tf.identity(ops.convert_to_tensor(w)) for w in (cell.kernel, cell.recurrent_kernel, cell.bias)]
        return self._folded(*weights) if fold else weights, initial_state

    def _folded(self, kernel, recurrent_kernel, bias):
        """The first layer's (W, U, b) with the input projection's (P, p) folded in: (P W, U, b + p W);
        a GRU's p W goes to its input bias, the first of its two."""
        projection, shift = (tf.cast(ops.convert_to_tensor(w), tf.float32)
                             for w in (self.input_layer.kernel, self.input_layer.bias))
        kernel, bias = tf.cast(kernel, tf.float32), tf.cast(bias, tf.float32)
        shift = tf.linalg.matvec(kernel, shift, transpose_a=True)
        bias = bias + shift if self.cell == "lstm" else tf.concat([bias[:1] + shift, bias[1:]], axis=0)
        return [tf.matmul(projection, kernel), recurrent_kernel, bias]

    def zero_state(self, batch_size: int):
        """All-zero initial states, one list per layer (in the compute dtype of the layers)."""
        z = ops.zeros((batch_size, self.units), dtype=self.compute_dtype)
        return [[z] * self.states_per_layer for _ in range(self.num_layers)]

    def step(self, inputs, states):
        """Advance every layer by one step: `inputs` are [batch] ids (or [batch, features]), `states`
        every layer's states as :meth:`call` or the previous step returned them. Returns (output
        [batch, units], states); no dropout.

        Calls the layers' cells directly, so generation costs one step per character
        instead of re-running the prefix.
        """
        if self.bidirectional:
            raise ValueError("a bidirectional backbone reads whole sequences; it has no step API")
        if self.masking and self.vocab_size is not None:
            # A direct lookup: the Embedding layer would attach a padding mask that a lone cell
            # cannot use (one step has no padding to skip).
            x = ops.cast(ops.take(self.input_layer.embeddings, inputs, axis=0), self.compute_dtype)
        else:
            x = self.input_layer(inputs)
        new_states = []
        for rnn, layer_state in zip(self.rnns, states):
            x, s = rnn.cell(x, list(layer_state), training=False)
            new_states.append(list(s) if isinstance(s, (list, tuple)) else [s])
        return x, new_states

    def get_config(self):
        config = super().get_config()
        config.update(cell=self.cell, units=self.units, layers=self.num_layers,
                      dropout=self.dropout_rate, vocab_size=self.vocab_size,
                      embedding_dim=self.embedding_dim, masking=self.masking, l2=self.l2,
                      bidirectional=self.bidirectional, impl=self.impl, input_dropout=self.input_dropout_rate)
        return config
