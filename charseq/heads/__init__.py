"""The heads, one package each, and the one table of them.

A run's config.json names the head that made it (``"task"``). Everything that serves a run of
any head (``charseq evaluate``, ``export``, ``grid``, ``plot`` and the studio) looks that head
up here instead of testing the name itself, so a new head is one folder (model, task, run,
inference, inspection, export, and a light ``__init__.py`` holding its :class:`Head`) plus one
line in :data:`HEADS`.

Looking a head up imports no TensorFlow: a :class:`Head` names its operations, which load their
modules when called.

>>> sorted(HEADS)
['classifier', 'lm', 'seq2seq']
>>> head("seq2seq").monitor
('val_exact_match', 'max')
>>> sorted(train_commands())
['classify-mnist', 'train-classifier', 'train-lm', 'train-seq2seq']
>>> head("gan")
Traceback (most recent call last):
...
charseq.errors.CharseqError: this version of charseq has no 'gan' head (it knows classifier, lm, seq2seq)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from charseq.errors import CharseqError

# config.json's "task" -> the package of that head (its __init__ defines HEAD).
HEADS = {
    "lm": "charseq.heads.lm",
    "classifier": "charseq.heads.classifier",
    "seq2seq": "charseq.heads.seq2seq",
}


def lazy(module: str, name: str) -> Callable:
    """`module.name`, imported when first called (heads' modules import TensorFlow)."""
    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)
    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"{module}.{name}, imported on first use."
    return call


@dataclass(frozen=True)
class Head:
    """What the rest of charseq needs to know about one head."""

    task: str  # config.json's "task"
    title: str  # in messages: "run X is a language model, not an encoder-decoder"
    monitor: tuple[str, str]  # the metric that keeps the best weights and ranks a grid's runs, and "min"/"max"
    train_commands: dict[str, Callable]  # CLI command -> the library function it calls
    evaluate: Callable  # (run, file, *, log, **options) -> report (a JSON-able dict)
    evaluate_options: tuple[str, ...]  # the options `evaluate` takes for this head (`charseq evaluate` refuses others)
    summary: Callable[[dict], str]  # a report as the one-paragraph text `charseq evaluate` prints
    export: Callable  # (run) -> (tf.Module with .signatures(), what to record of it)
    load_for_studio: Callable  # (run) -> {"config": ..., and the objects the studio's views use}
    plot_panels: tuple = ()  # (title, metrics) drawn by `charseq plot` for its runs
    kind: Callable[[dict], str] = field(default=None)  # a run's kind as the studio lists it (default: task)
    # The module of the head's commands (TensorFlow-free): COMMANDS (click commands `charseq` lists),
    # EVALUATE_OPTIONS (the click options `charseq evaluate` takes for it) and EVALUATE_HELP (what it reports).
    cli: str | None = None
    # Train command -> its rule for the settings not given (its folder's sizing.py, plain Python):
    # (statistics of the training data..., the settings given) -> charseq.sizing.Sizing.
    sizing: dict = field(default_factory=dict)
    # Train command -> the config dataclasses its settings fill besides TrainConfig (its Recipe's model_config
    # and data_config): a grid checks every combination's settings against them before any run trains.
    settings: dict = field(default_factory=dict)
    # config.json: the head's top-level keys besides charseq.runs.COMMON_KEYS, and its "data" section's
    # by config["input"] (None: one kind) where that section is not a dataclass; {key: (JSON types, required)}
    config_keys: dict = field(default_factory=dict)
    data_keys: dict = field(default_factory=dict)
    studio: str | None = None  # the module of its studio view: tabs, routes, examples (see charseq.studio.views)

    def kind_of(self, config: dict) -> str:
        return self.kind(config) if self.kind else self.task


def head(task: str) -> Head:
    """The head named `task` (a run's config["task"]), or a one-line error."""
    if task not in HEADS:
        raise CharseqError(f"this version of charseq has no {task!r} head (it knows {', '.join(sorted(HEADS))})")
    return importlib.import_module(HEADS[task]).HEAD


def all_heads() -> list[Head]:
    return [head(task) for task in HEADS]


def train_commands() -> dict[str, Callable]:
    """Every train command of every head: CLI name -> library function (what `charseq grid` runs)."""
    return {name: fn for h in all_heads() for name, fn in h.train_commands.items()}
