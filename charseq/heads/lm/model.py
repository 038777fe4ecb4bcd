"""The language-model head: the shared backbone, then a dense layer over the vocabulary at every step."""

from __future__ import annotations

from dataclasses import asdict

import keras
import tensorflow as tf

from charseq.backbone import RecurrentBackbone
from charseq.losses import sequence_loss
from charseq.settings import BackboneConfig


@keras.saving.register_keras_serializable(package="charseq")
class LanguageModel(keras.Model):
    """Next-token model: logits over the vocabulary for every position of the input.

    `call(ids, initial_state)` returns (logits, final states) so a trainer can carry the state
    from one window to the next; `step(ids_t, states)` advances one token for generation.
    Logits are float32 even under a mixed-precision policy, so the softmax stays accurate. Compiled
    with a loss (and metrics) on the logits, it trains with Keras' own `fit` and `evaluate`, which
    score the logits alone.
    """

    def __init__(self, vocab_size: int, backbone: BackboneConfig, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.backbone_config = vocab_size, backbone
        self.backbone = RecurrentBackbone.of(backbone, vocab_size=vocab_size, name="backbone")
        self.head = keras.layers.Dense(
            vocab_size, kernel_regularizer=keras.regularizers.L2(backbone.l2) if backbone.l2 else None,
            dtype="float32", name="logits")

    def get_config(self):
        # What model.save() writes, so that keras.models.load_model() rebuilds the model.
        return {**super().get_config(), "vocab_size": self.vocab_size, "backbone": asdict(self.backbone_config)}

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "backbone": BackboneConfig(**config["backbone"])})

    @property
    def precision(self) -> str:
        """The policy it computes in: "float32" or "mixed_bfloat16"."""
        return self.backbone.dtype_policy.name

    def call(self, ids, initial_state=None, training=False):
        x, states = self.backbone(ids, initial_state=initial_state, training=training)
        return self.head(x), states

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # `call` gives (logits, states); Keras' own fit and evaluate score the logits alone against the
        # targets, so a compiled LanguageModel trains with model.fit as any Keras model does.
        return super().compute_loss(x, y, _logits(y_pred), sample_weight, training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y, _logits(y_pred), sample_weight)

    def step(self, ids_t, states, stepper=None, head=None):
        """(logits, states) one token on; `stepper` runs the backbone's step (default `backbone.step`;
        :func:`charseq.compiled_step.stepper` for the compiled step ops), `head` the output layer
        (default `self.head`; a sampler passes it packed, :func:`charseq.compiled_step.pack_dense`)."""
        x, states = (stepper or self.backbone.step)(ids_t, states)
        return (head or self.head)(x), states

    @tf.function(reduce_retracing=True)
    def scored(self, ids, targets, weights, initial_state):
        """(summed loss in nats, summed weight, final states) of `targets` after `ids`, state carried
        in from `initial_state`; compiled once per model (every evaluation reuses it)."""
        logits, states = self(ids, initial_state=initial_state, training=False)
        _, total, count = sequence_loss(targets, logits, weights)
        return total, count, states

    def zero_state(self, batch_size: int):
        return self.backbone.zero_state(batch_size)


def _logits(outputs):
    """The logits of what `LanguageModel.call` returned ((logits, states)), or `outputs` if they are the logits."""
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs
