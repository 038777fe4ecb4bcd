"""The runs a studio serves: a table built once at start-up, and a bounded cache of loaded models.

A request names a run by its table key (its path relative to the served directory it was
found under); nothing in a request is ever joined onto a file path, so "../../x" is simply
a name that is not in the table.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from charseq.errors import CharseqError
from charseq.heads import head
from charseq.runs import CONFIG_FILE, METRICS_FILE, TEST_FILE, RunDir

SKIP_DIRS = {"data", "logs", "checkpoints", "target"}  # parts of a run, never runs themselves
MAX_DEPTH = 4


@dataclass(frozen=True)
class ServedRun:
    name: str
    path: Path


def find_runs(directories) -> dict[str, ServedRun]:
    """Every run directory at or under `directories` (grid directories included), by name.

    A name is the run's path relative to the directory given (a directory that is itself a run
    is named after itself); where two given directories yield the same name, the later one's
    runs are prefixed with that directory's name."""
    table: dict[str, ServedRun] = {}
    for base in map(Path, directories):
        if not base.is_dir():
            raise CharseqError(f"{base} is not a directory")
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
            if name in table:
                name = f"{base.resolve().name}/{name}"
            table[name] = ServedRun(name, path.resolve())
    if not table:
        raise CharseqError(f"no charseq runs (directories with {CONFIG_FILE}) under {', '.join(map(str, directories))}")
    return dict(sorted(table.items()))


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


def describe(run: ServedRun) -> dict:
    """What the runs page shows of a run: task, shape, data, best score, progress."""
    try:
        config = RunDir(run.path).read_config()
        run_head = head(config["task"])
    except CharseqError as e:  # one damaged run (or one of a head this version does not have) does not hide the others
        return {"name": run.name, "task": "unreadable", "kind": "unreadable", "shape": "", "layers": 0,
                "error": str(e), "best": None, "steps": 0, "evaluations": 0, "updated_s_ago": None}
    task = config["task"]
    model = config.get("model") or {}
    metric, mode = run_head.monitor
    records = read_metrics(run)
    scored = [r for r in records if isinstance(r.get(metric), (int, float))]
    best = (min if mode == "min" else max)(scored, key=lambda r: r[metric]) if scored else None
    try:
        modified = (run.path / METRICS_FILE).stat().st_mtime
    except OSError:
        modified = None
    kind = run_head.kind_of(config)
    data = config.get("data") or {}
    test = read_test(run.path)
    return {
        "name": run.name, "task": task, "kind": kind,
        "shape": f"{model.get('layers', '?')}x{model.get('units', '?')} {model.get('cell', '?')}",
        "layers": model.get("layers", 1),
        "data": data.get("path") or data.get("train") or (config.get("corpus") or {}).get("source"),
        "labels": config.get("labels"),
        "config": config,
        "best": None if best is None else {"metric": metric, "value": best[metric], "step": best.get("step")},
        # The one score on the test split (an image classifier's test.json), never a validation figure.
        "test": None if test is None else {"metric": "test_accuracy", "value": test.get("test_accuracy"),
                                           "step": test.get("step"), "examples": test.get("test_examples")},
        "steps": records[-1].get("step", 0) if records else 0,
        "evaluations": len(records),
        "updated_s_ago": None if modified is None else round(time.time() - modified, 1),
    }


class ModelCache:
    """Loaded models by run name, at most `capacity` of them (least recently used goes first).

    Each run loads once even when several requests ask for it at the same moment; a model that
    is evicted while a request still uses it stays alive until that request ends."""

    def __init__(self, capacity: int = 4):
        if capacity < 1:
            raise CharseqError(f"--max-models must be at least 1, not {capacity}")
        self.capacity = capacity
        self._models: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self.loads = 0  # how many times a model was read from disk (the tests check it is once per run)

    def get(self, run: ServedRun):
        with self._lock:
            if run.name in self._models:
                self._models.move_to_end(run.name)
                return self._models[run.name]
            lock = self._loading.setdefault(run.name, threading.Lock())
        with lock:
            with self._lock:
                if run.name in self._models:
                    return self._models[run.name]
            loaded = load(run)
            with self._lock:
                self.loads += 1
                self._models[run.name] = loaded
                while len(self._models) > self.capacity:
                    self._models.popitem(last=False)
                self._loading.pop(run.name, None)
            return loaded


@dataclass
class Loaded:
    """A run ready to answer: its task, config and the library objects that serve it."""

    task: str
    config: dict
    probe: object = None  # language model: charseq.heads.lm.inspect.LMProbe
    beam: object = None  # language model: charseq.heads.lm.beam.BeamSearch
    classifier: tuple = None  # (model, vocab or None, config)
    translator: object = None  # charseq.heads.seq2seq.run.Translator
    # (each head's inspect.load_for_studio says which of these its run has)


def load(run: ServedRun) -> Loaded:
    task = RunDir(run.path).read_config()["task"]
    return Loaded(task, **head(task).load_for_studio(run.path))
