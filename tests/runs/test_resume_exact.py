"""Resume is exact for everything recorded: a run stopped at any step (SIGTERM or Ctrl-C, which
checkpoint first, or SIGKILL, which does not) and resumed writes the same metrics.jsonl as one that
never stopped: losses, accuracies, exact match, every metric line of every head."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from charseq.errors import Interrupted
from charseq.heads.classifier.run import train_classifier, train_mnist
from charseq.heads.classifier.task import ClassifierTask
from charseq.heads.lm.run import train_lm
from charseq.heads.lm.task import LMTask
from charseq.heads.seq2seq.run import train_seq2seq
from charseq.heads.seq2seq.task import Seq2SeqTask
from helpers import CHARSEQ, REPO, read_metrics

QUIET = dict(log=lambda s: None, progress_bar=False)
SMALL = dict(units=8, embedding_dim=8, batch_size=8, eval_every=10, max_steps=30, precision="float32", **QUIET)
TIMING = ("elapsed_s", "chars_per_sec", "time")  # how long it took and when, not what was learnt


class Killed(BaseException):
    """The process dying at a step without a checkpoint (as on SIGKILL)."""


def recorded(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run)]


HEADS = {
    "classifier": (ClassifierTask, lambda files, out, **kw: train_classifier(files / "reviews.tsv", out, **SMALL, **kw),
                   lambda out: train_classifier(out=out, resume=True, **QUIET)),
    "mnist": (ClassifierTask, lambda files, out, **kw: train_mnist(out, data=files / "mnist.npz", **SMALL, **kw),
              lambda out: train_mnist(out=out, resume=True, **QUIET)),
    "seq2seq": (Seq2SeqTask, lambda files, out, **kw: train_seq2seq(files / "pairs.tsv", out, **SMALL, **kw),
                lambda out: train_seq2seq(out=out, resume=True, **QUIET)),
    "lm": (LMTask, lambda files, out, **kw: train_lm(files / "corpus.txt", out, seq_len=8, sample_length=0, **SMALL,
                                                     **kw),
           lambda out: train_lm(out=out, resume=True, **QUIET)),
}


def stopped_and_resumed(head: str, files: Path, out: Path, at: int, how: str) -> list[dict]:
    """Train `head` into `out`, stopped before step index `at` by `how` ("SIGTERM", "SIGINT": the loop
    checkpoints and stops; "SIGKILL": the process dies there), then resume it to the end."""
    task_cls, train, resume = HEADS[head]
    original = task_cls.train_step

    def train_step(self, step, optimizer, learning_rate=None):
        if step == at:
            if how == "SIGKILL":
                raise Killed
            os.kill(os.getpid(), getattr(signal, how))
        return original(self, step, optimizer, learning_rate)
    task_cls.train_step = train_step
    try:
        with pytest.raises((Interrupted, Killed)):
            train(files, out)
    finally:
        task_cls.train_step = original
    resume(out)
    return recorded(out)


@pytest.fixture(scope="module")
def uninterrupted(files, tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("whole")
    out = {}
    for head, (_, train, _) in HEADS.items():
        train(files, d / head)
        out[head] = recorded(d / head)
    return out


@pytest.mark.parametrize("head", sorted(HEADS))
def test_every_metric_line_matches_after_sigterm_between_evaluations(files, tmp_path, uninterrupted, head):
    """Stopped at step 13 (3 steps after an evaluation, as SIGTERM at step 212 with evaluations every 10)."""
    lines = stopped_and_resumed(head, files, tmp_path / "run", 13, "SIGTERM")
    assert lines == uninterrupted[head]
    assert any(k.startswith(("train_", "val_")) and k != "train_loss" for k in lines[-1])  # more than the loss


def test_every_metric_line_matches_whatever_the_step_and_the_signal(files, tmp_path_factory, uninterrupted):
    """A property over the step and the way the run is stopped (the text classifier, whose training
    accuracy since the last evaluation is what a resume lost)."""
    from hypothesis import HealthCheck, example, given, settings, strategies as st

    @settings(max_examples=int(os.environ.get("CHARSEQ_PROPERTY_EXAMPLES", "3")), deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(at=st.integers(1, 29), how=st.sampled_from(["SIGTERM", "SIGINT", "SIGKILL"]))
    @example(at=21, how="SIGTERM")
    def check(at, how):
        out = tmp_path_factory.mktemp("stopped") / "run"
        assert stopped_and_resumed("classifier", files, out, at, how) == uninterrupted["classifier"], (at, how)

    check()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_real_signals_at_random_moments_through_the_cli(files, tmp_path, how):
    """The real command line, killed by a real signal at a random moment of a longer run, resumed."""
    import random

    flags = ["--units", "8", "--embedding-dim", "8", "--batch-size", "8", "--eval-every", "10", "--max-steps", "300",
             "--precision", "float32"]
    whole = tmp_path / "whole"
    assert subprocess.run([*CHARSEQ, "train-classifier", files / "reviews.tsv", "--out", whole, *flags],
                          capture_output=True, cwd=REPO, timeout=600).returncode == 0
    rng = random.Random(how)
    stopped_mid_run = 0
    for attempt in range(3):
        out = tmp_path / f"run{attempt}"
        # Unbuffered, so each step line arrives as it is printed and the signal lands in the run, not after it.
        p = subprocess.Popen([*CHARSEQ, "train-classifier", files / "reviews.tsv", "--out", out, *flags],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wanted, sent = rng.randint(3, 25), False
        for line in p.stdout:
            if line.startswith("step ") and int(line.split()[1].rstrip(":")) >= wanted * 10:
                time.sleep(rng.random() * 0.2)
                p.send_signal(getattr(signal, how))
                sent = True
                break
        p.communicate(timeout=600)
        assert sent, f"the run ended before step {wanted * 10}"
        if recorded(out)[-1]["step"] == 300:
            continue  # the signal came after the last step: nothing was left to resume
        stopped_mid_run += 1
        assert p.returncode == (-signal.SIGKILL if how == "SIGKILL" else Interrupted.exit_code), (how, p.returncode)
        r = subprocess.run([*CHARSEQ, "train-classifier", "--out", out, "--resume"], capture_output=True, text=True,
                           cwd=REPO, timeout=600)
        assert r.returncode == 0, r.stderr
        assert "resuming from step" in r.stdout, r.stdout
        assert recorded(out) == recorded(whole), (how, wanted)
    assert stopped_mid_run, "every signal came after the run had ended: the resume was never tested"
