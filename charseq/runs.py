"""The run directory: everything needed to resume, sample from or evaluate a trained model.

    RUN/config.json      every setting (task, model, training), enough to rebuild the model
    RUN/vocab.json       the vocabulary (plus spm.model for SentencePiece)
    RUN/data/            the corpus encoded once (ids.bin, memory-mapped) and its split
    RUN/checkpoint.npz   latest weights, optimizer state and progress (for --resume)
    RUN/checkpoints/     with --keep N > 1: the last N checkpoints, step-NNNNNNNN.npz
    RUN/best.npz         weights with the best validation score so far
    RUN/metrics.jsonl    one JSON object per evaluation
    RUN/logs/            TensorBoard event files

Weights are stored as plain arrays in `.npz` files (read with allow_pickle=False, so loading
a run never executes code from it) with a SHA-256 checksum and the charseq version, and are
written atomically: a crash leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from charseq import __version__
from charseq.errors import CharseqError
from charseq.files import write_bytes_atomic, write_json_atomic

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.npz"
HISTORY_DIR = "checkpoints"
BEST_FILE = "best.npz"
METRICS_FILE = "metrics.jsonl"
# The layout of the .npz files. A file of another format is refused with a message naming the
# charseq version that wrote it, instead of loading arrays into the wrong variables.
FORMAT = 1


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


class RunDir:
    """A run directory on disk. Create one with :meth:`create`, open an existing one with :meth:`open`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- creating and opening ---------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, force: bool = False) -> "RunDir":
        """A new, empty run directory. An existing one is replaced only with `force`,
        and only if it is a charseq run (so a mistyped --out never deletes other files)."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise CharseqError(f"--out {path} is a file, not a directory")
        if path.is_dir() and any(path.iterdir()):
            if not force:
                raise CharseqError(f"run directory {path} already exists; use --resume to continue it "
                                   "or --force to replace it")
            if not (path / CONFIG_FILE).exists():
                raise CharseqError(f"{path} is not empty and is not a charseq run; refusing to replace it")
            shutil.rmtree(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CharseqError(f"cannot create run directory {path}: {e.strerror}") from None
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        path = Path(path)
        if not path.is_dir():
            raise CharseqError(f"model directory {path} does not exist")
        if not (path / CONFIG_FILE).exists():
            raise CharseqError(f"{path} is not a charseq run directory (no {CONFIG_FILE})")
        return cls(path)

    # -- configuration ----------------------------------------------------------------------
    def write_config(self, config: dict) -> None:
        write_json_atomic(self.path / CONFIG_FILE, {**config, "charseq_version": __version__})

    def read_config(self) -> dict:
        path = self.path / CONFIG_FILE
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise CharseqError(f"cannot read {path}: {e}") from None
        if not isinstance(config, dict) or not isinstance(config.get("task"), str):
            raise CharseqError(f"{path} is not a charseq configuration")
        return config

    def require_task(self, task: str) -> dict:
        config = self.read_config()
        if config["task"] != task:
            raise CharseqError(f"{self.path} holds a {config['task']} model, not a {task} model")
        return config

    # -- metrics ----------------------------------------------------------------------------
    def append_metrics(self, record: dict) -> None:
        with open(self.path / METRICS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

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
        return sorted(history.glob("step-*.npz"), reverse=True) if history.is_dir() else []

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
                raise CharseqError(problems[0] + ("; no older checkpoint is intact" if len(problems) > 1 else ""))
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

    def load_weights(self, model) -> dict:
        """Load the best weights (or, if none were kept yet, the latest checkpoint's)."""
        for name in (BEST_FILE, CHECKPOINT_FILE):
            try:
                arrays, meta = self._load_npz(name)
            except FileNotFoundError:
                continue
            _assign(model.weights, arrays, "w", meta["weights"], self.path / name)
            return meta
        raise CharseqError(f"{self.path} has no trained weights yet ({BEST_FILE} or {CHECKPOINT_FILE})")
