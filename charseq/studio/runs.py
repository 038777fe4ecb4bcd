"""The runs a studio serves: a table of the runs under the served folders, rescanned every few
seconds (a run trained after start-up appears, a deleted one goes), and bounded caches of
loaded models and of each run's validation data.

A request names a run by its table key (its path relative to the served directory it was
found under); nothing in a request is ever joined onto a file path, so "../../x" is simply
a name that is not in the table. What the browser is shown of a run holds no absolute path
(unless the server was asked to show them): paths are relative to the served folder, or just
a file's name.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from charseq.errors import CharseqError
from charseq.grid import GRID_FILE
from charseq.heads import head
from charseq.options import import_tensorflow
from charseq.runs import BEST_FILE, CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, TEST_FILE, RunDir, kept_evaluation

SKIP_DIRS = {"data", "logs", "checkpoints", "target"}  # parts of a run, never runs themselves
MAX_DEPTH = 4
RESCAN_S = 2.0  # a table older than this is rescanned when asked for
# An absolute path in a message (to show only its last part): /a/b/c or C:\a\b
ABSOLUTE_PATH = re.compile(r"(?<![\w.~])(?:/|[A-Za-z]:\\)(?:[^\s/\\'\"]+[/\\])+([^\s/\\'\":;,)]+)")


@dataclass(frozen=True)
class ServedRun:
    name: str
    path: Path
    base: Path | None = None  # the served folder it was found under (resolved)


def check_folders(directories) -> None:
    """Refuse a served path that exists but is not a folder. A folder that does not exist yet
    is served too: its runs appear once they are trained."""
    for base in map(Path, directories):
        if base.exists() and not base.is_dir():
            raise CharseqError(f"{base} is not a directory")


def find_runs(directories) -> dict[str, ServedRun]:
    """Every run directory at or under `directories` (grid directories included), by name;
    folders that do not exist (yet) have none.

    A name is the run's path relative to the directory given (a directory that is itself a run
    is named after itself); where two given directories yield the same name, the later one's
    runs are prefixed with that directory's name. A run found twice (folders given twice, or a run
    given beside the folder it is in) is served once, under the name it was first found by."""
    table: dict[str, ServedRun] = {}
    seen: set[Path] = set()
    for base in map(Path, directories):
        if not base.is_dir():
            continue
        found = []
        if (base / CONFIG_FILE).is_file():
            found.append((base.resolve().name, base))
        else:
            for root, dirs, files in os.walk(base):
                depth = len(Path(root).relative_to(base).parts)
                if CONFIG_FILE in files and root != str(base):
                    found.append((Path(root).relative_to(base).as_posix(), Path(root)))
                    dirs[:] = []  # a run's subdirectories are its own files
                    continue
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS
                                 and depth < MAX_DEPTH)
        for name, path in found:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            if name in table:
                name = f"{base.resolve().name}/{name}"
            table[name] = ServedRun(name, path.resolve(), base.resolve())
    return dict(sorted(table.items()))


class RunTable:
    """The served runs, rescanned when asked for once the last scan is RESCAN_S old. Each run
    that went (deleted, or moved away) is passed to `gone`, so its loaded model is dropped."""

    def __init__(self, directories, gone=lambda name: None, rescan_s: float = RESCAN_S):
        check_folders(directories)
        self.directories = [Path(d) for d in directories]
        self.gone, self.rescan_s = gone, rescan_s
        self._lock = threading.Lock()
        self._runs: dict[str, ServedRun] = {}
        self._scanned = None
        self.current()

    def current(self) -> dict[str, ServedRun]:
        with self._lock:
            if self._scanned is None or time.monotonic() - self._scanned >= self.rescan_s:
                runs = find_runs(self.directories)
                for name, run in self._runs.items():
                    if runs.get(name) != run:
                        self.gone(name)
                self._runs, self._scanned = runs, time.monotonic()
            return self._runs


def shown_path(value: str, base: Path | None, show_paths: bool = False) -> str:
    """An absolute path as the browser sees it: relative to the served folder `base` if inside
    it, else the file's name alone; unchanged with `show_paths` or when not absolute."""
    if show_paths or not os.path.isabs(value):
        return value
    path = Path(value)
    if base is not None:
        try:
            return path.resolve().relative_to(base).as_posix()
        except (ValueError, OSError):
            pass
    return path.name


# config.json keys holding a path as it was typed (a language model's corpus, an image set, --init-from): a
# relative one is relative to wherever training ran, which is not known here, so it shows by its file name.
AS_TYPED = ("source", "init_from")


def without_paths(value, base: Path | None, show_paths: bool = False, key: str | None = None):
    """`value` (a config: dicts, lists, strings) with every absolute path shown as shown_path does, and
    every path as typed (under a key in AS_TYPED) by its file name."""
    if isinstance(value, str):
        if key in AS_TYPED and not show_paths and not os.path.isabs(value):
            if ABSOLUTE_PATH.search(value):  # a description naming a path: "MNIST (~/.cache/charseq/...)"
                return message_without_paths(value, [base])
            return Path(value).name or value
        return shown_path(value, base, show_paths)
    if isinstance(value, dict):  # a key may be a path too (config.json's data_files)
        return {shown_path(k, base, show_paths) if os.path.isabs(k) else k: without_paths(v, base, show_paths, k)
                for k, v in value.items()}
    if isinstance(value, list):
        return [without_paths(v, base, show_paths) for v in value]
    return value


def message_without_paths(message: str, bases, show_paths: bool = False) -> str:
    """A message for the browser: paths inside a served folder relative to it, others by name."""
    if show_paths:
        return message
    for base in sorted({str(b) for b in bases if b is not None}, key=len, reverse=True):
        message = message.replace(base + os.sep, "").replace(base, Path(base).name)
    return ABSOLUTE_PATH.sub(lambda m: m[1], message)


def read_metrics(run: ServedRun) -> list[dict]:
    """The evaluations in metrics.jsonl (a half-written last line, as while training, is skipped)."""
    records = []
    try:
        with open(run.path / METRICS_FILE, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    records.append({k: v for k, v in record.items()
                                    if not (isinstance(v, float) and not math.isfinite(v))})
    except FileNotFoundError:
        pass
    return records


def read_test(path: Path) -> dict | None:
    """A run's recorded test score (test.json), or None."""
    try:
        record = json.loads((path / TEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("split") == "test" else None


def describe(run: ServedRun, show_paths: bool = False) -> dict:
    """What the runs page shows of a run: task, shape, data, best score, status and progress.

    "status" is running, finished, stopped or failed (charseq.runs.RunDir.status), "grid" whether it
    is one of a grid's runs (its folder holds grid.json), "progress"
    0..1 or None (no known end), "eta_seconds" None unless running with a known end, and
    "status_message" why it stopped, failed or finished early (or None)."""
    run_dir = RunDir(run.path)
    in_grid = (run.path.parent / GRID_FILE).is_file()  # one of a charseq grid's runs
    try:
        config = run_dir.read_config()
        run_head = head(config["task"])
    except CharseqError as e:  # one damaged run (or one of a head this version does not have) does not hide the others
        status = run_dir.status()
        why = message_without_paths(str(e), [run.base], show_paths)
        # Not "finished": with no config there is nothing to tell how it ended, and nothing to load.
        shown = status["status"] if status["status"] == "running" else "unreadable"
        return {"name": run.name, "task": "unreadable", "kind": "unreadable", "shape": "", "layers": 0,
                "error": why, "best": None, "steps": status["step"], "evaluations": 0,
                "updated_s_ago": seconds_since(last_written(run.path, status)), "grid": in_grid,
                "status": shown, "progress": status["progress"] if shown == "running" else None,
                "eta_seconds": status["eta_seconds"], "status_message": None if shown == "running" else why}
    task = config["task"]
    model = config.get("model") or {}
    metric, mode = run_head.monitor
    records = read_metrics(run)
    best = kept_evaluation(records, metric, mode)
    kind = run_head.kind_of(config)
    data = config.get("data") or {}
    # The data's absolute path where the run recorded one, which shows relative to the served folder if inside it
    source = data.get("path") or data.get("train") or config.get("corpus_file") or \
        (config.get("corpus") or {}).get("source") or data.get("source")  # the last: MNIST from the cache
    status = run_dir.status()
    test = read_test(run.path)
    return {
        "name": run.name, "task": task, "kind": kind,
        "shape": f"{model.get('layers', '?')}x{model.get('units', '?')} {model.get('cell', '?')}",
        "layers": model.get("layers", 1),
        "data": without_paths(source, run.base, show_paths, "source"),
        "labels": config.get("labels"),
        "config": without_paths(config, run.base, show_paths),
        "status": status["status"], "progress": status["progress"], "eta_seconds": status["eta_seconds"],
        "status_message": message_without_paths(status["message"], [run.base], show_paths)
        if status["message"] else None,
        "best": None if best is None else {"metric": metric, "value": best[metric], "step": best.get("step"),
                                           "mode": mode},  # "min": lower is better, "max": higher
        # The one score on the test split (an image classifier's test.json), never a validation figure.
        "test": None if test is None else {"metric": "test_accuracy", "value": test.get("test_accuracy"),
                                           "step": test.get("step"), "examples": test.get("test_examples")},
        "grid": in_grid,
        # Steps trained: a run killed before its first evaluation, or between two, trained past its last one.
        "steps": max(records[-1].get("step", 0) if records else 0, status["step"]),
        "evaluations": len(records),
        "updated_s_ago": seconds_since(last_written(run.path, status)),
    }


def last_written(path: Path, status: dict) -> float | None:
    """When training last wrote to the run, as a Unix time: its last evaluation (metrics.jsonl) or
    its last status record, whichever is later; None if it has written neither."""
    try:
        modified = (path / METRICS_FILE).stat().st_mtime
    except OSError:
        modified = None
    times = [t for t in (modified, status.get("updated")) if t is not None]
    return max(times) if times else None


def seconds_since(moment: float | None) -> float | None:
    return None if moment is None else round(max(0.0, time.time() - moment), 1)


class RunCache:
    """Something read from each run (its model, its validation data) by run name, at most
    `capacity` runs' worth (least recently used goes first).

    `version(run)` says what the value was read from; the value is read again (`read(run, version)`)
    when that changes, as when a run is replaced with --force or resumed. Each run is read once
    even when several requests ask for it at the same moment; a value evicted while a request
    still uses it stays alive until that request ends."""

    def __init__(self, capacity: int, read, version):
        self.capacity, self.read, self.version = capacity, read, version
        self._values: OrderedDict[str, tuple] = OrderedDict()
        self._lock = threading.Lock()
        self._reading: dict[str, threading.Lock] = {}
        self.loads = 0  # how many times a value was read from disk (the tests check it is once per run)

    def get(self, run: ServedRun):
        version = self.version(run)
        with self._lock:
            if run.name in self._values and self._values[run.name][0] == version:
                self._values.move_to_end(run.name)
                return self._values[run.name][1]
            lock = self._reading.setdefault(run.name, threading.Lock())
        with lock:
            with self._lock:
                if run.name in self._values and self._values[run.name][0] == version:
                    return self._values[run.name][1]
            value = self.read(run, version)
            with self._lock:
                self.loads += 1
                self._values[run.name] = (version, value)
                self._values.move_to_end(run.name)
                while len(self._values) > self.capacity:
                    self._values.popitem(last=False)
                self._reading.pop(run.name, None)
            return value

    def drop(self, name: str) -> None:
        """Forget the run `name` (it was deleted): a request still using its value keeps it."""
        with self._lock:
            self._values.pop(name, None)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._values)


class ModelCache(RunCache):
    """Loaded models by run name, at most `capacity` of them, each loaded again if its weights
    changed on disk since (a run still training, or one replaced with --force)."""

    def __init__(self, capacity: int = 4):
        if capacity < 1:
            raise CharseqError(f"--max-models must be at least 1, not {capacity}")
        super().__init__(capacity, lambda run, version: load(run), weights_version)


class ValidationCache(RunCache):
    """Each run's validation data as its head's view reads it (``validation``), for its examples
    and a classifier's confusion matrix: read once, not per request (an MNIST run's is 55 MB of
    images to split again), and again when the run or the files it came from change."""

    def __init__(self, capacity: int = 4):
        super().__init__(capacity, read_validation, validation_version)


def stamp(path: Path):
    """What changes when a file is written or replaced: its inode, time and size (a folder's: those
    of the files in it), or None if it is missing."""
    try:
        if path.is_dir():
            return tuple((p.name, stamp(p)) for p in sorted(path.iterdir()) if p.is_file())
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def inode(path: Path) -> int | None:
    """A directory's identity: a run replaced with --force is a new directory under the same name."""
    try:
        return path.stat().st_ino
    except OSError:
        return None


def weights_version(run: ServedRun) -> tuple:
    """What changes when a run's weights do: the directory (replaced by --force) and its weight files."""
    return inode(run.path), stamp(run.path / BEST_FILE), stamp(run.path / CHECKPOINT_FILE)


@dataclass
class Loaded:
    """A run ready to answer: its task, config and the library objects its head's studio view
    uses (what the head's `load_for_studio` returns besides the config)."""

    task: str
    config: dict
    parts: dict


# The studio starts without TensorFlow (its URL shows at once, and a page that only compares runs never
# needs it): the first model or validation data read imports it, quietly, since its native start-up
# lines would reach the terminal. While it imports (a few seconds, once), the server's stderr is
# silenced too.
def load(run: ServedRun) -> Loaded:
    import_tensorflow()
    task = RunDir(run.path).read_config()["task"]
    parts = dict(head(task).load_for_studio(run.path))
    return Loaded(task, parts.pop("config"), parts)


@dataclass(frozen=True)
class Validation:
    """A run's validation data (None if its head's view reads none), its config, and the version
    it was read at (what a result computed from it can be cached by)."""

    version: tuple
    config: dict
    data: object


def validation_version(run: ServedRun) -> tuple:
    """What a run's validation data is read from: the run's directory (replaced by --force), its
    config.json (written again on --resume) and the data files its head's view names."""
    from charseq.studio.views import view_of

    config = RunDir(run.path).read_config()
    view = view_of(config["task"])
    files = view.module.data_files(run, config) if view and hasattr(view.module, "data_files") else ()
    return str(run.path), inode(run.path), stamp(run.path / CONFIG_FILE), tuple(stamp(Path(f)) for f in files)


def read_validation(run: ServedRun, version: tuple) -> Validation:
    from charseq.studio.views import view_of

    import_tensorflow()
    config = RunDir(run.path).read_config()
    view = view_of(config["task"])
    reads = view is not None and hasattr(view.module, "validation")
    return Validation(version, config, view.module.validation(run, config) if reads else None)
