"""An encoder-decoder's SavedModel signature: `translate` (sources -> texts, greedy decoding)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from charseq.export_ops import Chars, assert_not_empty, padded
from charseq.vocab import BOS, EOS, PAD, SPECIALS


class Seq2SeqExport(tf.Module):
    """`translate`: sources [batch] -> text [batch], by greedy decoding (charseq's --beam 1)."""

    def __init__(self, model, source_vocab, target_vocab, reverse_source: bool, max_output_len: int):
        super().__init__()
        self.source_chars, self.target_chars = Chars(source_vocab), Chars(target_vocab)
        self.model = model
        self._reverse, self._max_len = reverse_source, max_output_len
        banned = np.zeros(target_vocab.size, np.float32)
        banned[[i for i in range(len(SPECIALS)) if i != EOS]] = -np.inf  # as charseq.heads.seq2seq.decoding does
        self._banned = tf.constant(banned)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="source")])
    def translate(self, source):
        with tf.control_dependencies([assert_not_empty(source, "translate: a source is empty", strip=False)]):
            ids = self.source_chars.encode(source)
        if self._reverse:  # each row backwards: flat index k of a row [start, limit) reads start + limit - 1 - k
            flip = tf.repeat(ids.row_starts() + ids.row_limits() - 1, ids.row_lengths()) - tf.range(
                tf.size(ids.flat_values, out_type=tf.int64))
            ids = ids.with_flat_values(tf.gather(ids.flat_values, flip))
        memory, mask, states = self.model.encode(padded(ids), training=False)
        batch = tf.shape(memory)[0]

        def step(t, token, states, finished, out):
            logits, states = self.model.decode_step(token, states, memory, mask)
            token = tf.argmax(tf.nn.log_softmax(logits, axis=-1) + self._banned, axis=-1, output_type=tf.int32)
            token = tf.where(finished, PAD, token)  # a finished output continues with padding only
            return t + 1, token, states, finished | (token == EOS), out.write(t, token)

        _, _, _, _, out = tf.while_loop(
            lambda t, token, states, finished, out: (t < self._max_len) & ~tf.reduce_all(finished), step,
            (tf.constant(0), tf.fill([batch], BOS), states, tf.zeros([batch], tf.bool),
             tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None])))
        tokens = tf.cond(out.size() > 0, lambda: tf.transpose(out.stack()), lambda: tf.zeros([batch, 0], tf.int32))
        return {"text": self.target_chars.decode(tokens)}

    def signatures(self) -> dict:
        return {"translate": self.translate}


def build_export(model_dir) -> tuple[tf.Module, dict]:
    """The exportable module of an encoder-decoder run, and what to record about it."""
    from charseq.heads.seq2seq.run import load_seq2seq

    model, source_vocab, target_vocab, config = load_seq2seq(model_dir)
    max_len = int(config["model"]["max_output_len"])
    return (Seq2SeqExport(model, source_vocab, target_vocab, bool(config["model"]["reverse_source"]), max_len),
            {"max_output_len": max_len})
