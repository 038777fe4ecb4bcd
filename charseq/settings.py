"""Settings: keyword options split into each head's dataclasses of defaults, and checked.

Every train command takes one flat set of options (the CLI's, or `train_*(**settings)` in
Python); each head groups them into dataclasses (its model, maybe its data, and the shared
`TrainConfig`), which are what config.json stores.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import fields

from charseq.errors import CharseqError

# The choice lists, one owner each (the library checks against them, the CLI offers them).
CELLS = ("rnn", "lstm", "gru")
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
OPTIMIZERS = ("adam", "rmsprop", "sgd", "adagrad")
LR_DECAYS = ("none", "exponential", "cosine")
ON_NAN = ("stop", "skip")
STRATEGIES = ("default", "mirrored", "multiworker")
TOKENIZERS = ("char", "sentencepiece")
WINDOWS = ("contiguous", "random")
DECODE_ERRORS = ("strict", "replace", "ignore")  # what to do with bytes that do not decode (as in bytes.decode)
READOUTS = ("final", "mean", "max", "attention", "concat")
ATTENTIONS = ("none", "luong", "bahdanau")
PROMPT_UNKNOWN = ("error", "skip", "unk")  # a prompt character the language model does not know
SOURCE_UNKNOWN = ("error", "unk")  # a source character the encoder-decoder does not know
PAIR_TASKS = ("addition", "reverse", "sort", "dates")  # make-pairs' synthetic tasks


def split_settings(settings: dict, *groups) -> tuple:
    """One instance of each dataclass in `groups` from the settings named by its fields, each
    validated; a setting that no group has is an error naming it."""
    names = [{f.name for f in fields(g)} for g in groups]
    unknown = set(settings) - set().union(*names)
    if unknown:
        raise CharseqError(f"unknown settings: {', '.join(sorted(unknown))}")
    configs = tuple(g(**{k: v for k, v in settings.items() if k in n}) for g, n in zip(groups, names))
    for config in configs:
        config.validate()
    return configs


def check_backbone(config) -> None:
    """The backbone's shape, as every head's model config holds it."""
    if config.cell not in CELLS:
        raise CharseqError(f"--cell must be rnn, lstm or gru, not {config.cell!r}")
    for name in ("layers", "units", "embedding_dim"):
        if getattr(config, name) < 1:
            raise CharseqError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 <= config.dropout < 1:
        raise CharseqError(f"--dropout must be in [0, 1), not {config.dropout}")
    if config.l2 < 0:
        raise CharseqError("--l2 must be 0 or positive")
    from charseq.limits import check_model_memory

    check_model_memory(config)  # the backbone alone (heads add their vocabulary when they know it)


def _accepts(kind, value) -> bool:
    """Whether `value`, read from JSON, fits the annotation `kind` (int, float, str, bool, X | None)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return any(_accepts(k, value) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    return True  # a field of a richer type checks itself in validate()


def config_from_dict(cls, data, where: str):
    """A `cls` dataclass from a section of a saved config.json, refusing what charseq never writes.

    config.json is read from directories users download and share: a key the dataclass does not
    have, or a value of the wrong type, is a one-line error naming it, never a crash deeper in
    (and never code run: the values are plain JSON scalars).
    """
    if not isinstance(data, dict):
        raise CharseqError(f"{where} must be a JSON object, not {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CharseqError(f"{where} has unexpected settings: {', '.join(map(str, unknown))}")
    for name, value in data.items():
        if not _accepts(hints[name], value):
            kind = getattr(hints[name], "__name__", str(hints[name]))
            raise CharseqError(f"{where}: {name} = {json.dumps(value)} is not of type {kind}")
    config = cls(**data)
    config.validate()
    return config
