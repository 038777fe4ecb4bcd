"""Hyperparameter search: one run for every combination of a few settings (`charseq grid`).

    charseq grid train-lm corpus.txt --lr 1e-3,3e-3 --batch-size 32,64 --out runs/grid --max-steps 500

    GRID/grid.json                     the train command and its fixed options (a rerun must match)
    GRID/lr=0.001,batch_size=32/       one run directory per combination, as the train command writes it
    GRID/.../grid_result.json          written when that run ends; its presence marks the run done
    GRID/results.json, results.tsv     the table, best run first, rewritten after every run

Runs go one after another in this process. A rerun with the same GRID (after Ctrl-C, a crash,
or with more values on an axis) skips the runs that are done, resumes those that have a
checkpoint and starts the rest, so no finished training is ever repeated.

`--force` replaces a grid as a run's --force replaces a run: the old grid moves aside to a hidden
sibling (`.GRID.old-XXXX`) and is deleted only once the new grid's first run has written its
first checkpoint. A new grid that fails before (a setting its first run rejects, Ctrl-C) puts the
old one back. The process holds a lock on the grid it moved aside, so if it is killed, the next
grid for the same GRID finishes its job: it puts the old grid back if the new one never had a
checkpoint, else deletes it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from charseq.errors import CharseqError, Interrupted, WriteError
from charseq.files import lock_directory, unheld_siblings, unlock_directory, write_bytes_atomic, write_json_atomic
from charseq.heads import head, train_commands
from charseq.runs import CONFIG_FILE, RunDir, foreign_entry, not_a_run

GRID_FILE = "grid.json"
RESULT_FILE = "grid_result.json"

# (combination, run directory, resume, replace) -> None; trains one run to its end.
RunOne = Callable[[dict, Path, bool, bool], None]


def split_axes(args: list[str], options: dict[str, tuple[str, bool, bool]]) -> tuple[list[str], dict]:
    """Separate a train command's arguments into fixed ones and grid axes.

    `options` maps each option string (e.g. "--lr") to (setting name, takes a value, may be an
    axis). An axis is an option that may be one and whose value has commas: "--lr 1e-3,3e-3".
    Returns (fixed arguments, {setting name: (option string, [values as given])})."""
    fixed, axes, i = [], {}, 0
    while i < len(args):
        token = args[i]
        opt, value, inline = token, None, False
        if token.startswith("--") and "=" in token:
            opt, value = token.split("=", 1)
            inline = True
        if opt in ("--resume", "--out", "-o", "--force"):
            raise CharseqError(f"{opt} belongs to the grid, which gives each run its own directory and resumes "
                               "unfinished runs itself")
        known = options.get(opt)
        if known is None or not known[1]:
            fixed.append(token)  # a positional argument or a flag (an unknown option is reported later)
            i += 1
            continue
        if not inline:
            if i + 1 >= len(args):
                raise CharseqError(f"{opt} needs a value")
            value = args[i + 1]
        i += 1 if inline else 2
        name, _, can_vary = known
        if can_vary and "," in value:
            if name in axes:
                raise CharseqError(f"{opt} is given twice")
            values = [v.strip() for v in value.split(",")]
            if any(not v for v in values) or len(set(values)) != len(values):
                raise CharseqError(f"{opt} {value}: give distinct, comma-separated values")
            axes[name] = (opt, values)
        else:
            fixed += [opt, value]
    return fixed, axes


def combinations(axes: dict[str, list]) -> list[dict]:
    """The cartesian product of the axes, in the order given (the last axis varies fastest).

    >>> combinations({"lr": [0.001, 0.003], "units": [128]})
    [{'lr': 0.001, 'units': 128}, {'lr': 0.003, 'units': 128}]
    """
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def run_name(combination: dict) -> str:
    """The run directory's name.

    >>> run_name({"lr": 0.001, "batch_size": 32, "data": "a/b"})
    'lr=0.001,batch_size=32,data=a_b'
    """
    return ",".join(f"{k}={v}" for k, v in combination.items()).replace("/", "_")


def _normal(obj):
    return json.loads(json.dumps(obj, default=str))


def _not_the_grids(out: Path) -> str | None:
    """The first entry of the grid directory `out` that the grid did not write (None: all are its own)."""
    for entry in sorted(out.iterdir()):
        name = entry.name
        if name in (GRID_FILE, "results.json", "results.tsv") and entry.is_file() and not entry.is_symlink():
            continue
        if name.startswith(".") and (name.endswith(".tmp") or ".new-" in name or ".old-" in name):
            continue  # charseq's own temporary files and run directories being built
        if entry.is_dir() and not entry.is_symlink() and (not any(entry.iterdir()) or not_a_run(entry) is None):
            continue
        inside = foreign_entry(entry) if entry.is_dir() and not entry.is_symlink() else None
        return f"{name}/{inside}" if inside else name
    return None


class _MovedAside:
    """An old grid that --force moved to a hidden sibling, locked by this process until it is put
    back or deleted (see _settle; if this process dies, _recover_moved_aside does it)."""

    def __init__(self, out: Path):
        self.lock = lock_directory(out)  # taken before the move: the lock follows the directory
        try:
            self.path = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            os.replace(out, self.path)  # a directory replaces the empty one mkdtemp made, in one rename
        except BaseException:
            unlock_directory(self.lock)
            raise


def _put_back(old: Path, out: Path) -> None:
    """The old grid moved aside to `old` back at `out`, in place of whatever the replacement left there."""
    shutil.rmtree(out, ignore_errors=True)
    os.replace(old, out)


def _has_published_run(out: Path) -> bool:
    return out.is_dir() and any(not d.name.startswith(".") and (d / CONFIG_FILE).is_file()
                                for d in out.iterdir() if d.is_dir())


def _recover_moved_aside(out: Path, log: Callable[[str], None]) -> None:
    """Finish what a killed `grid --force` left: an old grid it moved aside (`.GRID.old-XXXX`, a
    grid.json inside, its lock free) goes back to `out` if the replacement there never had a
    checkpoint, or is deleted if it had one. Anything else at `out` leaves it where it is."""
    for entry in unheld_siblings(out, "old"):
        if not (entry / GRID_FILE).is_file():
            continue  # a run's, or the empty placeholder a live grid --force is about to fill
        if _has_published_run(out):
            shutil.rmtree(entry, ignore_errors=True)
        elif not out.exists() or ((out / GRID_FILE).is_file() and _not_the_grids(out) is None):
            _put_back(entry, out)
            log(f"put back the grid that a killed `grid --force` had moved aside to {entry.name}")


def _open_grid(out: Path, spec: dict, force: bool) -> _MovedAside | None:
    """Create the grid directory, or reopen it if it holds the same grid; never touch other files.
    With `force`, an old grid moves aside rather than being deleted: returns it (see _settle), or
    None if there was none."""
    aside = None
    if out.exists() and not out.is_dir():
        raise CharseqError(f"--out {out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not (out / GRID_FILE).exists():
            raise CharseqError(f"--out {out} is not empty and is not a charseq grid; refusing to use it")
        if force:
            foreign = _not_the_grids(out)
            if foreign:
                raise CharseqError(f"--out {out} holds {foreign}, which is not part of a charseq grid; "
                                   "refusing to replace it")
            aside = _MovedAside(out)
        else:
            try:
                old = json.loads((out / GRID_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise CharseqError(f"cannot read {out / GRID_FILE}: {e}") from None
            if {k: old.get(k) for k in ("command", "fixed")} != {k: spec[k] for k in ("command", "fixed")}:
                raise CharseqError(f"{out} holds a grid of {old.get('command')} with other fixed options "
                                   f"({' '.join(map(str, old.get('fixed') or [])) or 'none'}); give another --out, "
                                   "or --force to replace it")
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / GRID_FILE, spec)
    except BaseException:
        _settle(out, aside, keep_new=False)
        raise
    return aside


@contextlib.contextmanager
def _writing():
    """A grid file that cannot be written (disk full): say that the runs are intact and the grid goes on."""
    try:
        yield
    except WriteError as e:
        raise CharseqError(f"{e.message}; every run trained so far is intact; free space and run the same "
                           "grid command again to continue") from None


def _settle(out: Path, aside: _MovedAside | None, keep_new: bool) -> None:
    """End a --force replacement: delete the old grid kept `aside`, or (`keep_new` False: the
    new grid has no run to show) delete the new grid and put the old one back."""
    if aside is None:
        return
    if not keep_new:
        _put_back(aside.path, out)
    else:
        shutil.rmtree(aside.path, ignore_errors=True)
    unlock_directory(aside.lock)


def result(path: Path, combination: dict) -> dict:
    """One row of the results table, from the run's metrics.jsonl and its grid_result.json."""
    row = {"run": path.name, "settings": combination, "status": "not started", "metric": None, "best": None,
           "best_step": None, "steps": 0, "elapsed_s": 0.0}
    if not (path / CONFIG_FILE).exists():
        return row
    run = RunDir(path)
    metric, mode = head(run.read_config()["task"]).monitor  # what its training loop keeps the best weights by
    records = run.metrics()
    scored = [r for r in records if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
    done = (path / RESULT_FILE).exists()
    row.update(metric=metric, mode=mode, status="unfinished")
    if done:
        row.update(json.loads((path / RESULT_FILE).read_text(encoding="utf-8")))
    if records:
        row.update(steps=records[-1].get("step", 0), elapsed_s=records[-1].get("elapsed_s", 0.0))
    if scored:
        best = (min if mode == "min" else max)(scored, key=lambda r: r[metric])
        row.update(best=best[metric], best_step=best["step"])
    return row


def rank(rows: list[dict]) -> list[dict]:
    """Rows sorted best first by their metric (rows without one last); the best is marked."""
    scored = [r for r in rows if r["best"] is not None]
    mode = scored[0]["mode"] if scored else "min"
    scored.sort(key=lambda r: r["best"], reverse=mode == "max")
    ranked = scored + [r for r in rows if r["best"] is None]
    for i, r in enumerate(ranked):
        r["is_best"] = i == 0 and r["best"] is not None
    return ranked


def format_table(rows: list[dict]) -> str:
    """The results as an aligned text table, best run first and marked with *."""
    axes = list(rows[0]["settings"]) if rows else []
    metric = next((r["metric"] for r in rows if r["metric"]), "metric")
    header = ["", *axes, metric, "at step", "steps", "time", "status"]
    lines = [header] + [["*" if r["is_best"] else "", *(str(r["settings"][a]) for a in axes),
                         f"{r['best']:.4f}" if r["best"] is not None else "-",
                         str(r["best_step"] or "-"), str(r["steps"]), f"{r['elapsed_s']:.0f}s", r["status"]]
                        for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def write_results(out: Path, command: str, rows: list[dict]) -> None:
    """results.json (everything) and results.tsv (one line per run, best first), atomically."""
    axes = list(rows[0]["settings"]) if rows else []
    metric = next((r["metric"] for r in rows if r["metric"]), None)
    best = next((r["run"] for r in rows if r["is_best"]), None)
    write_json_atomic(out / "results.json", {"command": command, "metric": metric, "best": best, "runs": rows})
    lines = ["\t".join(["run", *axes, metric or "metric", "best_step", "steps", "elapsed_s", "status", "best"])]
    for r in rows:
        lines.append("\t".join(map(str, [r["run"], *(r["settings"][a] for a in axes),
                                         "" if r["best"] is None else r["best"], r["best_step"] or "", r["steps"],
                                         r["elapsed_s"], r["status"], "*" if r["is_best"] else ""])))
    write_bytes_atomic(out / "results.tsv", ("\n".join(lines) + "\n").encode("utf-8"))


def search(out, axes: dict[str, list], run_one: RunOne, spec: dict, force: bool = False,
           log: Callable[[str], None] = print) -> list[dict]:
    """Train every combination of `axes` with `run_one`, one run directory each under `out`,
    and return the ranked results (also written to results.json and results.tsv).

    `spec` (the command and its fixed options) is kept in grid.json: reopening a grid with other
    fixed options is an error, since its finished runs would not be comparable. A run whose
    settings are rejected before it starts stops the grid with that error; a run that fails
    while training (say its loss becomes NaN at a high learning rate) is recorded as failed and
    the grid goes on. Ctrl-C checkpoints the current run and stops; a rerun resumes it."""
    out = Path(out)
    if not axes or any(not values for values in axes.values()):
        raise CharseqError("a grid needs at least one option with values, e.g. --lr 1e-3,3e-3")
    spec = _normal(spec)
    _recover_moved_aside(out, log)
    aside = _open_grid(out, {**spec, "axes": _normal(axes)}, force)
    combos = combinations(axes)

    def started() -> bool:  # a run of the new grid has a checkpoint: the grid it replaces may go
        return (out / run_name(combos[0]) / CONFIG_FILE).exists()

    def report() -> list[dict]:
        rows = rank([result(out / run_name(c), c) for c in combos])
        with _writing():
            write_results(out, spec["command"], rows)
        return rows

    for i, combo in enumerate(combos, 1):
        name = run_name(combo)
        path = out / name
        if (path / RESULT_FILE).exists():
            log(f"[{i}/{len(combos)}] {name}: done, skipped")
            continue
        resume = RunDir(path).has_checkpoint() and (path / CONFIG_FILE).exists()
        # A run directory without a checkpoint never saved progress (it stopped while preparing).
        replace = not resume and (path / CONFIG_FILE).exists()
        log(f"[{i}/{len(combos)}] {name}: {'resuming' if resume else 'training'}")
        try:
            try:
                run_one(combo, path, resume, replace)
                outcome = {"status": "finished"}
            except Interrupted:
                raise
            except CharseqError as e:
                if not (path / CONFIG_FILE).exists():
                    raise CharseqError(f"{name}: {e.message}", *e.remedies) from None
                outcome = {"status": "failed", "error": str(e)}
                log(f"[{i}/{len(combos)}] {name}: failed: {e}")
        except BaseException as e:  # the grid stops here (a rejected setting, Ctrl-C, an out-of-memory error)
            kept = aside is None or started()
            _settle(out, aside, keep_new=kept)
            if kept and isinstance(e, Interrupted):
                report()
            raise
        _settle(out, aside, keep_new=True)  # this run has a checkpoint (it finished or failed while training)
        aside = None
        with _writing():
            write_json_atomic(path / RESULT_FILE, outcome)
        import keras

        keras.backend.clear_session()  # each run builds its own model; keep memory flat over a long grid
        report()
    return report()


def run_grid(command: str, out, axes: dict[str, list], *args, force: bool = False,
             log: Callable[[str], None] = print, **settings) -> list[dict]:
    """Train `command` ("train-lm", "classify-mnist", "train-classifier" or "train-seq2seq") once
    for every combination of `axes` (setting name -> values), with the library's train function;
    `args` and `settings` are passed to every run. Returns the results, best first::

        run_grid("train-lm", "runs/grid", {"lr": [1e-3, 3e-3], "batch_size": [32, 64]},
                 "corpora/poems.txt", max_steps=500)
    """
    commands = train_commands()
    if command not in commands:
        raise CharseqError(f"unknown train command {command!r}; one of {', '.join(commands)}")
    both = set(axes) & set(settings)
    if both:
        raise CharseqError(f"{', '.join(sorted(both))} is both an axis of the grid and a fixed setting")
    train_fn = commands[command]

    def run_one(combo, path, resume, replace):
        train_fn(*args, out=path, force=replace, resume=resume, log=log, progress_bar=False, **settings, **combo)

    spec = {"command": command, "fixed": {"args": list(args), "settings": settings}}
    return search(out, axes, run_one, spec, force=force, log=log)
