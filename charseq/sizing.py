"""Defaults sized to the data: what a train command uses for every setting the user did not give.

A 40k-character corpus and a 10M-character one want different models: the small one overfits a
big model within a few passes, and learns more per minute from small batches. The rule here maps
a few statistics of the training data (tokens, vocabulary, examples) to the model's size, dropout,
batch, window, learning rate and evaluation cadence, and, when the user set no stopping rule
(--max-steps, --epochs, --time-budget), to early stopping: stop after `patience` evaluations
without improvement, with a generous cap on the passes over the data. docs/defaults.md gives
the measurements behind each number.

Plain Python (no TensorFlow), so it can be read, tested and changed on its own. Settings the user
gave always win; `Sizing.summary` is the one line a train command prints at start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STOP_SETTINGS = ("max_steps", "epochs", "time_budget")  # a user-given stopping rule (charseq.train's too)
MAX_EVAL_EVERY = 200  # steps: even on a large corpus, evaluate (and checkpoint) at least this often


@dataclass
class Sizing:
    """The settings a train command uses (the rule's, overridden by the user's) and why."""

    settings: dict
    summary: str


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _short(n: float) -> str:
    """3.2M, 37k, 950: sizes as people say them."""
    if n >= 1e6:
        return f"{n / 1e6:.1f}M".replace(".0M", "M")
    if n >= 1e3:
        return f"{n / 1e3:.0f}k"
    return str(int(n))


def _stop(rule: dict, given: dict, steps_per_epoch: float, patience: int, max_epochs: float) -> None:
    """Adds the default stopping rule (early stopping under a cap of `max_epochs`) unless the user gave one,
    and an evaluation cadence of about once per pass over the data, at most every MAX_EVAL_EVERY steps."""
    rule["eval_every"] = int(_clamp(round(steps_per_epoch), 1, MAX_EVAL_EVERY))
    if not any(given.get(k) is not None for k in STOP_SETTINGS):
        rule["patience"] = patience
        rule["epochs"] = float(max_epochs)


def _with_given(rule: dict, given: dict) -> dict:
    """The rule overridden by what the user gave."""
    return {**rule, **{k: v for k, v in given.items() if v is not None}}


def _finish(reason: str, rule: dict, given: dict, shape: str) -> Sizing:
    """The rule overridden by what the user gave, and the one-line summary of the result."""
    s = _with_given(rule, given)
    if s.get("patience") is not None and not any(s.get(k) is not None for k in ("max_steps", "time_budget")) \
            and s.get("epochs") is not None:
        stop = f"early stop (patience {s['patience']} evaluations, at most {s['epochs']:g} epochs)"
    else:
        ends = [f"{s['max_steps']} steps" if s.get("max_steps") else None,
                f"{s['epochs']:g} epochs" if s.get("epochs") else None,
                f"{s['time_budget']:g} min" if s.get("time_budget") else None]
        stop = "stop at " + " or ".join(e for e in ends if e)
        if s.get("patience") is not None:
            stop += f", early stop (patience {s['patience']} evaluations)"
    users = sorted(k for k, v in given.items() if v is not None and k in rule)
    mine = f" [yours: {', '.join(users)}]" if users else ""
    summary = (f"{reason}: {shape.format(**s)}, dropout {s['dropout']:g}, lr {s['lr']:g}, "
               f"evaluate every {s['eval_every']} steps, {stop}{mine}")
    return Sizing(s, summary)


def size_lm(train_tokens: int, vocab_size: int, given: dict) -> Sizing:
    """A language model's defaults from its training split's tokens and vocabulary size (the runs
    behind each tier: docs/defaults.md)."""
    if train_tokens < 100_000:
        size, rule = "small", dict(layers=2, units=256, dropout=0.4, batch_size=32, seq_len=64, lr=2e-3)
        patience = 6
    elif train_tokens < 3_000_000:
        # Depth: from 500k tokens three GRU layers generalise better than two at equal wall clock. Not on
        # the large tier, where the minutes, not generalisation, bound the loss and two layers see more data.
        size, rule = "medium", dict(layers=2 if train_tokens < 500_000 else 3, units=256,
                                    dropout=0.3 if train_tokens < 500_000 else 0.2,
                                    batch_size=64, seq_len=100, lr=3e-3)
        patience = 5
    else:
        size, rule = "large", dict(layers=2, units=256, dropout=0.1, batch_size=128, seq_len=100, lr=3e-3)
        patience = 5
    # A GRU from 500k tokens on, where the data outlasts the minutes; below, the LSTM (a GRU overfits sooner).
    rule["cell"] = "gru" if train_tokens >= 500_000 else "lstm"
    # A corpus too short for the windows (a sample string): shorter windows, fewer streams.
    seq = given.get("seq_len") or min(rule["seq_len"], max(1, (train_tokens - 1) // 4))
    rule["seq_len"] = seq
    rule["batch_size"] = min(rule["batch_size"], max(1, (train_tokens - 1) // seq))
    batch = given.get("batch_size") or rule["batch_size"]
    steps_per_epoch = max(1, (train_tokens - 1) // (batch * seq))
    # Cap: about 20M characters seen (a 1M corpus: 20 passes), at least 3 passes, at most 250; a 10M cap
    # stopped tiny-shakespeare while it was still improving.
    _stop(rule, given, steps_per_epoch, patience, round(_clamp(2e7 / max(1, train_tokens), 3, 250)))
    return _finish(f"{size} corpus ({_short(train_tokens)} training tokens, vocabulary {vocab_size:,})",
                   rule, given, "{layers}x{units} {cell}, batch {batch_size} x {seq_len}")


# A text classifier over SentencePiece pieces embeds each piece in 128 dimensions, the size measured with
# pieces: a piece carries more than a character, whose 64 (the backbone's default) suffice.
PIECES_EMBEDDING = 128


def size_text_classifier(examples: int, vocab_size: int, given: dict, pieces: bool = False) -> Sizing:
    """A text classifier's defaults from its number of training texts (of characters, or with
    `pieces` of SentencePiece pieces)."""
    # Character noise and, from 20k texts, a GRU gave the best SST-2 dev accuracy; the small tier keeps the
    # LSTM it was measured with (docs/defaults.md, docs/benchmarks.md).
    if examples < 20_000:
        size, rule = "small", dict(cell="lstm", layers=1, units=128, dropout=0.3, batch_size=32, lr=2e-3)
    else:
        size, rule = "large", dict(cell="gru", layers=1, units=256, dropout=0.2, batch_size=64, lr=2e-3)
    rule["char_noise"] = 0.1
    # Max pooling over the outputs: 12-15 points ahead of the final state on SST-2 dev (docs/defaults.md).
    rule["readout"] = "max"
    shape = "{layers}x{units} {cell}, {readout} readout, char noise {char_noise:g}, batch {batch_size}"
    if pieces:  # PIECES_EMBEDDING: a piece carries more than a character
        rule["embedding_dim"] = PIECES_EMBEDDING
        shape = ("{layers}x{units} {cell} over pieces (embedding {embedding_dim}), {readout} readout, "
                 "piece noise {char_noise:g}, batch {batch_size}")
    batch = given.get("batch_size") or rule["batch_size"]
    steps_per_epoch = math.ceil(examples / batch)
    _stop(rule, given, steps_per_epoch, 5, round(_clamp(1e6 / max(1, examples), 5, 50)))
    return _finish(f"{size} data set ({examples:,} texts, vocabulary {vocab_size:,})", rule, given, shape)


def size_image_classifier(examples: int, given: dict) -> Sizing:
    """An image classifier's (MNIST rows) defaults: the MNIST benchmark's recipe, early stopping
    under a cap of 20 epochs."""
    # The 10-minute MNIST benchmark's recipe (docs/benchmarks.md): both directions, small shifts, turns and
    # scalings, lr 3e-3. Without its moving average (--ema), which gained little and needs a long run.
    rule = dict(cell="lstm", layers=1, units=128, dropout=0.0, batch_size=128, lr=3e-3, bidirectional=True,
                augment_shift=2, augment_rotate=10.0, augment_scale=0.1)
    batch = given.get("batch_size") or rule["batch_size"]
    steps_per_epoch = math.ceil(examples / batch)
    # 20 epochs: the 10-minute runs above trained 23-25 (the cosine schedule anneals to the cap).
    _stop(rule, given, steps_per_epoch, 3, 20)
    rule["eval_every"] = steps_per_epoch  # one evaluation per epoch (the previous default), even past 200 steps
    s = _with_given(rule, given)  # the augmentation the run will use, for the start line
    augment = [f"shifts ±{s['augment_shift']} px"] if s["augment_shift"] else []
    augment += [f"turns ±{s['augment_rotate']:g}°"] if s["augment_rotate"] else []
    augment += [f"scalings ±{s['augment_scale'] * 100:g}%"] if s["augment_scale"] else []
    shape = (f"{{layers}}x{{units}}{' bidirectional' if s['bidirectional'] else ''} {{cell}}, batch {{batch_size}}, "
             f"{', '.join(augment) or 'no augmentation'}")
    return _finish(f"{examples:,} images", rule, given, shape)


def size_seq2seq(pairs: int, given: dict) -> Sizing:
    """An encoder-decoder's defaults from its number of training pairs."""
    if pairs < 20_000:
        size, rule = "small", dict(layers=1, units=256, dropout=0.2, batch_size=32, lr=3e-3)
    else:
        size, rule = "large", dict(layers=1, units=256, dropout=0.0, batch_size=128, lr=3e-3)
    rule["cell"] = "lstm"
    batch = given.get("batch_size") or rule["batch_size"]
    steps_per_epoch = math.ceil(pairs / batch)
    _stop(rule, given, steps_per_epoch, 5, round(_clamp(2e6 / max(1, pairs), 10, 100)))
    return _finish(f"{size} data set ({pairs:,} pairs)", rule, given,
                   "{layers}x{units} {cell} encoder-decoder, batch {batch_size}")
