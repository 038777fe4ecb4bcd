"""Fixtures shared across the suite: small data sets the tests write themselves and tiny trained runs,
made once per test run and shared by its workers, read-only: a test that changes a run copies it first
(helpers live in helpers.py)."""

import atexit
import contextlib
import fcntl
import os
import random
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The workers share the cores: each (and each process it starts) computes on one TensorFlow thread
# instead of one per core, which would oversubscribe the cores for the tiny models tested here. The
# kernels' split over several threads is checked on its own (tests/kernels/test_compiled_rnn.py).
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")  # and one inter-op thread, not one per core

from helpers import (CHROMIUM, CHROMIUM_FLAGS, KINDS, LINES, QUIET, command, run_cli_in_process,  # noqa: E402
                     snapshot, striped_images)

# The files that take longest, longest first. Each worker takes whole files, the next one when it is
# nearly done (pytest's -n 3 --dist loadfile, in this order with --no-loadscope-reorder): started last,
# a long file would leave the other workers idle at the end. The rest follow in their usual order.
LONGEST_FIRST = ["studio/test_studio_page.py", "runs/test_reliability.py", "studio/test_studio_safety.py",
                 "runs/test_force_resume.py", "runs/test_resume_exact.py", "training/test_distribute.py",
                 "classifier/test_classifier.py", "training/test_plot_grid.py", "lm/test_lm.py",
                 "kernels/test_compiled_rnn.py", "runs/test_write_failures.py", "studio/test_studio_live.py",
                 "seq2seq/test_seq2seq.py", "cli/test_input_edges.py", "data/test_splits.py",
                 "studio/test_studio_api.py", "api/test_api.py", "cli/test_finite.py", "export/test_export.py",
                 "package/test_bench.py"]


def pytest_collection_modifyitems(config, items):
    rank = {f"tests/{name}": i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: a file's order stays


def pytest_unconfigure(config):
    """A worker of -n 3 has sent its results by now: it leaves without tearing TensorFlow down
    (seconds of freeing memory at the end of every test run, while the run waits for it)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        atexit.register(leave_now)


def leave_now():
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@contextlib.contextmanager
def made_once(tmp_path_factory, name: str, make):
    """The folder `name` that `make(folder)` fills, once per test run: the workers of `-n 3` share it
    (the first to ask makes it, the other waits for it). Leaving the block (at the end of the test
    run) checks that no test changed it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the folder all the workers' temporary folders are in
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a failed attempt left
            folder.mkdir()
            make(folder)
            done.touch()
    before = snapshot(folder)
    yield folder
    assert snapshot(folder) == before, f"a test changed the shared {name}; copy it before changing it"


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    def make(d):
        (d / "poems.txt").write_text("\n".join(LINES * 60) + "\n", encoding="utf-8")
    with made_once(tmp_path_factory, "corpus", make) as d:
        yield d / "poems.txt"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, corpus_file) -> Path:
    """A language model trained for a few steps, shared by the read-only tests."""
    from charseq.heads.lm.run import train_lm
    from helpers import TINY_SETTINGS

    def make(d):
        train_lm(corpus_file, d / "tiny", max_steps=30, **QUIET, **TINY_SETTINGS)
    with made_once(tmp_path_factory, "runs", make) as d:
        yield d / "tiny"


@pytest.fixture(scope="session")
def files(tmp_path_factory) -> Path:
    """Data for every train command: corpus.txt (and other.txt), reviews.tsv, pairs.tsv, mnist.npz."""
    with made_once(tmp_path_factory, "files", make_files) as d:
        yield d


def make_files(d):
    import numpy as np

    from charseq.data.pairs import make_pairs

    lines = ["春风吹绿江南岸，明月照我还。", "The river runs to the sea, and the sea runs to the sky."]
    (d / "corpus.txt").write_text("\n".join(lines * 60) + "\n", encoding="utf-8")
    (d / "other.txt").write_text("\n".join(reversed(lines * 60)) + "\n", encoding="utf-8")
    rng = random.Random(0)
    rows = ["text\tlabel"] + [f"{w} {w} film\t{'pos' if w in ('good', 'great') else 'neg'}"
                              for w in rng.choices(["good", "great", "bad", "awful"], k=200)]
    (d / "reviews.tsv").write_text("\n".join(rows) + "\n")
    pairs = make_pairs("reverse", 300, seed=0, length=(2, 5))
    (d / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    x = np.random.default_rng(0).integers(0, 255, size=(64, 28, 28), dtype=np.uint8)
    y = np.arange(64, dtype=np.uint8) % 2
    np.savez(d / "mnist.npz", x_train=x, y_train=y, x_test=x[:16], y_test=y[:16])


@pytest.fixture(scope="session")
def finished(tmp_path_factory, files) -> dict:
    """One finished tiny run of each train command, read-only (copied before a test changes it)."""
    def make(d):
        for kind in KINDS:
            r = run_cli_in_process(*command(kind, files, d / kind))
            assert r.returncode == 0, r.stderr + r.stdout
    with made_once(tmp_path_factory, "finished", make) as d:
        yield {kind: d / kind for kind in KINDS}


@pytest.fixture(scope="session")
def studio_dir(tmp_path_factory, corpus_file) -> Path:
    """Tiny real runs of all three heads in one served directory, read-only:

        poems                   language model (40 steps on the test corpus)
        grid/lr=0.003, lr=0.01  a grid of two language models
        sentiment               text classifier
        digits                  row-by-row image classifier (striped images, learnable)
        reverse                 encoder-decoder that reverses short strings
    """
    with made_once(tmp_path_factory, "studio", lambda root: make_studio(root, corpus_file)) as root:
        yield root / "served"


def make_studio(root, corpus_file):
    import numpy as np

    from charseq.data.pairs import make_pairs
    from charseq.grid import run_grid
    from charseq.heads.classifier.run import train_classifier, train_mnist
    from charseq.heads.lm.run import train_lm
    from charseq.heads.seq2seq.run import train_seq2seq

    lm = dict(units=32, layers=2, embedding_dim=16, batch_size=8, seq_len=32, eval_every=10, sample_length=0,
              precision="float32", **QUIET)
    small = dict(units=32, embedding_dim=16, precision="float32", **QUIET)
    served, data = root / "served", root / "data"
    data.mkdir(parents=True)
    train_lm(corpus_file, served / "poems", max_steps=40, **lm)
    grid = {k: v for k, v in lm.items() if k != "progress_bar"}  # the grid sets it itself
    run_grid("train-lm", served / "grid", {"lr": [3e-3, 1e-2]}, corpus_file, max_steps=20, **grid)

    rng = np.random.default_rng(0)
    good, bad = ["a good film", "great fun", "truly wonderful"], ["a bad film", "awful mess", "truly boring"]
    rows = ["sentence\tlabel"] + [f"{rng.choice(good if p else bad)}, {rng.choice(['really', 'so'])}\t{'pos' if p else 'neg'}"
                                  for p in rng.random(240) < 0.5]
    (data / "reviews.tsv").write_text("\n".join(rows) + "\n")
    # Its reviews are at most 23 characters long: the studio shows what a longer text loses.
    train_classifier(data / "reviews.tsv", served / "sentiment", epochs=4, eval_every=20, batch_size=16, max_len=24,
                     **small)

    (xt, yt), (xv, yv) = striped_images(384, 0), striped_images(64, 1)
    np.savez(data / "stripes.npz", x_train=xt, y_train=yt, x_test=xv, y_test=yv)
    train_mnist(served / "digits", data / "stripes.npz", epochs=6, eval_every=20, batch_size=32, **small)

    pairs = make_pairs("reverse", 2000, seed=0, length=(2, 6))
    (data / "reverse.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    train_seq2seq(data / "reverse.tsv", served / "reverse", epochs=6, eval_every=100, batch_size=64, **small)


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium through Playwright, launched once per test run (per worker: one Playwright
    per process, which the studio's and the docs' browser tests share). The name evil.example
    resolves to this machine, as a DNS-rebinding attacker's name would."""
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (charseq[test])")
    flags = [*CHROMIUM_FLAGS, "--host-resolver-rules=MAP evil.example 127.0.0.1"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=flags)
        yield browser
        browser.close()
