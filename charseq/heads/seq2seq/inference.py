"""Decoding an encoder-decoder: greedy and beam search, batched, decoder state carried step by step.

    decoder = Decoder(model, target_vocab)
    hyps = decoder.decode(source_batch, beam=5, n_best=3)   # per source: [(text, log_prob, norm_score), ...]

The source is encoded once; then every step feeds one token per hypothesis through the
compiled `decode_step` and keeps the `beam` best continuations of each source, in one compiled
`tf.while_loop`: beam 1 is :func:`greedy_decode` (the exported `translate` signature runs the same
function), beam search :meth:`Decoder.beam_fn`, whose texts are read back at the end from the
hypothesis each step's came from (:func:`backtrack`). A hypothesis ends at the end symbol; decoding
stops when all have ended or at `max_len` tokens. Finished hypotheses are ranked by log-probability divided by
length ** `length_penalty` (0: raw log-probability; 1: per-token average), so that beam search
does not simply prefer short outputs.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from charseq.compiled_step import carried_states, pack, recurrence_of, stepper
from charseq.data.batching import pad_batch
from charseq.errors import CharseqError, scores_not_numbers
from charseq.heads.seq2seq.config import MAX_BEAM, MAX_OUTPUT_LEN
from charseq.vocab import BOS, EOS, PAD, banned_ids


def check_options(beam: int, n_best: int, max_len: int, length_option: str = "--max-output-len") -> None:
    """Beam-search options, checked before any decoding (the LM's beam search names its length --length)."""
    if beam < 1:
        raise CharseqError(f"--beam must be at least 1, not {beam}")
    if beam > MAX_BEAM:
        raise CharseqError(f"--beam must be at most {MAX_BEAM:,}, not {beam}")
    if not 1 <= n_best <= beam:
        # Greedy decoding (the default) has one hypothesis: more come from a beam at least as wide.
        raise CharseqError(f"--n-best must be between 1 and --beam ({beam}), not {n_best}",
                           *([f"--beam {n_best}"] if n_best > beam else []))
    if max_len < 1:
        raise CharseqError(f"{length_option} must be at least 1, not {max_len}")
    if max_len > MAX_OUTPUT_LEN:
        raise CharseqError(f"{length_option} must be at most {MAX_OUTPUT_LEN:,}, not {max_len}")


def greedy_decode(model, source_ids, max_len, recurrence: str | None = None):
    """Greedy decoding of a right-padded batch of sources [batch, time], as one `tf.while_loop` of
    plain TensorFlow ops (`charseq translate --beam 1`, and the exported `translate` signature);
    the decoder's steps in `recurrence` (see :mod:`charseq.compiled_step`; None: the model's own).

    Returns (tokens [batch, steps] ending with the end symbol, then padding; the summed
    log-probability of each output [batch]; its length in tokens, end symbol included [batch]).
    """
    memory, mask, states = model.encode(source_ids, training=False)
    states = carried_states(model.decoder, states)
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
        # Any batch from the first call on: a batch of known size would give the loop's first values
        # a shape its later ones do not have.
        self._beam = tf.function(self.beam_fn, input_signature=[tf.TensorSpec([None, None], tf.int32),
                                                                tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)],
                                 autograph=False)
        self._greedy = tf.function(lambda ids, max_len: greedy_decode(model, ids, max_len, self.recurrence),
                                   reduce_retracing=True, autograph=False)

    def beam_fn(self, source_ids, beam, max_len):
        """Beam search over a right-padded batch of sources [batch, time]: until every live
        hypothesis has ended or `max_len` steps, the `beam` best continuations of each source.

        Returns (origins, tokens) [steps, batch, beam], each step's choice (see :func:`backtrack`),
        and the last step's scores (total log-probabilities, float64) and lengths [batch, beam]."""
        model, vocab = self.model, self.model.target_vocab_size
        memory, mask, states = model.encode(source_ids, training=False)
        batch = tf.shape(memory)[0]

        def tile(t):  # every source's tensors repeated for its `beam` hypotheses
            return tf.repeat(t, beam, axis=0)
        states = carried_states(model.decoder, states)
        memory, mask, states = tile(memory), tile(mask), tf.nest.map_structure(tile, states)
        decoder_step = stepper(model.decoder, pack(model.decoder, self.recurrence), self.recurrence)  # packed once
        banned = tf.constant(banned_ids(vocab, allow=(EOS,)), tf.float64)  # never emit pad/unk/start
        # A finished hypothesis continues only with padding, at no cost, so it keeps its score.
        padding_only = tf.one_hot(PAD, vocab, on_value=0.0, off_value=-np.inf, dtype=tf.float64)
        first_of_source = tf.range(batch)[:, None] * beam  # each source's first hypothesis in the flat rows

        def step(t, token, states, scores, lengths, finished, origins, tokens):
            logits, states = model.decode_step(token, states, memory, mask, decoder_step)
            log_probs = tf.reshape(tf.cast(tf.nn.log_softmax(logits, axis=-1), tf.float64), [batch, beam, vocab])
            log_probs = tf.where(finished[:, :, None], padding_only, log_probs + banned)
            origin, token, scores = best_continuations(scores, log_probs)
            was_finished = tf.gather(finished, origin, batch_dims=1)
            lengths = tf.gather(lengths, origin, batch_dims=1) + tf.cast(~was_finished, tf.int32)
            rows = tf.reshape(origin + first_of_source, [-1])
            states = tf.nest.map_structure(lambda s: tf.gather(s, rows), states)
            return (t + 1, tf.reshape(token, [-1]), states, scores, lengths, was_finished | (token == EOS),
                    origins.write(t, origin), tokens.write(t, token))

        def going(t, token, states, scores, lengths, finished, *_):  # some live hypothesis has not ended
            return (t < max_len) & ~tf.reduce_all(finished | tf.math.is_inf(scores))

        records = [tf.TensorArray(tf.int32, size=0, dynamic_size=True) for _ in range(2)]
        _, _, _, scores, lengths, _, origins, tokens = tf.while_loop(going, step, (
            tf.constant(0), tf.fill([batch * beam], BOS), states, first_live(batch, beam),
            tf.zeros([batch, beam], tf.int32), tf.zeros([batch, beam], tf.bool), *records))
        return origins.stack(), tokens.stack(), scores, lengths

    def decode(self, source_ids: np.ndarray, beam: int = 1, n_best: int = 1, max_len: int = 100,
               length_penalty: float = 1.0) -> list[list[tuple[str, float, float]]]:
        """For each row of `source_ids` ([batch, time], right-padded with 0): its `n_best` best
        hypotheses as (text, log-probability, normalised score), best first."""
        check_options(beam, n_best, max_len)
        if beam == 1:
            tokens, scores, lengths = (t.numpy() for t in self._greedy(tf.constant(source_ids, tf.int32),
                                                                         tf.constant(max_len, tf.int32)))
            if not np.isfinite(scores).all():  # argmax of nan scores: padding to the end, never a word
                raise scores_not_numbers()
            normalised = scores.astype(np.float64) / np.maximum(lengths, 1) ** length_penalty
            return [[(self.vocab.decode([t for t in row if t not in (PAD, EOS)]), float(s), float(n))]
                    for row, s, n in zip(tokens, scores, normalised)]
        origins, tokens, scores, lengths = (t.numpy() for t in self._beam(
            tf.constant(source_ids, tf.int32), tf.constant(beam, tf.int32), tf.constant(max_len, tf.int32)))
        history = backtrack(origins, tokens)
        normalised = scores / np.maximum(lengths, 1) ** length_penalty
        results = []
        for b in range(len(source_ids)):
            order = np.argsort(-normalised[b], kind="stable")
            hyps = []
            for k in order:
                if not np.isfinite(scores[b, k]):
                    continue
                ids = [t for t in history[b, k] if t not in (PAD, EOS)]
                hyps.append((self.vocab.decode(ids), float(scores[b, k]), float(normalised[b, k])))
                if len(hyps) == n_best:
                    break
            if not hyps:  # every hypothesis' score is nan (a finite model always leaves one live)
                raise scores_not_numbers()
            results.append(hyps)
        return results


def first_live(batch, beam):
    """The scores [batch, beam] (float64) a beam search starts from: only each row's first hypothesis
    is live (0), the others (-inf) would duplicate it."""
    first = tf.concat([tf.zeros([1], tf.float64), tf.fill([beam - 1], tf.constant(-np.inf, tf.float64))], 0)
    return tf.tile(first[None], [batch, 1])


def best_continuations(scores, log_probs):
    """The step of a beam search: the best continuations of hypotheses with total `scores`
    [batch, beam] and next-token `log_probs` [batch, beam, vocab] (float64 both), per batch row.
    Returns (origin, token, scores) [batch, beam], best first: the hypothesis each continues, its
    token and its new total. Of equal totals, the earlier hypothesis and token come first."""
    beam, vocab = tf.shape(log_probs)[1], tf.shape(log_probs)[2]
    candidates = tf.reshape(scores[:, :, None] + log_probs, [tf.shape(log_probs)[0], beam * vocab])
    scores, best = tf.math.top_k(candidates, k=beam)  # top_k puts the lower index first among equals
    return best // vocab, best % vocab, scores


def backtrack(origins: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """The tokens of each final hypothesis [batch, beam, steps], from the records of a beam search
    ([steps, batch, beam]: at each step, the hypothesis each new one continues and its token),
    followed back from the last step."""
    steps, batch, beam = tokens.shape
    history = np.empty((batch, beam, steps), np.int32)
    k = np.tile(np.arange(beam), (batch, 1))
    for t in range(steps - 1, -1, -1):
        history[:, :, t] = np.take_along_axis(tokens[t], k, axis=1)
        k = np.take_along_axis(origins[t], k, axis=1)
    return history


def cut_off(text: str, max_len: int) -> bool:
    """Whether decoding stopped `text` at `max_len` characters, before the model chose to end it: an
    output that ended is shorter, its end symbol having taken one of the `max_len` steps."""
    return len(text) >= max_len


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
