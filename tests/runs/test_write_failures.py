"""Every write can fail. A full disk (ENOSPC injected at each write a run makes, one at a time,
and once for real on a small tmpfs) gives one line saying what could not be written, what is intact
and what to do, and leaves a run that resumes, or no run at all; a run whose best weights were never
written is not used as if trained without a word."""

import errno
import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from charseq.errors import CharseqError
from charseq.heads.classifier.run import train_classifier
from charseq.heads.lm.run import load_lm, train_lm
from charseq.heads.seq2seq.run import train_seq2seq
from charseq.runs import not_a_run
from helpers import TINY_SETTINGS, read_metrics, run_cli_in_process

LM = dict(TINY_SETTINGS, units=8, seq_len=8, eval_every=3, max_steps=6)
QUIET = dict(log=lambda s: None, progress_bar=False)
PROMISE = r"cannot write .+ \(No space left on device\); "


class DiskFull:
    """Fault injection: the `at`-th file sync (every file charseq writes is synced before it counts as
    written, see charseq.files.sync_file) fails with ENOSPC; `at` None counts the syncs only."""

    def __init__(self, monkeypatch, at=None):
        self.at, self.calls = at, 0
        real = os.fsync

        def fsync(fd):
            self.calls += 1
            if self.calls == self.at:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(fd)
        monkeypatch.setattr(os, "fsync", fsync)


def train(kind: str, files: Path, out: Path, **extra):
    if kind == "lm":
        return train_lm(files / "corpus.txt", out, **LM, **QUIET, **extra)
    small = dict(units=8, embedding_dim=8, batch_size=16, eval_every=3, max_steps=6, precision="float32", **QUIET)
    if kind == "classifier":
        return train_classifier(files / "reviews.tsv", out, **small, **extra)
    return train_seq2seq(files / "pairs.tsv", out, **small, **extra)


def resume(kind: str, out: Path):
    fn = {"lm": train_lm, "classifier": train_classifier, "seq2seq": train_seq2seq}[kind]
    return fn(out=out, resume=True, **QUIET)


def check_every_write(kind, files, tmp_path, monkeypatch):
    """Count a run's syncs, then fail each in turn and check the promise."""
    with pytest.MonkeyPatch.context() as mp:
        counter = DiskFull(mp)
        train(kind, files, tmp_path / "count")
    whole = read_metrics(tmp_path / "count")
    assert counter.calls >= 6
    for at in range(1, counter.calls + 1):
        out = tmp_path / f"run-{at}"
        with pytest.MonkeyPatch.context() as mp:
            DiskFull(mp, at)
            try:
                train(kind, files, out)
                failed = None
            except CharseqError as e:
                failed = str(e)
        if failed is None:  # a sync whose failure costs nothing (a directory's, after a rename)
            assert read_metrics(out) == [] or [r["step"] for r in read_metrics(out)] == [r["step"] for r in whole]
            continue
        assert "\n" not in failed and re.match(PROMISE, failed), (at, failed)
        assert ".new-" not in failed, (at, failed)  # the file in --out, not in the hidden build beside it
        if "--resume" in failed:
            assert "intact" in failed and not_a_run(out) is None, (at, failed)
            resume(kind, out)
            assert [r["step"] for r in read_metrics(out)] == [r["step"] for r in whole], at
        else:
            assert "train again" in failed or "run the command again" in failed, (at, failed)
            assert not out.exists(), at
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no build left


def test_a_full_disk_at_every_write_of_a_language_model_run(files, tmp_path, monkeypatch):
    check_every_write("lm", files, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["classifier", "seq2seq"])
def test_a_full_disk_at_every_write_of_every_head(files, tmp_path, monkeypatch, kind):
    check_every_write(kind, files, tmp_path, monkeypatch)


def test_a_tensorboard_log_that_cannot_grow(files, tmp_path, monkeypatch):
    from charseq.train import TrainingLoop

    def full(self, record):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(TrainingLoop, "_summarize", full)
    with pytest.raises(CharseqError, match=PROMISE + r"the last good checkpoint \(step 1\) is intact") as e:
        train("lm", files, tmp_path / "run")
    assert "TensorBoard" in str(e.value)
    monkeypatch.undo()
    resume("lm", tmp_path / "run")
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [3, 6]


def test_a_run_directory_that_turns_read_only_while_training(files, tmp_path, monkeypatch):
    """A filesystem remounted read-only (as one is after disk errors): the first file that cannot be
    created says what is intact and how to continue, as a full disk does; the run then resumes."""
    import tempfile

    real, read_only = tempfile.mkstemp, []

    def mkstemp(*args, **kwargs):
        if read_only:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real(*args, **kwargs)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    out = tmp_path / "run"
    turn_read_only_after_step_3 = lambda line: line.startswith("step 3:") and read_only.append(True)  # noqa: E731
    with pytest.raises(CharseqError, match=r"cannot write .+ \(Read-only file system\); the last good checkpoint "
                                           r"\(step 3\) is intact; make the run directory writable and continue "
                                           "with --resume"):
        train_lm(files / "corpus.txt", out, **LM, log=turn_read_only_after_step_3, progress_bar=False)
    read_only.clear()
    resume("lm", out)
    assert [r["step"] for r in read_metrics(out)] == [3, 6]


def test_a_read_only_run_directory_on_resume(files, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    out = tmp_path / "run"
    train("lm", files, out)
    os.chmod(out, 0o555)
    try:
        with pytest.raises(CharseqError, match=r"cannot write .*Permission denied"):
            train_lm(out=out, resume=True, max_steps=9, **QUIET)
    finally:
        os.chmod(out, 0o755)


def test_best_weights_never_written_are_not_used_silently(files, tmp_path, capsys):
    """The disk filled while writing best.npz at the first evaluation: the run has a checkpoint but no
    best weights; loading it says so and uses the checkpoint's."""
    out = tmp_path / "run"
    with pytest.MonkeyPatch.context() as mp:
        from charseq.runs import RunDir

        def full(self, model, metrics):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        mp.setattr(RunDir, "save_best", full)
        with pytest.raises(CharseqError, match=PROMISE + r"the last good checkpoint \(step 1\) is intact; free space "
                                                         "and continue with --resume"):
            train("lm", files, out)
    assert not (out / "best.npz").exists() and (out / "checkpoint.npz").exists()
    capsys.readouterr()
    load_lm(out)
    err = capsys.readouterr().err
    assert "has no best.npz" in err and "latest checkpoint (step 1)" in err
    r = run_cli_in_process("generate", "--model", out, "--length", "5", "--seed", "1")
    assert r.returncode == 0 and "warning:" in r.stderr and "has no best.npz" in r.stderr, r.stderr


def test_a_real_full_disk_on_a_small_tmpfs(files, tmp_path):
    """A 150 KB tmpfs: the run fails at whichever write meets the full disk, says so in one line, and
    (once the filesystem is larger) resumes to the same evaluations as a run that never failed."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=150k", f"charseq-{uuid.uuid4().hex[:6]}", mount],
                      capture_output=True).returncode != 0:
        pytest.skip("this machine does not let the tests mount a tmpfs")
    try:
        # 1x40 units: the first checkpoint fits, the best weights of the first evaluation do not.
        flags = ["--units", "40", "--layers", "1", "--embedding-dim", "8", "--batch-size", "8", "--seq-len", "16",
                 "--eval-every", "3", "--max-steps", "6", "--sample-length", "0", "--precision", "float32"]
        r = run_cli_in_process("train-lm", files / "corpus.txt", "--out", mount / "run", *flags)
        err = r.stderr.strip()
        assert r.returncode != 0 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert re.match("Error: " + PROMISE, err), err
        if "best.npz" in err:  # as on the machine this was written on
            assert "the last good checkpoint (step 1) is intact; free space and continue with --resume" in err
            r = run_cli_in_process("generate", "--model", mount / "run", "--length", "5")
            assert r.returncode == 0 and "has no best.npz" in r.stderr and "latest checkpoint (step 1)" in r.stderr
        subprocess.run(["mount", "-o", "remount,size=20m", mount], check=True)
        if "--resume" in err:
            r = run_cli_in_process("train-lm", "--out", mount / "run", "--resume")
            assert r.returncode == 0, r.stderr
            assert [x["step"] for x in read_metrics(mount / "run")] == [3, 6]
        else:
            assert not (mount / "run").exists() and os.listdir(mount) == []
    finally:
        subprocess.run(["umount", mount], capture_output=True)


def test_grid_results_that_cannot_be_written(files, tmp_path, monkeypatch):
    from charseq import grid
    from charseq.errors import WriteError

    real = grid.write_json_atomic

    def full(path, obj):
        if Path(path).name == "results.json":
            raise WriteError(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        return real(path, obj)
    monkeypatch.setattr(grid, "write_json_atomic", full)
    with pytest.raises(CharseqError, match=PROMISE + "every run trained so far is intact; free space and run the "
                                                     "same grid command again"):
        grid.run_grid("train-lm", tmp_path / "grid", {"lr": [0.01, 0.02]}, files / "corpus.txt", log=lambda s: None, **LM)
    monkeypatch.setattr(grid, "write_json_atomic", real)
    lines = []
    rows = grid.run_grid("train-lm", tmp_path / "grid", {"lr": [0.01, 0.02]}, files / "corpus.txt", log=lines.append,
                         **LM)
    assert len(rows) == 2 and any("done, skipped" in line for line in lines)  # the first run was not repeated
    assert len(json.loads((tmp_path / "grid" / "results.json").read_text())["runs"]) == 2


@pytest.mark.parametrize("error, said", [
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), "free space"),
    (OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)), "free space"),
    (OSError(errno.EROFS, os.strerror(errno.EROFS)), "make the run directory writable"),
    (OSError(errno.EACCES, os.strerror(errno.EACCES)), "make the run directory writable"),
    (RuntimeError(f"/x/.run.new-abc/variables; {os.strerror(errno.ENOSPC)}"), "free space"),  # TensorFlow's words
    (OSError(errno.EIO, os.strerror(errno.EIO)), "free space (or make the run directory writable)"),
])
def test_a_failed_write_is_told_what_frees_it(error, said):
    """A read-only or forbidden folder is not told to free space, nor a full disk to change permissions."""
    from charseq.errors import write_remedy

    assert write_remedy(error, "the run directory") == said
