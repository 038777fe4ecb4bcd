"""Starting a run: a new one's settings sized and checked, or an existing one reopened for --resume.

Every head's train function goes through here: `reopen_run` gives back a run to resume with its
recorded settings (refusing any given setting that would change them), `sized` turns a sizing rule's
result into a new run's configs, `without_validation` handles a run with no validation split, and
`move_the_end` writes a new end given on --resume once the loop knows the run's progress. Plain Python,
no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

from charseq.errors import CharseqError
from charseq.runs import RunDir
from charseq.settings import TrainConfig, split_settings
from charseq.sizing import STOP_SETTINGS, Sizing  # the settings that say where to stop (one list, the sizing rule's)

# What a resumed run may change: where to stop, how to spread.
RESUME_SETTINGS = (*STOP_SETTINGS, "patience", "strategy")


def says_when_to_stop(settings: dict) -> bool:
    """Whether the user set a stopping rule (then no default one is added: `--max-steps` alone
    means what it says, not "whichever comes first with early stopping")."""
    return any(settings.get(k) is not None for k in STOP_SETTINGS)


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _same(given, recorded) -> bool:
    if isinstance(given, (int, float)) and isinstance(recorded, (int, float)) and \
            not isinstance(given, bool) and not isinstance(recorded, bool):
        return float(given) == float(recorded)
    return given == recorded


def given_data(recorded, **options) -> dict:
    """A head's data options as given on --resume, for `reopen_run`: each option is
    key=(label, value, default) and is compared with `recorded[key]`; one left at its default
    (not given) or that this run did not record is not compared."""
    recorded = recorded if isinstance(recorded, dict) else {}
    return {label: (value, recorded[key]) for key, (label, value, default) in options.items()
            if value != default and key in recorded}


def resolved(path) -> str | None:
    """A path as config.json records it (absolute), so that a resume from elsewhere compares right."""
    return None if path is None else str(Path(path).resolve())


def given_settings(recorded, settings: dict, data_config) -> dict:
    """The settings of the data dataclass `data_config` in `settings`, as `given_data` compares them:
    named by their option, a file by its absolute path, one left at its default not compared."""
    recorded = recorded if isinstance(recorded, dict) else {}
    own = {f.name: f for f in dataclasses.fields(data_config)}
    return given_data(recorded, **{
        name: (_option(name), resolved(value) if own[name].metadata.get("path") else value, own[name].default)
        for name, value in settings.items() if name in own})


def reopen_run(out, task: str, settings: dict, data: Callable[[dict], dict] | None = None, data_config=None
               ) -> tuple[RunDir, dict, TrainConfig]:
    """An existing run of `task` to resume: (run, its config.json, its training settings).

    A resumed run keeps every saved setting: `settings` may repeat them, and so may the head's
    data options (those of its `data_config` dataclass, and those `data(config)` gives as
    {label: (given, recorded)}, see `given_data`), but a value that differs from the recorded one is
    refused, naming each such option and its recorded value. Only where to stop (STOP_SETTINGS) and
    the strategy may change; `train` checks a new end against the run's progress and writes it to
    config.json.
    """
    run = RunDir.open(out)
    config = run.require_task(task)
    given = {}
    if data_config is not None:
        given = given_settings(config.get("data"), settings, data_config)
        settings = {k: v for k, v in settings.items() if k not in {f.name for f in dataclasses.fields(data_config)}}
    where = run.path / "config.json"
    train_section = config.get("train")
    if not isinstance(train_section, dict):
        raise CharseqError(f"{where} has no training settings")
    recorded = {}
    for section in ("model", "data"):
        if isinstance(config.get(section), dict):
            recorded.update(config[section])
    recorded.update(train_section)
    changed, unknown = [], []
    for name, value in settings.items():
        if name in RESUME_SETTINGS or value is None:
            continue
        if name not in recorded:
            unknown.append(_option(name))
        elif not _same(value, recorded[name]):
            changed.append(f"{_option(name)} (recorded {json.dumps(recorded[name])}, given {json.dumps(value)})")
    for label, (value, was) in {**given, **(data(config) if data else {})}.items():
        if not _same(value, was):
            changed.append(f"{label} (recorded {json.dumps(was, ensure_ascii=False)}, "
                           f"given {json.dumps(value, ensure_ascii=False)})")
    if changed or unknown:
        what = "; ".join(filter(None, [
            f"these settings cannot change: {', '.join(changed)}" if changed else "",
            f"this run did not record {', '.join(unknown)}" if unknown else ""]))
        raise CharseqError(f"--resume continues {run.path} with its own settings, and {what}. "
                           f"Only {', '.join(map(_option, RESUME_SETTINGS))} may be given on --resume; "
                           "for other settings train a new run (another --out, or --force to replace this one)")
    stop = {k: settings[k] for k in RESUME_SETTINGS if settings.get(k) is not None}
    if says_when_to_stop(stop) and "patience" not in stop:
        stop["patience"] = None  # a new end given on resume (e.g. --max-steps 3000) means train to it
    training = TrainConfig.from_dict({**train_section, **stop}, f"{where} train")
    return run, config, training


def without_validation(cfg: TrainConfig, settings: dict, log: Callable[[str], None],
                       why: str = "--val-fraction 0") -> TrainConfig:
    """The training settings of a run with no validation split (--val-fraction 0): nothing is
    validated, so nothing stops early and the weights kept are the last ones. --patience is refused;
    the cap of passes the sizing rule set with it (or the user's end) is where training stops."""
    if settings.get("patience") is not None:
        raise CharseqError(f"--patience stops when the validation metric stops improving, and there is no "
                           f"validation split ({why}); give --max-steps, --epochs or --time-budget, "
                           "or hold out a validation split")
    cfg = TrainConfig.from_dict({**cfg.to_dict(), "patience": None})
    ends = [f"{cfg.max_steps} steps" if cfg.max_steps else None, f"{cfg.epochs:g} epochs" if cfg.epochs else None,
            f"{cfg.time_budget:g} min" if cfg.time_budget else None]
    log(f"no validation split ({why}): no validation figures, no early stopping; the last weights are kept; "
        "training stops at " + " or ".join(e for e in ends if e))
    return cfg


def sized(sizing: Sizing, settings: dict, groups: tuple, log: Callable[[str], None],
          no_validation: str | None = None) -> tuple:
    """A new run's configs (one per dataclass in `groups`, TrainConfig last) from a sizing rule's
    settings (the user's `settings` win), its summary said; with `no_validation` (why there is no
    validation split), without early stopping."""
    *configs, train_cfg = split_settings(sizing.settings, *groups)
    log(sizing.summary)
    if no_validation:
        train_cfg = without_validation(train_cfg, settings, log, no_validation)
    return (*configs, train_cfg)


def move_the_end(run: RunDir, cfg: TrainConfig, progress: dict, end_step: int | None, budget_s: float | None,
                 log) -> None:
    """On --resume: a new end (--max-steps, --epochs, --time-budget) must not be before the
    run's progress; if it is not, it is written to config.json and said."""
    config = run.read_config()
    recorded = config["train"]
    moved = {k: (recorded.get(k), getattr(cfg, k)) for k in RESUME_SETTINGS if not _same(recorded.get(k), getattr(cfg, k))}
    if not moved:
        return
    step, elapsed = int(progress["step"]), float(progress["elapsed_s"])
    stops = [k for k in moved if k in STOP_SETTINGS and getattr(cfg, k) is not None]
    if "time_budget" in stops and budget_s is not None and budget_s < elapsed:
        raise CharseqError(f"--time-budget {cfg.time_budget:g} is before this run's progress ({elapsed / 60:.1f} "
                           f"minutes trained); give a later end, or omit it to keep {recorded.get('time_budget')}")
    if end_step is not None and end_step < step and any(k in stops for k in ("max_steps", "epochs")):
        given = " and ".join(f"{_option(k)} {getattr(cfg, k):g}" for k in stops if k != "time_budget")
        raise CharseqError(f"{given} ends at step {end_step}, before this run's progress (step {step}); "
                           "give a later end, or omit it to continue to the recorded one")
    run.write_config({**config, "train": cfg.to_dict()})
    log("resume: " + ", ".join(f"{_option(k)} {json.dumps(v)} (was {json.dumps(w)})" for k, (w, v) in moved.items())
        + "; the stopping rules and --strategy may change on --resume, the other settings are the run's own")
