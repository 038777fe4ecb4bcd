"""Training curves of one or several runs as one image (`charseq plot`).

Reads each run's metrics.jsonl (one record per evaluation) and draws, against the step,
the losses and whichever quality metric the runs have (accuracy for classifiers, exact match
for encoder-decoders). matplotlib is an optional extra (`pip install 'charseq[plot]'`):
training never needs it. A grid directory (`charseq grid --out DIR`) stands for all its runs.

    plot_runs(["runs/a", "runs/b"], "curves.png")
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from charseq.errors import CharseqError
from charseq.files import make_parent, write_bytes_atomic
from charseq.grid import GRID_FILE, run_order
from charseq.heads import all_heads
from charseq.runs import CONFIG_FILE, RunDir


def default_panels(tasks: set[str] | None = None) -> list[tuple[str, tuple[str, ...]]]:
    """The panels of the heads of `tasks` (None, or a task no head has: every head), each a title and
    the metrics drawn in it (train dashed, validation solid). Heads that draw the same metrics share a
    panel; where their units differ (a language model's loss is per token, a classifier's per
    example), its title has none.

    >>> default_panels({"lm"})
    [('loss (nats/token)', ('train_loss', 'val_loss'))]
    >>> default_panels({"lm", "classifier"})
    [('loss', ('train_loss', 'val_loss')), ('accuracy', ('train_accuracy', 'val_accuracy'))]
    """
    heads = all_heads()
    if tasks is not None and tasks <= {h.task for h in heads}:
        heads = [h for h in heads if h.task in tasks]
    panels = {}  # metrics -> title
    for h in heads:
        for title, keys in h.plot_panels:
            panels[keys] = title if panels.get(keys, title) == title else title.split(" (")[0]
    return [(title, keys) for keys, title in panels.items()]


def _task(run: Path) -> str | None:
    """The head that made `run`, as its config.json says (None if it does not): plot reads nothing else of it."""
    try:
        return json.loads((run / CONFIG_FILE).read_text()).get("task")
    except (OSError, ValueError, AttributeError):
        return None


def _import_matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise CharseqError("plotting needs matplotlib: pip install 'charseq[plot]'") from None
    return matplotlib


def _expand(paths) -> list[tuple[Path, bool]]:
    """Run directories, with a grid directory replaced by the runs in it; and whether each came from a grid."""
    runs = []
    for path in map(Path, paths):
        if not (path / CONFIG_FILE).exists() and (path / GRID_FILE).exists():
            # Not the hidden siblings of a run being built or replaced (charseq.transaction).
            found = [p for p in path.iterdir() if not p.name.startswith(".") and (p / CONFIG_FILE).exists()]
            order = {name: i for i, name in enumerate(run_order(path))}  # then the runs of earlier axes, by name
            runs += [(p, True) for p in sorted(found, key=lambda p: (order.get(p.name, len(order)), p.name))]
        else:
            runs.append((RunDir.open(path).path, False))  # a one-line error if it is not a run
    return runs


def _labels(runs: list[Path]) -> list[str]:
    """Each run's directory name; where two runs share a name (the same setting in two grids), every
    run's path from the folder they all share, so that runs of one grid read alike.

    >>> _labels([Path("g1/lr=0.1"), Path("g2/lr=0.1"), Path("g2/lr=0.3")])
    ['g1/lr=0.1', 'g2/lr=0.1', 'g2/lr=0.3']
    """
    names = [p.name for p in runs]
    if len(set(names)) == len(names):
        return names
    absolute = [p.resolve() for p in runs]
    shared = Path(os.path.commonpath(absolute)) if len(runs) > 1 else absolute[0].parent
    return [str(p.relative_to(shared)) if p != shared else str(run) for p, run in zip(absolute, runs)]


def _colors(count: int) -> list:
    """One colour per run, no two alike: matplotlib's ten for up to ten runs, twenty paired ones for up
    to twenty, then evenly spaced along a colour map (a 3x3x3 grid has 27 runs)."""
    from matplotlib import colormaps

    if count <= 10:
        return [f"C{i}" for i in range(count)]
    if count <= 20:
        return [colormaps["tab20"](i) for i in range(count)]
    return [colormaps["turbo"](0.05 + 0.9 * i / (count - 1)) for i in range(count)]


def _style(train: bool, dots: bool) -> dict:
    """How a train or validation curve is drawn: dashed or solid, and, with `dots` (a curve of a few
    evaluations), a dot at each, open or filled: a run evaluated once has no line to dash."""
    style = {"linestyle": "--" if train else "-"}
    if dots:
        style.update(marker="o", markersize=3.5, fillstyle="none" if train else "full")
    return style


def plot_runs(runs: list[str | os.PathLike], out: str | os.PathLike, metrics: list[str] | None = None,
              force: bool = False) -> Path:
    """Draw the training curves of `runs` (run or grid directories) into the image `out`
    (.png, .svg, .pdf, or another format matplotlib writes). `metrics` (metric names in metrics.jsonl,
    e.g. ["val_loss", "lr"]) draws one panel per metric instead of the default loss / accuracy / exact-match panels.
    An existing `out` is replaced only with `force`. Returns the path written."""
    out = Path(out)
    if not runs:
        raise CharseqError("give at least one run directory to plot")
    if out.is_dir():
        raise CharseqError(f"--out {out} is a directory; give an image file name such as curves.png")
    if out.exists() and not force:
        raise CharseqError(f"{out} already exists; use --force to replace it")
    records, tasks = {}, set()
    for path, in_grid in _expand(runs):
        records[path] = RunDir(path).metrics()
        tasks.add(_task(path))
        if not records[path]:
            if in_grid:  # a grid's run still on its way to its first evaluation: the others are drawn
                del records[path]
                continue
            raise CharseqError(f"{path} has no metrics yet (it has not reached its first evaluation)")
    if not records:
        raise CharseqError(f"{', '.join(map(str, runs))} holds no runs with metrics yet")
    paths = list(records)
    present = {key for recs in records.values() for r in recs for key, v in r.items()
               if isinstance(v, (int, float)) and key != "step"}
    if metrics:
        missing = [m for m in metrics if m not in present]
        if missing:
            raise CharseqError(f"no run has the metric {missing[0]!r}; available: {', '.join(sorted(present))}")
        panels = [(m, (m,)) for m in metrics]
    else:
        panels = [(title, keys) for title, keys in default_panels(tasks) if set(keys) & present]

    _import_matplotlib()
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend or state

    fmt = out.suffix.lstrip(".").lower()
    fig = Figure(figsize=(6.4 * len(panels), 4.4), layout="constrained")
    if fmt not in fig.canvas.get_supported_filetypes():
        raise CharseqError(f"cannot write a {out.suffix or 'suffix-less'} image; name --out *.png, *.svg or *.pdf")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    # One legend for the whole figure, beside the panels: a run has one colour in every panel, so it is
    # named once, and a grid's dozens of runs never cover the curves or the titles.
    entries = {label: Line2D([], [], color=color) for label, color in zip(_labels(paths), _colors(len(paths)))}
    drawn, styles = set(), set()  # the runs with a curve; whether train (dashed) and validation (solid) ones were
    dotted = False  # whether a train or validation curve was drawn with its dots
    for ax, (title, keys) in zip(axes, panels):
        for path, (label, entry) in zip(paths, entries.items()):
            for key in keys:
                points = [(r["step"], r[key]) for r in records[path]
                          if isinstance(r.get(key), (int, float)) and "step" in r]
                if points:
                    steps, values = zip(*points)
                    train = key.startswith("train_")
                    dots = len(points) < 30
                    ax.plot(steps, values, color=entry.get_color(), **_style(train, dots))
                    drawn.add(label)
                    if len(keys) > 1:
                        styles.add(train)
                        dotted |= dots
        ax.set_title(title)
        ax.set_xlabel("step")
        # Steps are whole: no 4.8 around a single evaluation.
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
    handles = [entry for label, entry in entries.items() if label in drawn]
    labels = [label for label in entries if label in drawn]
    if styles == {True, False}:  # which line is which, once for all runs
        handles += [Line2D([], [], color="grey", **_style(True, dotted)),
                    Line2D([], [], color="grey", **_style(False, dotted))]
        labels += ["train (dashed)", "validation (solid)"]
    legend = fig.legend(handles, labels, loc="outside right upper", fontsize="small")
    fig.set_figwidth(fig.get_figwidth() + legend.get_window_extent().width / fig.dpi)  # the panels keep their width
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=100)
    make_parent(out)
    write_bytes_atomic(out, buffer.getvalue())
    return out
