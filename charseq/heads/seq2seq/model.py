"""The encoder-decoder head: two shared backbones, attention between them, a softmax over the target.

    model = Seq2Seq(source_vocab_size=20, target_vocab_size=14, backbone=BackboneConfig(units=256), attention="luong")
    logits = model((source_ids, decoder_input_ids), training=True)   # teacher forcing
    memory, mask, states = model.encode(source_ids)                  # once per source
    logits, states = model.decode_step(token, states, memory, mask)  # one target token at a time

The encoder reads the source characters; the decoder starts from the encoder's final state
(every layer's) and reads the target shifted right by a start symbol. At each target step its
output attends over the encoder outputs (Luong: dot-product scores; Bahdanau: additive
scores), and the output and the attention context together predict the next character, as in
Luong et al. (2015). Padding (id 0) is masked on both sides, so right-padded batches of
different lengths give every sequence its own result.
"""

from __future__ import annotations

from dataclasses import asdict

import keras
from keras import ops

from charseq.backbone import RecurrentBackbone
from charseq.settings import ATTENTIONS, BackboneConfig


@keras.saving.register_keras_serializable(package="charseq")
class Seq2Seq(keras.Model):
    """Logits over the target vocabulary for each target position, given the source."""

    def __init__(self, source_vocab_size: int, target_vocab_size: int, backbone: BackboneConfig,
                 attention: str = "luong", **kwargs):
        super().__init__(**kwargs)
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, not {attention!r}")
        self.source_vocab_size, self.target_vocab_size = source_vocab_size, target_vocab_size
        self.attention_kind, self.backbone_config = attention, backbone
        self.encoder = RecurrentBackbone.of(backbone, vocab_size=source_vocab_size, masking=True, name="encoder")
        self.decoder = RecurrentBackbone.of(backbone, vocab_size=target_vocab_size, masking=True, name="decoder")
        precision, units = self.decoder.dtype_policy.name, backbone.units
        if attention == "luong":
            self.attention = keras.layers.Attention(dtype=precision, name="attention")
        elif attention == "bahdanau":
            self.attention = keras.layers.AdditiveAttention(dtype=precision, name="attention")
        else:
            self.attention = None
        # Luong's attentional hidden state: tanh(W [output; context]).
        self.combine = keras.layers.Dense(units, activation="tanh", dtype=precision, name="combine")
        self.head = keras.layers.Dense(target_vocab_size, dtype="float32", name="logits")

    def get_config(self):
        # What model.save() writes, so that keras.models.load_model() rebuilds the model.
        return {**super().get_config(), "source_vocab_size": self.source_vocab_size,
                "target_vocab_size": self.target_vocab_size, "backbone": asdict(self.backbone_config),
                "attention": self.attention_kind}

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "backbone": BackboneConfig(**config["backbone"])})

    def encode(self, source_ids, training=False):
        """(encoder outputs, source mask, final states per layer): what the decoder needs."""
        outputs, states = self.encoder(source_ids, training=training)
        return outputs, ops.not_equal(source_ids, 0), states

    def _predict(self, decoder_outputs, memory_outputs, memory_mask, query_mask=None):
        if self.attention is not None:
            context = self.attention([decoder_outputs, memory_outputs],
                                     mask=[query_mask, memory_mask])
            decoder_outputs = self.combine(ops.concatenate([decoder_outputs, context], axis=-1))
        else:
            decoder_outputs = self.combine(decoder_outputs)
        return self.head(decoder_outputs)

    def call(self, inputs, training=False):
        source_ids, decoder_input_ids = inputs
        memory_outputs, memory_mask, states = self.encode(source_ids, training=training)
        outputs, _ = self.decoder(decoder_input_ids, initial_state=states, training=training)
        return self._predict(outputs, memory_outputs, memory_mask, ops.not_equal(decoder_input_ids, 0))

    def decode_step(self, token, states, memory_outputs, memory_mask, stepper=None):
        """Advance the decoder by one target token ([batch] ids): (logits [batch, vocab], new states).
        `stepper` runs the decoder's step (default `decoder.step`), as in LanguageModel.step."""
        output, states = (stepper or self.decoder.step)(token, states)
        logits = self._predict(output[:, None, :], memory_outputs, memory_mask)
        return logits[:, 0], states
