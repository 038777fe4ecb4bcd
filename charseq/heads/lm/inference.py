"""Text generation from a language model: temperature, top-k, top-p (nucleus) or greedy.

Generation carries the recurrent state one token at a time (the prompt is read once), as
TensorFlow's text-generation tutorial does with its `OneStep` model, but the whole loop is one
compiled `tf.while_loop`: no Python runs between characters.
Sampling is stateless and keyed by (seed, position), so a seed always gives the same text.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Callable

import numpy as np
import tensorflow as tf

from charseq.compiled_step import carried_states, dense, pack, pack_dense, recurrence_of, stepper
from charseq.errors import CharseqError, scores_not_numbers
from charseq.heads.lm.config import GenerateConfig
from charseq.limits import OPTION_BOUNDS, check_number
from charseq.settings import PROMPT_UNKNOWN as UNKNOWN_POLICIES
from charseq.settings import checked_as
from charseq.vocab import SPECIALS, UNK, banned_ids, line_ends_as_read, refuse_unknown
# Bounds of the options: a length past 32 bits used to wrap around, a temperature near 0 overflowed
# the logits (and sampled ids outside the vocabulary), an infinite one made --top-k a no-op.
MAX_LENGTH = 1_000_000  # characters per sample (minutes of generation)
MAX_SAMPLES = 10_000
MAX_TOKENS = 100_000_000  # num_samples x length, held in memory at the end
DEFAULTS = GenerateConfig()  # one source for the defaults below and `charseq generate`'s
MIN_TEMPERATURE, MAX_TEMPERATURE = OPTION_BOUNDS["temperature"].low, OPTION_BOUNDS["temperature"].high


def filter_logits(logits, temperature, top_k=None, top_p=None):
    """Logits scaled by temperature, with everything outside the top-k / top-p set at -inf.

    `top_k` 0 and `top_p` 1.0 switch the filters off; None leaves them out of the graph, which is
    cheaper (each sorts the vocabulary at every step). Tensors of shape [batch, vocab].
    """
    logits = logits / temperature
    neg_inf = tf.fill(tf.shape(logits), tf.constant(-np.inf, logits.dtype))
    if top_k is not None:
        vocab = tf.shape(logits)[-1]
        k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
        kth = tf.reduce_min(tf.math.top_k(logits, k=k).values, axis=-1, keepdims=True)
        logits = tf.where(logits < kth, neg_inf, logits)
    if top_p is not None:
        sorted_logits = tf.sort(logits, direction="DESCENDING", axis=-1)
        before = tf.math.cumsum(tf.nn.softmax(sorted_logits), axis=-1, exclusive=True)
        # Keep the smallest set of most likely tokens whose probability reaches top_p.
        kept = tf.where(before < top_p, sorted_logits, tf.constant(np.inf, logits.dtype))
        threshold = tf.reduce_min(kept, axis=-1, keepdims=True)
        logits = tf.where(logits < threshold, neg_inf, logits)
    return logits


def check_length(length: int, option: str = "--length", zero: str = "") -> None:
    """A sample's length in tokens: 0 (`zero` says what it means) up to MAX_LENGTH."""
    if not 0 <= length <= MAX_LENGTH:
        raise CharseqError(f"{option} must be between 0{zero} and {MAX_LENGTH:,}, not {length}")


class Generator:
    """Samples continuations of a prompt from a :class:`~charseq.heads.lm.model.LanguageModel`.

    The whole sampling loop (read the prompt, then carry the state from token to token) is one
    compiled `tf.while_loop`; `charseq export` saves the same function in a
    SavedModel, so exported and in-process generation give the same text for the same seed.
    Each step runs on the compiled step ops where the kernel runs (:mod:`charseq.compiled_step`, the
    weights packed once per call; float32 for a float32 model, as Keras' cell computes it), else on
    Keras' cells. `precision="mixed_bfloat16"` asks for bfloat16 products (float32 sums, states and
    softmax) on a CPU with AVX512-BF16: faster at large batches, next-character probabilities within
    ~0.003 of float32's, but not the same text for a seed; `"float32"` for float32 products (None:
    the model's own precision). bfloat16 is refused, with an error saying why, on a CPU without
    AVX512-BF16 and where the steps do not run on the compiled ops (a SimpleRNN, `CHARSEQ_KERNEL=off`).
    """

    FIRST_CHUNK, MAX_CHUNK = 8, 128  # streaming: steps per compiled call, doubling up to the maximum

    @checked_as("Generator")  # the public boundary: arguments checked, wrong types named
    def __init__(self, model, vocab, precision: str | None = None):
        if vocab.size != model.vocab_size:  # else a shape error deep inside the first compiled step
            raise CharseqError(f"the vocabulary has {vocab.size:,} tokens but the model reads {model.vocab_size:,}; "
                               "give the vocabulary of the model's own run (load_lm returns the two together)")
        self.model, self.vocab = model, vocab
        # How the compiled step multiplies (charseq.kernels.RECURRENCES); None: the model's precision.
        self.recurrence = recurrence_of(model.backbone, precision)
        self._banned = tf.constant(banned_ids(vocab.size))  # never emit padding, unknown or start/end symbols
        # autograph=False: the loops are tf.while_loops already, and converting the sampler's Python
        # and that of every layer it calls took 0.6-0.8 s of each command's first call.
        self._sample = tf.function(self.sample_fn, reduce_retracing=True, autograph=False)
        self._start = tf.function(self.start_fn, reduce_retracing=True, autograph=False)
        self._continue = tf.function(self.continue_fn, reduce_retracing=True, autograph=False)

    def pick(self, logits, temperature, top_k, top_p, seed, greedy):
        """The next token from `logits` that already carry `_banned`."""
        if greedy:
            return tf.argmax(logits, axis=-1, output_type=tf.int32)
        logits = filter_logits(logits, temperature, top_k, top_p)
        return tf.random.stateless_categorical(logits, 1, seed, dtype=tf.int32)[:, 0]

    def sample_fn(self, prompt_ids, num_samples, steps, temperature, top_k, top_p, seed, greedy: bool, packed=None):
        """Read each row of `prompt_ids` [prompts, time] once, then sample `steps` (at least 1) tokens
        for each of `num_samples` continuations of it (rows: a prompt's continuations together).

        Returns (tokens [prompts * num_samples, steps], next token, states): the next token is
        already sampled and `states` have not yet read it, which is where :meth:`continue_fn`
        carries on. `packed`: as :meth:`continue_fn`'s.
        """
        token, states = self.start_fn(prompt_ids, num_samples, temperature, top_k, top_p, seed, greedy)
        return self.continue_fn(token, states, 0, steps, temperature, top_k, top_p, seed, greedy, packed)

    def start_fn(self, prompt_ids, num_samples, temperature, top_k, top_p, seed, greedy: bool):
        """Read each row of `prompt_ids` once and draw position 0 of each of its `num_samples`
        continuations: (token, states), where :meth:`continue_fn` carries on."""
        logits, states = self.read_fn(prompt_ids, num_samples)
        return self.pick(logits, temperature, top_k, top_p, tf.stack([seed, 0]), greedy), states

    def read_fn(self, prompt_ids, num_samples):
        """Each row of `prompt_ids` read once, for each of `num_samples` continuations: the logits of
        position 0 (with the banned ids' -inf) and the states, a prompt's rows together."""
        # A prompt's samples share its reading: read once and copied, not once per sample (32 samples
        # of a 2x256 LSTM after a 20-character prompt: 9.5 ms to the first character read for each,
        # 4 ms read once).
        logits, states = self.model(prompt_ids, training=False)
        return tf.nest.map_structure(lambda t: tf.repeat(t, num_samples, axis=0),
                                     (logits[:, -1] + self._banned, carried_states(self.model.backbone, states)))

    def packed(self):
        """The weights of the step ops and of the output layer (its bias with the banned symbols'
        -inf) packed for them, or None where the step ops do not run."""
        layers = pack(self.model.backbone, self.recurrence)
        return None if layers is None else (layers, pack_dense(self.model.head, self._banned))

    def step_and_head(self, packed=None):
        """The backbone's step and the output layer as the sampler runs them: the compiled step ops
        and the output layer as one op on `packed` (:meth:`packed`; by default packed now), where the
        step ops run; Keras' cell step and output layer elsewhere."""
        backbone, model = self.model.backbone, self.model
        packed = self.packed() if packed is None else packed
        if packed is None:
            return backbone.step, lambda x: model.head(x) + self._banned
        layers, head = packed
        return stepper(backbone, layers, self.recurrence), functools.partial(dense, head)

    def continue_fn(self, token, states, start, stop, temperature, top_k, top_p, seed, greedy: bool, packed=None):
        """Emit `token` as position `start`, then positions up to `stop` - 1, one step each;
        position i is drawn with the stateless seed (seed, i), so chunking never changes the text."""
        model = self.model
        step, head = self.step_and_head(packed)  # packed now unless given (:meth:`packed`)

        def body(i, token, states, out):
            out = out.write(i - start, token)
            logits, states = model.step(token, states, step, head)
            token = self.pick(logits, temperature, top_k, top_p, tf.stack([seed, i + 1]), greedy)
            return i + 1, token, states, out

        out = tf.TensorArray(tf.int32, size=stop - start)
        _, token, states, out = tf.while_loop(lambda i, *_: i < stop, body,
                                              (tf.convert_to_tensor(start, tf.int32), token, states, out))
        return tf.transpose(out.stack()), token, states

    def prompt_ids(self, prompt: str, unknown: str = "error") -> np.ndarray:
        """The prompt as ids, its line ends read as the corpus's were; an empty prompt starts from the
        start of a line."""
        if unknown not in UNKNOWN_POLICIES:
            raise CharseqError(f"--unknown must be one of {', '.join(UNKNOWN_POLICIES)}")
        prompt = line_ends_as_read(self.vocab, prompt)
        if unknown == "error":
            refuse_unknown(self.vocab, prompt, "the prompt", "the model's vocabulary", "--unknown skip", "--unknown unk")
        if unknown == "skip":
            missing = set(self.vocab.unknown(prompt))
            prompt = "".join(c for c in prompt if c not in missing)
        ids = self.vocab.encode(prompt)
        if ids.size == 0:
            start = self.vocab.encode("\n")
            ids = start if start.size and start[0] != UNK else np.array([len(SPECIALS)], np.int32)
        return ids.astype(np.int32)

    def check_options(self, prompt: str = DEFAULTS.prompt, length: int = DEFAULTS.length,
                      temperature: float = DEFAULTS.temperature, top_k: int = DEFAULTS.top_k,
                      top_p: float = DEFAULTS.top_p, seed: int | None = None, num_samples: int = DEFAULTS.num_samples,
                      greedy: bool = False, unknown: str = DEFAULTS.unknown) -> np.ndarray:
        """Refuse any option out of its range, before anything is printed or computed; returns the
        prompt's ids (a prompt with unknown characters is refused here too)."""
        check_length(length)
        if not greedy and not (isinstance(temperature, (int, float)) and OPTION_BOUNDS["temperature"].holds(temperature)):
            try:
                check_number("temperature", temperature)
            except CharseqError as e:
                raise type(e)(e.message, "--greedy for the most likely character") from None
        if not 0 <= top_k < 2**31:
            raise CharseqError(f"--top-k must be 0 (off) or positive, not {top_k}")
        check_number("top_p", top_p)
        if not 1 <= num_samples <= MAX_SAMPLES:
            raise CharseqError(f"--num-samples must be between 1 and {MAX_SAMPLES:,}, not {num_samples}")
        if num_samples * length > MAX_TOKENS:
            raise CharseqError(f"--num-samples {num_samples} x --length {length} is more than {MAX_TOKENS:,} "
                               "characters at once; ask for fewer")
        if seed is not None and not -2**31 <= seed < 2**31:  # the stateless sampler's seed is int32 (as the export's)
            raise CharseqError(f"--seed must fit in 32 bits (-2147483648 to 2147483647), not {seed}")
        return self.prompt_ids(prompt, unknown)

    @checked_as("Generator")
    def __call__(self, prompt: str = DEFAULTS.prompt, length: int = DEFAULTS.length,
                 temperature: float = DEFAULTS.temperature, top_k: int = DEFAULTS.top_k, top_p: float = DEFAULTS.top_p,
                 seed: int | None = None, num_samples: int = DEFAULTS.num_samples, greedy: bool = False,
                 unknown: str = DEFAULTS.unknown, on_text: Callable[[str], None] | None = None) -> list[str]:
        """`num_samples` continuations of `prompt`, each `length` tokens long (prompt not included).

        Args:
            prompt: the text to continue; empty: the start of a line.
            length: tokens (characters, or SentencePiece pieces) to generate, 0 to 1,000,000.
            temperature: sharpen (below 1) or flatten (above 1) the distribution, from 0.01 to 100.
            top_k: sample only from the `top_k` most likely tokens (0: off).
            top_p: nucleus sampling, from the most likely tokens whose probabilities add up to
                `top_p`, in (0, 1] (1: off).
            seed: the same seed gives the same text; None draws a fresh one.
            num_samples: independent continuations of the prompt.
            greedy: always take the most likely token (the sampling settings are then unused).
            unknown: prompt characters the model never saw: "error" refuses the prompt, "skip"
                leaves them out, "unk" reads them as the unknown symbol.
            on_text: receives the text of the first sample piece by piece as it is produced.
        """
        ids = self.check_options(prompt, length, temperature, top_k, top_p, seed, num_samples, greedy, unknown)
        with self._diverged_said():
            return self._generate(ids, length, temperature, top_k, top_p, seed, num_samples, greedy, on_text)

    @contextlib.contextmanager
    def _diverged_said(self):
        """Scores that are not numbers (weights a run's updates overflowed) make the sampler draw the
        id one past the vocabulary, which the next step cannot read: said as what it is, not as
        TensorFlow's index error."""
        try:
            yield
        except tf.errors.InvalidArgumentError as e:
            if f"is not in [0, {self.vocab.size})" not in str(e):
                raise
            raise scores_not_numbers() from None

    def _checked(self, tokens: np.ndarray) -> np.ndarray:
        """`tokens` as drawn, refused (:func:`~charseq.errors.scores_not_numbers`) where they show scores
        that are not numbers: a special symbol (its score is -inf, so only nan scores put it first: what
        greedy takes) or the id one past the vocabulary (what sampling draws, caught here where no next
        step reads it)."""
        if tokens.size and (tokens.min() < len(SPECIALS) or tokens.max() >= self.vocab.size):
            raise scores_not_numbers()
        return tokens

    def _generate(self, ids, length, temperature, top_k, top_p, seed, num_samples, greedy, on_text) -> list[str]:
        if seed is None:
            seed = fresh_seed()
        if length == 0:
            return [""] * num_samples
        # A filter that is off stays out of the compiled loop (None is a constant to tf.function).
        args = (tf.constant(temperature if not greedy else 1.0, tf.float32),
                tf.constant(top_k, tf.int32) if top_k and not greedy else None,
                tf.constant(top_p, tf.float32) if top_p < 1 and not greedy else None, tf.constant(seed, tf.int32))
        prompt, samples = tf.constant(ids[None, :]), tf.constant(num_samples, tf.int32)
        if on_text is None:
            tokens, _, _ = self._sample(prompt, samples, tf.constant(length, tf.int32), *args, greedy)
            return [self.vocab.decode(row) for row in self._checked(tokens.numpy())]
        # Streaming: compiled chunks, short at first so text shows at once, then longer so the
        # per-call overhead stays small. The seed is keyed by position, so the text is the same. Every
        # chunk is a call of one compiled loop, traced once (the prompt is read apart: a loop traced
        # with it as well took 0.2 s more of each command's start), on weights packed once for all
        # the chunks (packed again for each of the 7 chunks of 500 characters, they took a fifth of
        # the time).
        token, states = self._start(prompt, samples, *args, greedy)
        packed, pieces, done, steps, shown = self.packed(), [], 0, self.FIRST_CHUNK, ""
        while done < length:
            steps = min(steps, length - done)
            tokens, token, states = self._continue(token, states, tf.constant(done, tf.int32),
                                                   tf.constant(done + steps, tf.int32), *args, greedy, packed)
            pieces.append(self._checked(tokens.numpy()))
            done, steps = done + steps, min(2 * steps, self.MAX_CHUNK)
            text = self.vocab.decode(np.concatenate([p[0] for p in pieces]))
            on_text(text[len(shown):])
            shown = text
        return [self.vocab.decode(row) for row in np.concatenate(pieces, axis=1)]


def fresh_seed() -> int:
    """A random seed for the sampler (int32, non-negative), for a call given none: printed with the
    text it drew (`generate --json`), it reproduces that text."""
    return int.from_bytes(os.urandom(4), "little") >> 1


def sample_on_one_op_thread() -> bool:
    """Have TensorFlow run this process's ops from one thread (its inter-op pool) instead of one per
    core, where its runtime has not started yet; returns whether it could (the pools are fixed once an
    op has run). For sampling several sequences at once: each step is one chain of dependent ops, so
    a second inter-op thread has nothing of its own to run, and on a CPU of few cores it takes time
    from the threads the compiled step ops split a batch over. 32 sequences of a 2x256 LSTM on 2
    cores: 18-32% more characters per second; one sequence, whose step ops run on the calling
    thread: 4% fewer, so `charseq generate` asks for it only with --num-samples above 1."""
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        return False
    return True


def generate(model, vocab, prompt: str = DEFAULTS.prompt, precision: str | None = None, **options) -> str | list[str]:
    """Sample a continuation of `prompt` from `model` (with `vocab`, both from :func:`load_lm`); the
    `options` are those of :meth:`Generator.__call__` (`length`, `temperature`, `top_k`, `top_p`,
    `seed`, `num_samples`, `greedy`, `unknown`), `precision` that of :class:`Generator`. For the
    most likely continuations rather than a sample, see :func:`~charseq.heads.lm.beam.beam_search`.

    Returns one string, or a list when `num_samples` > 1.
    """
    texts = Generator(model, vocab, precision)(prompt, **options)
    return texts[0] if options.get("num_samples", 1) == 1 else texts
