"""Decoding an encoder-decoder: greedy and beam search, batched, decoder state carried step by step.

    decoder = Decoder(model, target_vocab)
    hyps = decoder.decode(source_batch, beam=5, n_best=3)   # per source: [(text, log_prob, norm_score), ...]

The source is encoded once; then every step feeds one token per hypothesis through the
compiled `decode_step` and keeps the `beam` best continuations of each source. Beam 1 is
:func:`greedy_decode`, one compiled `tf.while_loop` (the exported `translate` signature runs the
same function). A hypothesis ends at the end symbol; decoding stops when all have ended or
at `max_len` tokens. Finished hypotheses are ranked by log-probability divided by
length ** `length_penalty` (0: raw log-probability; 1: per-token average), so that beam search
does not simply prefer short outputs.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from charseq.compiled_step import pack, recurrence_of, stepper
from charseq.data.batching import pad_batch
from charseq.errors import CharseqError
from charseq.vocab import BOS, EOS, PAD, banned_ids


def check_options(beam: int, n_best: int, max_len: int, length_option: str = "--max-output-len") -> None:
    """Beam-search options, checked before any decoding (the LM's beam search names its length --length)."""
    if beam < 1:
        raise CharseqError(f"--beam must be at least 1, not {beam}")
    if not 1 <= n_best <= beam:
        raise CharseqError(f"--n-best must be between 1 and --beam ({beam}), not {n_best}")
    if max_len < 1:
        raise CharseqError(f"{length_option} must be at least 1, not {max_len}")


def greedy_decode(model, source_ids, max_len, recurrence: str | None = None):
    """Greedy decoding of a right-padded batch of sources [batch, time], as one `tf.while_loop` of
    plain TensorFlow ops (`charseq translate --beam 1`, and the exported `translate` signature);
    the decoder's steps in `recurrence` (see :mod:`charseq.compiled_step`; None: the model's own).

    Returns (tokens [batch, steps] ending with the end symbol, then padding; the summed
    log-probability of each output [batch]; its length in tokens, end symbol included [batch]).
    """
    memory, mask, states = model.encode(source_ids, training=False)
    batch = tf.shape(memory)[0]
    banned = tf.constant(banned_ids(model.target_vocab_size, allow=(EOS,)))  # it may end, nothing else special
    # The compiled step's weights, packed once per call.
    decoder_step = stepper(model.decoder, pack(model.decoder, recurrence), recurrence)

    def step(t, token, states, finished, out, score, length):
        logits, states = model.decode_step(token, states, memory, mask, decoder_step)
        log_probs = tf.nn.log_softmax(logits, axis=-1) + banned
        token = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        score += tf.where(finished, 0.0, tf.gather(log_probs, token, batch_dims=1))
        length += tf.cast(~finished, tf.int32)
        token = tf.where(finished, PAD, token)  # a finished output continues with padding only
        return t + 1, token, states, finished | (token == EOS), out.write(t, token), score, length

    _, _, _, _, out, score, length = tf.while_loop(
        lambda t, token, states, finished, *_: (t < max_len) & ~tf.reduce_all(finished), step,
        (tf.constant(0), tf.fill([batch], BOS), states, tf.zeros([batch], tf.bool),
         tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None]),
         tf.zeros([batch], tf.float32), tf.zeros([batch], tf.int32)))
    tokens = tf.cond(out.size() > 0, lambda: tf.transpose(out.stack()), lambda: tf.zeros([batch, 0], tf.int32))
    return tokens, score, length


class Decoder:
    """Decodes with one loaded encoder-decoder. `precision`: how the decoder's recurrent products
    multiply, as for :class:`charseq.heads.lm.inference.Generator` (None: the model's own)."""

    def __init__(self, model, target_vocab, precision: str | None = None):
        self.model, self.vocab = model, target_vocab
        self.recurrence = recurrence_of(model.decoder, precision)
        self._encode = tf.function(lambda ids: model.encode(ids, training=False), reduce_retracing=True)
        self._step = tf.function(self._step_fn, reduce_retracing=True)
        self._greedy = tf.function(lambda ids, max_len: greedy_decode(model, ids, max_len, self.recurrence),
                                   reduce_retracing=True)

    def _step_fn(self, token, states, memory, mask, packed):
        logits, states = self.model.decode_step(token, states, memory, mask,
                                                stepper(self.model.decoder, packed, self.recurrence))
        return tf.nn.log_softmax(logits, axis=-1), states

    def decode(self, source_ids: np.ndarray, beam: int = 1, n_best: int = 1, max_len: int = 100,
               length_penalty: float = 1.0) -> list[list[tuple[str, float, float]]]:
        """For each row of `source_ids` ([batch, time], right-padded with 0): its `n_best` best
        hypotheses as (text, log-probability, normalised score), best first."""
        check_options(beam, n_best, max_len)
        if beam == 1:
            tokens, scores, lengths = (t.numpy() for t in self._greedy(tf.constant(source_ids, tf.int32),
                                                                         tf.constant(max_len, tf.int32)))
            normalised = scores.astype(np.float64) / np.maximum(lengths, 1) ** length_penalty
            return [[(self.vocab.decode([t for t in row if t not in (PAD, EOS)]), float(s), float(n))]
                    for row, s, n in zip(tokens, scores, normalised)]
        batch = source_ids.shape[0]
        memory, mask, states = self._encode(tf.constant(source_ids, tf.int32))
        packed = pack(self.model.decoder, self.recurrence)  # the compiled step's weights, once per batch

        def tile(t):  # every source's tensors repeated for its `beam` hypotheses
            return tf.repeat(t, beam, axis=0)
        memory, mask = tile(memory), tile(mask)
        states = [[tile(s) for s in layer] for layer in states]

        vocab = self.model.target_vocab_size
        banned = banned_ids(vocab, allow=(EOS,))  # never emit pad/unk/start
        # Only the first hypothesis of each source is live at the start (the rest would duplicate it).
        scores = np.full((batch, beam), -np.inf, np.float64)
        scores[:, 0] = 0.0
        tokens = np.full((batch * beam,), BOS, np.int32)
        history = np.zeros((batch, beam, 0), np.int32)
        lengths = np.zeros((batch, beam), np.int32)
        finished = np.zeros((batch, beam), bool)
        for _ in range(max_len):
            log_probs, states = self._step(tf.constant(tokens), states, memory, mask, packed)
            log_probs = log_probs.numpy().astype(np.float64).reshape(batch, beam, vocab) + banned
            # A finished hypothesis continues only with padding, at no cost, so it keeps its score.
            done = finished[:, :, None]
            log_probs = np.where(done, -np.inf, log_probs)
            log_probs[:, :, PAD] = np.where(finished, 0.0, -np.inf)
            candidates = (scores[:, :, None] + log_probs).reshape(batch, beam * vocab)
            best = np.argsort(-candidates, axis=1, kind="stable")[:, :beam]
            origin, token = best // vocab, (best % vocab).astype(np.int32)
            rows = np.arange(batch)[:, None]
            scores = candidates[rows, best]
            history = np.concatenate([history[rows, origin], token[:, :, None]], axis=2)
            was_finished = finished[rows, origin]
            lengths = lengths[rows, origin] + (~was_finished)
            finished = was_finished | (token == EOS)
            gather = tf.constant((origin + rows * beam).reshape(-1), tf.int32)
            states = [[tf.gather(s, gather) for s in layer] for layer in states]
            tokens = token.reshape(-1)
            if finished[np.isfinite(scores)].all():
                break
        normalised = scores / np.maximum(lengths, 1) ** length_penalty
        results = []
        for b in range(batch):
            order = np.argsort(-normalised[b], kind="stable")
            hyps = []
            for k in order:
                if not np.isfinite(scores[b, k]):
                    continue
                ids = [t for t in history[b, k] if t not in (PAD, EOS)]
                hyps.append((self.vocab.decode(ids), float(scores[b, k]), float(normalised[b, k])))
                if len(hyps) == n_best:
                    break
            results.append(hyps)
        return results


def edit_distance(a, b) -> int:
    """Levenshtein distance between two sequences (one row of the table at a time).

    >>> edit_distance("kitten", "sitting"), edit_distance("", "abc"), edit_distance("ab", "ab")
    (3, 3, 0)
    """
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def score_outputs(predictions: list[str], targets: list[str]) -> dict:
    """Exact-match accuracy and character error rate (total edit distance / total target length)."""
    exact = sum(p == t for p, t in zip(predictions, targets))
    edits = sum(edit_distance(p, t) for p, t in zip(predictions, targets))
    chars = sum(len(t) for t in targets)
    return {"exact_match": exact / len(targets), "char_error_rate": edits / max(chars, 1),
            "examples": len(targets)}


def decode_all(decoder: Decoder, sources: list[np.ndarray], beam: int = 1, n_best: int = 1,
               max_len: int = 100, length_penalty: float = 1.0, batch_size: int = 256) -> list[list[tuple]]:
    """Decode many sources in batches of similar length; results in the order of `sources`."""
    check_options(beam, n_best, max_len)
    order = np.argsort([len(s) for s in sources], kind="stable")
    per_batch = max(1, batch_size // beam)
    results: list = [None] * len(sources)
    for start in range(0, len(order), per_batch):
        idx = order[start: start + per_batch]
        hyps = decoder.decode(pad_batch([sources[i] for i in idx]), beam, n_best, max_len, length_penalty)
        for i, h in zip(idx, hyps):
            results[i] = h
    return results
