"""Settings: keyword options split into each head's dataclasses of defaults, and checked.

Every train command takes one flat set of options (the CLI's, or `train_*(**settings)` in
Python); each head groups them into dataclasses (its model, maybe its data, and the shared
`TrainConfig`), which are what config.json stores.
"""

from __future__ import annotations

from dataclasses import fields

from charseq.errors import CharseqError

CELLS = ("rnn", "lstm", "gru")


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
