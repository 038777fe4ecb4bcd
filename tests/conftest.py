"""Shared fixtures: small corpora the tests write themselves and one tiny trained run."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
CHARSEQ = [sys.executable, "-m", "charseq.cli"]

# A small corpus with learnable structure: short lines in Chinese and English.
LINES = ["春风吹绿江南岸，明月照我还。", "The river runs to the sea, and the sea runs to the sky.",
         "白日依山尽，黄河入海流。", "One two three four, five six seven eight."]
TINY_SETTINGS = dict(units=32, layers=1, embedding_dim=16, batch_size=8, seq_len=32, eval_every=10,
                     sample_length=0, precision="float32")


def tiny_flags(**changes) -> list[str]:
    """TINY_SETTINGS as train-lm options, with `changes` (a change to None leaves that option out)."""
    settings = {k: v for k, v in {**TINY_SETTINGS, **changes}.items() if v is not None}
    return [x for k, v in settings.items() for x in (f"--{k.replace('_', '-')}", str(v))]


TINY_FLAGS = tiny_flags()


def sigint_once_logged(step: int):
    """A log callback that sends this process SIGINT once `step` has been logged (the loop then
    checkpoints and stops after that step, as on Ctrl-C)."""
    def log(line):
        if line.startswith(f"step {step}:"):
            os.kill(os.getpid(), signal.SIGINT)
    return log


def read_metrics(run) -> list[dict]:
    """The records of a run's metrics.jsonl, one per evaluation."""
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def curve(run) -> list[tuple]:
    """(step, train loss, validation loss) at each evaluation of a run."""
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in read_metrics(run)]


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "poems.txt"
    path.write_text("\n".join(LINES * 60) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, corpus_file) -> Path:
    """A language model trained for a few steps, shared by the read-only tests."""
    from charseq.heads.lm.run import train_lm

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train_lm(corpus_file, out, max_steps=30, log=lambda s: None, progress_bar=False, **TINY_SETTINGS)
    return out


@pytest.fixture(scope="session")
def studio_dir(tmp_path_factory, corpus_file) -> Path:
    """Tiny runs of all three heads (and a grid) in one directory, for `charseq serve` (tests/studio_runs.py)."""
    from studio_runs import train_studio_runs

    return train_studio_runs(tmp_path_factory.mktemp("studio"), corpus_file)


def run_cli(*args, timeout=300, **kwargs) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess (exit status, stdout and stderr as a user sees them)."""
    return subprocess.run([*CHARSEQ, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=kwargs.pop("cwd", REPO), **kwargs)


def run_cli_in_process(*args) -> subprocess.CompletedProcess:
    """The same command line run in this process: no TensorFlow start-up per call, for the many
    bad-input checks (a few tests per command still go through a real subprocess)."""
    from click.testing import CliRunner

    from charseq.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def assert_clean_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """A user error: non-zero exit, one line on stderr naming the problem, no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    err = result.stderr.strip()
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    assert len(err.splitlines()) == 1, f"expected one line, got:\n{err}"
    assert err.startswith("Error:"), err
    for fragment in fragments:
        assert fragment.lower() in err.lower(), f"{fragment!r} not in {err!r}"


def snapshot(root: Path) -> dict:
    """Every file under `root` (and the directory itself) with its bytes: to prove nothing changed."""
    if not root.exists() and not root.is_symlink():
        return {}
    files = {".": "dir" if root.is_dir() else root.read_bytes()}
    if root.is_dir():
        for p in sorted(root.rglob("*")):
            files[str(p.relative_to(root))] = p.read_bytes() if p.is_file() else ("dir" if p.is_dir() else "other")
    return files


def striped_images(n: int, seed: int):
    """A learnable image set: class k has a bright horizontal band starting at row 6k, plus noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n)
    x = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(y):
        x[i, 6 * k + 2: 6 * k + 6, 4:24] = 250
    return x, y.astype(np.uint8)
