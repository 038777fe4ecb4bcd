"""Beam search over a language model's characters: the most likely continuations of a prompt.

    hyps = beam_search(model, vocab, "ROMEO:", length=40, beam=5, n_best=3)
    # [(text, log_prob), ...] best first, all distinct, each exactly `length` tokens long

Sampling draws one continuation; greedy decoding takes the most likely character at each step,
which is not the most likely continuation. Beam search keeps the `beam` best partial
continuations (by total log-probability) at every step, reading the prompt once and carrying
each hypothesis' recurrent state one token at a time, as :mod:`charseq.heads.lm.inference` does. All
hypotheses have the same length, so their raw log-probabilities compare fairly (no length
penalty is needed, unlike the encoder-decoder's beam in :mod:`charseq.heads.seq2seq.inference`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from charseq.compiled_step import pack, stepper
from charseq.heads.seq2seq.inference import check_options
from charseq.heads.lm.inference import DEFAULTS, Generator
from charseq.vocab import banned_ids


class BeamSearch:
    """Beam search for one loaded language model (compile once, search often)."""

    def __init__(self, model, vocab, precision: str | None = None):
        self.model, self.vocab = model, vocab
        self.generator = Generator(model, vocab, precision)  # the prompt rules (unknown characters, empty prompt)
        self.recurrence = self.generator.recurrence  # how the compiled step multiplies (see Generator)
        self._banned = tf.constant(banned_ids(vocab.size))  # never emit padding, unknown or start/end symbols
        self._read = tf.function(self._read_fn, reduce_retracing=True)
        self._step = tf.function(self._step_fn, reduce_retracing=True)

    def _read_fn(self, prompt_ids):
        logits, states = self.model(prompt_ids, training=False)
        return tf.nn.log_softmax(logits[:, -1] + self._banned, axis=-1), states

    def _step_fn(self, token, states, packed):
        logits, states = self.model.step(token, states, stepper(self.model.backbone, packed, self.recurrence))
        return tf.nn.log_softmax(logits + self._banned, axis=-1), states

    def __call__(self, prompt: str = DEFAULTS.prompt, length: int = DEFAULTS.length, beam: int = 5,
                 n_best: int = DEFAULTS.n_best, unknown: str = DEFAULTS.unknown,
                 should_stop=lambda: False) -> list[tuple[str, float]]:
        """The `n_best` most likely continuations found, as (text, total log-probability), best first.

        `should_stop` is checked between steps (a studio client that went away); the search then
        ends early with what it has."""
        check_options(beam, n_best, length, "--length")
        ids = self.generator.prompt_ids(prompt, unknown)
        log_probs, states = self._read(tf.constant(ids[None, :]))
        packed = pack(self.model.backbone, self.recurrence)  # the step ops' weights, once per search
        vocab = self.vocab.size
        log_probs = np.repeat(log_probs.numpy().astype(np.float64), beam, axis=0)
        states = [[tf.repeat(s, beam, axis=0) for s in layer] for layer in states]
        # Only the first hypothesis is live at the start: the others would duplicate it.
        scores = np.full(beam, -np.inf)
        scores[0] = 0.0
        history = np.zeros((beam, 0), np.int32)
        for t in range(length):
            candidates = (scores[:, None] + log_probs).reshape(-1)
            best = np.argsort(-candidates, kind="stable")[:beam]
            origin, token = best // vocab, (best % vocab).astype(np.int32)
            scores = candidates[best]
            history = np.concatenate([history[origin], token[:, None]], axis=1)
            if t == length - 1 or should_stop():
                break
            gather = tf.constant(origin, tf.int32)
            states = [[tf.gather(s, gather) for s in layer] for layer in states]
            log_probs, states = self._step(tf.constant(token), states, packed)
            log_probs = log_probs.numpy().astype(np.float64)
        live = [k for k in range(beam) if np.isfinite(scores[k])]  # scores are already sorted, best first
        return [(self.vocab.decode(history[k]), float(scores[k])) for k in live[:n_best]]


def beam_search(model, vocab, prompt: str = DEFAULTS.prompt, **options) -> list[tuple[str, float]]:
    """See :meth:`BeamSearch.__call__`."""
    return BeamSearch(model, vocab)(prompt, **options)
