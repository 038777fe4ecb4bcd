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

from charseq.compiled_step import carried_states
from charseq.errors import CharseqError, scores_not_numbers
from charseq.heads.seq2seq.inference import backtrack, best_continuations, check_options, first_live
from charseq.heads.lm.inference import DEFAULTS, Generator
from charseq.vocab import banned_ids


class BeamSearch:
    """Beam search for one loaded language model (compile once, search often).

    The search runs in compiled chunks of up to :attr:`CHUNK` steps, each a `tf.while_loop` that
    chooses the best candidates, reorders the hypotheses' states and steps them on the compiled step
    ops, with no Python between characters; each step records which hypothesis every new one came
    from, and the texts are read back from those records at the end."""

    CHUNK = 64  # steps per compiled call; `should_stop` is checked between calls

    def __init__(self, model, vocab, precision: str | None = None):
        self.model, self.vocab = model, vocab
        # The prompt rules (unknown characters, empty prompt), and the step and output layer as the
        # sampler runs them.
        self.generator = Generator(model, vocab, precision)
        self.recurrence = self.generator.recurrence  # how the compiled step multiplies (see Generator)
        self._banned = tf.constant(banned_ids(vocab.size))  # never emit padding, unknown or start/end symbols
        self._read = tf.function(self._read_fn, reduce_retracing=True, autograph=False)
        self._search = tf.function(self._search_fn, reduce_retracing=True, autograph=False)

    def _read_fn(self, prompt_ids, beam):
        """The prompt read once, then the first choice: (origin, token, scores, states) of `beam`
        hypotheses, whose states have not yet read their tokens."""
        logits, states = self.model(prompt_ids, training=False)
        log_probs = tf.nn.log_softmax(logits[:, -1] + self._banned, axis=-1)
        states = tf.nest.map_structure(lambda s: tf.repeat(s, beam, axis=0),
                                       carried_states(self.model.backbone, states))
        return (*_choose(first_live(1, beam)[0], tf.repeat(log_probs, beam, axis=0)), states)

    def _search_fn(self, origin, token, scores, states, steps, packed):
        """`steps` more steps from hypotheses chosen but not yet read: (origins, tokens) [steps, beam]
        of each step's choice, and the last (origin, token, scores, states) to carry on from.
        `packed`: the step ops' and the output layer's weights (Generator.packed)."""
        step, head = self.generator.step_and_head(packed)

        def body(i, origin, token, scores, states, origins, tokens):
            states = tf.nest.map_structure(lambda s: tf.gather(s, origin), states)
            logits, states = self.model.step(token, states, step, head)  # the head adds the banned ids' -inf
            origin, token, scores = _choose(scores, tf.nn.log_softmax(logits, axis=-1))
            return i + 1, origin, token, scores, states, origins.write(i, origin), tokens.write(i, token)

        records = [tf.TensorArray(tf.int32, size=steps) for _ in range(2)]
        _, origin, token, scores, states, origins, tokens = tf.while_loop(
            lambda i, *_: i < steps, body, (tf.constant(0), origin, token, scores, states, *records))
        return origins.stack(), tokens.stack(), origin, token, scores, states

    def __call__(self, prompt: str = DEFAULTS.prompt, length: int = DEFAULTS.length, beam: int = 5,
                 n_best: int = DEFAULTS.n_best, unknown: str = DEFAULTS.unknown,
                 should_stop=lambda: False) -> list[tuple[str, float]]:
        """The `n_best` most likely continuations found, as (text, total log-probability), best first.

        `should_stop` is checked between compiled chunks of steps (a studio client that went away);
        the search then ends early with what it has."""
        if length < 1:  # sampling takes --length 0 (the prompt alone): say that beam search is the one refusing it
            raise CharseqError(f"--length must be at least 1 for beam search, not {length}")
        check_options(beam, n_best, length, "--length")
        ids = self.generator.prompt_ids(prompt, unknown)
        origin, token, scores, states = self._read(tf.constant(ids[None, :]), tf.constant(beam))
        origins, tokens = [origin.numpy()[None]], [token.numpy()[None]]
        packed = self.generator.packed()  # once per search, not per chunk
        done = 1
        while done < length and not should_stop():
            steps = min(self.CHUNK, length - done)
            chosen_from, chosen, origin, token, scores, states = self._search(origin, token, scores, states,
                                                                             tf.constant(steps), packed)
            origins.append(chosen_from.numpy())
            tokens.append(chosen.numpy())
            done += steps
        history = backtrack(np.concatenate(origins)[:, None], np.concatenate(tokens)[:, None])[0]
        scores = scores.numpy()
        live = [k for k in range(beam) if np.isfinite(scores[k])]  # scores are already sorted, best first
        if not live:  # a vocabulary always has a character to choose: only nan scores leave none
            raise scores_not_numbers()
        return [(self.vocab.decode(history[k]), float(scores[k])) for k in live[:n_best]]


def _choose(scores, log_probs):
    """best_continuations for one prompt: scores [beam], log_probs [beam, vocab] (float32)."""
    origin, token, scores = best_continuations(scores[None], tf.cast(log_probs, tf.float64)[None])
    return origin[0], token[0], scores[0]


def beam_search(model, vocab, prompt: str = DEFAULTS.prompt, length: int = DEFAULTS.length, beam: int = 5,
                n_best: int = DEFAULTS.n_best, unknown: str = DEFAULTS.unknown,
                precision: str | None = None) -> list[tuple[str, float]]:
    """The most likely continuations of `prompt` under `model` (with `vocab`, both from
    :func:`~charseq.heads.lm.run.load_lm`), as `charseq generate --beam` finds them.

    Args:
        model: the language model.
        vocab: its vocabulary.
        prompt: the text to continue; empty: the start of a line.
        length: tokens each continuation has (prompt not included), at least 1.
        beam: hypotheses kept at every step.
        n_best: continuations returned, at most `beam`.
        unknown: prompt characters the model never saw: "error" refuses the prompt, "skip" leaves
            them out, "unk" reads them as the unknown symbol.
        precision: how the recurrent products multiply, as for
            :class:`~charseq.heads.lm.inference.Generator`: "float32", "mixed_bfloat16" (a CPU with
            AVX512-BF16 only), or None for the precision the model was trained in.

    Returns:
        `n_best` pairs (text, total log-probability), best first, all distinct.
    """
    return BeamSearch(model, vocab, precision)(prompt, length, beam, n_best, unknown)
