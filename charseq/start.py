"""Starting a run: a new one created, sized and recorded, or an existing one reopened for --resume.

Every head's train function goes through `start_run`, giving it a :class:`Recipe`: the head's settings
classes, how it reads its data, its sizing rule, its model builder and its task. `start_run` does the
rest, the same for every head: `reopen_run` gives back a run to resume with its recorded settings
(refusing any given setting that would change them), or a new run is created beside --out (never
over a run without --force) and its settings sized to the data (`sized`, `without_validation` for a
run with no validation split) and said in its start lines; then the model is built, config.json
written with the precision the model computes in (`auto` resolved: a run loads and resumes in it),
and the task built. `move_the_end` writes a new end given on --resume once the training loop
knows the run's progress. TensorFlow loads only when a run starts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from charseq.errors import CharseqError, flag
from charseq.files import fingerprint, has_fingerprint, moved_with
from charseq.precision import precision_of_run
from charseq.runs import RunDir
from charseq.settings import TrainConfig, config_from_dict, flat, split_settings
from charseq.sizing import STOP_SETTINGS, Sizing, epochs, steps  # STOP_SETTINGS: where to stop (one list, the sizing rule's)

# What a resumed run may change: where to stop, how to spread.
RESUME_SETTINGS = (*STOP_SETTINGS, "patience", "strategy")


def says_when_to_stop(settings: dict) -> bool:
    """Whether the user set a stopping rule (then no default one is added: `--max-steps` alone
    means what it says, not "whichever comes first with early stopping")."""
    return any(settings.get(k) is not None for k in STOP_SETTINGS)


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


def _is_path(value) -> bool:
    """A file as config.json records it (see resolved), not a setting's value."""
    return isinstance(value, str) and os.path.isabs(value)


def given_settings(recorded, settings: dict, data_config) -> dict:
    """The settings of the data dataclass `data_config` in `settings`, as `given_data` compares them:
    named by their option, a file by its absolute path, one left at its default not compared."""
    recorded = recorded if isinstance(recorded, dict) else {}
    own = {f.name: f for f in dataclasses.fields(data_config)}
    return given_data(recorded, **{
        name: (flag(name), resolved(value) if own[name].metadata.get("path") else value, own[name].default)
        for name, value in settings.items() if name in own})


def reopen_run(out, recipe: Recipe, settings: dict,
               log: Callable[[str], None] = lambda line: None) -> tuple[RunDir, dict, TrainConfig]:
    """An existing run of `recipe`'s head to resume: (run, its config.json, its training settings).

    A resumed run keeps every saved setting: `settings` may repeat them, and so may the head's
    data options (those of its data settings' dataclass, and those `recipe.given(config)` gives as
    {label: (given, recorded)}, see `given_data`), but a value that differs from the recorded one is
    refused, naming each such option and its recorded value (compared with the recorded data settings
    as the data was read, see Recipe.as_read; a setting the run's data cannot have, see
    Recipe.refuse_on_resume, is refused in its own words). Only where to stop (STOP_SETTINGS) and
    the strategy may change; `train` checks a new end against the run's progress and writes it to
    config.json.

    A data file given at another path than the recorded one is accepted when its content is the
    recorded one (config.json's "data_files"): a project moved, or copied to another machine. The
    run reads it from there on, and config.json says so.
    """
    run = RunDir.open(out)
    run.hold()  # before anything is read or written: refused while another process trains the run
    config = run.require_task(recipe.task)
    recipe.refuse_on_resume(config, settings)
    given = {}
    data_config = recipe.data_config if recipe.files_in_data else None
    if data_config is not None:
        recorded_data = config.get("data")
        if isinstance(recorded_data, dict):
            recorded_data = recipe.as_read(recorded_data, settings)
        given = given_settings(recorded_data, settings, data_config)
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
    fingerprints = config.get("data_files") or {}
    changed, unknown, files, moved = [], [], [], {}
    for name, value in settings.items():
        if name in RESUME_SETTINGS or value is None:
            continue
        if name not in recorded:
            unknown.append(flag(name))
        elif not _same(value, recorded[name]):
            changed.append(f"{flag(name)} (recorded {json.dumps(recorded[name])}, given {json.dumps(value)})")
    for label, (value, was) in {**given, **recipe.given(config)}.items():
        if _same(value, was):
            continue
        if _is_path(value) and _is_path(was) and has_fingerprint(value, fingerprints.get(was)):
            moved[label] = (was, value)
            continue
        changed.append(f"{label} (recorded {json.dumps(was, ensure_ascii=False)}, "
                       f"given {json.dumps(value, ensure_ascii=False)})")
        if _is_path(value) and _is_path(was):
            files.append(label)
    if changed or unknown:
        what = "; ".join(filter(None, [
            f"these settings cannot change: {', '.join(changed)}" if changed else "",
            f"this run did not record {', '.join(unknown)}" if unknown else ""]))
        if files and len(files) == len(changed) and not unknown:
            # Only the data files differ: --force, the advice for other settings, would delete the run.
            named = " and ".join(files)
            advice = (f"A data file may move, but its content must be the one the run was trained on: give {named} "
                      "with that content, or leave it out to continue with the recorded one"
                      if fingerprints else  # a run of an older charseq, which recorded its files by path only
                      f"This run recorded its data files by path only: leave {named} out to continue with the "
                      "recorded one, or give that path")
        else:
            advice = (f"Only {', '.join(map(flag, RESUME_SETTINGS))} may be given on --resume; "
                      "for other settings train a new run (another --out, or --force to replace this one)")
        raise CharseqError(f"--resume continues {run.path} with its own settings, and {what}. {advice}")
    config = _data_where_it_is(run, recipe, config, moved, log)
    stop = {k: settings[k] for k in RESUME_SETTINGS if settings.get(k) is not None}
    if says_when_to_stop(stop) and "patience" not in stop:
        stop["patience"] = None  # a new end given on resume (e.g. --max-steps 3000) means train to it
    training = TrainConfig.from_dict({**train_section, **stop}, f"{where} train")
    return run, config, training


def _data_where_it_is(run: RunDir, recipe: Recipe, config: dict, moved: dict, log: Callable[[str], None]) -> dict:
    """On --resume: the run's `config` with the data files given at new paths ({label: (recorded path,
    new path)}, each with the recorded content) recorded there, written to config.json and said. A
    data file the run reads again that is gone from its recorded path is looked for where it would
    be had it moved together with the run (charseq.files.moved_with), and refused, with how to go
    on, if it is not there either."""
    if moved:
        config = _with_data_moved(config, {was: now for was, now in moved.values()})
    reads = recipe.data_files(config) if recipe.files_in_data else {}  # (a language model reads its own copy)
    fingerprints = config.get("data_files") or {}
    found = {label: (path, moved_with(path, fingerprints[path], run.path)) for label, path in reads.items()
             if not os.path.exists(path) and path in fingerprints}
    found = {label: (was, now) for label, (was, now) in found.items() if now is not None}
    if found:  # moved together with the run: read where they are now, as if given there
        config = _with_data_moved(config, {was: now for was, now in found.values()})
        moved = {**moved, **found}
        reads = recipe.data_files(config)
    gone = [(label, path) for label, path in reads.items() if not os.path.exists(path)]
    if gone:
        label, path = gone[0]
        raise CharseqError(f"{label} {path}, which this run was trained on, is gone: " + (
            "give its new path with --resume (a file with the recorded content is accepted at any path)"
            if path in (config.get("data_files") or {})
            else "put it back there to resume the run (it recorded its data by path only)"))
    if moved:
        run.write_config(config)
        for label, (was, now) in moved.items():
            log(f"data: {label} {now} is the file this run recorded at {was} (the same content); "
                "the run reads it from here on")
    return config


def _with_data_moved(config: dict, moved: dict) -> dict:
    """`config` with each data file at its new path ({recorded path: new path})."""
    def moving(value):  # wherever config.json names a file (a language model's corpus says it twice)
        if isinstance(value, dict):
            return {moved.get(key, key): moving(v) for key, v in value.items()}
        return moved.get(value, value) if isinstance(value, str) else value

    return moving(config)


def refuse_patience_without_validation(settings: dict, why: str = "--val-fraction 0") -> None:
    if settings.get("patience") is not None:
        raise CharseqError(f"--patience stops when the validation metric stops improving, and there is no "
                           f"validation split ({why}); give --max-steps, --epochs or --time-budget, "
                           "or hold out a validation split")


def without_validation(cfg: TrainConfig, settings: dict, log: Callable[[str], None],
                       why: str = "--val-fraction 0") -> TrainConfig:
    """The training settings of a run with no validation split (--val-fraction 0): nothing is
    validated, so nothing stops early and the weights kept are the last ones. --patience is refused;
    the cap of passes the sizing rule set with it (or the user's end) is where training stops."""
    refuse_patience_without_validation(settings, why)
    cfg = TrainConfig.from_dict({**cfg.to_dict(), "patience": None})
    ends = [steps(cfg.max_steps) if cfg.max_steps else None, epochs(cfg.epochs) if cfg.epochs else None,
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
                           "minutes trained); give a later end, or omit it to continue to the recorded one")
    if end_step is not None and end_step < step and any(k in stops for k in ("max_steps", "epochs")):
        given = " and ".join(f"{flag(k)} {getattr(cfg, k):g}" for k in stops if k != "time_budget")
        raise CharseqError(f"{given} ends at step {end_step}, before this run's progress (step {step}); "
                           "give a later end, or omit it to continue to the recorded one")
    run.write_config({**config, "train": cfg.to_dict()})
    log("resume: " + ", ".join(f"{flag(k)} {json.dumps(v)} (was {json.dumps(w)})" for k, (w, v) in moved.items())
        + "; the stopping rules and --strategy may change on --resume, the other settings are the run's own")


# ----------------------------------------------------------------------------- the one run-start path
@dataclass
class Start:
    """A run being started, as a head's :class:`Recipe` sees it. Its settings are the run's own on
    --resume; on a new run the user's until the data is read, then the sizing rule's (`sizing`)."""

    run: RunDir
    model_cfg: Any  # the head's ModelConfig
    data_cfg: Any  # its data settings (None for a head without a data dataclass)
    train_cfg: TrainConfig
    settings: dict  # the settings given
    log: Callable[[str], None]
    config: dict | None = None  # the run's config.json on --resume; None: a new run
    sizing: Sizing | None = None  # a new run's, once the data is read
    model: Any = None  # built by start_run, with the task the training loop runs
    task: Any = None

    @property
    def resume(self) -> bool:
        return self.config is not None

    @property
    def precision(self) -> str | None:
        """The precision the model is built in: on --resume, the one the run recorded (precision_of_run);
        None: its model's `precision` setting, resolved by the head's builder."""
        return precision_of_run(self.config) if self.resume else None


class Recipe:
    """What a head gives `start_run`: its settings classes, its data, its sizing rule, its model
    builder and its task. A head subclasses it (one instance per run started, keeping the data it
    reads) and overrides `read`, `sizing`, `build` and `make_task`; the other steps do nothing unless
    the head needs them."""

    task: str  # config.json's "task"
    model_config: type  # the head's ModelConfig
    data_config: type | None = None  # its data settings' dataclass
    recorded: tuple = ()  # keys of config.json's "data" that are not data_config's (the files read, the split)
    # On --resume, data settings are compared as `given_settings` does (a file by its absolute path, one
    # left at its default not compared); False: as the model's are (data settings that name no file).
    files_in_data: bool = True
    # The data file the head reads (the train function's argument): config.json's "data" records it
    # under `file_key`, and the command line names it `file_label`.
    file_key: str | None = None
    file_label: str = "TRAIN_FILE"
    no_validation: str | None = None  # set by `read` on a new run: why it has no validation split

    def __init__(self, file=None):
        self.file = file

    def data_file(self, start: Start):
        """The data file to read: the one the run recorded on --resume, else the one given."""
        return start.config["data"][self.file_key] if start.resume else self.file

    def data_files(self, config: dict) -> dict:
        """{label: path} of the data files a run's `config` recorded: the head's data file and its data
        settings that name a file (--val). A new run records their fingerprints, so that --resume
        knows them at another path; it reads them again (unless `files_in_data` is False)."""
        if not self.files_in_data or not isinstance(config.get("data"), dict):
            return {}
        data, named = config["data"], {}
        if self.file_key is not None:
            named[self.file_label] = data.get(self.file_key)
        if self.data_config is not None:
            named.update({flag(f.name): data.get(f.name) for f in dataclasses.fields(self.data_config)
                          if f.metadata.get("path")})
        return {label: path for label, path in named.items() if _is_path(path)}

    def given(self, config: dict) -> dict:
        """On --resume: the head's data arguments, as given and as `config` recorded them
        ({label: (given, recorded)}, see `given_data`); a difference is refused."""
        if self.file_key is None:
            return {}
        return given_data(config.get("data"), **{self.file_key: (self.file_label, resolved(self.file), None)})

    def as_read(self, data: dict, settings: dict) -> dict:
        """On --resume: config.json's data settings `data` as the run read its data, to compare with the
        `settings` given; where the run left a choice to the reader (a column found by its usual name),
        a setting that makes the same choice counts as recorded."""
        return data

    def recorded_data(self, config: dict, where: str):
        """The data settings a run's `config` (its config.json, at `where`) recorded, as this head's
        data settings (None for a head without), without what the run recorded about its data."""
        data = config.get("data")
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in self.recorded}
        return self.data_config and config_from_dict(self.data_config, data, f"{where} data")

    def refuse_on_resume(self, config: dict, settings: dict) -> None:
        """On --resume, before the `settings` given are compared with the run's `config`: a data setting
        the run's data cannot have (the other tokenizer's vocabulary options) is refused as a new run
        with that data would refuse it, not as a change of a setting the run never used."""
        data = config.get("data")
        if self.data_config is None or not isinstance(data, dict) or "tokenizer" not in data:
            return
        recorded = self.recorded_data(config, "config.json")
        from charseq.vocab import refuse_the_other_tokenizers_options  # here: charseq.vocab loads numpy

        given = {k: v for k, v in settings.items() if k in ("vocab_size", "max_vocab", "min_count") and v is not None}
        refuse_the_other_tokenizers_options(dataclasses.replace(recorded, **given), given)

    def check(self, start: Start) -> None:
        """A new run: what can be checked before anything is read or created (a missing file)."""

    def read(self, start: Start) -> None:
        """Read the data (a new run's may be written into `start.run.path`), keep it and say it.
        On --resume, from the files the run recorded."""
        raise NotImplementedError

    def sizing(self, start: Start) -> Sizing:
        """A new run's settings sized to the data read (the user's, `start.settings`, win)."""
        raise NotImplementedError

    def fit(self, start: Start) -> None:
        """A new run's sized settings against its data: what the data decides, what memory allows."""

    def save(self, path: Path) -> None:
        """A new run's files beside config.json (its vocabularies)."""

    def record(self, start: Start) -> dict:
        """The head's entries of a new run's config.json, besides task, model, train and sizing."""
        return {}

    def build(self, start: Start):
        """The model, with its weights created (under the distribution strategy's scope), in
        `start.precision` if it is set."""
        raise NotImplementedError

    def make_task(self, start: Start, model, strategy):
        """The task the training loop runs: batches, loss, validation."""
        raise NotImplementedError

    def describe(self, start: Start, model) -> str:
        """The model's shape, as its start line says it."""
        return start.model_cfg.backbone.shape()

    def precision(self, model) -> str:
        return model.backbone.dtype_policy.name


def start_run(recipe: Recipe, out, settings: dict, *, resume: bool, force: bool,
              log: Callable[[str], None]) -> Start:
    """Start a run of the head `recipe` is for, at `out`: with `resume`, reopen the run there
    (see `reopen_run`); else check the settings, create the run beside `out` (it replaces `out`
    only with `force`, at its first checkpoint: see RunDir.create), read the data, size the settings
    the user did not give. Then the model is built (on --resume, in the precision the run recorded), a
    new run's config.json written, and the task built, and said.

    The caller trains `start.task` and wraps the whole in `discard_unpublished`, so that a new run
    stopped before its first checkpoint leaves nothing behind."""
    if resume and force:
        raise CharseqError("--resume continues the run at --out and --force replaces it: give one of them")
    import tensorflow as tf

    from charseq.distribute import make_strategy, scope

    groups = tuple(g for g in (recipe.model_config, recipe.data_config) if g is not None)
    if resume:
        run, config, train_cfg = reopen_run(out, recipe, settings, log)
        where = f"{run.path}/config.json"
        start = Start(run, config_from_dict(recipe.model_config, config.get("model"), f"{where} model"),
                      recipe.recorded_data(config, where), train_cfg, settings, log, config)
    else:
        model_cfg, *data_cfg, train_cfg = split_settings(settings, *groups, TrainConfig)  # before the data loads
        if settings.get("val_fraction") == 0 and settings.get("val") is None:  # said before the data is read
            refuse_patience_without_validation(settings)
        start = Start(None, model_cfg, data_cfg[0] if data_cfg else None, train_cfg, settings, log)
        recipe.check(start)
        start.run = RunDir.create(out, force=force)  # built beside --out; it replaces --out at its first checkpoint
    recipe.read(start)  # no TensorFlow: a bad file is said at once, not after a whole cluster has joined
    strategy = make_strategy(start.train_cfg.strategy, log)  # before TensorFlow runs anything (see make_strategy)
    if not resume:
        start.sizing = recipe.sizing(start)
        start.model_cfg, *data_cfg, start.train_cfg = sized(start.sizing, settings, (*groups, TrainConfig), log,
                                                           recipe.no_validation)
        start.data_cfg = data_cfg[0] if data_cfg else None
        recipe.fit(start)
        recipe.save(start.run.path)
    tf.keras.utils.set_random_seed(start.train_cfg.seed)
    with scope(strategy):
        start.model = recipe.build(start)
    if not resume:  # with the precision `auto` chose here, which the run then loads and resumes in
        config = {"task": recipe.task, "model": flat(start.model_cfg), "train": start.train_cfg.to_dict(),
                  "sizing": start.sizing.summary, **recipe.record(start),
                  "trained_precision": recipe.precision(start.model)}
        files = [path for path in recipe.data_files(config).values() if os.path.isfile(path)]
        if files:  # to know them again at another path (see reopen_run)
            config["data_files"] = {path: fingerprint(path) for path in files}
        start.run.write_config(config)
    start.task = recipe.make_task(start, start.model, strategy)
    params = sum(math.prod(v.shape) for v in start.model.trainable_variables)
    log(f"model: {recipe.describe(start, start.model)}, {params:,} parameters, {recipe.precision(start.model)}; "
        f"{steps(start.task.steps_per_epoch)} per epoch")
    return start
