"""Looking inside a language model: what it expected at each character, and what its units track.

    probe = LMProbe(model, vocab)
    for chunk in probe.stream("ROMEO:", length=200, temperature=0.8, seed=1):
        ...   # [{"text": "M", "p": 0.41, "top": [["M", 0.41], ["T", 0.12], ...]}, ...]
    report = probe.analyze("He said \"hi\" (twice).\n", layer=0)

`stream` samples exactly as :class:`charseq.heads.lm.inference.Generator` does (same seed, same text: the
draw at position i is keyed by (seed, i)), and reports for every token the probability the
model gave it (at temperature 1, before top-k/top-p) and the five most likely tokens there.

`analyze` reads a text as the model would have predicted it: each character's probability and
surprise (-log p, nats), the top-5 alternatives, one layer's hidden state (its output, the h of
an LSTM) after every character, and, after Karpathy, Johnson and Fei-Fei, "Visualizing and
Understanding Recurrent Networks" (2015), the units of that layer whose activation correlates
best with simple properties of the text (inside quotes or brackets, position in the line, just
after a newline, punctuation, digits).
"""

from __future__ import annotations

import os
import unicodedata
from typing import Callable, Iterator

import numpy as np
import tensorflow as tf

from charseq.errors import CharseqError
from charseq.heads.lm.inference import DEFAULTS, Generator
from charseq.vocab import SPECIALS

TOP = 5
QUOTES = {'"': '"', "“": "”", "「": "」", "『": "』", "«": "»"}
BRACKETS = {"(": ")", "[": "]", "{": "}", "（": "）", "【": "】", "《": "》"}
PROPERTIES = {
    "inside_quotes": "inside quotation marks",
    "inside_brackets": "inside brackets",
    "position_in_line": "position in the line",
    "after_newline": "just after a newline",
    "punctuation": "punctuation",
    "digit": "a digit",
}


def piece(vocab, token_id: int) -> str:
    """How one token reads as text (a SentencePiece word start shows as a space)."""
    if vocab.kind == "char":
        return vocab.decode([token_id])
    return vocab.token(token_id).replace("\u2581", " ")


def text_properties(pieces: list[str]) -> dict[str, np.ndarray]:
    """Each property's value after every token (the state a unit would have to keep track of)."""
    values = {name: np.zeros(len(pieces), np.float64) for name in PROPERTIES}
    quote_close, depth, column = None, 0, 0
    for t, p in enumerate(pieces):
        for c in p:
            if quote_close is not None and c == quote_close:
                quote_close = None
            elif quote_close is None and c in QUOTES:
                quote_close = QUOTES[c]
            if c in BRACKETS:
                depth += 1
            elif c in BRACKETS.values() and depth > 0:
                depth -= 1
            column = 0 if c == "\n" else column + 1
        last = p[-1] if p else ""
        values["inside_quotes"][t] = quote_close is not None
        values["inside_brackets"][t] = depth > 0
        values["position_in_line"][t] = column
        values["after_newline"][t] = last == "\n"
        values["punctuation"][t] = bool(last) and unicodedata.category(last).startswith("P")
        values["digit"][t] = last.isdigit()
    return values


def best_units(activations: np.ndarray, properties: dict[str, np.ndarray], per_property: int = 1) -> list[dict]:
    """For each property that varies over the text, the units (columns of `activations`, [time,
    units]) whose activation has the largest absolute Pearson correlation with it."""
    a = activations - activations.mean(axis=0)
    a_norm = np.sqrt((a ** 2).sum(axis=0))
    found = []
    for name, values in properties.items():
        v = values - values.mean()
        v_norm = np.sqrt((v ** 2).sum())
        if v_norm == 0:
            continue  # the property never changes in this text: nothing to track
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (a * v[:, None]).sum(axis=0) / (a_norm * v_norm)
        r = np.nan_to_num(r)
        for unit in np.argsort(-np.abs(r), kind="stable")[:per_property]:
            found.append({"property": name, "description": PROPERTIES[name], "unit": int(unit),
                          "correlation": round(float(r[unit]), 4)})
    return sorted(found, key=lambda u: -abs(u["correlation"]))


class LMProbe:
    """A loaded language model's generation and analysis with probabilities (compiled once)."""

    # Streaming: tokens per compiled call, doubling up to the maximum. A call costs about as much as
    # 20 tokens: chunks of 32 at most made 2,000 characters take 45% longer than chunks of 128, which
    # still show as they come (10-20 ms each).
    FIRST_CHUNK, MAX_CHUNK = 4, 128

    def __init__(self, model, vocab):
        self.model, self.vocab = model, vocab
        self.generator = Generator(model, vocab)
        self._read = tf.function(self.generator.read_fn, reduce_retracing=True, autograph=False)
        self._chunk = tf.function(self._chunk_fn, reduce_retracing=True, autograph=False)
        self._layers = tf.function(self._layers_fn, reduce_retracing=True, autograph=False)

    @property
    def num_layers(self) -> int:
        return self.model.backbone.num_layers

    @property
    def units(self) -> int:
        return self.model.backbone.units

    # -- generation ---------------------------------------------------------------------------
    def _chunk_fn(self, logits, states, start, stop, packed, temperature, top_k, top_p, seed, greedy: bool):
        """Tokens for positions start..stop-1 of each sample (a row of `logits`, which carry the
        banned ids' -inf), drawn with the stateless seed (seed, position) as Generator draws them, and
        on its step: the compiled step ops on `packed` (Generator.packed), where they run. With each
        token its probability and the top 5, computed for the whole chunk after the loop (inside it,
        each of their ops took about as long as the step itself). All [samples, steps, ...]."""
        step, head = self.generator.step_and_head(packed)

        def body(i, allowed, states, tokens, seen):
            token = self.generator.pick(allowed, temperature, top_k, top_p, tf.stack([seed, i]), greedy)
            tokens, seen = tokens.write(i - start, token), seen.write(i - start, allowed)
            allowed, states = self.model.step(token, states, step, head)  # the head adds the banned ids' -inf
            return i + 1, allowed, states, tokens, seen

        arrays = (tf.TensorArray(tf.int32, size=stop - start), tf.TensorArray(tf.float32, size=stop - start))
        _, logits, states, tokens, seen = tf.while_loop(lambda i, *_: i < stop, body, (start, logits, states, *arrays))
        tokens, p = tf.transpose(tokens.stack()), tf.nn.softmax(tf.transpose(seen.stack(), [1, 0, 2]))
        top = tf.math.top_k(p, k=TOP)
        return logits, states, tokens, tf.gather(p, tokens, batch_dims=2), top.indices, top.values

    def stream(self, prompt: str = DEFAULTS.prompt, length: int = DEFAULTS.length,
               temperature: float = DEFAULTS.temperature, top_k: int = DEFAULTS.top_k, top_p: float = DEFAULTS.top_p,
               seed: int | None = None, greedy: bool = False, unknown: str = DEFAULTS.unknown,
               should_stop: Callable[[], bool] = lambda: False) -> Iterator[list[dict]]:
        """Generate like `charseq generate`, yielding the new tokens chunk by chunk, each as
        {"text", "p", "top": [[text, p] x 5]}. Stops early when `should_stop()` says so."""
        for chunk in self.stream_samples(prompt, length, temperature, top_k, top_p, seed, greedy, unknown,
                                         num_samples=1, should_stop=should_stop):
            yield chunk[0]

    def stream_samples(self, prompt: str = DEFAULTS.prompt, length: int = DEFAULTS.length,
                       temperature: float = DEFAULTS.temperature, top_k: int = DEFAULTS.top_k,
                       top_p: float = DEFAULTS.top_p, seed: int | None = None, greedy: bool = False,
                       unknown: str = DEFAULTS.unknown, num_samples: int = DEFAULTS.num_samples,
                       should_stop: Callable[[], bool] = lambda: False) -> Iterator[list[list[dict]]]:
        """:meth:`stream` for `num_samples` continuations at once, drawn in one batch as
        `charseq generate --num-samples` draws them: each chunk is one list of tokens per sample."""
        if seed is None:
            seed = int.from_bytes(os.urandom(4), "little") >> 1
        self.check(prompt, temperature, top_k, top_p, seed, greedy, unknown, num_samples)
        ids = self.generator.prompt_ids(prompt, unknown)
        args = (tf.constant(temperature if not greedy else 1.0, tf.float32),
                tf.constant(top_k, tf.int32) if top_k and not greedy else None,
                tf.constant(top_p, tf.float32) if top_p < 1 and not greedy else None, tf.constant(seed, tf.int32))
        logits, states = self._read(tf.constant(ids[None, :]), tf.constant(num_samples, tf.int32))
        packed = self.generator.packed()  # once per text, not per chunk
        done, steps = 0, self.FIRST_CHUNK
        while done < length and not should_stop():
            steps = min(steps, length - done)
            logits, states, tokens, probs, top_ids, top_probs = self._chunk(
                logits, states, tf.constant(done, tf.int32), tf.constant(done + steps, tf.int32), packed, *args,
                greedy)
            yield [[self._token_report(t, p, ids_, ps) for t, p, ids_, ps in zip(*sample)]
                   for sample in zip(tokens.numpy(), probs.numpy(), top_ids.numpy(), top_probs.numpy())]
            done += steps
            steps = min(2 * steps, self.MAX_CHUNK)

    def check(self, prompt: str = "", temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
              seed: int | None = 0, greedy: bool = False, unknown: str = "error", num_samples: int = 1) -> None:
        """Raise CharseqError for options or a prompt that `stream` would refuse."""
        # Length 0 runs the generator's own checks of every option and of the prompt, and nothing else.
        self.generator(prompt, length=0, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                       greedy=greedy, unknown=unknown, num_samples=num_samples)

    def report(self, prompt: str, continuation: str, unknown: str = "error") -> list[dict]:
        """The per-token report (probability, top 5) of `continuation` read after `prompt`
        (e.g. a beam-search result, which is not sampled token by token)."""
        context = self.generator.prompt_ids(prompt, unknown)
        ids = self.vocab.encode(continuation).astype(np.int32)
        return self.score(context, ids)[0] if ids.size else []

    def _token_report(self, token, p, top_ids, top_probs) -> dict:
        return {"text": piece(self.vocab, token), "p": round(float(p), 5),
                "top": [[piece(self.vocab, i), round(float(q), 5)] for i, q in zip(top_ids, top_probs)]}

    # -- analysis -----------------------------------------------------------------------------
    def _layers_fn(self, ids):
        """Every layer's outputs [batch, time, units] and the logits, for a whole text at once.

        Runs the backbone's own Keras layers one by one (no dropout: this is inference), so
        each layer's hidden state is visible, not only the last."""
        backbone = self.model.backbone
        x = backbone.input_layer(ids)
        outputs = []
        for rnn in backbone.rnns:
            x = rnn(x, training=False)[0]
            outputs.append(x)
        return outputs, self.model.head(x)

    def score(self, context_ids: np.ndarray, ids: np.ndarray) -> tuple[list, np.ndarray]:
        """Per token of `ids` (read after `context_ids`): its report (probability and top 5),
        and every layer's activations over `ids` ([layers] of [time, units])."""
        inputs = np.concatenate([context_ids, ids[:-1]]).astype(np.int32)
        outputs, logits = self._layers(tf.constant(inputs[None, :]))
        keep = len(context_ids) - 1  # the prediction of ids[0] is made after the last context token
        logits = logits[0, keep:].numpy().astype(np.float64)
        log_p = logits - logits.max(axis=-1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(axis=-1, keepdims=True))
        actual = log_p[np.arange(len(ids)), ids]
        shown = log_p.copy()
        shown[:, : len(SPECIALS)] = -np.inf  # alternatives: tokens the model could have emitted
        top = np.argsort(-shown, axis=-1, kind="stable")[:, :TOP]
        reports = []
        for t, token in enumerate(ids):
            reports.append({"text": piece(self.vocab, token), "p": round(float(np.exp(actual[t])), 5),
                            "surprise": round(float(-actual[t]), 4),
                            "top": [[piece(self.vocab, i), round(float(np.exp(log_p[t, i])), 5)] for i in top[t]]})
        return reports, [o[0, keep:].numpy() for o in outputs]

    def analyze(self, text: str, layer: int = 0, per_property: int = 1) -> dict:
        """Each token of `text` with its probability, surprise (nats) and top 5; `layer`'s
        activations ([units][tokens]); and the units of that layer that best track simple
        properties of the text. Characters the model does not know read as unknown."""
        if not text:
            raise CharseqError("there is no text to analyze")
        if not 0 <= layer < self.num_layers:
            raise CharseqError(f"layer must be between 0 and {self.num_layers - 1}, not {layer}")
        ids = self.vocab.encode(text).astype(np.int32)
        if ids.size == 0:
            raise CharseqError("the text has no tokens to analyze")
        start = self.generator.prompt_ids("")  # what an empty prompt reads: the start of a line
        reports, layers = self.score(start, ids)
        if self.vocab.kind == "char":  # one token per character: show the text as written, unknowns too
            for report, c in zip(reports, text):
                report["text"] = c
        activations = layers[layer]
        pieces = [r["text"] for r in reports]
        surprise = [r["surprise"] for r in reports]
        return {
            "tokens": reports,
            # per character of the text, as evaluate reports it, also where a token is a longer piece
            "mean_surprise": round(float(np.sum(surprise) / self.vocab.char_lengths()[ids].sum()), 4),
            "unknown": int(np.sum(ids == self.vocab.unk_id)),
            "unknown_at": np.flatnonzero(ids == self.vocab.unk_id).tolist(),  # which tokens read as unknown
            # which characters of the text the vocabulary lacks: where a token is a piece, the tokens
            # cannot say (SentencePiece reads a run of them as one unknown piece)
            "unknown_characters": self.vocab.unknown(text),
            "layer": layer, "layers": self.num_layers, "units": self.units,
            "activations": np.round(activations.T, 3).tolist(),
            "found_units": best_units(activations, text_properties(pieces), per_property),
        }


def load_for_studio(path) -> dict:
    """What the studio's generate and inside views need of a language-model run: its config, an
    LMProbe and a BeamSearch."""
    from charseq.heads.lm.beam import BeamSearch
    from charseq.heads.lm.run import load_lm

    model, vocab, config = load_lm(path)
    return {"config": config, "probe": LMProbe(model, vocab), "beam": BeamSearch(model, vocab)}
