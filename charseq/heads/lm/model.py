"""The language-model head: the shared backbone, then a dense layer over the vocabulary at every step."""

from __future__ import annotations

import keras
import tensorflow as tf

from charseq.backbone import RecurrentBackbone
from charseq.losses import sequence_loss


@keras.saving.register_keras_serializable(package="charseq")
class LanguageModel(keras.Model):
    """Next-token model: logits over the vocabulary for every position of the input.

    `call(ids, initial_state)` returns (logits, final states) so a trainer can carry the state
    from one window to the next; `step(ids_t, states)` advances one token for generation.
    Logits are float32 even under a mixed-precision policy, so the softmax stays accurate.
    """

    def __init__(self, vocab_size: int, cell: str = "lstm", units: int = 512, layers: int = 2,
                 dropout: float = 0.2, embedding_dim: int = 64, l2: float = 0.0,
                 precision: str = "float32", **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.precision = vocab_size, precision
        self.backbone = RecurrentBackbone(
            cell=cell, units=units, layers=layers, dropout=dropout, vocab_size=vocab_size,
            embedding_dim=embedding_dim, l2=l2, dtype=precision, name="backbone")
        self.head = keras.layers.Dense(
            vocab_size, kernel_regularizer=keras.regularizers.L2(l2) if l2 else None,
            dtype="float32", name="logits")

    def call(self, ids, initial_state=None, training=False):
        x, states = self.backbone(ids, initial_state=initial_state, training=training)
        return self.head(x), states

    def step(self, ids_t, states):
        x, states = self.backbone.step(ids_t, states)
        return self.head(x), states

    @tf.function(reduce_retracing=True)
    def scored(self, ids, targets, weights, initial_state):
        """(summed loss in nats, summed weight, final states) of `targets` after `ids`, state carried
        in from `initial_state`; compiled once per model (every evaluation reuses it)."""
        logits, states = self(ids, initial_state=initial_state, training=False)
        _, total, count = sequence_loss(targets, logits, weights)
        return total, count, states

    def zero_state(self, batch_size: int):
        return self.backbone.zero_state(batch_size)

    def get_config(self):
        b = self.backbone
        return dict(vocab_size=self.vocab_size, cell=b.cell, units=b.units, layers=b.num_layers,
                    dropout=b.dropout_rate, embedding_dim=b.embedding_dim, l2=b.l2,
                    precision=self.precision, name=self.name)

