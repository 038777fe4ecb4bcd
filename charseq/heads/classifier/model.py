"""The sequence-classifier head: a readout of the shared backbone, dropout, a softmax over classes.

The readout turns the last layer's outputs into one vector per sequence:

- ``final`` (the default): the last layer's *final state*, not its output at the last time step:
  with padding masked, a sequence's final state is its state after its own last real character,
  while the output at the last step of a padded batch would be the state after padding (the
  difference TF1's `dynamic_rnn(sequence_length=...)` tutorials warn about). With
  `bidirectional`, the forward and backward final states are concatenated.
- ``mean`` / ``max``: the mean / maximum of the outputs over the sequence's own steps (padding masked).
- ``attention``: a weighted mean of the outputs, the weights a softmax over the steps of a learned score.
- ``concat``: final, mean and max side by side.
"""

from __future__ import annotations

from dataclasses import asdict

import keras
import tensorflow as tf
from keras import ops

from charseq.backbone import RecurrentBackbone
from charseq.settings import READOUTS, BackboneConfig


@keras.saving.register_keras_serializable(package="charseq")
class SequenceClassifier(keras.Model):
    """Class logits for whole sequences of token ids (`vocab_size`) or of vectors (`vocab_size=None`)."""

    def __init__(self, num_classes: int, backbone: BackboneConfig, vocab_size: int | None = None,
                 masking: bool = True, readout: str = "final", **kwargs):
        super().__init__(**kwargs)
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {', '.join(READOUTS)}, not {readout!r}")
        self.num_classes, self.readout = num_classes, readout
        self.backbone_config, self.vocab_size, self.masking = backbone, vocab_size, masking
        self.backbone = RecurrentBackbone.of(backbone, vocab_size=vocab_size, masking=masking, name="backbone")
        if readout == "attention":
            self.attention_score = keras.layers.Dense(1, use_bias=False, dtype="float32", name="attention_score")
        self.head_dropout = keras.layers.Dropout(backbone.dropout, name="head_dropout")
        self.head = keras.layers.Dense(num_classes, dtype="float32", name="logits")

    def get_config(self):
        # What model.save() writes, so that keras.models.load_model() rebuilds the model.
        return {**super().get_config(), "num_classes": self.num_classes, "backbone": asdict(self.backbone_config),
                "vocab_size": self.vocab_size, "masking": self.masking, "readout": self.readout}

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "backbone": BackboneConfig(**config["backbone"])})

    def features(self, inputs, training=False):
        """One vector per sequence, as `readout` says (see the module's docstring)."""
        outputs, states = self.backbone(inputs, training=training)
        last = states[-1]
        n = self.backbone.states_per_direction
        h = [last[0], last[n]] if self.backbone.bidirectional else [last[0]]
        final = ops.concatenate(h, axis=-1) if len(h) > 1 else h[0]
        if self.readout == "final":
            return final
        outputs = ops.cast(outputs, "float32")
        mask = self.backbone._mask(inputs)
        steps = ops.ones(ops.shape(outputs)[:2], "float32") if mask is None else ops.cast(mask, "float32")
        weights = steps[..., None]
        mean = ops.sum(outputs * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
        if self.readout == "mean":
            return mean
        top = ops.max(ops.where(weights > 0, outputs, -1e9), axis=1)
        if self.readout == "max":
            return top
        if self.readout == "attention":
            scores = ops.squeeze(self.attention_score(outputs), -1) + (1.0 - steps) * -1e9
            # tf.nn.softmax, not keras.ops.softmax, which warns about a text of one character (its
            # softmax over one step is 1, as it should be).
            attention = tf.nn.softmax(scores, axis=-1)[..., None]
            return ops.sum(outputs * attention, axis=1)
        return ops.concatenate([ops.cast(final, "float32"), mean, top], axis=-1)

    def call(self, inputs, training=False):
        return self.head(self.head_dropout(self.features(inputs, training=training), training=training))

    @tf.function(reduce_retracing=True)
    def probabilities(self, inputs):
        """Class probabilities for a batch, compiled once per model (prediction, evaluation, the studio)."""
        return tf.nn.softmax(self(inputs, training=False))
