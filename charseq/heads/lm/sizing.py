"""The language model's defaults sized to its corpus (the shared parts: charseq.sizing; the runs behind
each tier: docs/defaults.md). Plain Python, no TensorFlow."""

from __future__ import annotations

from charseq.sizing import Sizing, add_stopping, clamp, finish, short


def size_lm(train_tokens: int, vocab_size: int, given: dict, inherited: tuple[str, ...] = ()) -> Sizing:
    """A language model's defaults from its training split's tokens and vocabulary size (the runs
    behind each tier: docs/defaults.md). `inherited`: the settings of `given` a language model fixed
    (--init-from)."""
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
    # stopped tiny-shakespeare while it was still improving. Below the large tier, where generalisation
    # bounds the loss, a time budget is a maximum under the same cap: the learning rate anneals over the
    # budget, and a budget that reads the corpus more often than the cap (a fast CPU, or bfloat16) let
    # the model overfit while the rate was high. On tiny-shakespeare 15 minutes of the 2x256 LSTM in
    # bfloat16 read it 42 times and scored 1.4621; capped at 20 passes, 1.4485 in 7 of the 15 minutes
    # (docs/defaults.md). On the large tier the minutes bound the loss, and the budget alone stops.
    add_stopping(rule, given, steps_per_epoch, patience, round(clamp(2e7 / max(1, train_tokens), 3, 250)),
                 cap_a_budget=size != "large")
    return finish(f"{size} corpus ({short(train_tokens)} training tokens, vocabulary {vocab_size:,})",
                   rule, given, "{layers}x{units} {cell}, batch {batch_size} x {seq_len}", inherited)
