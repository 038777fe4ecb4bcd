"""Defaults sized to the data: what a train command uses for every setting the user did not give.

This module holds what every head's rule shares (the stopping rule, the evaluation cadence, the
one-line summary); each head's own rule is its folder's sizing.py (charseq.heads.NAME.sizing), named
by its entry in the registry (charseq.heads.Head.sizing).

A 40k-character corpus and a 10M-character one want different models: the small one overfits a
big model within a few passes, and learns more per minute from small batches. A head's rule maps
a few statistics of the training data (tokens, vocabulary, examples) to the model's size, dropout,
batch, window, learning rate and evaluation cadence, and, when the user set no stopping rule
(--max-steps, --epochs, --time-budget), to early stopping: stop after `patience` evaluations
without improvement, with a generous cap on the passes over the data. docs/defaults.md gives
the measurements behind each number.

Plain Python (no TensorFlow), so it can be read, tested and changed on its own. Settings the user
gave always win; `Sizing.summary` is the one line a train command prints at start.
"""

from __future__ import annotations

from dataclasses import dataclass

STOP_SETTINGS = ("max_steps", "epochs", "time_budget")  # a user-given stopping rule (charseq.train's too)
MAX_EVAL_EVERY = 200  # steps: even on a large corpus, evaluate (and checkpoint) at least this often


@dataclass
class Sizing:
    """The settings a train command uses (the rule's, overridden by the user's) and why."""

    settings: dict
    summary: str


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def short(n: float) -> str:
    """3.2M, 37k, 950: sizes as people say them."""
    if n >= 1e6:
        return f"{n / 1e6:.1f}M".replace(".0M", "M")
    if n >= 1e3:
        return f"{n / 1e3:.0f}k"
    return str(int(n))


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """"1 pair", "2,500 pairs": a count and its noun, as people say them."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {plural or noun + 's'}"


def steps(n: int) -> str:
    """"1 step", "20 steps"."""
    return counted(n, "step")


def epochs(n: float) -> str:
    """"1 epoch", "0.5 epochs", "20 epochs"."""
    return f"{n:g} epoch" if n == 1 else f"{n:g} epochs"


def evaluations(n: int) -> str:
    return counted(n, "evaluation")


def add_stopping(rule: dict, given: dict, steps_per_epoch: float, patience: int, max_epochs: float,
                 cap_a_budget: bool = False) -> None:
    """Adds the default stopping rule (early stopping under a cap of `max_epochs`) unless the user gave one,
    and an evaluation cadence of about once per pass over the data, at most every MAX_EVAL_EVERY steps.
    `cap_a_budget`: a time budget alone (no --max-steps or --epochs) keeps the cap, without early stopping."""
    rule["eval_every"] = int(clamp(round(steps_per_epoch), 1, MAX_EVAL_EVERY))
    if not any(given.get(k) is not None for k in STOP_SETTINGS):
        rule["patience"] = patience
        rule["epochs"] = float(max_epochs)
    elif cap_a_budget and given.get("max_steps") is None and given.get("epochs") is None:
        rule["epochs"] = float(max_epochs)


def with_given(rule: dict, given: dict) -> dict:
    """The rule overridden by what the user gave."""
    return {**rule, **{k: v for k, v in given.items() if v is not None}}


def finish(reason: str, rule: dict, given: dict, shape: str, inherited: tuple[str, ...] = ()) -> Sizing:
    """The rule overridden by what the user gave, and the one-line summary of the result. `inherited`:
    settings in `given` that come from elsewhere (a language model's shape), not named as the user's."""
    s = with_given(rule, given)
    if s.get("patience") is not None and not any(s.get(k) is not None for k in ("max_steps", "time_budget")) \
            and s.get("epochs") is not None:
        stop = f"early stop (patience {evaluations(s['patience'])}, at most {epochs(s['epochs'])})"
    else:
        ends = [steps(s['max_steps']) if s.get("max_steps") else None,
                epochs(s["epochs"]) if s.get("epochs") else None,
                f"{s['time_budget']:g} min" if s.get("time_budget") else None]
        stop = "stop at " + " or ".join(e for e in ends if e)
        if s.get("patience") is not None:
            stop += f", early stop (patience {evaluations(s['patience'])})"
    users = sorted(k for k, v in given.items() if v is not None and k in rule and k not in inherited)
    mine = f" [yours: {', '.join(users)}]" if users else ""
    summary = (f"{reason}: {shape.format(**s)}, dropout {s['dropout']:g}, lr {s['lr']:g}, "
               f"evaluate every {steps(s['eval_every']).removeprefix('1 ')}, {stop}{mine}")
    return Sizing(s, summary)
