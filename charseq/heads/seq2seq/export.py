"""An encoder-decoder's SavedModel signature: `translate` (sources -> texts, greedy decoding)."""

from __future__ import annotations

import tensorflow as tf

from charseq.export_ops import Chars, assert_not_empty, checked_shape, padded
from charseq.heads.seq2seq.inference import greedy_decode


class Seq2SeqExport(tf.Module):
    """`translate`: sources [batch] -> text [batch], by greedy decoding (charseq's --beam 1)."""

    def __init__(self, model, source_vocab, target_vocab, reverse_source: bool, max_output_len: int):
        super().__init__()
        self.source_chars, self.target_chars = Chars(source_vocab), Chars(target_vocab)
        self.model = model
        self._reverse, self._max_len = reverse_source, max_output_len

    @tf.function(input_signature=[tf.TensorSpec(None, tf.string, name="source")])  # [n]: see checked_shape
    def translate(self, source):
        source = checked_shape(source, [None],
                               "translate: source must be a batch of strings [n], not a tensor of shape")
        with tf.control_dependencies([assert_not_empty(source, "translate: a source is empty", strip=False)]):
            ids = self.source_chars.encode(source)
        if self._reverse:  # each row backwards: flat index k of a row [start, limit) reads start + limit - 1 - k
            flip = tf.repeat(ids.row_starts() + ids.row_limits() - 1, ids.row_lengths()) - tf.range(
                tf.size(ids.flat_values, out_type=tf.int64))
            ids = ids.with_flat_values(tf.gather(ids.flat_values, flip))
        tokens, _, _ = greedy_decode(self.model, padded(ids), self._max_len)
        return {"text": self.target_chars.decode(tokens)}

    def signatures(self) -> dict:
        return {"translate": self.translate}


def build_export(model_dir) -> tuple[tf.Module, dict]:
    """The exportable module of an encoder-decoder run, and what to record about it."""
    from charseq.heads.seq2seq.run import load_seq2seq

    model, source_vocab, target_vocab, config = load_seq2seq(model_dir, "float32")  # see charseq.export
    max_len = int(config["model"]["max_output_len"])
    return (Seq2SeqExport(model, source_vocab, target_vocab, bool(config["model"]["reverse_source"]), max_len),
            {"max_output_len": max_len})
