"""Defaults sized to the data: what a train command uses for every setting the user did not give.

A 40k-character corpus and a 10M-character one want different models: the small one overfits a
big model within a few passes, and learns more per minute from small batches. The rule here maps
a few statistics of the training data (tokens, vocabulary, examples) to the model's size, dropout,
batch, window, learning rate and evaluation cadence, and, when the user set no stopping rule
(--max-steps, --epochs, --time-budget), to early stopping: stop after `patience` evaluations
without improvement, with a generous cap on the passes over the data. The README's "Defaults"
table gives the measurements behind each number.

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
    """A language model's defaults from its training split's tokens and vocabulary size.

    Measured (README, "Defaults sized to the data"): on poems.txt (37k tokens) 2x256 with dropout
    0.4 and 32 x 64 batches stops early at 2.03 nats/char in 2 minutes, where 2x128 reached only
    2.30 at a 100-pass cap; on 300k characters of Shakespeare 2x256, dropout 0.3, 64 x 100 stops at
    1.39 in 4.4 minutes; from 500k tokens three layers of GRU (tiny-shakespeare, 15 minutes: 1.450
    for two GRU layers against the LSTM's 1.454, and 1.429 for three GRU layers). The large tier (>= 3M): on the Python standard library's modules (4.2M training
    tokens) in 15 minutes, dropout 0.1 at 128 x 100 reaches 1.130 against 1.132 for the medium
    tier's dropout 0.2 at 64 x 100, and 1.136 for three layers (scripts/bench_large_corpus.sh)."""
    if train_tokens < 100_000:
        size, rule = "small", dict(layers=2, units=256, dropout=0.4, batch_size=32, seq_len=64, lr=2e-3)
        patience = 6
    elif train_tokens < 3_000_000:
        # Depth: on tiny-shakespeare in 15 minutes a third GRU layer reaches 1.429 against 1.4525 for
        # two, with fewer passes (15 against 25 on the compiled kernel) and less overfitting (train
        # 1.26 against 1.21), so three layers from 500k tokens on; below that, two (a third not
        # measured). Not on the large tier: on 4.2M tokens, where 15 minutes see under 6 passes,
        # three reach 1.136 against 1.130 for two: there the minutes, not generalisation, bound the
        # loss, and two layers see more data.
        size, rule = "medium", dict(layers=2 if train_tokens < 500_000 else 3, units=256,
                                    dropout=0.3 if train_tokens < 500_000 else 0.2,
                                    batch_size=64, seq_len=100, lr=3e-3)
        patience = 5
    else:
        size, rule = "large", dict(layers=2, units=256, dropout=0.1, batch_size=128, seq_len=100, lr=3e-3)
        patience = 5
    # LSTM or GRU: on 300k characters of Shakespeare the LSTM stops at 1.390 and a GRU at 1.420 (it
    # overfits sooner); on all of tiny-shakespeare in 15 minutes the GRU reaches 1.450 and the LSTM
    # 1.454 (float32 both). So a GRU from 500k tokens on, where the data outlasts the minutes.
    rule["cell"] = "gru" if train_tokens >= 500_000 else "lstm"
    # A corpus too short for the windows (a sample string): shorter windows, fewer streams.
    seq = given.get("seq_len") or min(rule["seq_len"], max(1, (train_tokens - 1) // 4))
    rule["seq_len"] = seq
    rule["batch_size"] = min(rule["batch_size"], max(1, (train_tokens - 1) // seq))
    batch = given.get("batch_size") or rule["batch_size"]
    steps_per_epoch = max(1, (train_tokens - 1) // (batch * seq))
    # Cap: about 20M characters seen (a 1M corpus: 20 passes), at least 3 passes, at most 250. With a
    # 10M cap tiny-shakespeare stopped at its 10 passes still improving (1.496 nats/char in 6.8 min);
    # 14.5 minutes, ~21 passes, reached 1.454 (README, "Defaults sized to the data").
    _stop(rule, given, steps_per_epoch, patience, round(_clamp(2e7 / max(1, train_tokens), 3, 250)))
    return _finish(f"{size} corpus ({_short(train_tokens)} training tokens, vocabulary {vocab_size:,})",
                   rule, given, "{layers}x{units} {cell}, batch {batch_size} x {seq_len}")


# A text classifier over SentencePiece pieces embeds each piece in 128 dimensions, the one size measured
# with pieces on SST-2 (see the README): a piece carries more than a character, whose 64 (the backbone's
# default) suffice.
PIECES_EMBEDDING = 128


def size_text_classifier(examples: int, vocab_size: int, given: dict, pieces: bool = False) -> Sizing:
    """A text classifier's defaults from its number of training texts (of characters, or with
    `pieces` of SentencePiece pieces)."""
    # Character noise (deleting or replacing 10% of a training text's characters at random): on 3,000
    # SST-2 sentences, 70.4% and 70.2% on SST-2 dev (seeds 0 and 1) against 68.5% and 68.8% without;
    # on all of SST-2 (bidirectional, 19.5 minutes), 82.0% against 80.0%.
    # A GRU on all of SST-2 (bidirectional, 19.5 minutes; float32, the compiled kernel): 82.6% on dev
    # after 9.2 epochs, against 82.0% after 7.2 for the LSTM. The small tier keeps the LSTM it was
    # measured with.
    if examples < 20_000:
        size, rule = "small", dict(cell="lstm", layers=1, units=128, dropout=0.3, batch_size=32, lr=2e-3)
    else:
        size, rule = "large", dict(cell="gru", layers=1, units=256, dropout=0.2, batch_size=64, lr=2e-3)
    rule["char_noise"] = 0.1
    # Max pooling over the outputs: on 3,000 SST-2 sentences, 68.5% on SST-2 dev against 56.2% for the
    # final state (mean 65.0%, attention 65.8%, concat 63.1%; seed 1: max 68.8%, final 53.8%); see the README.
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
    # Measured on MNIST at 10 minutes (README, "Classifier: MNIST read row by row"): reading the rows
    # in both directions and shifting the training images by up to 2 pixels took the 1x128 reader from
    # 98.8-98.9% to 99.40%; small turns and scalings on top, 99.43% with both seeds tried (99.28-99.49%
    # without). lr 3e-3 is the rate those runs used. A moving average of the weights (--ema) is left
    # out: 99.45% over three seeds against 99.43% over two without, and it needs a run long enough to
    # forget its starting weights.
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
