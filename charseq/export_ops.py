"""In-graph pieces every head's SavedModel export uses: a character vocabulary as lookup tables,
padding, input checks and the shape of a classification answer (plain TensorFlow ops only)."""

from __future__ import annotations

import tensorflow as tf

from charseq.errors import CharseqError
from charseq.vocab import SPECIALS, UNK, CharVocab


class Chars(tf.Module):
    """A character vocabulary as two in-graph tables: text to ids, ids to text."""

    def __init__(self, vocab):
        super().__init__()
        self.check(vocab)
        ids = tf.range(len(SPECIALS), vocab.size, dtype=tf.int32)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(vocab.chars, tf.string), ids), default_value=UNK)
        # What CharVocab.decode writes for each id: nothing for padding and start/end, U+FFFD for unknown.
        self.tokens = tf.constant(["", "\ufffd", "", ""] + vocab.chars, tf.string)

    @staticmethod
    def check(vocab) -> None:
        if not isinstance(vocab, CharVocab):
            raise CharseqError("only character vocabularies export: this run uses SentencePiece, whose "
                               "tokenizer is not an op of plain TensorFlow")

    def encode(self, texts):
        """Ids of the characters of each text: a [batch, None] ragged tensor (or [None] for a scalar)."""
        chars = tf.strings.unicode_split(texts, "UTF-8", errors="replace")
        if isinstance(chars, tf.RaggedTensor):
            return tf.ragged.map_flat_values(self.table.lookup, chars)
        return self.table.lookup(chars)

    def decode(self, ids):
        """The text of each row of ids [batch, time]."""
        return tf.strings.reduce_join(tf.gather(self.tokens, ids), axis=-1)


def padded(ids: tf.RaggedTensor, max_len: int | None = None):
    """Right-padded with 0 (as charseq's batches are), with at least one column."""
    if max_len:
        ids = ids[:, :max_len]
    dense = ids.to_tensor(default_value=0)
    return tf.cond(tf.shape(dense)[1] > 0, lambda: dense, lambda: tf.zeros([tf.shape(dense)[0], 1], tf.int32))


def checked_shape(value, shape: list, message: str, *checks):
    """`value`, an input of unknown shape (TensorSpec(None): a declared shape would let graph rewrites
    take its rank as given, and a loaded signature runs whatever shape it is called with), with the
    static `shape` ([] a scalar, [None] a batch, None for any size), once ops have checked that it has
    as many dimensions (else an InvalidArgumentError with `message` and the shape given) and then
    each of `checks`, (condition, message) pairs, one after another, so that the first that fails is
    the one said."""
    done = [tf.debugging.Assert(tf.equal(tf.size(tf.shape(value)), len(shape)), [message, tf.shape(value)])]
    for condition, said in checks:
        with tf.control_dependencies(done):
            done = [tf.debugging.Assert(condition, said)]
    with tf.control_dependencies(done):
        return tf.ensure_shape(value, shape)


def assert_not_empty(texts, message: str, strip: bool = True):
    """An op that fails with `message` if any of `texts` is empty (as charseq's CLI refuses them)."""
    lengths = tf.strings.length(tf.strings.strip(texts) if strip else texts)
    return tf.debugging.Assert(tf.reduce_all(lengths > 0), [message])
