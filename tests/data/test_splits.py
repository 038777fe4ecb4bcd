"""Honest figures: validation comes from the training data, the test data chooses nothing, and no text
sits on both sides of a split."""

import json
import re

import numpy as np
import pytest

from charseq.data.batching import split_rows
from helpers import assert_clean_error, read_metrics, run_cli_in_process, saved_arrays, striped_images

FAST = ["--units", "32", "--embedding-dim", "16", "--precision", "float32"]
TIMING = ("elapsed_s", "chars_per_sec", "time")  # when a record was written, not what it says


@pytest.fixture(scope="module")
def mnist_pair(tmp_path_factory):
    """One small MNIST-format set twice: the second with its test labels shuffled."""
    d = tmp_path_factory.mktemp("mnist")
    (xt, yt), (xv, yv) = striped_images(512, 0), striped_images(128, 1)
    # Some training labels wrong, so that validation accuracy moves from evaluation to evaluation.
    flip = np.random.default_rng(2).random(len(yt)) < 0.15
    yt = np.where(flip, (yt + 1) % 4, yt).astype(np.uint8)
    np.savez(d / "real.npz", x_train=xt, y_train=yt, x_test=xv, y_test=yv)
    np.savez(d / "shuffled.npz", x_train=xt, y_train=yt, x_test=xv, y_test=np.random.default_rng(3).permutation(yv))
    return d


def test_test_labels_choose_nothing(tmp_path, mnist_pair):
    """Shuffling only the test labels leaves every validation figure, the stopping step and the weights
    kept unchanged; only the final test line (and evaluate) see the difference."""
    runs, outputs = {}, {}
    for name in ("real", "shuffled"):
        out = tmp_path / name
        r = run_cli_in_process("classify-mnist", "--data", mnist_pair / f"{name}.npz", "--out", out,
                               "--batch-size", "32", "--lr", "1e-2", "--patience", "2", "--epochs", "8", *FAST)
        assert r.returncode == 0, r.stderr
        runs[name], outputs[name] = out, r.stdout
    real, shuffled = ([{k: v for k, v in rec.items() if k not in TIMING} for rec in read_metrics(runs[n])]
                      for n in ("real", "shuffled"))
    assert real == shuffled and all("val_accuracy" in rec for rec in real)
    a, b = saved_arrays(runs["real"] / "best.npz"), saved_arrays(runs["shuffled"] / "best.npz")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    tests = {n: json.loads((runs[n] / "test.json").read_text()) for n in runs}
    assert tests["real"]["step"] == tests["shuffled"]["step"] and tests["real"]["test_examples"] == 128
    assert tests["real"]["test_accuracy"] > 0.9 > 0.5 > tests["shuffled"]["test_accuracy"]
    for name in runs:
        (line,) = [l for l in outputs[name].splitlines() if l.startswith("test:")]
        assert line.startswith(f"test: accuracy {tests[name]['test_accuracy']:.4f} on 128 images"), line
        assert "410 training and 102 validation images" in outputs[name]
        report = json.loads(run_cli_in_process("evaluate", "--model", runs[name], "--json").stdout)
        assert report["examples"] == 128 and report["accuracy"] == pytest.approx(tests[name]["test_accuracy"])
    # The studio lists the test score as such, beside the best validation figure.
    from charseq.studio.runs import ServedRun, describe

    listed = describe(ServedRun("real", runs["real"]))
    assert listed["best"]["metric"] == "val_accuracy"
    assert listed["test"] == {"metric": "test_accuracy", "value": tests["real"]["test_accuracy"],
                              "step": tests["real"]["step"], "examples": 128}
    # --resume keeps the split (recorded in config.json) and scores the test images again at its end.
    config = json.loads((runs["real"] / "config.json").read_text())
    assert config["data"]["val_images"] == 102
    r = run_cli_in_process("classify-mnist", "--out", runs["real"], "--resume", "--epochs", "9")
    assert r.returncode == 0, r.stderr
    assert "410 training and 102 validation images" in r.stdout and "test: accuracy" in r.stdout


def test_the_split_is_stratified_and_keeps_copies_together():
    # 200 rows, a 10% minority: always 2 of it among 20 held out, over 200 seeds.
    y = np.array([1] * 20 + [0] * 180)
    assert all((y[split_rows(None, y, 20, seed).val] == 1).sum() == 2 for seed in range(200))
    rng = np.random.default_rng(0)
    for seed in range(50):
        n = int(rng.integers(10, 80))
        labels = rng.integers(0, 6, n)
        keys = [f"t{k}" for k in rng.integers(0, n // 2 + 1, n)]
        split = split_rows(keys, labels, int(rng.integers(1, n // 3)), seed)
        assert sorted([*split.train, *split.val]) == list(range(n))
        assert not {keys[i] for i in split.train} & {keys[i] for i in split.val}  # no text on both sides
        assert set(labels[split.val]) <= set(labels[split.train])  # validation never holds an unseen label
        for c in set(labels):  # a class of two distinct texts or more is on both sides
            if len({keys[i] for i in np.flatnonzero(labels == c) if labels[keys.index(keys[i])] == c}) >= 2:
                assert c in labels[split.val] and c in labels[split.train], (seed, c)
        assert split.duplicates == n - len(set(keys))


def test_copies_of_a_text_cannot_flatter_validation(tmp_path):
    """300 random strings with random labels, each three times: validation reads near chance."""
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 10)) for _ in range(300)]
    labels = rng.integers(0, 2, 300)
    rows = [f"{t},{l}" for t, l in zip(texts, labels)] * 3
    (tmp_path / "dup.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    r = run_cli_in_process("train-classifier", tmp_path / "dup.csv", "--out", tmp_path / "run", "--units", "64",
                           "--max-steps", "600", "--seed", "1", "--precision", "float32")
    assert r.returncode == 0, r.stderr
    assert "600 of the 900 rows" in r.stdout and "kept on one side" in r.stdout
    assert max(rec["val_accuracy"] for rec in read_metrics(tmp_path / "run")) <= 0.75


def test_a_validation_file_sharing_texts_is_reported(tmp_path):
    train = "text,label\n" + "".join(f"text number {i},{i % 2}\n" for i in range(40))
    (tmp_path / "train.csv").write_text(train)
    (tmp_path / "val.csv").write_text("text,label\ntext number 3,1\ntext number 5,1\nsomething new,0\n")
    r = run_cli_in_process("train-classifier", tmp_path / "train.csv", "--val", tmp_path / "val.csv",
                           "--out", tmp_path / "run", "--max-steps", "1", *FAST)
    assert r.returncode == 0, r.stderr
    assert "2 of the 3 rows of" in r.stdout and "also occurs in" in r.stdout
    # A label the training file lacks: said as such, without listing every label.
    labels = "text,label\n" + "".join(f"text {i},L{i}\n" for i in range(200)) * 2
    (tmp_path / "many.csv").write_text(labels)
    (tmp_path / "other.csv").write_text("text,label\nabc,unknown\nabd,unknown2\n")
    r = run_cli_in_process("train-classifier", tmp_path / "many.csv", "--val", tmp_path / "other.csv",
                           "--out", tmp_path / "run2", "--max-steps", "1", *FAST)
    assert_clean_error(r, "has 2 labels that", "lacks: unknown, unknown2 (2 rows)")
    assert "L150" not in r.stderr


@pytest.mark.parametrize("command", ["train-classifier", "train-seq2seq"])
def test_a_fraction_beside_a_validation_file_is_refused(tmp_path, command):
    """--val-fraction holds out part of the training file, which --val replaces: given both, the
    fraction would be ignored, so the run is refused before it starts."""
    if command == "train-classifier":
        (tmp_path / "train.csv").write_text("text,label\n" + "".join(f"text {i},{i % 2}\n" for i in range(40)))
        (tmp_path / "val.csv").write_text("text,label\nother,1\nanother,0\n")
        files = [tmp_path / "train.csv", "--val", tmp_path / "val.csv"]
    else:
        (tmp_path / "train.tsv").write_text("".join(f"{i}+1\t{i + 1}\n" for i in range(40)))
        (tmp_path / "val.tsv").write_text("7+7\t14\n")
        files = [tmp_path / "train.tsv", "--val", tmp_path / "val.tsv"]
    r = run_cli_in_process(command, *files, "--val-fraction", "0.3", "--out", tmp_path / "run", "--max-steps", "1",
                           "--units", "32", "--precision", "float32")
    assert_clean_error(r, "--val-fraction holds out part of the training file", "give one of them")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["train-lm", "train-classifier", "classify-mnist", "train-seq2seq"])
def test_no_validation_split_means_no_validation_figures(tmp_path, mnist_pair, command):
    data = {"train-lm": ["--text", "the cat sat on the mat. " * 40, "--seq-len", "16", "--batch-size", "4"],
            "train-classifier": [tmp_path / "t.csv", "--batch-size", "8"],
            "classify-mnist": ["--data", mnist_pair / "real.npz", "--batch-size", "32"],
            "train-seq2seq": [tmp_path / "p.tsv", "--batch-size", "8"]}[command]
    (tmp_path / "t.csv").write_text("text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(40)))
    (tmp_path / "p.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in ("abc", "bcd", "cde", "def", "efg") * 4))
    out = tmp_path / "run"
    r = run_cli_in_process(command, *data, "--out", out, "--val-fraction", "0", "--max-steps", "6",
                           "--eval-every", "3", *FAST)
    assert r.returncode == 0, r.stderr
    assert "no validation split (--val-fraction 0)" in r.stdout
    records = read_metrics(out)
    assert [rec["step"] for rec in records] == [3, 6]
    assert not [k for rec in records for k in rec if k.startswith("val_")] and not re.search(r"\bval_", r.stdout)
    if command == "classify-mnist":
        test = json.loads((out / "test.json").read_text())
        assert test["chosen_by"] == "last step" and test["step"] == 6 and "512 training images, no validation" in r.stdout
    r = run_cli_in_process(command, *data, "--out", tmp_path / "bad", "--val-fraction", "0", "--patience", "2", *FAST)
    assert_clean_error(r, "--patience", "no validation split")
    assert r.stdout == "" and not (tmp_path / "bad").exists()  # refused before the data is read


def test_language_model_evaluation_offers_full_context(tmp_path):
    text = "the quick brown fox jumps over the lazy dog. " * 60
    out = tmp_path / "lm"
    r = run_cli_in_process("train-lm", "--text", text, "--out", out, "--max-steps", "30", "--seq-len", "32",
                           "--batch-size", "8", *FAST)
    assert r.returncode == 0, r.stderr
    (tmp_path / "held.txt").write_text(text[:2000])
    streams = json.loads(run_cli_in_process("evaluate", "--model", out, tmp_path / "held.txt", "--json").stdout)
    full = json.loads(run_cli_in_process("evaluate", "--model", out, tmp_path / "held.txt", "--json",
                                         "--full-context").stdout)
    assert full["full_context"] and "full_context" not in streams
    assert full["chars"] == 1999 and streams["chars"] < full["chars"]
    assert "parallel streams" in run_cli_in_process("evaluate", "--help").stdout
    r = run_cli_in_process("evaluate", "--model", out, tmp_path / "held.txt")
    assert "parallel streams (--full-context: one stream)" in r.stdout


def test_nothing_held_out_when_every_copy_would_leak(tmp_path):
    """Every label has one distinct text: nothing can be held out without its copy in training, so the
    run has no validation split, says why, and keeps no val_ figure."""
    (tmp_path / "two.tsv").write_text("text\tlabel\n" + "good film\tpos\nbad film\tneg\n" * 30)
    (tmp_path / "same.tsv").write_text("abc\tcba\n" * 20)
    for command, data, why in (("train-classifier", "two.tsv", "no label has two distinct texts"),
                               ("train-seq2seq", "same.tsv", "every pair has the same source")):
        out = tmp_path / command
        r = run_cli_in_process(command, tmp_path / data, "--out", out, "--max-steps", "2", "--batch-size", "8", *FAST)
        assert r.returncode == 0, r.stderr
        assert f"no validation split ({why}" in r.stdout
        assert not [k for rec in read_metrics(out) for k in rec if k.startswith("val_")]
