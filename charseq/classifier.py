"""The sequence-classifier head: the shared backbone's final state, dropout, a softmax over classes.

The state used is the last layer's *final state*, not its output at the last time step: with
padding masked, a sequence's final state is its state after its own last real character,
while the output at the last step of a padded batch would be the state after padding (the
difference TF1's `dynamic_rnn(sequence_length=...)` tutorials warn about). With
`bidirectional`, the forward and backward final states are concatenated.
"""

from __future__ import annotations

import keras
from keras import ops

from charseq.backbone import RecurrentBackbone


@keras.saving.register_keras_serializable(package="charseq")
class SequenceClassifier(keras.Model):
    """Class logits for whole sequences of token ids (`vocab_size`) or of vectors (`vocab_size=None`)."""

    def __init__(self, num_classes: int, vocab_size: int | None = None, cell: str = "lstm", units: int = 128,
                 layers: int = 1, dropout: float = 0.0, embedding_dim: int = 64, bidirectional: bool = False,
                 masking: bool = True, l2: float = 0.0, precision: str = "float32", **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.precision = num_classes, precision
        self.backbone = RecurrentBackbone(
            cell=cell, units=units, layers=layers, dropout=dropout, vocab_size=vocab_size,
            embedding_dim=embedding_dim, masking=masking, l2=l2, bidirectional=bidirectional,
            dtype=precision, name="backbone")
        self.head_dropout = keras.layers.Dropout(dropout, name="head_dropout")
        self.head = keras.layers.Dense(num_classes, dtype="float32", name="logits")

    def features(self, inputs, training=False):
        """The final state of the last layer (both directions if bidirectional)."""
        _, states = self.backbone(inputs, training=training)
        last = states[-1]
        n = self.backbone.states_per_direction
        h = [last[0], last[n]] if self.backbone.bidirectional else [last[0]]
        return ops.concatenate(h, axis=-1) if len(h) > 1 else h[0]

    def call(self, inputs, training=False):
        return self.head(self.head_dropout(self.features(inputs, training=training), training=training))

    def get_config(self):
        b = self.backbone
        return dict(num_classes=self.num_classes, vocab_size=b.vocab_size, cell=b.cell, units=b.units,
                    layers=b.num_layers, dropout=b.dropout_rate, embedding_dim=b.embedding_dim,
                    bidirectional=b.bidirectional, masking=b.masking, l2=b.l2, precision=self.precision,
                    name=self.name)
