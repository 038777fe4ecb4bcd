"""Hyperparameter search: one run for every combination of a few settings (`charseq grid`).

    charseq grid train-lm corpus.txt --lr 1e-3,3e-3 --batch-size 32,64 --out runs/grid --max-steps 500

    GRID/grid.json                     the train command and its fixed options (a rerun must match)
    GRID/lr=0.001,batch_size=32/       one run directory per combination, as the train command writes it
    GRID/.../grid_result.json          written when that run ends; its presence marks the run done
    GRID/results.json, results.tsv     the table, best run first, rewritten after every run

Runs go one after another in this process. A rerun with the same GRID (after Ctrl-C, a crash,
or with more values on an axis) skips the runs that are done, resumes those that have a
checkpoint and starts the rest, so no finished training is ever repeated. A new grid that stops
before any of its runs trained (its data file missing or refused, a setting its first run rejects)
leaves nothing at GRID.

`--force` replaces a grid as a run's --force replaces a run (`charseq.transaction`): the new grid
is built beside the old one, in a hidden sibling (`.GRID.new-XXXX`), and swapped in only once
every one of its runs is done; until then the old grid is whole and usable at GRID. A new grid
stopped before any of its runs trained (a setting its first run rejects, Ctrl-C while preparing)
is deleted; one stopped later (Ctrl-C, a crash, a kill) stays beside, and the same command run
again continues it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from pathlib import Path
from typing import Callable

import click

from charseq.errors import CharseqError, Interrupted, WriteError, write_remedy
from charseq.files import write_bytes_atomic, write_json_atomic
from charseq.heads import all_heads, head, train_commands
from charseq.limits import OPTION_BOUNDS, check_number
from charseq.runs import CONFIG_FILE, RunDir, being_written, foreign_entry, kept_evaluation, not_a_run, selection_key
from charseq.settings import TrainConfig, setting_types, split_settings
from charseq.transaction import Replacement, destination, recover

GRID_FILE = "grid.json"
RESULT_FILE = "grid_result.json"

# (combination, run directory, resume, replace) -> None; trains one run to its end.
RunOne = Callable[[dict, Path, bool, bool], None]
# A grid's fixed options -> what two grids must share to be the same grid (see command_grid).
FixedKey = Callable[[object], object]


def as_given(fixed):
    """Fixed options compared as they are: the Python API's, whose settings are a dict already."""
    return fixed


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


def run_order(path: Path) -> list[str]:
    """The names of the runs of the grid at `path` in the order of its axes, as `charseq grid`
    trains them (`lr=2` before `lr=10`); [] where its grid.json names no axes."""
    try:
        axes = json.loads((Path(path) / GRID_FILE).read_text(encoding="utf-8")).get("axes")
        return [run_name(combination) for combination in combinations(axes)] if isinstance(axes, dict) else []
    except (OSError, ValueError, AttributeError, TypeError):  # a grid.json edited by hand
        return []


def _normal(obj):
    return json.loads(json.dumps(obj, default=str))


GRID_FILES = (GRID_FILE, "results.json", "results.tsv")
_GRID_OWN = re.compile("|".join(re.escape(name) for name in GRID_FILES))
_RUN_BEING_REPLACED = re.compile(r"\..+\.(new|old)-[A-Za-z0-9_]+")  # a run's hidden siblings (charseq.transaction)


def _not_the_grids(out: Path) -> str | None:
    """The first path in the grid directory `out`, at any depth, that the grid did not write
    (None: all are its own): its files, its runs, and what a run being written holds."""
    for entry in sorted(out.iterdir()):
        name = entry.name
        if entry.is_symlink():
            return name
        if entry.is_file() and (name in GRID_FILES or being_written(name, _GRID_OWN)):
            continue
        if entry.is_dir() and not any(entry.iterdir()):
            continue
        if entry.is_dir() and _RUN_BEING_REPLACED.fullmatch(name):  # a run being built or swapped in
            inside = foreign_entry(entry, building=True)
        elif entry.is_dir():
            inside = not_a_run(entry) and (foreign_entry(entry) or "")
            if inside is None:
                continue
        else:
            return name
        if inside is not None:
            return f"{name}/{inside}" if inside else name
    return None


def _same_grid(old: dict, spec: dict, fixed_key: FixedKey = as_given) -> bool:
    """Whether a grid's grid.json has `spec`'s command and fixed options, as `fixed_key` compares them
    (its axes may differ: a rerun with more values reuses the runs done)."""
    if not isinstance(old, dict) or old.get("command") != spec["command"]:
        return False
    try:
        return fixed_key(old.get("fixed")) == fixed_key(spec["fixed"])
    except (TypeError, ValueError, AttributeError):  # a grid.json edited by hand
        return False


def _read_spec(path: Path) -> dict:
    try:
        return json.loads((path / GRID_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CharseqError(f"cannot read {path / GRID_FILE}: {e}") from None


def _check_out(out: Path, spec: dict, force: bool, fixed_key: FixedKey = as_given) -> bool:
    """Whether `out` holds a grid to replace (True, with `force`) or is free or the same grid to
    continue (False); else a one-line error, with nothing touched."""
    if not out.is_dir() or not any(out.iterdir()):
        return False
    if not (out / GRID_FILE).exists():
        raise CharseqError(f"--out {out} is not empty and is not a charseq grid; refusing to use it")
    if force:
        foreign = _not_the_grids(out)
        if foreign:
            raise CharseqError(f"--out {out} holds {foreign}, which is not part of a charseq grid; "
                               "refusing to replace it")
        return True
    old = _read_spec(out)
    if not _same_grid(old, spec, fixed_key):
        raise CharseqError(f"{out} holds a grid of {old.get('command')} with other fixed options "
                           f"({' '.join(map(str, old.get('fixed') or [])) or 'none'}); give another --out, "
                           "or --force to replace it")
    return False


def _adoptable(spec: dict, fixed_key: FixedKey) -> Callable[[Path], bool]:
    """A new grid a stopped `grid --force` left beside the old one, for the same command: continued."""
    def same(build: Path) -> bool:
        try:
            return _same_grid(_read_spec(build), spec, fixed_key) and _not_the_grids(build) is None
        except CharseqError:
            return False
    return same


def _undo_new(out: Path) -> Callable[[], None] | None:
    """For an `out` free for a new grid (absent, or an empty folder), what removes the new grid again:
    its own files, the empty folders in it, then the folders made for it. None: `out` holds something."""
    if out.is_dir() and any(out.iterdir()):
        return None
    made, path = None, out
    while not path.exists() and not path.is_symlink():  # the folders mkdir(parents=True) makes
        made, path = path, path.parent

    def undo() -> None:
        # Anything not the grid's own stays, and so do the folders holding it; each entry is tried
        # on its own, so one that stays does not keep the others.
        entries = []
        with contextlib.suppress(OSError):
            entries = list(out.iterdir())
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_dir() and not entry.is_symlink():
                    entry.rmdir()
                elif entry.is_file() and entry.name in GRID_FILES:
                    entry.unlink()
        with contextlib.suppress(OSError):  # a folder that stays keeps its parents
            for folder in [out, *out.parents][:len(out.parts) - len(made.parent.parts)] if made else []:
                folder.rmdir()
    return undo


def open_grid(out: Path, spec: dict, force: bool, log: Callable[[str], None] = print,
              fixed_key: FixedKey = as_given) -> tuple[Path, Replacement | None, Callable[[], None] | None]:
    """Where the grid's runs go: `out` itself (a new grid, or the same grid continued), or, to
    replace an old grid (`force`), a new grid built beside it (the Replacement), which takes its
    place only once every run is done; and, for a new grid at `out`, what removes it again (see
    search). Never touches anything that is not the grid's own."""
    out = destination(out)
    recover(out, _not_the_grids, sweep=False, log=log)  # a swap a killed grid --force left half done
    undo = None
    if not _check_out(out, spec, force, fixed_key):
        where, build, undo = out, None, _undo_new(out)
    else:
        build = Replacement.begin(out, check=lambda out: _check_out(out, spec, True, fixed_key),
                                  foreign=_not_the_grids, adopt=_adoptable(spec, fixed_key), log=log)
        where = build.path
        log(f"{'continuing' if build.adopted else 'building'} the new grid beside {out} (in {where.name}); "
            "the old grid stays until every run of the new one is done")
    try:
        where.mkdir(parents=True, exist_ok=True)
        with _writing():
            write_json_atomic(where / GRID_FILE, spec)
    except BaseException:
        if build is not None:
            build.rollback()
        if undo is not None:
            undo()
        raise
    return where, build, undo


@contextlib.contextmanager
def _writing():
    """A grid file that cannot be written (disk full): say that the runs are intact and the grid goes on."""
    try:
        yield
    except WriteError as e:
        raise CharseqError(f"{e.message}; every run trained so far is intact; {write_remedy(e, 'the grid directory')} "
                           "and run the same grid command again to continue") from None


def _has_trained_run(grid: Path) -> bool:
    return grid.is_dir() and any(not d.name.startswith(".") and (d / CONFIG_FILE).is_file()
                                 for d in grid.iterdir() if d.is_dir())


def _without_resume(message: str) -> str:
    """A stopped run's message without its last advice if that is to resume it: in a grid, --resume
    belongs to the grid, which resumes its runs itself."""
    head, _, advice = message.rpartition("; ")
    return head if head and "--resume" in advice else message


def _stopped(e: BaseException, out: Path, build: Replacement) -> BaseException:
    """The error that stopped a grid being built beside `out`: the new grid is kept there for a
    rerun if any run of it trained (else deleted), and the message says so."""
    if not _has_trained_run(build.path):
        build.rollback()
        return e
    build.release()
    if not isinstance(e, CharseqError):
        return e
    kept = (f"the old grid {out} is untouched and the new one is kept beside it ({build.path.name}); "
            "run the same command again to continue it")
    return type(e)(f"{e.message.split('; ')[0]}; {kept}") if isinstance(e, Interrupted) else \
        CharseqError(f"{e.message}; {kept}", *e.remedies)


def result(path: Path, combination: dict) -> dict:
    """One row of the results table, from the run's metrics.jsonl and its grid_result.json."""
    row = {"run": path.name, "settings": combination, "status": "not started", "metric": None, "best": None,
           "best_step": None, "steps": 0, "elapsed_s": 0.0}
    if not (path / CONFIG_FILE).exists():
        return row
    run = RunDir(path)
    metric, mode = head(run.read_config()["task"]).monitor  # what its training loop keeps the best weights by
    records = run.metrics()
    done = (path / RESULT_FILE).exists()
    row.update(metric=metric, mode=mode, status="unfinished")
    if done:
        row.update(json.loads((path / RESULT_FILE).read_text(encoding="utf-8")))
    # A run stopped between evaluations trained past its last record; status.json says how far.
    last, stands = (records or [{}])[-1], run.status()
    row.update(steps=max(last.get("step", 0), stands["step"]),
               elapsed_s=max(last.get("elapsed_s", 0.0), stands["elapsed_s"] or 0.0))
    best = kept_evaluation(records, metric, mode)
    if best is not None:
        row.update(best=best[metric], best_step=best["step"], best_val_loss=best.get("val_loss"))
    return row


def rank(rows: list[dict]) -> list[dict]:
    """Rows sorted best first by their metric (rows without one last); the best finished run is marked:
    a run stopped early (Ctrl-C) or failed may lead on a score it would not have kept."""
    scored = [r for r in rows if r["best"] is not None]
    mode = scored[0]["mode"] if scored else "min"
    scored.sort(key=lambda r: selection_key({"best": r["best"], "val_loss": r.get("best_val_loss")}, "best", mode))
    ranked = scored + [r for r in rows if r["best"] is None]
    best = next((r for r in scored if r.get("status") == "finished"), None)
    for r in ranked:
        r["is_best"] = r is best
    return ranked


def _score(value: float) -> str:
    """A best score as the table shows it: four decimals, as losses and accuracies need, but a diverged
    run's huge loss in four significant digits (not its 32 digits, which pushed the status off screen).

    >>> _score(2.47741), _score(1.1725e31), _score(float("inf"))
    ('2.4774', '1.172e+31', 'inf')
    """
    return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.4g}"


def format_table(rows: list[dict]) -> str:
    """The results as an aligned text table, best run first, the best finished run marked with *."""
    axes = list(rows[0]["settings"]) if rows else []
    metric = next((r["metric"] for r in rows if r["metric"]), "metric")
    header = ["", *axes, metric, "at step", "steps", "time", "status"]
    lines = [header] + [["*" if r["is_best"] else "", *(str(r["settings"][a]) for a in axes),
                         _score(r["best"]) if r["best"] is not None else "-",
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


def check_settings(command: str, settings: dict) -> None:
    """Refuse `settings` as a new run of `command` does before it reads its data (charseq.start.start_run),
    with its message: a grid checks every combination so, instead of failing at the run that has it."""
    groups = next((h.settings[command] for h in all_heads() if command in h.settings), None)
    if groups is None:  # a head that does not say its settings' classes: its runs check them
        return
    groups = (*groups, TrainConfig)
    known = {name for group in groups for name in setting_types(group)}
    split_settings({k: v for k, v in settings.items() if k in known}, *groups)  # the others are not settings


def search(out, axes: dict[str, list], run_one: RunOne, spec: dict, force: bool = False,
           log: Callable[[str], None] = print, fixed_key: FixedKey = as_given) -> list[dict]:
    """Train every combination of `axes` with `run_one`, one run directory each under `out`,
    and return the ranked results (also written to results.json and results.tsv).

    `spec` (the command and its fixed options) is kept in grid.json: reopening a grid with other
    fixed options (as `fixed_key` compares them) is an error, since its finished runs would not be
    comparable. A run whose settings are rejected before it starts stops the grid with that error; a run that fails
    while training (say its loss becomes NaN at a high learning rate) is recorded as failed and
    the grid goes on. Ctrl-C checkpoints the current run and stops; a rerun resumes it.

    With `force`, an old grid at `out` is replaced only once every run of the new one is done (see
    open_grid); until then it is untouched. A new grid that stops before any of its runs trained (its
    data refused, a setting its first run rejects) is removed: nothing of it is left at `out`."""
    out = Path(out)
    if not axes or any(not values for values in axes.values()):
        raise CharseqError("a grid needs at least one option with values, e.g. --lr 1e-3,3e-3")
    for name, values in axes.items():  # a value out of range is said before any run trains, not after some
        if name in OPTION_BOUNDS:
            for value in values:
                check_number(name, value)
    spec = _normal(spec)
    out = destination(out)
    where, build, undo = open_grid(out, {**spec, "axes": _normal(axes)}, force, log, fixed_key)
    combos = combinations(axes)

    def report() -> list[dict]:
        rows = rank([result(where / run_name(c), c) for c in combos])
        with _writing():
            write_results(where, spec["command"], rows)
        return rows

    try:
        for i, combo in enumerate(combos, 1):
            _train_one(where / run_name(combo), combo, f"[{i}/{len(combos)}]", run_one, log)
            report()
        rows = report()
    except BaseException as e:  # the grid stops here (a rejected setting, Ctrl-C, an out-of-memory error)
        if undo is not None and not _has_trained_run(where):  # a new grid stopped before any run trained
            undo()  # (bad data, a setting its first run refuses): nothing of it is left
            raise
        if isinstance(e, Interrupted) and (build is None or _has_trained_run(where)):
            with contextlib.suppress(CharseqError):
                report()
        if build is None:
            if isinstance(e, Interrupted):  # the run's own advice, --resume, is the grid's to give
                raise type(e)(f"{_without_resume(e.message)}; run the same grid again to continue it "
                              "(finished runs are skipped, this one resumes)") from None
            raise
        raise _stopped(e, out, build) from None
    if build is not None:
        try:
            build.commit()  # every run is done: the new grid takes the old one's place
        except CharseqError as e:  # the old grid changed meanwhile (a file of the user's in it)
            build.release()
            raise CharseqError(f"{e.message}; the new grid is complete beside it ({build.path.name})") from None
        # Its runs' lines named them in the new grid's hidden folder, which is now gone.
        log(f"the new grid has replaced the old one at {out}")
    return rows


def _train_one(path: Path, combo: dict, counter: str, run_one: RunOne, log: Callable[[str], None]) -> None:
    """Train one run of the grid to its end (skipped if done, resumed if it has a checkpoint) and
    record how it ended; a rejected setting before it trained stops the grid with that error."""
    name = path.name
    if (path / RESULT_FILE).exists():
        log(f"{counter} {name}: done, skipped")
        return
    resume = RunDir(path).has_checkpoint() and (path / CONFIG_FILE).exists()
    # A run directory without a checkpoint never saved progress (it stopped while preparing).
    replace = not resume and (path / CONFIG_FILE).exists()
    log(f"{counter} {name}: {'resuming' if resume else 'training'}")
    try:
        run_one(combo, path, resume, replace)
        outcome = {"status": "finished"}
    except Interrupted:
        raise
    except CharseqError as e:
        if not (path / CONFIG_FILE).exists():
            raise CharseqError(f"{name}: {e.message}", *e.remedies) from None
        outcome = {"status": "failed", "error": str(e)}
        log(f"{counter} {name}: failed: {e}")
    with _writing():
        write_json_atomic(path / RESULT_FILE, outcome)
    import keras

    keras.backend.clear_session()  # each run builds its own model; keep memory flat over a long grid


def in_any_order(fixed: list[str], options: dict[str, tuple[str, bool, bool]],
                 read: Callable[[str, str], object] = lambda setting, value: value) -> list:
    """A train command's fixed arguments as it reads them, whatever their order on the command line:
    the positional arguments in their order, then each option (with its value as `read` reads it, by
    its setting's name) sorted by its setting's name, an option given several times keeping the order
    of its values. `options` is as for split_axes.

    >>> opts = {"--lr": ("lr", True, True), "--units": ("units", True, True)}
    >>> in_any_order(["c.txt", "--units", "64", "--lr", "0.01"], opts) == in_any_order(
    ...     ["--lr", "0.01", "c.txt", "--units", "64"], opts)
    True
    >>> in_any_order(["--lr", "1e-2"], opts, lambda setting, value: float(value)) == in_any_order(
    ...     ["--lr", "0.01"], opts, lambda setting, value: float(value))
    True
    """
    positional, given, i = [], [], 0
    while i < len(fixed):
        known = options.get(fixed[i])
        if known is None:
            positional.append(fixed[i])
        elif known[1] and i + 1 < len(fixed):
            # by the setting's name: a short and a long spelling are one
            given.append([known[0], read(known[0], fixed[i + 1])])
            i += 1
        else:
            given.append([known[0], fixed[i]])  # a flag as spelled: --no-x is not --x
        i += 1
    return [positional, sorted(given, key=lambda option: option[0])]


def command_grid(train_command: click.Command, ctx: click.Context, out, force: bool = False,
                 log: Callable[[str], None] = print, before_each: Callable[[], None] = lambda: None) -> list[dict]:
    """`charseq grid COMMAND ...`: run the click command `train_command` once for every combination of
    the comma-separated values among its arguments (`ctx.args`), and return the ranked results.

    An axis is an option taking a number or a choice; its values are converted by the option's own
    type, and every combination is parsed and its settings checked (`check_settings`) before anything
    trains, so a bad value is one error line, not a failure an hour in. `before_each` runs before each
    run trains."""
    name = train_command.name
    params = {p.name: p for p in train_command.params if isinstance(p, click.Option)}
    options = {opt: (p.name, not p.is_flag and not p.count,
                     isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType, click.Choice)))
               for p in params.values() for opt in p.opts + p.secondary_opts}
    fixed, given = split_axes(ctx.args, options)
    # A value or an option the train command refuses is said as that command says it, pointing at its --help.
    own = click.Context(train_command, info_name=name, parent=ctx.parent)
    axes = {setting: [params[setting].type.convert(v, params[setting], own) for v in values]
            for setting, (_, values) in given.items()}

    def argv(combo, path, resume=False, replace=False):
        return [*fixed, *(x for setting, value in combo.items() for x in (given[setting][0], str(value))),
                "--out", str(path), *(["--resume"] if resume else []), *(["--force"] if replace else [])]

    for combo in combinations(axes) or [{}]:  # every combination parses, and passes its run's checks, before any trains
        parsed = train_command.make_context(name, argv(combo, out), parent=ctx.parent)
        check_settings(name, {k: v for k, v in parsed.params.items() if v is not None})

    def run_one(combo, path, resume, replace):
        before_each()
        with train_command.make_context(name, argv(combo, path, resume, replace), parent=ctx) as sub:
            train_command.invoke(sub)

    def as_read(setting: str, value: str):  # a number as the command reads it: 1e-3 and 0.001 are one --lr
        param = params[setting]
        if not isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType)):
            return value
        try:
            return param.type.convert(value, param, own)
        except click.BadParameter:  # a grid.json edited by hand: compared as written
            return value

    return search(out, axes, run_one, {"command": name, "fixed": fixed}, force=force, log=log,
                  fixed_key=lambda given: in_any_order(given, options, as_read))


def run_grid(command: str, out, axes: dict[str, list], *args, force: bool = False,
             log: Callable[[str], None] = print, **settings) -> list[dict]:
    """Train `command` ("train-lm", "classify-mnist", "train-classifier" or "train-seq2seq") once
    for every combination of `axes` (setting name -> values), with the library's train function;
    `args` and `settings` are passed to every run. Each run is a folder of `out`; the same call
    again skips the finished runs and resumes the one interrupted, and `force` replaces a grid
    trained with other settings. `log` receives every line the command line prints. Returns the
    results, best first::

        run_grid("train-lm", "runs/grid", {"lr": [1e-3, 3e-3], "batch_size": [32, 64]},
                 dataset_path("poems"), max_steps=500)
    """
    commands = train_commands()
    if command not in commands:
        raise CharseqError(f"unknown train command {command!r}; one of {', '.join(commands)}")
    both = set(axes) & set(settings)
    if both:
        raise CharseqError(f"{', '.join(sorted(both))} is both an axis of the grid and a fixed setting")
    train_fn = commands[command]
    for combo in combinations(axes):  # said before any run trains, not by the run that has it
        check_settings(command, {**settings, **combo})

    def run_one(combo, path, resume, replace):
        train_fn(*args, out=path, force=replace, resume=resume, log=log, progress_bar=False, **settings, **combo)

    spec = {"command": command, "fixed": {"args": list(args), "settings": settings}}
    return search(out, axes, run_one, spec, force=force, log=log)
