"""The run directory: everything needed to resume, sample from or evaluate a trained model.

    RUN/config.json      every setting (task, model, training), enough to rebuild the model
    RUN/vocab.json       the vocabulary (plus spm.model for SentencePiece)
    RUN/data/            the corpus encoded once (ids.bin, memory-mapped) and its split
    RUN/checkpoint.npz   latest weights, optimizer state and progress (for --resume)
    RUN/checkpoints/     with --keep N > 1: the last N checkpoints, step-NNNNNNNN.npz
    RUN/best.npz         weights with the best validation score so far
    RUN/metrics.jsonl    one JSON object per evaluation
    RUN/status.json      how training stands: running, or how it ended (finished, stopped, failed)
    RUN/test.json        an image classifier's one score on the test images, with the weights kept
    RUN/logs/            TensorBoard event files

Weights are stored as plain arrays in `.npz` files (read with allow_pickle=False, so loading
a run never executes code from it) with a SHA-256 checksum and the charseq version, and are
written atomically: a crash leaves the previous checkpoint intact.

A new run is built in a hidden sibling directory (`.NAME.new-XXXX`) and moves to its place only
once it has trained its first step and written its first checkpoint (`RunDir.publish`): until
then an old run it replaces (`--force`) is untouched, and a run that fails before is removed.
The move is one atomic exchange of the two directories, so a crash at any moment leaves either
the old run or the new one at the path, each loadable; the next run for the same path deletes
what a killed one left beside it (`charseq.transaction`, which replaces grids and exports too).

A process training a run holds a lock on its directory until training ends (`RunDir.hold`),
so a reader (the studio) tells a run being trained from one whose trainer was killed.
"""

from __future__ import annotations

import difflib
import errno
import functools
import hashlib
import io
import json
import math
import os
import re
import shutil
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from charseq import __version__
from charseq.errors import NO_ROOM, CharseqError, InterruptedBeforeCheckpoint, WriteError, write_remedy
from charseq.files import (append_text, directory_locked, lock_directory_unless_held, unlock_directory,
                           write_bytes_atomic, write_json_atomic)
from charseq.heads import HEADS, Head, head
from charseq.settings import INFERENCE_PRECISIONS, TEXT
from charseq.transaction import Replacement, destination, recover

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.npz"
HISTORY_DIR = "checkpoints"
BEST_FILE = "best.npz"
METRICS_FILE = "metrics.jsonl"
STATUS_FILE = "status.json"
# How a run stands (status.json and RunDir.status): training now, or how its last training ended.
STATUSES = ("running", "finished", "stopped", "failed")
TEST_FILE = "test.json"  # an image classifier's one score on its test split, with the weights validation chose
# The layout of the .npz files. A file of another format is refused with a message naming the
# charseq version that wrote it, instead of loading arrays into the wrong variables.
FORMAT = 1
# config.json's marker of a directory charseq made ("run_format"); runs written before it existed
# are recognised by their config's structure (task, model, train, charseq_version) instead.
RUN_FORMAT = 1
# Everything charseq writes at the top of a run directory: --force replaces nothing that holds more.
RUN_ENTRIES = frozenset({CONFIG_FILE, "vocab.json", "spm.model", "spm.vocab", "data", "target", CHECKPOINT_FILE,
                         HISTORY_DIR, BEST_FILE, METRICS_FILE, STATUS_FILE, "logs", "grid_result.json",
                         TEST_FILE})


def selection_key(record: dict, metric: str, mode: str) -> tuple[float, float]:
    """How two evaluations compare when the best weights are kept (best.npz) and a grid ranks its
    runs: lower is better. By `metric` ("min" or "max" `mode`), a tie going to the lower val_loss: a
    classifier's accuracy (an encoder-decoder's exact match) often stays the same over many
    evaluations, at 1.0 on easy data, while its loss goes on falling, and those later weights are the
    more confident ones. A record without a loss (or a NaN one) loses a tie; one of -inf wins it."""
    loss = record.get("val_loss")
    return (record[metric] if mode == "min" else -record[metric],
            loss if isinstance(loss, (int, float)) and not math.isnan(loss) else math.inf)


def kept_evaluation(records: list[dict], metric: str, mode: str) -> dict | None:
    """Of a run's evaluations (metrics.jsonl), the one whose weights training kept (best.npz): the best
    finite `metric`, a tie going to the lower val_loss (:func:`selection_key`); None if none scored."""
    scored = [r for r in records if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
    return min(scored, key=lambda r: selection_key(r, metric, mode)) if scored else None


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _progress(record: dict, running: bool) -> dict:
    """{"progress", "eta_seconds"} from a status record: the larger of steps done / end step and
    training time / time budget, as the training loop measures it; a running run's time goes on
    since the record was written, and its ETA is the soonest end at the pace so far."""
    step, end_step = _number(record.get("step")) or 0, _number(record.get("end_step"))
    elapsed, budget = _number(record.get("elapsed_s")), _number(record.get("time_budget_s"))
    since = max(0.0, time.time() - (_number(record.get("updated")) or time.time())) if running else 0.0
    if elapsed is not None:
        elapsed += since
    fractions, etas = [], []
    if end_step:
        fractions.append(step / end_step)
        if elapsed is not None and step > 0:
            etas.append((end_step - step) * (elapsed - since) / step - since)
    if budget and elapsed is not None:
        fractions.append(elapsed / budget)
        etas.append(budget - elapsed)
    if record.get("status") == "finished" and not running:
        return {"progress": 1.0, "eta_seconds": None}
    progress = round(min(1.0, max(fractions)), 5) if fractions else None
    eta = round(max(0.0, min(etas)), 1) if running and etas else None
    return {"progress": progress, "eta_seconds": eta}


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        h.update(key.encode())
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    return h.hexdigest()


def _name(variable) -> str:
    """The variable's path below its model or optimizer (whose own name varies per process)."""
    return variable.path.split("/", 1)[-1]


def _variable_arrays(prefix: str, variables) -> dict[str, np.ndarray]:
    return {f"{prefix}{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(variables)}


def _assign(variables, arrays: dict[str, np.ndarray], prefix: str, names: list[str], path: Path,
            check_names: bool = True):
    variables = list(variables)
    if len(names) != len(variables) or any(
            (check_names and n != _name(v)) or arrays[f"{prefix}{i:04d}"].shape != tuple(v.shape)
            for i, (n, v) in enumerate(zip(names, variables))):
        raise CharseqError(f"{path} does not match this model (different settings or charseq version)")
    for i, v in enumerate(variables):
        v.assign(arrays[f"{prefix}{i:04d}"])


def _random_states(model) -> list:
    """The states of the model's random generators (dropout masks): restoring them makes a
    resumed run draw the same masks as one that never stopped."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


# What every config.json holds at the top level: {key: (accepted JSON types, required)}. Each head
# adds its own keys, and those of its "data" section where that holds more than a dataclass of its
# own (charseq.heads.Head.config_keys, data_keys, the latter from the head's config.py); anything else
# is refused by name.
COMMON_KEYS = {"task": (TEXT, True), "model": ((dict,), True), "train": ((dict,), True),
               "charseq_version": (TEXT, False), "run_format": ((int,), False), "sizing": (TEXT, False),
               "trained_precision": (TEXT, False),  # what --precision auto chose when the run started
               "data_files": ((dict,), False)}  # {path: fingerprint} of the data files read (see reopen_run)


def _check_fields(section: dict, schema: dict, where: str) -> None:
    unknown = sorted(set(section) - set(schema))
    if unknown:
        raise CharseqError(f"{where} has unexpected settings: {', '.join(map(str, unknown))}")
    for key, (types, required) in schema.items():
        if key not in section:
            if required:
                raise CharseqError(f"{where} has no {key!r}; it is damaged or not a charseq run")
            continue
        value = section[key]
        if types == (dict,) and not isinstance(value, dict):
            raise CharseqError(f"{where}: {key} must be a JSON object, not {json.dumps(value)}")
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            raise CharseqError(f"{where}: {key} = {json.dumps(value)} is not of the type charseq writes "
                               f"({' or '.join('null' if t is type(None) else t.__name__ for t in types)})")


def check_config(config: dict, path: Path) -> None:
    """Refuse a config.json that charseq would not have written: unknown top-level keys, missing
    or mistyped ones, a data section without what resuming and loading read."""
    run_head = head(config["task"])
    _check_fields(config, {**COMMON_KEYS, **run_head.config_keys}, str(path))
    if config.get("trained_precision", "float32") not in INFERENCE_PRECISIONS:
        raise CharseqError(f"{path}: trained_precision = {json.dumps(config['trained_precision'])} is not one of "
                           f"{', '.join(INFERENCE_PRECISIONS)}")
    if run_head.data_keys:  # by the kind of input (None: a head with one kind)
        kind = config.get("input")
        if kind not in run_head.data_keys:
            raise CharseqError(f"{path}: input = {json.dumps(kind)} is not one of "
                               f"{', '.join(json.dumps(k) for k in run_head.data_keys)}")
        _check_fields(config["data"], run_head.data_keys[kind], f"{path} data")


# What charseq writes below the top level of a run: folder -> the names it writes there (a pattern).
# Anything else anywhere in the tree (a user's notes in logs/, a data set in data/, a link) is the
# user's: --force, checkpoint rotation and the sweep of half-written files never touch a run holding it.
RUN_FOLDERS = {
    "data": re.compile(r"ids\.bin|ids\.bin\.tmp|corpus\.json"),
    HISTORY_DIR: re.compile(r"step-\d{8}\.npz"),
    "logs": re.compile(r"events\.out\.tfevents\.[^/]+"),
    "target": re.compile(r"vocab\.json|spm\.model|spm\.vocab"),
}
TOP_FILES = re.compile("|".join(re.escape(n) for n in sorted(RUN_ENTRIES - set(RUN_FOLDERS))))
KEPT_CHECKPOINT = RUN_FOLDERS[HISTORY_DIR]
# write_bytes_atomic's temporary `.NAME.XXXXXXXX.tmp` (mkstemp's random characters), and the
# checkpoint rotation's `.step-NNNNNNNN.npz.tmp`.
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp")
_ROTATING = re.compile(r"\.(?P<name>step-\d{8}\.npz)\.tmp")


def being_written(name: str, own: re.Pattern = TOP_FILES) -> bool:
    """A file charseq is writing in a folder whose own files match `own` (a `.NAME.XXXX.tmp`
    whose NAME is one of them): a user's `.notes.tmp` is not one."""
    return any(m is not None and own.fullmatch(m["name"]) is not None
               for m in (_TEMPORARY.fullmatch(name), _ROTATING.fullmatch(name)))


# What a run being built may also hold for a moment: SentencePiece's UTF-8 copy of its input.
BUILD_FILES = re.compile(r"text\.txt|corpus\.utf8\.txt")


def foreign_entry(path: Path, building: bool = False) -> str | None:
    """The first path (relative to the run directory `path`, in sorted order) that charseq does not
    write for a run, anywhere in its tree; None if every file and folder is charseq's own. A
    symbolic link below the top is never charseq's (it would point a deletion elsewhere)."""
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError:
        return None  # the caller reports an unreadable directory
    for entry in entries:
        name = entry.name
        if entry.is_symlink():
            return name
        if name in RUN_FOLDERS:
            if not entry.is_dir():
                return name
            found = _foreign_in_folder(Path(entry.path), RUN_FOLDERS[name])
            if found:
                return f"{name}/{found}"
        elif not ((TOP_FILES.fullmatch(name) or being_written(name) or (building and BUILD_FILES.fullmatch(name)))
                  and entry.is_file()):
            return name + ("/" if entry.is_dir() else "")
    return None


def _foreign_in_folder(folder: Path, own: re.Pattern) -> str | None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        return f" (unreadable: {e.strerror})"
    for entry in entries:
        if entry.is_symlink() or not entry.is_file() or not (own.fullmatch(entry.name)
                                                             or being_written(entry.name, own)):
            return entry.name + ("/" if entry.is_dir() and not entry.is_symlink() else "")
    return None


def not_a_run(path: Path) -> str | None:
    """Why the directory `path` is not a run charseq made (None if it is one).

    A run is recognised by what charseq writes: a config.json with its marker (or, for runs
    written before the marker, the structure every charseq config has), and nothing anywhere in
    its tree but the files and folders charseq itself makes (see RUN_FOLDERS).
    """
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        return f"it cannot be read ({e.strerror})"
    others = [n for n in names if n not in RUN_ENTRIES and not being_written(n)]
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        return f"it holds {shown}, which charseq never writes"
    foreign = foreign_entry(path)
    if foreign:
        return f"it holds {foreign}, which charseq never writes"
    config_path = path / CONFIG_FILE
    if not config_path.is_file() or config_path.is_symlink():
        return f"it has no {CONFIG_FILE}"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return f"its {CONFIG_FILE} is not JSON"
    marked = isinstance(config, dict) and config.get("run_format") == RUN_FORMAT
    legacy = (isinstance(config, dict) and config.get("task") in HEADS and isinstance(config.get("model"), dict)
              and isinstance(config.get("train"), dict) and isinstance(config.get("charseq_version"), str))
    if not (marked or legacy):
        return f"its {CONFIG_FILE} is not one charseq wrote"
    return None


def _stranded(final: Path) -> Callable[[Path], bool]:
    """A build with a checkpoint while nothing is at `final`: the new run's only copy."""
    return lambda build: (build / CHECKPOINT_FILE).exists() and not final.exists()


def _foreign_in_build(path: Path) -> str | None:
    return foreign_entry(path, building=True)


def sweep_abandoned_builds(final: Path) -> list[str]:
    """Delete the hidden siblings `.NAME.new-*` of the run path `final` that no live process is
    building (their lock is free: the process that made them was killed), and return their names.

    Kept: a sibling another process holds; an empty one made in the last minute (its maker may
    not have locked it yet); one holding a file charseq does not write; and one with a checkpoint
    while nothing is at `final` (the new run's only copy)."""
    return recover(final, _foreign_in_build, keep=_stranded(final))


# The errors of a write that met a full disk, a quota, a size limit or a read-only filesystem (not EACCES,
# which reading a file the user may not read raises too).
WRITE_ERRNOS = {*NO_ROOM, errno.EROFS}
_BUILDING: list["RunDir"] = []  # new runs of this process not yet published (see discard_unpublished)
_HELD: list["RunDir"] = []  # existing runs this process locked to resume them (see discard_unpublished)


def _nothing_kept(run: "RunDir", at: bool = False) -> str:
    """What a new run stopped before its first checkpoint left: nothing, and the old run it was to
    replace (--force) as it was."""
    return (f"nothing of the new run was kept{f' at {run.shown}' if at else ''}"
            + (" (an old run there is untouched)" if run.final is not None and (run.final / CONFIG_FILE).exists()
               else ""))


def being_trained(path: Path) -> bool:
    """Whether another process trains the run at `path` (holds its lock; see RunDir.hold)."""
    try:
        fd = lock_directory_unless_held(path)
    except BlockingIOError:
        return True
    except OSError:
        return False
    unlock_directory(fd)
    return False


def trained_elsewhere(path: Path) -> str:
    return (f"run directory {path} is being trained by another process; wait for it to finish, "
            "or stop it (Ctrl-C) and then run this command again")


def discard_unpublished(train_fn):
    """Wrap a head's train function: a new run it started that never reached its first
    checkpoint (bad settings, a model too big for memory, Ctrl-C, NaN) is deleted when the
    function fails, so no half-made run directory is left behind and an old one is untouched."""
    @functools.wraps(train_fn)
    def wrapper(*args, **kwargs):
        mark, held = len(_BUILDING), len(_HELD)
        try:
            return train_fn(*args, **kwargs)
        except KeyboardInterrupt:
            building = [run for run in _BUILDING[mark:] if not run.published]
            if not building:
                raise
            # The start line named the run directory: say that nothing is there to --resume.
            raise InterruptedBeforeCheckpoint("interrupted before the first checkpoint: "
                                              f"{_nothing_kept(building[0], at=True)}") from None
        except OSError as e:
            if not isinstance(e, WriteError) and e.errno not in WRITE_ERRNOS:
                raise
            if isinstance(e, WriteError) and e.remedies:  # it already says what was kept and what to do
                raise
            if not isinstance(e, WriteError):  # a directory made or a file written without charseq.files
                e = WriteError(e.filename or "the run directory", e)
            # A write before the loop took over (config, vocabulary, encoded data, resume's bookkeeping).
            building = [run for run in _BUILDING[mark:] if not run.published]
            kept = _nothing_kept(building[0]) if building else "the run is as it was before this command"
            message = e.message
            for run in building:  # the file as the user knows it: in --out, not in the hidden build
                message = message.replace(str(run.path), str(run.final))
            raise CharseqError(f"{message}; {kept}; {write_remedy(e, 'the directory')} and run the command again"
                               ) from None
        finally:
            for run in _BUILDING[mark:]:
                if not run.published:
                    run._build.rollback()
            del _BUILDING[mark:]
            # A run locked for --resume whose training never started (refused settings, a model
            # that does not fit) is let go here, or this process would keep it locked for good.
            for run in _HELD[held:]:
                run.let_go()  # which takes it off _HELD
    return wrapper


def runs_near(path: Path) -> str:
    """What to add when `path` is no run: the runs a folder of runs (or a grid) holds, or the run
    beside it of a close name (runs/poem for runs/poems), as click offers a close command; else ""."""
    try:
        if path.is_dir():
            held = sorted(str(p) for p in path.iterdir() if (p / CONFIG_FILE).is_file())
            if len(held) == 1:
                return f"; it holds the run {held[0]}"
            return f"; it holds the runs {', '.join(held[:3])}{', ...' if len(held) > 3 else ''}" if held else ""
        beside = [p.name for p in path.parent.iterdir() if (p / CONFIG_FILE).is_file()] if path.parent.is_dir() else []
    except OSError:  # a folder that cannot be listed: the message as it is
        return ""
    close = difflib.get_close_matches(path.name, beside, n=1)
    return f"; did you mean {path.parent / close[0]}?" if close else ""


class RunDir:
    """A run directory on disk, as every train function returns it: `path` is the directory, which
    the load, evaluate, classify and translate functions (and every command's `--model`) take; they
    take the RunDir itself too, as a path (`load_lm(train_lm(...))`), and so does whatever takes a
    path (`Path(run)`, `os.fspath(run)`)."""

    # A new run is made with create() and published once its first step has trained; open() opens one.

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.final: Path | None = None  # where a new run goes when published; None: it is there
        self._build: Replacement | None = None  # a new run's, until it is published
        self._lock: int | None = None  # held while a new run is built (see sweep_abandoned_builds) or trained
        self.training = False  # between hold() and let_go(): publish keeps the lock

    def __fspath__(self) -> str:
        # So that what a train function returns goes wherever a run's path does: load_lm(run).
        return str(self.shown)

    def __repr__(self) -> str:
        return f"RunDir({str(self.shown)!r})"

    @property
    def published(self) -> bool:
        return self.final is None

    @property
    def shown(self) -> Path:
        """The path to name to the user: where the run is, or will be once published."""
        return self.final or self.path

    # -- creating and opening ---------------------------------------------------------------
    @staticmethod
    def check_out(path: str | Path, force: bool = False) -> Path:
        """Where a new run for --out `path` goes, or a one-line error if it may not go there.

        An existing non-empty directory is replaced only with `force`, and only if it is a run
        charseq made (see not_a_run). A symbolic link to a directory is followed; a dangling one
        is refused."""
        path = Path(path)
        if str(path) in ("", "."):
            raise CharseqError("--out must name a run directory, not the current directory")
        path = destination(path)
        if path.is_dir() and any(path.iterdir()):
            # Checked first: --resume and --force would both refuse a directory that is not a run.
            reason = not_a_run(path)
            if reason:
                raise CharseqError(f"--out {path} is not a charseq run ({reason}); refusing to replace it")
            if not force and being_trained(path):  # --resume and --force would be refused too, meanwhile
                raise CharseqError(f"run directory {path} already exists, and another process is training it "
                                   "now; give another --out, or once it is done use --resume to continue it "
                                   "or --force to replace it")
            if not force:
                raise CharseqError(f"run directory {path} already exists; use --resume to continue it "
                                   "or --force to replace it")
            if being_trained(path):
                raise CharseqError(trained_elsewhere(path))
        return path

    @classmethod
    def create(cls, path: str | Path, force: bool = False) -> "RunDir":
        """A new, empty run, built beside `path` in a hidden directory until :meth:`publish`
        moves it there. An existing run at `path` is replaced only with `force`, only if charseq
        made it, and only at :meth:`publish`. Hidden siblings that killed processes left for
        `path` are deleted first (see sweep_abandoned_builds)."""
        final = cls.check_out(path, force)
        try:
            build = Replacement.begin(final, check=lambda final: cls.check_out(final, force),
                                      foreign=_foreign_in_build, keep=_stranded(final))
        except OSError as e:
            raise CharseqError(f"cannot create run directory {path} ({e.strerror}); "
                               f"{write_remedy(e, 'the folder that holds it')} and train again") from None
        run = cls(build.path)
        run.final, run._build, run._lock = final, build, build.lock
        _BUILDING.append(run)
        return run

    def publish(self) -> None:
        """Move a new run to its path, replacing what was there (checked again: it may have
        changed since) in one atomic exchange, then delete the old run."""
        if self.published:
            return
        build = self._build
        build.commit(keep_lock=self.training)  # published: no longer a build to keep from the sweep
        self.path, self.final, self._build = build.path, None, None
        self._lock, build.lock = build.lock, None  # held on while training (see hold)

    def hold(self) -> None:
        """Lock the run while it trains (until let_go), so readers see it as running and no other
        process resumes or replaces it meanwhile: two processes training one run would write each
        other's checkpoints and metrics. A new run's build lock serves (it follows the directory to
        its place); an existing run (--resume) takes its lock here, and is refused if another
        process holds it."""
        if self._lock is None:
            try:
                self._lock = lock_directory_unless_held(self.path)
            except BlockingIOError:
                raise CharseqError(trained_elsewhere(self.path)) from None
            _HELD.append(self)
        self.training = True

    def let_go(self) -> None:
        self.training = False
        if self in _HELD:
            _HELD.remove(self)
        if self.published and self._lock is not None:  # an unpublished build keeps its lock until discarded
            unlock_directory(self._lock)
            self._lock = None

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise CharseqError(f"{path} is a file, not a charseq run directory (the --out of a train command)")
        if not path.is_dir():
            raise CharseqError(f"run directory {path} does not exist{runs_near(path)}")
        if not (path / CONFIG_FILE).exists():
            raise CharseqError(f"{path} is not a charseq run directory (no {CONFIG_FILE}){runs_near(path)}")
        return cls(path)

    # -- configuration ----------------------------------------------------------------------
    def write_config(self, config: dict) -> None:
        write_json_atomic(self.path / CONFIG_FILE, {**config, "run_format": RUN_FORMAT, "charseq_version": __version__})

    def read_config(self) -> dict:
        path = self.path / CONFIG_FILE
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise CharseqError(f"cannot read {path}: {e}") from None
        if not isinstance(config, dict) or not isinstance(config.get("task"), str):
            raise CharseqError(f"{path} is not a charseq configuration")
        if config["task"] in HEADS:  # a head this version does not have is refused by name where it is used
            check_config(config, path)
        return config

    def require_task(self, task: str) -> dict:
        config = self.read_config()
        if config["task"] != task:
            def named(t):  # as the heads name themselves ("a language model"); a head unknown here by its task
                return head(t).title if t in HEADS else f"a {t} model"
            raise CharseqError(f"{self.path} holds {named(config['task'])}, not {named(task)}")
        return config

    # -- metrics ----------------------------------------------------------------------------
    def append_metrics(self, record: dict) -> None:
        append_text(self.path / METRICS_FILE, json.dumps(record) + "\n")

    def metrics(self) -> list[dict]:
        path = self.path / METRICS_FILE
        if not path.exists():
            return []
        records = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                break  # a line cut short by a crash: everything after it is not trusted
        return records

    def truncate_metrics(self, last_step: int) -> None:
        """Keep only evaluations up to `last_step` (the resumed checkpoint), so that a
        resumed run logs every step once: none missing, none twice."""
        kept = [r for r in self.metrics() if r.get("step", 0) <= last_step]
        write_bytes_atomic(self.path / METRICS_FILE,
                           "".join(json.dumps(r) + "\n" for r in kept).encode("utf-8"))

    # -- status ------------------------------------------------------------------------------
    def write_status(self, status: str, **record) -> None:
        """Record how training stands (one of STATUSES) with its progress: step, end_step,
        time_budget_s, elapsed_s (training seconds so far) and an optional message."""
        write_json_atomic(self.path / STATUS_FILE, {"status": status, **record, "updated": round(time.time(), 3)})

    def status(self) -> dict:
        """How the run stands: {"status", "progress" (0..1 or None), "eta_seconds" (None unless
        running with a known end), "message" (why it stopped or failed, or None), "step" and
        "elapsed_s" (how far training got when it was last recorded, which may be past its last
        evaluation) and "updated" (when that was, as a Unix time, or None for a run from before
        status.json)}.

        Running: a process holds the run's lock. Otherwise status.json says how training ended; a
        record still saying "running" with no lock held means its process died without a word
        (killed, or the machine went down): failed. A run from before status.json is stopped if
        its last evaluation is short of its --max-steps or --time-budget, else finished."""
        try:
            record = json.loads((self.path / STATUS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            record = None
        if not isinstance(record, dict) or record.get("status") not in STATUSES:
            record = self._status_from_metrics()
        locked = directory_locked(self.path)
        status = record["status"]
        if locked:
            status = "running"
        elif status == "running" and locked is False:
            status = "failed"
            record["message"] = "training ended without recording how (the process was killed or crashed)"
        return {"status": status, **_progress(record, status == "running"),
                "message": record.get("message") if status != "running" else None,
                "step": int(_number(record.get("step")) or 0), "elapsed_s": _number(record.get("elapsed_s")),
                "updated": _number(record.get("updated"))}

    def _status_from_metrics(self) -> dict:
        try:
            train = self.read_config().get("train") or {}
        except CharseqError:
            train = {}
        last = (self.metrics() or [{}])[-1]
        end_step, budget = train.get("max_steps"), train.get("time_budget")
        record = {"step": last.get("step", 0), "elapsed_s": last.get("elapsed_s"), "end_step": end_step,
                  "time_budget_s": budget * 60 if isinstance(budget, (int, float)) else None}
        done = _progress(record, False)["progress"]
        record["status"] = "stopped" if done is not None and done < 1 else "finished"
        return record

    # -- weights and checkpoints ------------------------------------------------------------
    def _save_npz(self, name: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
        meta = {**meta, "format": FORMAT, "charseq_version": __version__, "sha256": _digest(arrays)}
        buffer = io.BytesIO()
        np.savez(buffer, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
        write_bytes_atomic(self.path / name, buffer.getvalue())

    def _load_npz(self, name: str) -> tuple[dict[str, np.ndarray], dict]:
        path = self.path / name
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
            meta = json.loads(arrays.pop("__meta__").tobytes().decode())
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
            raise CharseqError(f"{path} is corrupt ({type(e).__name__}); "
                               "it cannot be loaded") from None
        if not isinstance(meta, dict):
            raise CharseqError(f"{path} is corrupt (no metadata)")
        if meta.get("format", FORMAT) != FORMAT:
            raise CharseqError(f"{path} was written by charseq {meta.get('charseq_version', '?')} in a format "
                               f"this charseq {__version__} cannot read")
        if meta.get("sha256") != _digest(arrays):
            raise CharseqError(f"{path} is corrupt (checksum mismatch)")
        return arrays, meta

    def remove_stale_temporaries(self) -> list[str]:
        """Delete the temporary files a killed writer left (`.NAME.XXXX.tmp`); returns their names.

        Only a process about to write this run may call it (training on --resume): a reader
        must not, since a temporary file may belong to a writer that is still running."""
        removed = []
        for folder, own in ((self.path, TOP_FILES), (self.path / HISTORY_DIR, KEPT_CHECKPOINT)):
            if not folder.is_dir() or folder.is_symlink():
                continue
            for entry in sorted(folder.iterdir()):
                if being_written(entry.name, own) and entry.is_file() and not entry.is_symlink():
                    entry.unlink(missing_ok=True)
                    removed.append(str(entry.relative_to(self.path)))
        return removed

    def has_checkpoint(self) -> bool:
        return (self.path / CHECKPOINT_FILE).exists()

    def save_checkpoint(self, model, optimizer, progress: dict, extra: dict | None = None, keep: int = 1) -> None:
        """Latest weights, optimizer state, progress and any task state (e.g. carried RNN state).

        With `keep` > 1 the last `keep` checkpoints also stay in checkpoints/ (hard links to the
        same bytes where the filesystem allows, so the latest costs no extra space).
        """
        arrays = {**_variable_arrays("w", model.weights), **_variable_arrays("o", optimizer.variables),
                  **_variable_arrays("r", _random_states(model))}
        for k, v in (extra or {}).items():
            arrays[f"x_{k}"] = np.asarray(v)
        meta = {"progress": progress, "weights": [_name(v) for v in model.weights],
                "optimizer": [_name(v) for v in optimizer.variables]}
        self._save_npz(CHECKPOINT_FILE, arrays, meta)
        if keep > 1:
            self._keep_history(int(progress["step"]), keep)
        self.publish()  # a new run takes its place once it has a checkpoint to resume from

    def _keep_history(self, step: int, keep: int) -> None:
        history = self.path / HISTORY_DIR
        history.mkdir(exist_ok=True)
        kept = history / f"step-{step:08d}.npz"
        tmp = history / f".{kept.name}.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(self.path / CHECKPOINT_FILE, tmp)
        except OSError:  # no hard links here (some network and FAT filesystems): a copy
            shutil.copyfile(self.path / CHECKPOINT_FILE, tmp)
        os.replace(tmp, kept)
        for old in self.kept_checkpoints()[keep:]:
            old.unlink(missing_ok=True)

    def kept_checkpoints(self) -> list[Path]:
        """The checkpoints kept by --keep, newest first."""
        history = self.path / HISTORY_DIR
        if not history.is_dir() or history.is_symlink():
            return []
        return sorted((p for p in history.iterdir() if KEPT_CHECKPOINT.fullmatch(p.name) and p.is_file()
                       and not p.is_symlink()), reverse=True)

    def load_checkpoint(self, model, optimizer, log=None) -> tuple[dict, dict]:
        """Restore the latest checkpoint into `model` and `optimizer`: (progress, task state).

        If the latest is damaged (a disk error, a copy cut short) and --keep left older ones,
        the newest intact one is used, and `log` says which.
        """
        candidates = [CHECKPOINT_FILE, *(f"{HISTORY_DIR}/{p.name}" for p in self.kept_checkpoints())]
        problems = []
        for name in candidates:
            path = self.path / name
            try:
                arrays, meta = self._load_npz(name)
                break
            except FileNotFoundError:
                continue
            except CharseqError as e:
                problems.append(str(e))
        else:
            if problems:
                # Training cannot go on from a damaged checkpoint; what the run learnt may still be used.
                best = f"; its best weights ({BEST_FILE}) still serve generate, evaluate and export" \
                    if (self.path / BEST_FILE).is_file() else ""
                raise CharseqError(problems[0] + ("; no older checkpoint is intact" if len(problems) > 1 else "")
                                   + best, "--force to train the run again from the start")
            raise CharseqError(f"{self.path} has no checkpoint to resume from")
        if problems and log is not None:
            log(f"warning: {problems[0]}; resuming from {path} instead")
        _assign(model.weights, arrays, "w", meta["weights"], path)
        # Optimizer slot names embed the model's per-process name; their order and shapes are what matter.
        _assign(optimizer.variables, arrays, "o", meta["optimizer"], path, check_names=False)
        states = _random_states(model)
        if "r0000" in arrays or not states:
            _assign(states, arrays, "r", [_name(v) for v in states], path, check_names=False)
        extra = {k[2:]: v for k, v in arrays.items() if k.startswith("x_")}
        return meta["progress"], extra

    def save_best(self, model, metrics: dict) -> None:
        self._save_npz(BEST_FILE, _variable_arrays("w", model.weights),
                       {"metrics": metrics, "weights": [_name(v) for v in model.weights]})

    def weights_step(self) -> int | None:
        """The training step of the weights `load_weights` loads: best.npz's evaluation, else the latest
        checkpoint's; None where the run has neither, or its file does not say."""
        for name, section in ((BEST_FILE, "metrics"), (CHECKPOINT_FILE, "progress")):
            try:
                with np.load(self.path / name, allow_pickle=False) as f:  # the metadata only, not the weights
                    meta = json.loads(f["__meta__"].tobytes().decode())
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
                return None
            step = (meta.get(section) or {}).get("step") if isinstance(meta, dict) else None
            return step if isinstance(step, int) else None
        return None

    def load_weights(self, model, log=None) -> dict:
        """Load the best weights, or, if none were written (a run stopped, or a disk filled, before its
        first evaluation was saved), the latest checkpoint's, saying so through `log` (default: a
        warning line on stderr): a model is never used as if trained without a word."""
        for name in (BEST_FILE, CHECKPOINT_FILE):
            try:
                arrays, meta = self._load_npz(name)
            except FileNotFoundError:
                continue
            _assign(model.weights, arrays, "w", meta["weights"], self.path / name)
            if name == CHECKPOINT_FILE:
                step = (meta.get("progress") or {}).get("step", "?")
                warn = log or (lambda line: print(line, file=sys.stderr))
                warn(f"warning: {self.path} has no {BEST_FILE} (no evaluation of it was saved); using the "
                     f"weights of its latest checkpoint (step {step}) instead")
            return meta
        raise CharseqError(f"{self.path} has no trained weights yet ({BEST_FILE} or {CHECKPOINT_FILE})")


def head_of(run) -> Head:
    """The head of the run directory `run` (its config.json says which)."""
    return head(RunDir.open(run).read_config()["task"])
