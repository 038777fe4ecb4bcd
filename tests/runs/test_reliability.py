"""Fault injection: kills, full disks, read-only directories, NaN losses, damaged and crafted
files, memory limits. Each must end with a clear one-line message and an intact run directory.

The long kill/resume variants are marked slow: `scripts/test.sh -m slow -k kill`.
"""

import json
import operator
import os
import random
import resource
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from charseq.data.pairs import make_pairs
from charseq.errors import CharseqError, Interrupted
from charseq.heads.lm.run import load_lm, train_lm
from charseq.heads.lm.task import LMTask
from charseq.runs import RunDir
from helpers import (CHARSEQ, REPO, TINY_SETTINGS, assert_clean_error, curve as losses, read_metrics, run_cli,
                      run_cli_in_process, saved_arrays, saved_meta, sigint_once_logged, snapshot, tiny_flags)

TINY_FLAGS = tiny_flags(eval_every=None)  # the tests here choose their own --eval-every


def steps_logged(run: Path) -> list[int]:
    return [r["step"] for r in read_metrics(run)]


def checkpoint_step(run: Path) -> int:
    return saved_meta(run / "checkpoint.npz")["progress"]["step"]


def no_temporary_files(run: Path) -> list[Path]:
    return [p for p in run.rglob("*") if p.name.endswith(".tmp") or ".new-" in p.name]


# ----------------------------------------------------------------------------- kill and resume
@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    """Training files for the three train commands."""
    d = tmp_path_factory.mktemp("kill")
    lines = ["春风吹绿江南岸，明月照我还。", "The river runs to the sea, and the sea runs to the sky."]
    (d / "corpus.txt").write_text("\n".join(lines * 80) + "\n", encoding="utf-8")
    rng = random.Random(0)
    good, bad = ["good", "great", "fine", "lovely"], ["bad", "awful", "poor", "dull"]
    rows = ["text\tlabel"]
    for _ in range(400):
        positive = rng.random() < 0.5
        words = rng.choices(good if positive else bad, k=3) + rng.choices(["film", "plot", "cast"], k=2)
        rows.append(" ".join(rng.sample(words, len(words))) + f"\t{'pos' if positive else 'neg'}")
    (d / "reviews.tsv").write_text("\n".join(rows) + "\n")
    pairs = make_pairs("reverse", 600, seed=0, length=(2, 5))
    (d / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    return d


def train_command(kind: str, files: Path, out: Path, max_steps: int, every: int) -> list[str]:
    common = ["--out", str(out), "--max-steps", str(max_steps), "--eval-every", str(every), "--batch-size", "16",
              "--units", "32", "--embedding-dim", "16", "--precision", "float32"]
    if kind == "train-lm":
        return ["train-lm", str(files / "corpus.txt"), *common, "--layers", "1", "--seq-len", "32",
                "--sample-length", "0", "--dropout", "0"]
    if kind == "train-classifier":
        return ["train-classifier", str(files / "reviews.tsv"), *common]
    return ["train-seq2seq", str(files / "pairs.tsv"), *common]


def kill_and_resume(kind: str, files: Path, out: Path, kills: int, max_steps: int, every: int, seed: int):
    """Start training, SIGKILL it at a random moment `kills` times (resuming each time), stop it
    once with SIGTERM, then let it finish. Returns the final stdout."""
    rng = random.Random(seed)
    command = [*CHARSEQ, *train_command(kind, files, out, max_steps, every)]
    resume = []
    for attempt in range(kills + 1):
        start = checkpoint_step(out) if (out / "checkpoint.npz").exists() else -1
        proc = subprocess.Popen(command + resume, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=REPO)
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None and not (
                (out / "checkpoint.npz").exists() and checkpoint_step(out) > start):
            time.sleep(0.05)
        before = checkpoint_step(out)
        time.sleep(rng.uniform(0.0, 1.5))  # a random moment: mid-step, mid-evaluation or mid-write
        finished = proc.poll() is not None
        if attempt < kills:
            proc.kill()
        else:
            proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
        assert "Traceback" not in stderr, stderr
        if attempt == kills and not finished and checkpoint_step(out) < max_steps:
            # (a SIGTERM after the last step, while the process shuts down, ends it the usual way)
            assert proc.returncode == 130 and "checkpoint saved" in stderr, (proc.returncode, stderr)
        printed = [int(line.split()[1].rstrip(":")) for line in stdout.splitlines() if line.startswith("step ")]
        # Every evaluation printed was checkpointed first, so at most one interval of work is lost.
        at = checkpoint_step(out)
        assert at >= max(printed + [before]), (kind, printed, at)
        if attempt < kills:  # a SIGKILL mid-write may leave a hidden temporary file, and only that
            assert all(p.name.startswith(".") and p.name.endswith(".tmp") for p in no_temporary_files(out))
        else:  # a SIGTERM is a clean stop
            assert no_temporary_files(out) == []
        resume = ["--resume"]
    final = subprocess.run([*CHARSEQ, kind, "--out", str(out), "--resume"],
                           capture_output=True, text=True, cwd=REPO, timeout=300)
    assert final.returncode == 0, final.stderr
    assert no_temporary_files(out) == []  # each --resume swept what a killed run left
    assert "resuming from step" in final.stdout
    assert checkpoint_step(out) == max_steps
    assert steps_logged(out) == list(range(every, max_steps + 1, every)), "duplicated or missing evaluations"
    return final.stdout


@pytest.mark.slow  # the default suite kills train-lm (below); the other heads' Ctrl-C/resume run in-process
@pytest.mark.parametrize("kind", ["train-classifier", "train-seq2seq"])
def test_sigkill_at_a_random_moment_then_resume(tmp_path, task_files, kind):
    kill_and_resume(kind, task_files, tmp_path / "run", kills=1, max_steps=150, every=30, seed=len(kind))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["train-lm", "train-classifier", "train-seq2seq"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_many_sigkills_then_resume(tmp_path, task_files, kind, seed):
    kill_and_resume(kind, task_files, tmp_path / "run", kills=6, max_steps=1000, every=40, seed=seed)


@pytest.mark.slow  # 30 s; in the default suite a real SIGKILL is test_sigkill_during_force_leaves_a_loadable_run's
def test_killed_and_resumed_lm_matches_an_uninterrupted_run(tmp_path, task_files):
    out = tmp_path / "killed"
    kill_and_resume("train-lm", task_files, out, kills=2, max_steps=200, every=20, seed=7)
    straight = tmp_path / "straight"
    r = run_cli_in_process(*train_command("train-lm", task_files, straight, 200, 20))
    assert r.returncode == 0, r.stderr

    assert [a[0] for a in losses(out)] == [a[0] for a in losses(straight)]
    for a, b in zip(losses(straight), losses(out)):
        assert b[1:] == pytest.approx(a[1:], rel=1e-4)


# ----------------------------------------------------------------------------- reproducibility
def test_same_seed_same_losses_and_resume_is_seamless_with_dropout(tmp_path, corpus_file):
    settings = {**TINY_SETTINGS, "dropout": 0.3, "eval_every": 5}

    train_lm(corpus_file, tmp_path / "a", max_steps=20, log=lambda s: None, progress_bar=False, **settings)
    train_lm(corpus_file, tmp_path / "b", max_steps=20, log=lambda s: None, progress_bar=False, **settings)
    assert losses(tmp_path / "a") == losses(tmp_path / "b")  # bit for bit, every evaluation
    train_lm(corpus_file, tmp_path / "c", max_steps=20, log=lambda s: None, progress_bar=False,
             **{**settings, "seed": 1})
    assert losses(tmp_path / "c") != losses(tmp_path / "a")
    # Stopped by Ctrl-C at step 12 and resumed: the dropout masks continue where they were.
    def stop_at_12(line):
        if line.startswith("step 10:"):
            stop_signal["armed"] = True

    stop_signal = {"armed": False}
    original = LMTask.train_step

    def train_step(self, step, optimizer, learning_rate=None):
        if stop_signal["armed"] and step == 12:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, step, optimizer, learning_rate)
    LMTask.train_step = train_step
    try:
        with pytest.raises(Interrupted, match="at step 13"):
            train_lm(corpus_file, tmp_path / "d", max_steps=20, log=stop_at_12, progress_bar=False, **settings)
    finally:
        LMTask.train_step = original
    train_lm(out=tmp_path / "d", resume=True, log=lambda s: None, progress_bar=False)
    for a, d in zip(losses(tmp_path / "a"), losses(tmp_path / "d")):
        assert d == pytest.approx(a, rel=1e-5)


def test_input_dropout_is_reproducible_recorded_and_off_when_evaluating(tmp_path, corpus_file):
    settings = {**TINY_SETTINGS, "dropout": 0.0, "eval_every": 5}
    for name, rate in (("a", 0.3), ("b", 0.3), ("none", 0.0)):
        train_lm(corpus_file, tmp_path / name, max_steps=10, log=lambda s: None, progress_bar=False,
                 input_dropout=rate, **settings)
    assert losses(tmp_path / "a") == losses(tmp_path / "b")  # its masks follow --seed like the others'
    assert losses(tmp_path / "a") != losses(tmp_path / "none")
    assert json.loads((tmp_path / "a" / "config.json").read_text())["model"]["input_dropout"] == 0.3
    # Off outside training: the model's prediction does not depend on the rate it trained with.
    from charseq.backbone import RecurrentBackbone
    ids = np.random.default_rng(0).integers(1, 20, (2, 7))
    plain = RecurrentBackbone(cell="gru", units=8, vocab_size=20)
    dropped = RecurrentBackbone(cell="gru", units=8, vocab_size=20, input_dropout=0.5)
    plain(ids), dropped(ids)
    dropped.set_weights(plain.get_weights())
    np.testing.assert_array_equal(plain(ids)[0], dropped(ids)[0])
    assert not np.array_equal(plain(ids)[0], dropped(ids, training=True)[0])


def test_ema_evaluates_and_keeps_the_average_and_resumes_it(tmp_path, corpus_file):
    settings = {**TINY_SETTINGS, "dropout": 0.0, "eval_every": 10}
    quiet = dict(log=lambda s: None, progress_bar=False)
    train_lm(corpus_file, tmp_path / "raw", max_steps=40, **quiet, **settings)
    train_lm(corpus_file, tmp_path / "ema", max_steps=40, ema=0.9, **quiet, **settings)
    raw, ema = read_metrics(tmp_path / "raw"), read_metrics(tmp_path / "ema")
    # The average changes nothing the optimizer does, only the weights evaluated and kept.
    assert [r["train_loss"] for r in ema] == pytest.approx([r["train_loss"] for r in raw], rel=1e-5)
    assert all(abs(a["val_loss"] - b["val_loss"]) > 1e-4 for a, b in zip(raw, ema))
    assert json.loads((tmp_path / "ema" / "config.json").read_text())["train"]["ema"] == 0.9
    kept = saved_arrays(tmp_path / "ema" / "best.npz", model_only=True)
    last = saved_arrays(tmp_path / "ema" / "checkpoint.npz", model_only=True)
    assert kept and any(not np.array_equal(kept[k], last[k]) for k in kept)  # the average, not the raw weights
    # Stopped at step 20 and resumed: the average went into the checkpoint and goes on from there.
    with pytest.raises(Interrupted, match="stopped by SIGINT at step 20"):
        train_lm(corpus_file, tmp_path / "part", max_steps=40, ema=0.9, log=sigint_once_logged(20),
                 progress_bar=False, **settings)
    train_lm(out=tmp_path / "part", resume=True, **quiet)
    assert [r["val_loss"] for r in read_metrics(tmp_path / "part")] == pytest.approx(
        [r["val_loss"] for r in ema], rel=1e-4)
    r = run_cli_in_process("train-lm", corpus_file, "--out", tmp_path / "bad", "--ema", "1", *TINY_FLAGS)
    assert_clean_error(r, "--ema must be in [0, 1)")
    assert not (tmp_path / "bad").exists()


def test_a_closed_output_stops_the_run_where_its_checkpoint_is(tmp_path, corpus_file):
    """`charseq train-lm ... | head`: the reader going away is no failure of the run; it stands
    stopped at its last checkpoint, and --resume continues it."""
    def closed_after_step_10(line):
        if line.startswith("step 20:"):
            raise BrokenPipeError(32, "Broken pipe")
    out = tmp_path / "run"
    with pytest.raises(BrokenPipeError):
        train_lm(corpus_file, out, max_steps=40, log=closed_after_step_10, progress_bar=False,
                 **{**TINY_SETTINGS, "eval_every": 10})
    status = RunDir(out).status()
    assert status["status"] == "stopped" and "continue with --resume" in status["message"], status
    assert json.loads((out / "status.json").read_text())["step"] == checkpoint_step(out) == 20
    train_lm(out=out, resume=True, log=lambda s: None, progress_bar=False)
    assert steps_logged(out) == [10, 20, 30, 40]


def test_status_keeps_up_with_every_checkpoint(tmp_path, corpus_file, monkeypatch):
    """A SIGKILL leaves status.json as it was last written: it must say at least the step of the
    checkpoint --resume goes on from, however rarely the progress is recorded otherwise."""
    import charseq.train

    monkeypatch.setattr(charseq.train, "STATUS_EVERY_S", 10 ** 9)
    out, recorded = tmp_path / "run", {}

    def read_status_when_logged(line):  # each evaluation is said after its checkpoint was written
        if line.startswith("step "):
            recorded[checkpoint_step(out)] = json.loads((out / "status.json").read_text())["step"]
    train_lm(corpus_file, out, max_steps=30, log=read_status_when_logged, progress_bar=False,
             **{**TINY_SETTINGS, "eval_every": 10})
    assert recorded == {10: 10, 20: 20, 30: 30}


@pytest.mark.parametrize("kind", ["classifier", "seq2seq"])
def test_classifier_and_seq2seq_resume_seamlessly(tmp_path, task_files, monkeypatch, kind):
    """Ctrl-C between evaluations, then --resume: the same losses as a run that never stopped."""
    from charseq.heads.classifier.run import train_classifier
    from charseq.heads.classifier.task import ClassifierTask
    from charseq.heads.seq2seq.run import train_seq2seq
    from charseq.heads.seq2seq.task import Seq2SeqTask

    task_class, train_fn, data = {"classifier": (ClassifierTask, train_classifier, "reviews.tsv"),
                                  "seq2seq": (Seq2SeqTask, train_seq2seq, "pairs.tsv")}[kind]
    settings = dict(units=16, embedding_dim=8, batch_size=16, dropout=0.3, precision="float32", max_steps=24,
                    eval_every=8, log=lambda s: None, progress_bar=False)
    train_fn(task_files / data, tmp_path / "straight", **settings)
    original = task_class.train_step

    def interrupted_at_13(self, step, optimizer):
        if step == 12:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, step, optimizer)
    monkeypatch.setattr(task_class, "train_step", interrupted_at_13)
    with pytest.raises(Interrupted, match="at step 13"):
        train_fn(task_files / data, tmp_path / "stopped", **settings)
    monkeypatch.setattr(task_class, "train_step", original)
    train_fn(out=tmp_path / "stopped", resume=True, log=lambda s: None, progress_bar=False)

    straight, stopped = losses(tmp_path / "straight"), losses(tmp_path / "stopped")
    assert [r[0] for r in stopped] == [r[0] for r in straight] == [8, 16, 24]
    for a, b in zip(straight, stopped):
        assert b == pytest.approx(a, rel=1e-5)


# ----------------------------------------------------------------------------- numerical faults
def test_diverging_loss_stops_with_a_clear_message(tmp_path, corpus_file):
    out = tmp_path / "nan"
    r = run_cli_in_process("train-lm", corpus_file, "--out", out, "--max-steps", "60", "--eval-every", "10", *TINY_FLAGS,
                           "--optimizer", "sgd", "--lr", "1e38", "--clip-norm", "0")  # weights past float32's range at once
    assert_clean_error(r, "the loss became", "--lr")
    assert (out / "config.json").exists()


def _poison_at(step_to_poison, loss_seen=False):
    """A train_step that, at one step, corrupts a weight (as an overflow would) and returns NaN; with
    `loss_seen`, the step's own loss, computed before its update overflowed, as a real step does."""
    original = LMTask.train_step

    def train_step(self, step, optimizer, learning_rate=None):
        loss = original(self, step, optimizer, learning_rate)
        if step + 1 == step_to_poison:
            weight = self.model.trainable_variables[0]
            weight.assign(weight * np.nan)
            return loss if loss_seen else loss * np.nan
        return loss
    return train_step


def checkpoint_is_finite(run: Path) -> bool:
    return all(np.isfinite(a).all() for a in saved_arrays(run / "checkpoint.npz").values() if a.dtype.kind == "f")


def test_nan_keeps_the_last_good_checkpoint(tmp_path, corpus_file, monkeypatch):
    monkeypatch.setattr(LMTask, "train_step", _poison_at(25))
    out = tmp_path / "run"
    with pytest.raises(CharseqError, match="loss became nan at step 30.*checkpoint \\(step 20\\) is kept"):
        train_lm(corpus_file, out, max_steps=40, log=lambda s: None, progress_bar=False, **TINY_SETTINGS)
    assert checkpoint_step(out) == 20
    model, _, _ = load_lm(out)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_weights_overflowed_at_an_evaluation_step_keep_the_last_good_checkpoint(tmp_path, corpus_file, monkeypatch):
    """The update of step 20 overflows after its loss was computed: nothing of it is evaluated or
    checkpointed, and the checkpoint of step 10 is the one --resume finds."""
    monkeypatch.setattr(LMTask, "train_step", _poison_at(20, loss_seen=True))
    out = tmp_path / "run"
    with pytest.raises(CharseqError, match="weights became inf or nan at step 20.*checkpoint \\(step 10\\) is kept"):
        train_lm(corpus_file, out, max_steps=40, log=lambda s: None, progress_bar=False, **TINY_SETTINGS)
    assert checkpoint_step(out) == 10 and checkpoint_is_finite(out)
    assert steps_logged(out) == [10]


def test_weights_overflowed_on_the_first_step_leave_no_run(tmp_path, corpus_file, monkeypatch):
    monkeypatch.setattr(LMTask, "train_step", _poison_at(1, loss_seen=True))
    out = tmp_path / "run"
    with pytest.raises(CharseqError, match="weights became inf or nan at step 1.*no checkpoint was written"):
        train_lm(corpus_file, out, max_steps=40, log=lambda s: None, progress_bar=False, **TINY_SETTINGS)
    assert not out.exists()


def test_on_nan_skip_rolls_back_weights_overflowed_at_an_evaluation_step(tmp_path, corpus_file, monkeypatch):
    monkeypatch.setattr(LMTask, "train_step", _poison_at(20, loss_seen=True))
    out = tmp_path / "run"
    lines = []
    train_lm(corpus_file, out, max_steps=40, log=lines.append, progress_bar=False, on_nan="skip", **TINY_SETTINGS)
    assert any("back to the weights of step 10" in line for line in lines), lines
    assert checkpoint_step(out) == 40 and checkpoint_is_finite(out)
    assert all(np.isfinite(r["val_loss"]) for r in read_metrics(out))


def test_on_nan_skip_rolls_back_and_finishes(tmp_path, corpus_file, monkeypatch):
    monkeypatch.setattr(LMTask, "train_step", _poison_at(25))
    out = tmp_path / "run"
    lines = []
    train_lm(corpus_file, out, max_steps=40, log=lines.append, progress_bar=False, on_nan="skip", **TINY_SETTINGS)
    assert any("step 25: the loss became nan; back to the weights of step 20" in line for line in lines), lines
    assert checkpoint_step(out) == 40 and steps_logged(out) == [10, 20, 30, 40]
    records = read_metrics(out)
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"]) for r in records)


def test_gradient_clipping_is_on_by_default():
    """A huge gradient moves the weights by at most lr x clip-norm by default, and freely with --clip-norm 0."""
    import keras

    from charseq.train import TrainConfig, make_optimizer

    def step_size(**settings):
        weights = keras.Variable(np.zeros(10, np.float32))
        make_optimizer(TrainConfig(optimizer="sgd", lr=1.0, **settings)).apply_gradients(
            [(np.full(10, 1e6, np.float32), weights)])
        return float(np.linalg.norm(weights.numpy()))

    default = TrainConfig().clip_norm
    assert 0 < step_size() <= default * 1.0001
    assert step_size(clip_norm=0) == pytest.approx(1e6 * np.sqrt(10), rel=1e-5)


# ----------------------------------------------------------------------------- disk and files
def _train_then_resume_under(tmp_path, corpus_file, out, preexec=None, before_resume=None):
    r = run_cli_in_process("train-lm", corpus_file, "--out", out, "--max-steps", "20", "--eval-every", "10", *TINY_FLAGS)
    assert r.returncode == 0, r.stderr
    if before_resume:
        before_resume()
    return run_cli("train-lm", "--out", out, "--resume", "--max-steps", "40", preexec_fn=preexec)


def test_file_size_limit_during_training_keeps_the_checkpoint(tmp_path, corpus_file):
    out = tmp_path / "run"

    def small_files():  # writes over 60 kB fail with EFBIG (Python ignores SIGXFSZ), like a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
    r = _train_then_resume_under(tmp_path, corpus_file, out, preexec=small_files)
    assert_clean_error(r, "cannot write a checkpoint", "last good checkpoint (step 20) is intact", "--resume")
    assert checkpoint_step(out) == 20 and no_temporary_files(out) == []
    r = run_cli_in_process("train-lm", "--out", out, "--resume", "--max-steps", "40")
    assert r.returncode == 0, r.stderr
    assert checkpoint_step(out) == 40 and steps_logged(out) == [10, 20, 30, 40]


def test_resume_removes_what_a_killed_writer_left_and_readers_do_not(tmp_path, corpus_file):
    """A SIGKILL mid-write leaves `.NAME.XXXX.tmp`; the next --resume removes it. A reader
    (generate, evaluate) leaves it alone: it may be the file of a writer still running."""
    out = tmp_path / "run"
    r = run_cli_in_process("train-lm", corpus_file, "--out", out, "--max-steps", "10", "--eval-every", "10", "--keep", "2",
                           *TINY_FLAGS)
    assert r.returncode == 0, r.stderr
    left = [out / ".best.npz.k1ll3d.tmp", out / ".checkpoint.npz.x9y8z7.tmp", out / "checkpoints" / ".step-00000010.npz.tmp"]
    for path in left:
        path.write_bytes(b"half a file")
    assert run_cli_in_process("generate", "--model", out, "--length", "5").returncode == 0
    assert all(path.exists() for path in left)
    r = run_cli_in_process("train-lm", "--out", out, "--resume", "--max-steps", "20")
    assert r.returncode == 0, r.stderr
    assert no_temporary_files(out) == [] and checkpoint_step(out) == 20 and steps_logged(out) == [10, 20]
    assert "removed 3 half-written file(s)" in r.stdout and "checkpoints/.step-00000010.npz.tmp" in r.stdout


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MB tmpfs, where the platform lets the tests mount one (root with CAP_SYS_ADMIN)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.slow  # the file-size-limit test above takes the same path on every platform
def test_full_disk_during_training_keeps_the_checkpoint(small_tmpfs, corpus_file):
    out = small_tmpfs / "run"
    filler = small_tmpfs / "filler"

    def fill_disk():
        free = os.statvfs(small_tmpfs).f_bavail * os.statvfs(small_tmpfs).f_frsize
        filler.write_bytes(b"\0" * max(0, free - 40_000))  # room for metrics, not for a checkpoint
    r = _train_then_resume_under(small_tmpfs, corpus_file, out, before_resume=fill_disk)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "No space left on device" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert checkpoint_step(out) == 20 and no_temporary_files(out) == []
    filler.unlink()
    r = run_cli_in_process("train-lm", "--out", out, "--resume", "--max-steps", "40")
    assert r.returncode == 0, r.stderr
    assert checkpoint_step(out) == 40


@pytest.mark.slow
def test_read_only_run_directory(small_tmpfs, corpus_file):
    out = small_tmpfs / "run"

    def read_only():
        subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    r = _train_then_resume_under(small_tmpfs, corpus_file, out, before_resume=read_only)
    assert_clean_error(r, "read-only file system")
    before = snapshot(out)
    for where, force in ((out, ["--force"]), (small_tmpfs / "new", [])):  # a run there is untouched
        r = run_cli_in_process("train-lm", corpus_file, "--out", where, "--max-steps", "2", *TINY_FLAGS, *force)
        assert_clean_error(r, f"cannot create run directory {where} (Read-only file system); make the folder "
                           "that holds it writable and train again")
    assert snapshot(out) == before
    subprocess.run(["mount", "-o", "remount,rw", str(small_tmpfs)], check=True)
    assert checkpoint_step(out) == 20 and no_temporary_files(out) == []
    r = run_cli_in_process("train-lm", corpus_file, "--out", small_tmpfs / "new", "--max-steps", "2", *TINY_FLAGS)
    assert r.returncode == 0, r.stderr


def test_unwritable_out_is_a_clear_error(tmp_path, corpus_file):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = run_cli_in_process("train-lm", corpus_file, "--out", blocker / "run", "--max-steps", "2", *TINY_FLAGS)
    assert_clean_error(r)
    assert blocker.read_text() == "not a directory"


# ----------------------------------------------------------------------------- checkpoints
def test_keep_bounds_the_checkpoints_and_a_damaged_latest_falls_back(tmp_path, corpus_file):
    out = tmp_path / "run"
    r = run_cli_in_process("train-lm", corpus_file, "--out", out, "--max-steps", "40", "--eval-every", "10", "--keep", "2",
                           *TINY_FLAGS)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000030.npz", "step-00000040.npz"]
    # The latest is damaged (and so is its hard-linked copy): resuming says so and takes step 30.
    data = (out / "checkpoint.npz").read_bytes()
    (out / "checkpoint.npz").unlink()
    (out / "checkpoints" / "step-00000040.npz").unlink()
    (out / "checkpoint.npz").write_bytes(data[: len(data) // 2])
    r = run_cli_in_process("train-lm", "--out", out, "--resume", "--max-steps", "50")
    assert r.returncode == 0, r.stderr
    assert "checkpoint.npz is corrupt" in r.stdout and "resuming from step 30" in r.stdout
    assert steps_logged(out) == [10, 20, 30, 40, 50]


def test_damaged_checkpoint_without_history_names_the_file(tmp_path, trained_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    data = bytearray((run / "checkpoint.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (run / "checkpoint.npz").write_bytes(bytes(data))
    r = run_cli_in_process("train-lm", "--out", run, "--resume", "--max-steps", "40")
    # What is left to do: the run's best weights still serve, and --force trains it again.
    assert_clean_error(r, "checkpoint.npz is corrupt", "best weights (best.npz) still serve generate",
                       "use --force to train the run again from the start")
    assert run_cli_in_process("generate", "--model", run, "--length", "5", "--seed", "1").returncode == 0


def test_checkpoint_of_another_format_is_refused(tmp_path, trained_run):
    import io
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    for name in ("best.npz", "checkpoint.npz"):
        with np.load(run / name, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(arrays["__meta__"].tobytes())
        meta.update(format=99, charseq_version="9.0.0")
        arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        (run / name).write_bytes(buffer.getvalue())
    r = run_cli_in_process("generate", "--model", run, "--length", "5")
    assert_clean_error(r, "written by charseq 9.0.0")


# ----------------------------------------------------------------------------- crafted config.json
@pytest.mark.parametrize("section, change, fragment", [
    ("model", {"units": "32; import os"}, "units"),
    ("model", {"__class__": "os.system"}, "unexpected settings: __class__"),
    ("model", {"layers": True}, "layers"),
    ("model", {"dropout": 7.0}, "--dropout"),
    ("data", {"seq_len": [1, 2]}, "seq_len"),
    ("train", {"lr": "fast"}, "lr"),
    ("train", {"eval": "print(1)"}, "unexpected settings: eval"),
    (None, {"model": "lstm"}, "must be a JSON object"),
])
def test_crafted_config_is_rejected(tmp_path, trained_run, section, change, fragment):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    config = json.loads((run / "config.json").read_text())
    if section is None:
        config.update(change)
    else:
        config[section].update(change)
    (run / "config.json").write_text(json.dumps(config))
    command = ("train-lm", "--out", run, "--resume") if section in ("data", "train") else \
        ("generate", "--model", run, "--length", "5")
    assert_clean_error(run_cli_in_process(*command), fragment)


def test_loading_never_unpickles(tmp_path, trained_run):
    """A weights file holding a pickled object is refused, not executed."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))
    buffer = {"__meta__": np.frombuffer(b"{}", np.uint8), "w0000": np.array([Exploit()], dtype=object)}
    import io
    data = io.BytesIO()
    np.savez(data, **buffer)
    for name in ("best.npz", "checkpoint.npz"):
        (run / name).write_bytes(data.getvalue())
    with pytest.raises(ValueError, match="allow_pickle"):  # the payload is a real pickled object array
        np.load(io.BytesIO(data.getvalue()), allow_pickle=False)["w0000"]
    assert_clean_error(run_cli_in_process("generate", "--model", run, "--length", "5"), "corrupt")
    assert not marker.exists()


# ----------------------------------------------------------------------------- memory limits
def test_corpus_larger_than_memory_allows_streams(tmp_path):
    """Train on a 60 MB corpus (45M characters: 180 MB as a Python string) in a process whose
    heap is capped at 450 MB, less than TensorFlow's ~350 MB plus the decoded corpus."""
    rng = np.random.default_rng(0)
    words = ["the", "river", "runs", "to", "sea", "and", "sky", "春风", "明月", "照我", "还"]
    corpus = tmp_path / "big.txt"
    with open(corpus, "w", encoding="utf-8") as f:
        for _ in range(60):
            f.write(" ".join(operator.itemgetter(*rng.integers(0, len(words), 200_000).tolist())(words)) + "\n")
    assert corpus.stat().st_size > 55e6

    def cap_heap():
        resource.setrlimit(resource.RLIMIT_DATA, (450 << 20, 450 << 20))
    r = run_cli("train-lm", corpus, "--out", tmp_path / "run", "--max-steps", "20", "--eval-every", "10",
                "--val-fraction", "0.001", *TINY_FLAGS, preexec_fn=cap_heap)
    assert r.returncode == 0, r.stderr[-2000:]
    assert checkpoint_step(tmp_path / "run") == 20
    info = json.loads((tmp_path / "run" / "config.json").read_text())["corpus"]
    assert info["tokens"] > 40_000_000
