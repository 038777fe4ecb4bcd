"""TensorBoard scalars of every head, `charseq plot`, and `charseq grid` (search, table, resume)."""

import json
import os
import re
import signal
import sys

import numpy as np
import pytest

from charseq.errors import CharseqError, Interrupted
from helpers import (TINY_SETTINGS, assert_clean_error, read_metrics as metrics, run_cli_in_process,
                      snapshot, tiny_flags)

TINY_FLAGS = tiny_flags(batch_size=None, eval_every=5, max_steps=10)  # the grids here vary --batch-size
QUIET = dict(log=lambda s: None, progress_bar=False)


@pytest.fixture(scope="module")
def grid(tmp_path_factory, corpus_file):
    """A 2x1 grid of tiny language models, through the CLI."""
    out = tmp_path_factory.mktemp("grid") / "g"
    r = run_cli_in_process("grid", "train-lm", corpus_file, "--lr", "1e-3,2e-2", "--batch-size", "8", *TINY_FLAGS, "--out", out)
    assert r.returncode == 0, r.stderr
    return out, r


# ----------------------------------------------------------------------------- TensorBoard
def scalars(run) -> dict:
    """{tag: [(step, value)]} from the run's TensorBoard event files."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "logs"), size_guidance={"tensors": 0})
    acc.Reload()
    return {tag: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
            for tag in acc.Tags()["tensors"]}


def assert_tensorboard_matches_metrics(run, expected_tags):
    logged = scalars(run)
    assert expected_tags <= set(logged), sorted(logged)
    records = metrics(run)
    for tag in expected_tags:
        want = [(r["step"], r[tag]) for r in records if r.get(tag) is not None]
        assert [s for s, _ in logged[tag]] == [s for s, _ in want], tag
        assert [v for _, v in logged[tag]] == pytest.approx([v for _, v in want], rel=1e-5), tag


SMALL = dict(units=16, embedding_dim=8, batch_size=16, precision="float32", max_steps=2, eval_every=2, **QUIET)
SMALL_FLAGS = ["--units", "16", "--embedding-dim", "8", "--batch-size", "8", "--max-steps", "2", "--precision", "float32"]
COMMON_TAGS = {"train_loss", "val_loss", "lr", "chars_per_sec"}  # losses, learning rate, throughput


def test_language_models_and_image_classifiers_write_tensorboard_scalars(tmp_path, grid):
    from charseq.heads.classifier.run import train_mnist

    assert_tensorboard_matches_metrics(grid[0] / "lr=0.001", COMMON_TAGS | {"val_bits_per_char"})
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 96).astype(np.uint8)
    x = rng.integers(0, 50, (96, 28, 28)).astype(np.uint8)
    x[y == 1, 4:10] = 250
    np.savez(tmp_path / "mnist.npz", x_train=x[:64], y_train=y[:64], x_test=x[64:], y_test=y[64:])
    train_mnist(tmp_path / "mnist", tmp_path / "mnist.npz", **SMALL)
    assert_tensorboard_matches_metrics(tmp_path / "mnist", COMMON_TAGS | {"val_accuracy", "train_accuracy"})


def test_a_resumed_run_logs_each_step_to_tensorboard_once(tmp_path, corpus_file, monkeypatch):
    """A run that stopped after logging an evaluation but before its checkpoint (a kill, a failed write)
    evaluates that step again on --resume: TensorBoard gets it once, as metrics.jsonl does."""
    from charseq.heads.lm.run import train_lm
    from charseq.runs import RunDir

    real = RunDir.save_checkpoint

    def fails_at_step_4(self, model, optimizer, progress, *args, **kwargs):
        if progress["step"] == 4:
            raise OSError(28, "No space left on device")
        return real(self, model, optimizer, progress, *args, **kwargs)
    monkeypatch.setattr(RunDir, "save_checkpoint", fails_at_step_4)
    out = tmp_path / "run"
    settings = dict(units=16, embedding_dim=8, batch_size=8, seq_len=16, precision="float32", eval_every=2,
                    sample_length=0, **QUIET)
    with pytest.raises(CharseqError, match="the last good checkpoint \\(step 2\\) is intact"):
        train_lm(corpus_file, out, max_steps=6, **settings)
    assert [s for s, _ in scalars(out)["val_loss"]] == [2, 4]  # step 4 was logged, its checkpoint not written
    monkeypatch.setattr(RunDir, "save_checkpoint", real)
    train_lm(out=out, resume=True, **QUIET)
    assert [r["step"] for r in metrics(out)] == [2, 4, 6]
    assert_tensorboard_matches_metrics(out, COMMON_TAGS - {"chars_per_sec"} | {"val_bits_per_char"})


@pytest.mark.slow  # ~25 s, mostly tracing the encoder-decoder's training step
def test_text_classifiers_and_encoder_decoders_write_tensorboard_scalars(tmp_path):
    from charseq.heads.classifier.run import train_classifier
    from charseq.data.pairs import make_pairs
    from charseq.heads.seq2seq.run import train_seq2seq

    (tmp_path / "texts.tsv").write_text("text\tlabel\n" + "".join(
        f"{'good fun' if i % 2 else 'bad mess'} {i}\t{i % 2}\n" for i in range(60)))
    train_classifier(tmp_path / "texts.tsv", tmp_path / "texts", **SMALL)
    assert_tensorboard_matches_metrics(tmp_path / "texts", COMMON_TAGS | {"val_accuracy", "train_accuracy"})
    pairs = make_pairs("reverse", 80, seed=0, length=(3, 3))
    (tmp_path / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    train_seq2seq(tmp_path / "pairs.tsv", tmp_path / "s2s", max_output_len=6, **SMALL)
    assert_tensorboard_matches_metrics(tmp_path / "s2s", COMMON_TAGS | {"val_exact_match", "val_char_error_rate"})


# ----------------------------------------------------------------------------- plot
def test_plot_draws_a_real_png(tmp_path, grid):
    import matplotlib.image

    out = tmp_path / "figs" / "curves.png"
    r = run_cli_in_process("plot", grid[0] / "lr=0.001", grid[0] / "lr=0.02", "--out", out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(out)
    assert image.shape[0] >= 300 and image.shape[1] >= 500  # one panel of 640x440 at 100 dpi
    rgb = image[..., :3].reshape(-1, 3)
    assert len(np.unique(rgb, axis=0)) > 20  # curves, text and anti-aliasing, not a blank canvas
    # Two runs' curves in two colours (matplotlib's C0 blue and C1 orange) are both drawn.
    for color in ((0x1f, 0x77, 0xb4), (0xff, 0x7f, 0x0e)):
        assert (np.abs(rgb * 255 - color).max(axis=1) < 8).sum() > 50, color

    # A grid directory stands for its runs; --metric picks panels; --force replaces.
    r = run_cli_in_process("plot", grid[0], "--out", out, "--metric", "lr", "--metric", "val_loss", "--force")
    assert r.returncode == 0, r.stderr
    assert matplotlib.image.imread(out).shape[1] > image.shape[1] + 500  # two panels side by side (one legend)


def test_plot_bad_input(tmp_path, grid):
    existing = tmp_path / "curves.png"
    existing.write_bytes(b"mine")
    assert_clean_error(run_cli_in_process("plot", grid[0] / "lr=0.001", "--out", existing), "already exists", "--force")
    assert existing.read_bytes() == b"mine"
    assert_clean_error(run_cli_in_process("plot", tmp_path, "--out", tmp_path / "x.png"), "not a charseq run")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "config.json").write_text('{"task": "lm"}')
    assert_clean_error(run_cli_in_process("plot", fresh, "--out", tmp_path / "x.png"), "no metrics yet")
    assert_clean_error(run_cli_in_process("plot", grid[0] / "lr=0.001", "--out", tmp_path / "x.png", "--metric", "nope"),
                       "no run has the metric 'nope'")
    assert not (tmp_path / "x.png").exists()


def test_plot_of_a_grid_in_progress_draws_the_runs_that_have_metrics(tmp_path, grid):
    import shutil

    copy = tmp_path / "g"
    shutil.copytree(grid[0], copy)
    # A run stopped before its first evaluation, and the next one being built beside it.
    for started in (copy / "lr=0.5", copy / ".lr=0.9.new-abcd1234"):
        started.mkdir()
        shutil.copy(copy / "lr=0.001" / "config.json", started / "config.json")
    r = run_cli_in_process("plot", copy, "--out", tmp_path / "grid.png")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for trained in ("lr=0.001", "lr=0.02"):
        shutil.rmtree(copy / trained)
    assert_clean_error(run_cli_in_process("plot", copy, "--out", tmp_path / "x.png"), "holds no runs with metrics yet")
    assert_clean_error(run_cli_in_process("plot", copy / "lr=0.5", "--out", tmp_path / "x.png"), "no metrics yet")
    assert not (tmp_path / "x.png").exists()


def fake_run(path, losses, task="lm") -> None:
    """A run directory (a language model's) with one evaluation per (train loss, validation loss), 10 steps apart."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"task": task}))
    (path / "metrics.jsonl").write_text("".join(
        json.dumps({"step": 10 * (i + 1), "train_loss": t, "val_loss": v}) + "\n" for i, (t, v) in enumerate(losses)))


def test_plot_names_each_run_once_in_a_legend_beside_the_panels(tmp_path):
    """A grid of many runs: each is named once, in its own colour, in one legend that covers no curve,
    and runs of two grids sharing a setting's name read as grid/run, all alike."""
    import xml.etree.ElementTree as ET

    from charseq.plot import plot_runs

    for grid_name, count in (("g1", 12), ("g2", 2)):
        for i in range(count):
            fake_run(tmp_path / grid_name / f"lr={i}", [(3.0 - i / 10, 2.5 - i / 10), (2.0, 1.5)])
        (tmp_path / grid_name / "grid.json").write_text("{}")
    out = plot_runs([tmp_path / "g1", tmp_path / "g2"], tmp_path / "grid.svg")
    svg = out.read_text()
    texts = re.findall(r"<!-- (.*?) -->", svg)
    names = sorted(f"g1/lr={i}" for i in range(12)) + ["g2/lr=0", "g2/lr=1"]
    assert [t for t in texts if "lr=" in t] == names  # once each, the same way for every run
    assert texts.count("train (dashed)") == texts.count("validation (solid)") == 1
    root = ET.fromstring(svg)
    panel = next(g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("id") == "axes_1")
    assert not [g for g in panel.iter("{http://www.w3.org/2000/svg}g") if (g.get("id") or "").startswith("legend")]
    colors = {c for c in re.findall(r"stroke: (#[0-9a-f]{6})", svg)}
    assert len(colors) >= 14  # no two runs share a colour (grey style keys and the frame aside)


def test_a_grids_runs_are_plotted_in_the_order_of_its_axes(tmp_path):
    """lr=2 before lr=10, as the grid gave them, not as their names sort; a run of an earlier grid
    with more values (reused by this one) after them."""
    from charseq.plot import plot_runs

    for lr in (2, 10, 30):
        fake_run(tmp_path / "grid" / f"lr={lr}", [(3.0, 2.5), (2.0, 1.5)])
    (tmp_path / "grid" / "grid.json").write_text('{"axes": {"lr": [2, 10]}}')
    texts = re.findall(r"<!-- (.*?) -->", plot_runs([tmp_path / "grid"], tmp_path / "grid.svg").read_text())
    assert [t for t in texts if t.startswith("lr=")] == ["lr=2", "lr=10", "lr=30"]


def test_a_run_with_one_evaluation_is_plotted_at_whole_steps(tmp_path):
    from charseq.plot import plot_runs

    fake_run(tmp_path / "run", [(3.0, 2.5)])
    texts = re.findall(r"<!-- (.*?) -->", plot_runs([tmp_path / "run"], tmp_path / "one.svg").read_text())
    steps = texts[:texts.index("step")]  # the step axis' tick labels come before its name
    assert "10" in steps and all(t.lstrip("−-").isdigit() for t in steps), steps


def test_a_run_with_one_evaluation_tells_its_train_point_from_its_validation_point(tmp_path):
    """One evaluation draws no line to dash: the train loss is an open dot, the validation loss a filled
    one, and the legend's train and validation keys show the same dots."""
    from charseq.plot import plot_runs

    fake_run(tmp_path / "run", [(3.0, 2.5)])
    svg = plot_runs([tmp_path / "run"], tmp_path / "one.svg").read_text()
    dots = re.findall(r'<use xlink:href="#m[0-9a-f]+" x="[\d.]+" y="[\d.]+" style="([^"]*stroke: #(?:1f77b4|808080)[^"]*)"',
                      svg)  # the run's (C0 blue) and the legend's grey dots; the ticks are black
    run_dots = [style for style in dots if "1f77b4" in style]
    legend_dots = [style for style in dots if "808080" in style]
    assert len(run_dots) == 2 and sum("fill-opacity: 0" in style for style in run_dots) == 1, run_dots
    assert len(legend_dots) == 2 and sum("fill-opacity: 0" in style for style in legend_dots) == 1, legend_dots


def test_the_loss_panel_names_the_unit_of_the_runs_it_draws(tmp_path):
    """A classifier's loss is per example, a language model's per token: each says so, and a plot of
    both names no unit rather than a wrong one."""
    from charseq.plot import plot_runs

    fake_run(tmp_path / "lm", [(3.0, 2.5)])
    fake_run(tmp_path / "classifier", [(0.7, 0.6)], task="classifier")

    def titles(*runs):
        texts = re.findall(r"<!-- (.*?) -->", plot_runs([tmp_path / r for r in runs], tmp_path / "x.svg",
                                                         force=True).read_text())
        return [t for t in texts if t.startswith("loss")]

    assert titles("lm") == ["loss (nats/token)"]
    assert titles("classifier") == ["loss (nats/example)"]
    assert titles("lm", "classifier") == ["loss"]


def test_plot_without_matplotlib_says_what_to_install(tmp_path, grid, monkeypatch):
    from charseq.plot import plot_runs

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what a missing package looks like to import
    with pytest.raises(CharseqError, match=r"pip install 'charseq\[plot\]'"):
        plot_runs([grid[0] / "lr=0.001"], tmp_path / "x.png")


# ----------------------------------------------------------------------------- grid
def test_grid_trains_every_combination_and_ranks_them(grid):
    out, r = grid
    assert r.stderr == ""
    names = ["lr=0.001", "lr=0.02"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == names
    best = {name: min(rec["val_loss"] for rec in metrics(out / name)) for name in names}
    for name in names:
        config = json.loads((out / name / "config.json").read_text())
        assert config["train"]["lr"] == float(name[3:]) and config["train"]["batch_size"] == 8
        assert config["model"]["units"] == 32 and metrics(out / name)[-1]["step"] == 10
    results = json.loads((out / "results.json").read_text())
    ranked = sorted(names, key=best.get)
    assert [row["run"] for row in results["runs"]] == ranked and results["best"] == ranked[0]
    assert results["metric"] == "val_loss"
    assert [row["best"] for row in results["runs"]] == pytest.approx([best[n] for n in ranked])
    assert all(row["status"] == "finished" and row["steps"] == 10 for row in results["runs"])
    tsv = (out / "results.tsv").read_text().splitlines()
    assert tsv[0].split("\t")[:3] == ["run", "lr", "val_loss"]  # a single value is fixed, not an axis
    assert tsv[1].split("\t")[0] == ranked[0] and tsv[1].endswith("\t*") and not tsv[2].endswith("*")
    table = r.stdout[r.stdout.index("   lr"):].splitlines()  # the printed table, best first, marked
    assert table[1].startswith("*") and ranked[0][3:] in table[1]


def test_runs_tied_on_their_accuracy_rank_by_their_validation_loss():
    """As within a run (best.npz), so between runs: at the same best accuracy the lower loss ranks first."""
    from charseq.grid import rank

    def row(name, best, loss, status="finished"):
        return {"run": name, "best": best, "best_val_loss": loss, "mode": "max", "status": status}
    ranked = rank([row("a", 0.9, 0.1), row("b", 1.0, 0.3), row("c", 1.0, 0.2), row("d", None, None)])
    assert [r["run"] for r in ranked] == ["c", "b", "a", "d"] and ranked[0]["is_best"]
    # A run stopped part-way may lead on its score so far: the best finished run is the grid's best.
    ranked = rank([row("a", 0.9, 0.1), row("b", 0.95, 0.3, "unfinished"), row("c", 0.97, 0.2, "failed")])
    assert [r["run"] for r in ranked] == ["c", "b", "a"] and [r["is_best"] for r in ranked] == [False, False, True]


def test_the_printed_table_shows_a_diverged_runs_huge_loss_in_a_few_digits():
    """A learning rate far too high can end at a finite but huge loss (1e31 nats): the table says it in
    four significant digits, so the status column stays in place, not in 32 digits and 4 decimals."""
    from charseq.grid import format_table, rank

    def row(lr, best):
        return {"run": f"lr={lr}", "settings": {"lr": lr}, "metric": "val_loss", "mode": "min", "best": best,
                "best_val_loss": best, "best_step": 20, "steps": 20, "elapsed_s": 3.0, "status": "finished"}
    lines = format_table(rank([row(0.01, 2.47741), row(1e30, 1.1725205324530199e31)])).splitlines()
    assert lines[1].split()[:3] == ["*", "0.01", "2.4774"]
    assert lines[2].split()[:2] == ["1e+30", "1.173e+31"] and len(lines[2]) == len(lines[1])


def test_grid_reruns_skip_finished_runs_and_a_larger_grid_reuses_them(tmp_path, grid, corpus_file):
    import shutil

    out = tmp_path / "g"
    shutil.copytree(grid[0], out)
    before = (out / "lr=0.001" / "best.npz").read_bytes()
    (out / "lr=0.02" / "grid_result.json").unlink()  # as if it was stopped at its end
    r = run_cli_in_process("grid", "train-lm", corpus_file, "--lr", "1e-3,2e-2,5e-3", "--batch-size", "8", *TINY_FLAGS,
                           "--out", out)
    assert r.returncode == 0, r.stderr
    assert "[1/3] lr=0.001: done, skipped" in r.stdout
    assert "[2/3] lr=0.02: resuming" in r.stdout and "resuming from step 10" in r.stdout
    assert "[3/3] lr=0.005: training" in r.stdout
    assert (out / "lr=0.001" / "best.npz").read_bytes() == before
    assert [rec["step"] for rec in metrics(out / "lr=0.02")] == [5, 10]
    results = json.loads((out / "results.json").read_text())
    assert len(results["runs"]) == 3 and all(row["status"] == "finished" for row in results["runs"])

    # Other fixed options would make the finished runs incomparable: refused, nothing touched.
    assert_clean_error(run_cli_in_process("grid", "train-lm", corpus_file, "--lr", "1e-3,2e-2", "--batch-size", "16",
                                          *TINY_FLAGS, "--out", out), "other fixed options", "--force")


def test_a_grid_rerun_with_its_options_in_another_order_is_the_same_grid(tmp_path, grid, corpus_file):
    """Retyping a grid's command with its options in another order (or an option spelled --x=v) is
    no other grid: every run done is skipped, not refused as "other fixed options"."""
    import shutil

    out = tmp_path / "g"
    shutil.copytree(grid[0], out)
    pairs = [TINY_FLAGS[i:i + 2] for i in range(0, len(TINY_FLAGS), 2)]
    reordered = [f"{pairs[-1][0]}={pairs[-1][1]}", *(x for pair in reversed(pairs[:-1]) for x in pair)]
    r = run_cli_in_process("grid", "train-lm", "--batch-size", "8", *reordered, corpus_file, "--lr", "1e-3,2e-2",
                           "--out", out)
    assert r.returncode == 0, r.stderr
    assert "[1/2] lr=0.001: done, skipped" in r.stdout and "[2/2] lr=0.02: done, skipped" in r.stdout
    # The same options with another value are still another grid.
    assert_clean_error(run_cli_in_process("grid", "train-lm", "--batch-size", "16", *reordered, corpus_file,
                                          "--lr", "1e-3,2e-2", "--out", out), "other fixed options")


def test_a_fixed_number_written_another_way_is_the_same_grid(tmp_path, corpus_file):
    """`--dropout 1e-1` retyped as `--dropout 0.1` is the same setting, so the same grid: its runs done
    are skipped, not refused as "other fixed options"."""
    flags = tiny_flags(units=None, eval_every=2, max_steps=2)
    out = tmp_path / "g"
    r = run_cli_in_process("grid", "train-lm", corpus_file, "--units", "8,16", "--dropout", "1e-1", *flags, "--out", out)
    assert r.returncode == 0, r.stderr
    r = run_cli_in_process("grid", "train-lm", corpus_file, "--units", "8,16", "--dropout", "0.1", *flags, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "[1/2] units=8: done, skipped" in r.stdout and "[2/2] units=16: done, skipped" in r.stdout


def beside(tmp_path, name="g") -> list[str]:
    """The hidden builds and swaps charseq keeps beside the grid `name`."""
    return sorted(n for n in os.listdir(tmp_path) if n.startswith(f".{name}."))


def test_grid_force_builds_the_new_grid_beside_and_swaps_it_in_when_every_run_is_done(tmp_path, grid, corpus_file):
    """The old grid stays whole at --out until every run of the new one is done: a new grid that
    stops before any run trained (a missing corpus, a value the run rejects, Ctrl-C while it
    prepares) is deleted; one stopped by Ctrl-C in its second run waits beside the old grid, and
    the same command run again continues it and swaps it in, leaving nothing beside."""
    import shutil

    from charseq import run_grid

    out = tmp_path / "g"
    shutil.copytree(grid[0], out)
    before = snapshot(out)
    axes = ["--lr", "1e-3,2e-2", "--batch-size", "16", *TINY_FLAGS, "--out", out, "--force"]
    for args, fragment in ([tmp_path / "missing.txt"], "missing.txt"), ([corpus_file, "--dropout", "1.5"], "--dropout"):
        assert_clean_error(run_cli_in_process("grid", "train-lm", *args, *axes), fragment)
        assert snapshot(out) == before and os.listdir(tmp_path) == ["g"]

    def ctrl_c_while_preparing(line):
        if not line.startswith(("[", "building")):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_grid("train-lm", out, {"lr": [1e-3, 2e-2]}, corpus_file, force=True, log=ctrl_c_while_preparing,
                 **{**TINY_SETTINGS, "max_steps": 10})
    assert snapshot(out) == before and os.listdir(tmp_path) == ["g"]

    lines = []

    def ctrl_c_in_the_second_run(line):
        lines.append(line)
        if line.startswith("step 5:") and any(s.startswith("[2/2]") for s in lines):
            os.kill(os.getpid(), signal.SIGINT)

    settings = {**TINY_SETTINGS, "batch_size": 16, "max_steps": 10, "eval_every": 5}
    with pytest.raises(Interrupted, match="is untouched and the new one is kept beside it"):
        run_grid("train-lm", out, {"lr": [1e-3, 2e-2]}, corpus_file, force=True, log=ctrl_c_in_the_second_run,
                 **settings)
    assert snapshot(out) == before  # the old grid, whole and usable
    [build] = beside(tmp_path)
    assert (tmp_path / build / "lr=0.001" / "grid_result.json").exists()
    assert metrics(tmp_path / build / "lr=0.02")[-1]["step"] == 5

    lines.clear()
    rows = run_grid("train-lm", out, {"lr": [1e-3, 2e-2]}, corpus_file, force=True, log=lines.append, **settings)
    assert f"continuing the new grid beside {out} (in {build}); the old grid stays until every run of the new " \
           "one is done" in lines
    assert "[1/2] lr=0.001: done, skipped" in lines and "[2/2] lr=0.02: resuming" in lines
    assert lines[-1] == f"the new grid has replaced the old one at {out}"
    assert [r["status"] for r in rows] == ["finished", "finished"]
    assert json.loads((out / "grid.json").read_text())["fixed"]["settings"]["batch_size"] == 16  # the new grid's
    assert [r["step"] for r in metrics(out / "lr=0.02")] == [5, 10]
    assert os.listdir(tmp_path) == ["g"]


@pytest.mark.parametrize("user_file", ["lr=0.001/logs/mine/notes.txt", "lr=0.02/data/my_dataset.txt", "notes.txt",
                                       ".lr=0.02.new-abcd1234/notes.txt", "mine/thesis.tex"])
def test_grid_force_refuses_a_grid_holding_a_user_file_at_any_depth(tmp_path, grid, corpus_file, user_file):
    import shutil

    out = tmp_path / "g"
    shutil.copytree(grid[0], out)
    (out / user_file).parent.mkdir(parents=True, exist_ok=True)
    (out / user_file).write_text("mine")
    before = snapshot(out)
    shown = user_file.rsplit("/", 1)[0] + "/" if user_file.count("/") > 1 else user_file
    r = run_cli_in_process("grid", "train-lm", corpus_file, "--lr", "1e-3,2e-2", "--batch-size", "16", *TINY_FLAGS,
                           "--out", out, "--force")
    assert_clean_error(r, shown, "not part of a charseq grid", "refusing")
    assert snapshot(out) == before and os.listdir(tmp_path) == ["g"]


def test_a_grid_force_killed_mid_grid_leaves_the_old_grid_whole(tmp_path, grid, corpus_file):
    """A real `grid --force` killed by SIGKILL in its second run: the old grid is whole at --out and
    the same grid without --force still skips its finished runs; the new grid waits beside, and
    the same `grid --force` continues it (its finished run is not trained again) and swaps it in."""
    import shutil
    import subprocess

    from charseq.transaction import Replacement, recover
    from charseq.grid import _not_the_grids
    from helpers import CHARSEQ, REPO

    out = tmp_path / "g"
    shutil.copytree(grid[0], out)
    before = snapshot(out)
    new = ["grid", "train-lm", str(corpus_file), "--lr", "1e-3,2e-2", "--batch-size", "16", *TINY_FLAGS,
           "--out", str(out), "--force"]
    p = subprocess.Popen([*CHARSEQ, *new], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO, text=True)
    second = False
    for line in p.stdout:
        second = second or line.startswith("[2/2]")
        if second and line.startswith("step 5:"):
            p.kill()
            break
    p.communicate(timeout=300)
    assert p.returncode == -signal.SIGKILL
    assert snapshot(out) == before
    [build] = beside(tmp_path)

    old = run_cli_in_process("grid", "train-lm", corpus_file, "--lr", "1e-3,2e-2", "--batch-size", "8", *TINY_FLAGS,
                             "--out", out)
    assert old.returncode == 0, old.stderr
    assert "[1/2] lr=0.001: done, skipped" in old.stdout and "[2/2] lr=0.02: done, skipped" in old.stdout
    assert beside(tmp_path) == [build]  # the stopped new grid is not the old grid's to delete

    # A build a live process holds is never touched by another's recovery.
    live = Replacement.begin(tmp_path / "other", foreign=_not_the_grids)
    recover(tmp_path / "other", _not_the_grids)
    assert live.path.is_dir()
    live.rollback()

    r = run_cli_in_process(*new)
    assert r.returncode == 0, r.stderr
    assert f"continuing the new grid beside {out} (in {build})" in r.stdout
    assert "[1/2] lr=0.001: done, skipped" in r.stdout and "[2/2] lr=0.02: resuming" in r.stdout
    assert json.loads((out / "grid.json").read_text())["fixed"][json.loads((out / "grid.json").read_text())[
        "fixed"].index("--batch-size") + 1] == "16"
    assert os.listdir(tmp_path) == ["g"]


def test_an_interrupted_grid_resumes_where_it_stopped(tmp_path, corpus_file):
    """Python API: Ctrl-C in the first run checkpoints it; the rerun resumes it, then trains the next."""
    from charseq import run_grid

    settings = {**TINY_SETTINGS, "dropout": 0.0, "max_steps": 10, "eval_every": 5}
    axes = {"lr": [1e-2, 3e-3]}
    lines = []

    def stop_at_step_5(line):
        lines.append(line)
        if line.startswith("step 5:"):
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted) as stopped:
        run_grid("train-lm", tmp_path / "g", axes, corpus_file, log=stop_at_step_5, **settings)
    # A grid's run is continued by the grid, never by --resume, which the grid refuses.
    assert "--resume" not in str(stopped.value) and "run the same grid again to continue it" in str(stopped.value)
    assert str(stopped.value).startswith("stopped by SIGINT at step 5; checkpoint saved in ")
    first, second = tmp_path / "g" / "lr=0.01", tmp_path / "g" / "lr=0.003"
    assert not (first / "grid_result.json").exists() and not second.exists()
    rows = json.loads((tmp_path / "g" / "results.json").read_text())["runs"]
    assert {row["run"]: row["status"] for row in rows} == {"lr=0.01": "unfinished", "lr=0.003": "not started"}
    assert rows[0]["best"] is not None and not any(row["is_best"] for row in rows)  # no finished run yet
    assert json.loads((tmp_path / "g" / "results.json").read_text())["best"] is None

    lines.clear()
    rows = run_grid("train-lm", tmp_path / "g", axes, corpus_file, log=lines.append, **settings)
    assert "[1/2] lr=0.01: resuming" in lines and "resuming from step 5 (" in "\n".join(lines)
    assert [r["step"] for r in metrics(first)] == [5, 10] and [r["step"] for r in metrics(second)] == [5, 10]
    assert [r["status"] for r in rows] == ["finished", "finished"]
    assert rows[0]["best"] <= rows[1]["best"] and rows[0]["is_best"] and not rows[1]["is_best"]


def test_a_mistyped_train_command_is_named_as_the_grid_s_command(tmp_path, corpus_file):
    r = run_cli_in_process("grid", "train-lmm", corpus_file, "--lr", "1e-3,2e-3", "--out", tmp_path / "g")
    assert_clean_error(r, "Invalid value for 'COMMAND': 'train-lmm' is not one of 'train-lm', ")
    usage = run_cli_in_process("grid", "--help").stdout
    assert "Usage: charseq grid [OPTIONS] COMMAND [ARGS]...\n" in usage and "COMMAND is a train command" in usage


def test_grid_spec_errors_come_before_any_training(tmp_path, corpus_file):
    out = tmp_path / "g"
    cases = [(["--lr", "1e-3,abc"], ["--lr", "abc", "not a valid float"]),
             (["--lr", "1e-3,2e-3", "--bogus", "3"], ["no such option", "--bogus"]),
             (["--cell", "lstm,lsmt"], ["--cell", "lsmt"]),
             (["--lr", "1e-3,1e-3"], ["distinct"]),
             (["--lr", "1e-3,-1"], ["--lr must be in (0, inf)", "-1"]),  # said before lr=0.001 trains
             (["--units", "32,0"], ["--units must be at least 1"]),  # and before units=32 trains
             (["--batch-size", "8,0", "--seq-len", "16"], ["--batch-size must be a positive number, not 0"]),
             (["--seq-len", "0", "--lr", "1e-3,2e-3"], ["--seq-len must be at least 1, not 0"]),
             (["--lr", "1e-3,2e-3", "--resume"], ["--resume", "resumes unfinished runs itself"]),
             (["--max-steps", "10"], ["at least one option with values"])]
    for args, fragments in cases:
        assert_clean_error(run_cli_in_process("grid", "train-lm", corpus_file, *args, "--out", out), *fragments)
        assert not out.exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert_clean_error(run_cli_in_process("grid", "train-lm", corpus_file, "--lr", "1e-3,2e-3", "--out", mine),
                       "not a charseq grid")
    assert (mine / "notes.txt").read_text() == "keep" and len(list(mine.iterdir())) == 1


def test_a_grid_says_a_value_or_option_its_command_refuses_as_that_command_does(tmp_path, corpus_file):
    """One line, the train command's own (pointing at its --help), not the option or the command said again."""
    out = tmp_path / "g"
    for axes, alone in [(["--units", "x,8"], ["--units", "x"]), (["--lr", "1e-3,abc"], ["--lr", "abc"]),
                        (["--units", "x", "--lr", "1e-3,2e-3"], ["--units", "x"]),
                        (["--lr", "1e-3,2e-3", "--bogus", "3"], ["--bogus", "3"])]:
        grid = run_cli_in_process("grid", "train-lm", corpus_file, *axes, "--out", out)
        single = run_cli_in_process("train-lm", corpus_file, *alone, "--out", out)
        assert_clean_error(grid, "(see 'charseq train-lm --help')")
        assert (grid.returncode, grid.stderr) == (single.returncode, single.stderr)
        assert not out.exists()


def test_a_grid_refuses_every_axis_value_before_any_run_trains_as_a_single_run_does(tmp_path, files):
    """A value out of range, on any axis (integers too) and of any train command, is refused before the
    first run trains, with the message the train command (or function) gives for it alone."""
    from charseq import run_grid, train_classifier, train_seq2seq

    out = tmp_path / "g"
    for axes, alone in [(["--units", "32,0"], ["--units", "0"]), (["--layers", "1,0"], ["--layers", "0"]),
                        (["--max-steps", "10,0"], ["--max-steps", "0"]),
                        (["--units", "32,100000000", "--layers", "3"], ["--units", "100000000", "--layers", "3"])]:
        grid = run_cli_in_process("grid", "train-lm", files / "corpus.txt", *axes, "--out", out)
        single = run_cli_in_process("train-lm", files / "corpus.txt", *alone, "--out", tmp_path / "run")
        assert_clean_error(grid, *alone[:1])
        assert (grid.returncode, grid.stderr) == (single.returncode, single.stderr)
        assert not out.exists() and not (tmp_path / "run").exists()
    for command, train_fn, data, axes in [("train-seq2seq", train_seq2seq, "pairs.tsv", {"max_output_len": [8, 0]}),
                                          ("train-classifier", train_classifier, "reviews.tsv", {"max_len": [8, 0]})]:
        with pytest.raises(CharseqError) as alone:
            train_fn(files / data, tmp_path / "run", **{name: values[-1] for name, values in axes.items()}, **QUIET)
        with pytest.raises(CharseqError, match=re.escape(alone.value.message)):
            run_grid(command, out, axes, files / data, max_steps=2, log=lambda s: None)
        assert not out.exists() and not (tmp_path / "run").exists()


def test_a_grid_whose_data_is_refused_leaves_nothing(tmp_path, files):
    """Bad data stops a new grid in its first run, before any run trained: one error line, and no grid
    directory (nor the folders made for it); an empty folder given as --out stays empty."""
    (tmp_path / "one-class.tsv").write_text("text\tlabel\n" + "good film\tpos\n" * 20)
    (tmp_path / "bad.tsv").write_text("no tab on this line\n" * 20)
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [("train-lm", tmp_path / "nosuch.txt", tmp_path / "g", [], ["nosuch.txt"]),
             ("train-lm", files / "corpus.txt", tmp_path / "a" / "b" / "g", ["--seq-len", "100000"], ["--seq-len"]),
             ("train-classifier", tmp_path / "one-class.tsv", tmp_path / "g", [], ["single class"]),
             ("train-seq2seq", tmp_path / "bad.tsv", empty, [], ["bad.tsv"])]
    for command, data, out, extra, fragments in cases:
        r = run_cli_in_process("grid", command, data, "--lr", "0.1,0.2", *SMALL_FLAGS, *extra, "--out", out)
        assert_clean_error(r, *fragments)
        assert not (tmp_path / "g").exists() and not (tmp_path / "a").exists(), r.stderr
        assert empty.is_dir() and not any(empty.iterdir())


def test_undoing_a_new_grid_keeps_only_what_is_not_its_own(tmp_path):
    """Removing a stopped new grid goes through every entry, in whatever order the folder lists them:
    folders holding something of the user's stay (and so does the grid folder around them), while
    the grid's own files and empty folders go."""
    from charseq.grid import GRID_FILES, _undo_new

    out = tmp_path / "made" / "g"
    undo = _undo_new(out)
    out.mkdir(parents=True)
    kept = [f"kept-{i}" for i in range(8)]
    for name in kept:
        (out / name).mkdir()
        (out / name / "notes.txt").write_text("keep")
    for i in range(5):
        (out / f"empty-{i}").mkdir()
    for name in GRID_FILES:
        (out / name).write_text("{}")
    undo()
    assert sorted(p.name for p in out.iterdir()) == kept
    assert all((out / name / "notes.txt").read_text() == "keep" for name in kept)


def test_a_run_stopped_between_evaluations_counts_the_steps_it_trained(tmp_path, corpus_file, monkeypatch):
    """Ctrl-C at step 7 of a run evaluated every 5 steps: the checkpoint holds 7 steps, and the
    grid's table (and the studio's Runs table) says 7, not the 5 of its last evaluation."""
    from charseq import run_grid
    from charseq.studio.runs import ServedRun, describe
    from charseq.train import TrainingLoop

    original = TrainingLoop.train_step

    def stop_at_step_7(loop):
        done = original(loop)
        if loop.step == 7:
            os.kill(os.getpid(), signal.SIGINT)
        return done

    monkeypatch.setattr(TrainingLoop, "train_step", stop_at_step_7)
    settings = {**TINY_SETTINGS, "dropout": 0.0, "max_steps": 10, "eval_every": 5}
    with pytest.raises(Interrupted, match="at step 7;"):
        run_grid("train-lm", tmp_path / "g", {"lr": [1e-2]}, corpus_file, log=lambda line: None, **settings)
    assert [r["step"] for r in metrics(tmp_path / "g" / "lr=0.01")] == [5]
    [row] = json.loads((tmp_path / "g" / "results.json").read_text())["runs"]
    assert (row["status"], row["steps"], row["best_step"]) == ("unfinished", 7, 5)
    assert "\t7\t" in (tmp_path / "g" / "results.tsv").read_text().splitlines()[1]
    assert describe(ServedRun("lr=0.01", tmp_path / "g" / "lr=0.01"))["steps"] == 7
