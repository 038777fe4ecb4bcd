"""--force and --resume never lose a user's files and never silently ignore what was asked.

- --force replaces only a directory charseq made (its config.json and its own files), for every
  train command, and runs written before the config's marker existed are still recognised;
- the old run stays whole until the new one has trained a step and written its first checkpoint,
  then the two are swapped atomically: a failure (or a SIGKILL) at any moment leaves the old run
  or the new one, loadable, at --out;
- --resume refuses settings that would change the run, naming each with its recorded value,
  allows the stopping rules (and says so), and refuses an end before the run's progress without
  rewriting config.json.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from charseq.heads.classifier.run import train_classifier, train_mnist
from charseq.heads.classifier.task import ClassifierTask
from charseq.heads.lm.run import load_lm, train_lm
from charseq.heads.lm.task import LMTask
from charseq.runs import RUN_FORMAT, not_a_run
from charseq.heads.seq2seq.run import train_seq2seq
from charseq.heads.seq2seq.task import Seq2SeqTask
from helpers import (CHARSEQ, KINDS, LM_FLAGS, QUIET, REPO, TINY_SETTINGS, assert_clean_error, command,
                     read_metrics, run_cli_in_process, snapshot)


def leftovers(parent: Path) -> list[str]:
    """Hidden build or swap directories charseq left beside a run."""
    return [p.name for p in parent.iterdir() if ".new-" in p.name or ".old-" in p.name]


def copy_run(finished: dict, kind: str, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished[kind], out)
    return out


# ----------------------------------------------------------------------------- --force: only charseq's runs
def project_directory(root: Path) -> Path:
    proj = root / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "config.json").write_text('{"name": "my project", "task": "lm"}')
    (proj / "src" / "main.py").write_text("print('hello')\n")
    (proj / "NOTES.md").write_text("notes\n")
    return proj


def test_force_refuses_a_project_directory(tmp_path, files):
    proj = project_directory(tmp_path)
    before = snapshot(proj)
    r = run_cli_in_process(*command("train-lm", files, proj, "--force"))
    assert_clean_error(r, str(proj), "not a charseq run", "NOTES.md", "refusing")
    assert snapshot(proj) == before and leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("contents", ["project", "bare config", "run plus a file", "config of another tool"])
def test_force_replaces_nothing_charseq_did_not_make(tmp_path, files, finished, kind, contents):
    if contents == "project":
        out = project_directory(tmp_path)
    elif contents == "run plus a file":  # a real run directory the user added a file to
        out = copy_run(finished, kind, tmp_path)
        (out / "my-notes.txt").write_text("keep me")
    else:
        out = tmp_path / "dir"
        out.mkdir()
        (out / "config.json").write_text("{}" if contents == "bare config" else '{"task": "lm", "model": {}}')
    before = snapshot(out)
    r = run_cli_in_process(*command(kind, files, out, "--force"))
    assert_clean_error(r, str(out), "not a charseq run", "refusing")
    assert snapshot(out) == before and leftovers(out.parent) == []


@pytest.mark.parametrize("kind", KINDS)
def test_force_replaces_a_run_of_this_and_of_an_earlier_charseq(tmp_path, files, finished, kind):
    for marked in (True, False):
        out = copy_run(finished, kind, tmp_path)
        config = json.loads((out / "config.json").read_text())
        assert config["run_format"] == RUN_FORMAT
        if not marked:  # as today's main wrote it, before the marker
            del config["run_format"]
            (out / "config.json").write_text(json.dumps(config))
        assert not_a_run(out) is None
        r = run_cli_in_process(*command(kind, files, out, "--force", "--max-steps", "5"))
        assert r.returncode == 0, r.stderr
        assert json.loads((out / "config.json").read_text())["train"]["max_steps"] == 5
        assert leftovers(tmp_path) == []
        shutil.rmtree(out)


def test_force_follows_a_link_to_a_run_and_refuses_a_dangling_one(tmp_path, files, finished):
    target = copy_run(finished, "train-lm", tmp_path)
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    r = run_cli_in_process(*command("train-lm", files, link, "--force", "--max-steps", "5"))
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and json.loads((target / "config.json").read_text())["train"]["max_steps"] == 5
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    assert_clean_error(run_cli_in_process(*command("train-lm", files, dangling)), "symbolic link", "does not exist")
    assert dangling.is_symlink() and not (tmp_path / "nowhere").exists()


def test_out_must_name_a_directory(tmp_path, files):
    assert_clean_error(run_cli_in_process(*command("train-lm", files, "")), "--out")


# ----------------------------------------------------------------------------- --force: the old run survives a failure
TASKS = {"train-lm": LMTask, "train-classifier": ClassifierTask, "classify-mnist": ClassifierTask,
         "train-seq2seq": Seq2SeqTask}


@pytest.mark.parametrize("kind", KINDS)
def test_force_keeps_the_old_run_until_the_new_one_has_a_checkpoint(tmp_path, files, finished, kind, monkeypatch):
    """The new run fails at its first step (as a model too big for memory does): the old run is
    untouched and no half-made directory is left."""
    import tensorflow as tf

    out = copy_run(finished, kind, tmp_path)
    before = snapshot(out)

    def out_of_memory(self, step, optimizer):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.setattr(TASKS[kind], "train_step", out_of_memory)
    r = run_cli_in_process(*command(kind, files, out, "--force", "--units", "24"))
    assert r.returncode != 0
    assert snapshot(out) == before and leftovers(tmp_path) == []


def test_force_with_impossible_settings_keeps_the_old_run(tmp_path, files, finished):
    out = copy_run(finished, "train-lm", tmp_path)
    before = snapshot(out)
    for flags in (["--batch-size", "100000", "--seq-len", "100"], ["--seq-len", "100000"], ["--units", "0"]):
        r = run_cli_in_process(*command("train-lm", files, out, "--force", *flags))
        assert_clean_error(r)
        assert snapshot(out) == before and leftovers(tmp_path) == []


def test_ctrl_c_before_the_first_checkpoint_keeps_the_old_run(tmp_path, files, finished, monkeypatch):
    out = copy_run(finished, "train-lm", tmp_path)
    before = snapshot(out)

    def interrupted(self, step, optimizer):
        raise KeyboardInterrupt

    monkeypatch.setattr(LMTask, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_lm(files / "corpus.txt", out, force=True, max_steps=5, **QUIET, **TINY_SETTINGS)
    assert snapshot(out) == before and leftovers(tmp_path) == []


def test_ctrl_c_before_the_first_checkpoint_says_no_run_was_kept(tmp_path, files, monkeypatch):
    # The start line named the run directory: "interrupted" alone left the user to --resume a run
    # that is not there.
    def interrupted(self, step, optimizer):
        raise KeyboardInterrupt

    monkeypatch.setattr(LMTask, "train_step", interrupted)
    r = run_cli_in_process(*command("train-lm", files, tmp_path / "new"))
    assert r.returncode == 130 and "Traceback" not in r.stderr
    # A stop asked for: one line, without "Error:"
    assert r.stderr.strip() == ("interrupted before the first checkpoint: nothing of the new run was kept at "
                                f"{tmp_path / 'new'}"), r.stderr
    assert not (tmp_path / "new").exists() and leftovers(tmp_path) == []


def test_a_new_run_appears_only_with_its_first_checkpoint(tmp_path, files, monkeypatch):
    """No half-made run directory: until the first step has trained, --out does not exist."""
    seen = []
    original = LMTask.train_step

    def watch(self, step, optimizer):
        seen.append((step, (tmp_path / "new").exists()))
        return original(self, step, optimizer)

    monkeypatch.setattr(LMTask, "train_step", watch)
    train_lm(files / "corpus.txt", tmp_path / "new", max_steps=3, **QUIET, **TINY_SETTINGS)
    assert seen == [(0, False), (1, True), (2, True)]
    assert load_lm(tmp_path / "new")[2]["train"]["max_steps"] == 3 and leftovers(tmp_path) == []


def test_sigkill_during_force_leaves_a_loadable_run(tmp_path, files, finished):
    """SIGKILL a `--force` replacement at random moments (building, first step, the swap, training):
    --out always holds the old run or the new one, and either loads."""
    out = copy_run(finished, "train-lm", tmp_path)
    old_best = (out / "best.npz").read_bytes()
    rng = random.Random(3)
    outcomes = set()
    for delay in [rng.uniform(1.0, 6.0) for _ in range(3)]:
        proc = subprocess.Popen([*CHARSEQ, *map(str, command("train-lm", files, out, "--force", "--max-steps", "40",
                                                             "--units", "24"))],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        model, vocab, config = load_lm(out)  # loadable, whichever it is
        outcomes.add("old" if (out / "best.npz").exists() and (out / "best.npz").read_bytes() == old_best
                      else "new" if config["model"]["units"] == 24 else "?")
        assert not_a_run(out) is None
    assert outcomes <= {"old", "new"}
    # Each killed build may leave its hidden sibling; the next run for --out deletes them (their
    # builders are dead, so their locks are free) and leaves nothing beside the run.
    r = run_cli_in_process(*command("train-lm", files, out, "--force", "--max-steps", "2", "--units", "24"))
    assert r.returncode == 0, r.stderr
    assert leftovers(tmp_path) == [] and load_lm(out)[2]["model"]["units"] == 24


def test_a_new_run_sweeps_only_the_hidden_builds_no_process_holds(tmp_path):
    from charseq.runs import RunDir, sweep_abandoned_builds

    out = tmp_path / "run"
    live = RunDir.create(out)  # this process is building it, so it holds its lock
    (live.path / "config.json").write_text("{}")

    def sibling(name, *files):
        path = tmp_path / name
        path.mkdir()
        for f in files:
            (path / f).write_text("x")
        return path

    sibling(".run.new-killed", "config.json", "metrics.jsonl")  # its builder died: no lock
    sibling(".run.new-justmade")  # empty and new: its maker may not have locked it yet
    sibling(".run.new-stranded", "checkpoint.npz")  # a checkpoint and nothing at --out: the only copy
    sibling(".other.new-killed", "config.json")  # another run's
    assert sweep_abandoned_builds(out) == [".run.new-killed"]
    assert sorted(leftovers(tmp_path)) == sorted([live.path.name, ".run.new-justmade", ".run.new-stranded",
                                                  ".other.new-killed"])
    old = time.time() - 3600
    os.utime(tmp_path / ".run.new-justmade", (old, old))
    out.mkdir()  # a run at --out again: the stranded checkpoint is no longer the only copy
    assert sorted(sweep_abandoned_builds(out)) == [".run.new-justmade", ".run.new-stranded"]
    live.publish()  # the live build was never touched; published, it no longer holds a lock
    assert (out / "config.json").exists() and leftovers(tmp_path) == [".other.new-killed"]


# ----------------------------------------------------------------------------- --resume
def test_resume_refuses_changed_settings(tmp_path, files, finished):
    out = copy_run(finished, "train-lm", tmp_path)
    before = snapshot(out)
    r = run_cli_in_process("train-lm", "--out", out, "--resume", "--units", "64", "--layers", "3", "--cell", "gru",
                "--lr", "0.5", "--seq-len", "7")
    assert_clean_error(r, "--units (recorded 16, given 64)", "--layers (recorded 1, given 3)",
                       '--cell (recorded "lstm", given "gru")', "--lr (recorded ", "given 0.5)",
                       "--seq-len (recorded 16, given 7)", "--max-steps", "--epochs", "--time-budget")
    assert snapshot(out) == before


@pytest.mark.parametrize("kind, flags, fragments", [
    ("train-lm", ["--dropout", "0.5"], ["--dropout (recorded ", "given 0.5)"]),
    ("train-lm", ["--batch-size", "32", "--optimizer", "sgd"], ["--batch-size (recorded 8, given 32)", "--optimizer"]),
    ("train-classifier", ["--units", "64", "--bidirectional"], ["--units (recorded 16, given 64)",
                                                                "--bidirectional (recorded false, given true)"]),
    ("train-classifier", ["--text-column", "label", "--val-fraction", "0.3"], ["--text-column", "--val-fraction"]),
    ("classify-mnist", ["--cell", "gru", "--augment-shift", "3", "--no-bidirectional"],
     ["--cell", "--augment-shift (recorded 2, given 3)", "--bidirectional (recorded true, given false)"]),
    ("train-seq2seq", ["--attention", "bahdanau", "--shared-vocab"], ["--attention", "--shared-vocab"]),
    ("train-seq2seq", ["--max-input-len", "3"], ["--max-input-len (recorded null, given 3)"]),
])
def test_resume_refuses_changed_settings_of_every_head(tmp_path, files, finished, kind, flags, fragments):
    out = copy_run(finished, kind, tmp_path)
    before = snapshot(out)
    assert_clean_error(run_cli_in_process(kind, "--out", out, "--resume", *flags), *fragments, "cannot change")
    assert snapshot(out) == before


@pytest.mark.parametrize("kind", ["train-lm", "train-classifier"])
def test_resume_refuses_the_other_tokenizer_s_options_as_a_new_run_does(tmp_path, files, finished, kind):
    """A run of characters never had a --vocab-size: it was refused as a change of a setting "recorded 4000"
    (or null), which the run never used."""
    out = copy_run(finished, kind, tmp_path)
    before = snapshot(out)
    r = run_cli_in_process(kind, "--out", out, "--resume", "--vocab-size", "100")
    assert_clean_error(r, "--vocab-size is the size of a SentencePiece vocabulary")
    assert "cannot change" not in r.stderr
    assert snapshot(out) == before


@pytest.mark.parametrize("kind, data", [("train-lm", "other.txt"), ("train-classifier", "pairs.tsv"),
                                        ("classify-mnist", "--data"), ("train-seq2seq", "reviews.tsv")])
def test_resume_refuses_another_data_file(tmp_path, files, finished, kind, data):
    out = copy_run(finished, kind, tmp_path)
    before = snapshot(out)
    if data == "--data":
        with np.load(files / "mnist.npz") as mnist:
            np.savez(tmp_path / "other.npz", **{name: mnist[name][::-1] for name in mnist.files})
        args = [kind, "--data", tmp_path / "other.npz"]
    else:
        args = [kind, files / data]
    r = run_cli_in_process(*args, "--out", out, "--resume", "--max-steps", "8")
    assert_clean_error(r, "recorded", str(files / data) if data != "--data" else "other.npz")
    assert snapshot(out) == before


@pytest.mark.parametrize("kind, data", [("train-lm", "other.txt"), ("train-classifier", "pairs.tsv")])
def test_resume_with_only_another_data_file_does_not_advise_replacing_the_run(tmp_path, files, finished, kind, data):
    """A project moved elsewhere records its data at the old path: the run is fine, and --force,
    the advice for a changed setting, would delete it."""
    out = copy_run(finished, kind, tmp_path)
    before = snapshot(out)
    r = run_cli_in_process(kind, files / data, "--out", out, "--resume", "--max-steps", "8")
    assert_clean_error(r, "its content must be the one the run was trained on", "continue with the recorded one")
    assert "--force" not in r.stderr
    assert snapshot(out) == before


@pytest.mark.parametrize("kind", KINDS)
def test_a_moved_project_resumes_on_its_data_at_the_new_path(tmp_path, files, kind):
    """A project (its runs and its data) moved or copied elsewhere: each run recorded its data files'
    content, so the same files at their new paths continue it, and config.json then names them.
    With a file gone and no new path, --resume says which file and how to go on."""
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(files, old / "data")
    r = run_cli_in_process(*command(kind, old / "data", old / "run", "--max-steps", "3"))
    assert r.returncode == 0, r.stderr
    old.rename(new)
    (new / "data").rename(tmp_path / "elsewhere")  # not where it was beside the run: gone, as far as it knows
    if kind != "train-lm":  # a language model reads its own copy of the corpus
        r = run_cli_in_process(kind, "--out", new / "run", "--resume", "--max-steps", "6")
        assert_clean_error(r, str(old / "data"), "which this run was trained on, is gone", "give its new path")
    (tmp_path / "elsewhere").rename(new / "data")
    r = run_cli_in_process(*command(kind, new / "data", new / "run", "--resume", "--max-steps", "6"))
    assert r.returncode == 0, r.stderr
    assert f"is the file this run recorded at {old / 'data'}" in r.stdout
    assert str(old) not in (new / "run" / "config.json").read_text()
    assert read_metrics(new / "run")[-1]["step"] == 6
    r = run_cli_in_process(kind, "--out", new / "run", "--resume", "--max-steps", "7")  # the new paths recorded
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "train-lm"])
def test_a_project_copied_whole_resumes_without_naming_its_data_again(tmp_path, files, kind):
    """A project copied to another machine (here: another folder, the original gone) with its runs
    and data where they were relative to one another: --resume finds each data file beside the run
    by its recorded content, says so, and records the new path."""
    old, new = tmp_path / "home" / "alice" / "project", tmp_path / "work" / "project"
    shutil.copytree(files, old / "data")
    r = run_cli_in_process(*command(kind, old / "data", old / "runs" / "first", "--max-steps", "3"))
    assert r.returncode == 0, r.stderr
    shutil.copytree(old, new)
    shutil.rmtree(tmp_path / "home")
    r = run_cli_in_process(kind, "--out", new / "runs" / "first", "--resume", "--max-steps", "6")
    assert r.returncode == 0, r.stderr
    assert f"{new / 'data'}" in r.stdout and f"is the file this run recorded at {old / 'data'}" in r.stdout
    assert str(old) not in (new / "runs" / "first" / "config.json").read_text()
    assert read_metrics(new / "runs" / "first")[-1]["step"] == 6


@pytest.mark.parametrize("kind", KINDS)
def test_resume_with_the_same_command_and_a_later_end(tmp_path, files, finished, kind):
    """The command that made the run, plus --resume and a new --max-steps: allowed, and said."""
    out = copy_run(finished, kind, tmp_path)
    argv = [str(a) for a in command(kind, files, out)]
    argv[argv.index("--max-steps") + 1] = "9"
    r = run_cli_in_process(*argv, "--resume")
    assert r.returncode == 0, r.stderr
    assert "--max-steps 9 (was 6)" in r.stdout and "may change on --resume" in r.stdout
    assert json.loads((out / "config.json").read_text())["train"]["max_steps"] == 9


def test_resuming_a_finished_run_says_there_is_nothing_left_and_what_trains_on(tmp_path, files, finished):
    out = copy_run(finished, "train-lm", tmp_path)
    r = run_cli_in_process(*command("train-lm", files, out), "--resume")
    assert r.returncode == 0, r.stderr
    assert "nothing left to train: the run has reached its end at step 6 (a later --max-steps" in r.stdout, r.stdout
    assert [m["step"] for m in read_metrics(out)] == [m["step"] for m in read_metrics(finished["train-lm"])]


def test_resume_may_name_the_columns_the_run_found(tmp_path, files, finished):
    """A run that found its columns by their usual names resumes with those names given (in any case),
    and refuses a name that finds another column."""
    out = copy_run(finished, "train-classifier", tmp_path)
    before = snapshot(out)
    r = run_cli_in_process("train-classifier", "--out", out, "--resume", "--text-column", "TEXT",
                           "--label-column", "label", "--max-steps", "8")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "config.json").read_text())["data"]["text_column"] is None  # still the reader's
    shutil.rmtree(out)
    shutil.copytree(finished["train-classifier"], out)
    assert_clean_error(run_cli_in_process("train-classifier", "--out", out, "--resume", "--text-column", "label"),
                       "--text-column (recorded null, given \"label\")", "cannot change")
    assert snapshot(out) == before


def test_resume_refuses_an_end_before_the_progress(tmp_path, files, finished):
    out = copy_run(finished, "train-lm", tmp_path)
    before = snapshot(out)
    r = run_cli_in_process("train-lm", "--out", out, "--resume", "--max-steps", "3")
    assert_clean_error(r, "--max-steps 3", "step 6")
    r = run_cli_in_process("train-lm", "--out", out, "--resume", "--epochs", "0.01")
    assert_clean_error(r, "--epochs 0.01", "step 6")
    r = run_cli_in_process("train-lm", "--out", out, "--resume", "--time-budget", "0.0001")  # a run without a budget
    assert_clean_error(r, "--time-budget 0.0001", "omit it to continue to the recorded one")
    assert "None" not in r.stderr
    assert snapshot(out) == before
    r = run_cli_in_process("train-lm", "--out", out, "--resume")  # the recorded end: nothing to do, allowed
    assert r.returncode == 0, r.stderr


def test_a_run_being_trained_is_neither_resumed_nor_replaced(tmp_path, files, finished):
    """Two processes training one run would write over each other's checkpoints and metrics: while
    one trains it, --resume and --force are refused, and the run is left as it was."""
    from charseq.errors import CharseqError
    from charseq.runs import RunDir

    out = copy_run(finished, "train-lm", tmp_path)
    before = snapshot(out)
    trainer = RunDir.open(out)
    trainer.hold()  # as a process training it does (flock sets it against this process's other descriptors too)
    try:
        resume = run_cli_in_process(*command("train-lm", files, out, "--resume"), "--max-steps", "9")
        assert_clean_error(resume, f"run directory {out} is being trained by another process", "Ctrl-C")
        assert_clean_error(run_cli_in_process(*command("train-lm", files, out, "--force")),
                           "being trained by another process")
        # Two new runs started into one --out at once: the second is told the first trains it, not
        # advised --resume or --force, which it would refuse meanwhile.
        assert_clean_error(run_cli_in_process(*command("train-lm", files, out)),
                           f"run directory {out} already exists, and another process is training it now",
                           "give another --out")
        with pytest.raises(CharseqError, match="being trained by another process"):
            train_lm(files / "corpus.txt", out=out, resume=True, max_steps=9, **QUIET)
        assert snapshot(out) == before and leftovers(tmp_path) == []
    finally:
        trainer.let_go()
    resume = run_cli_in_process(*command("train-lm", files, out, "--resume"), "--max-steps", "9")  # as advised
    assert resume.returncode == 0, resume.stderr
    assert [r["step"] for r in read_metrics(out)] == [5, 6, 9]


def test_resume_from_python_refuses_changed_settings(tmp_path, files, finished):
    from charseq.errors import CharseqError

    out = copy_run(finished, "train-lm", tmp_path)
    with pytest.raises(CharseqError, match="--units"):
        train_lm(out=out, resume=True, units=99, **QUIET)
    with pytest.raises(CharseqError, match="CORPUS"):
        train_lm(files / "other.txt", out=out, resume=True, **QUIET)
    for fn, kind in ((train_classifier, "train-classifier"), (train_seq2seq, "train-seq2seq")):
        out = copy_run(finished, kind, tmp_path / kind)
        with pytest.raises(CharseqError, match="--val-fraction"):
            fn(out=out, resume=True, val_fraction=0.5, **QUIET)
    out = copy_run(finished, "classify-mnist", tmp_path / "m")
    with pytest.raises(CharseqError, match="--bidirectional"):
        train_mnist(out=out, resume=True, bidirectional=False, **QUIET)


# ----------------------------------------------------------------------------- config.json as charseq writes it
@pytest.mark.parametrize("kind, change, fragment", [
    ("train-lm", lambda c: c.update(extra_key=1), "unexpected settings: extra_key"),
    ("train-seq2seq", lambda c: c["data"].update(shared_vocab="yes"), "shared_vocab"),
    ("train-seq2seq", lambda c: c.pop("data"), "no 'data'"),
    ("train-classifier", lambda c: c.pop("data"), "no 'data'"),
    ("train-classifier", lambda c: c["data"].pop("text_column"), "text_column"),
    ("classify-mnist", lambda c: c.update(labels="0123"), "labels"),
])
def test_config_json_that_charseq_would_not_write_is_refused(tmp_path, finished, kind, change, fragment):
    out = copy_run(finished, kind, tmp_path)
    config = json.loads((out / "config.json").read_text())
    change(config)
    (out / "config.json").write_text(json.dumps(config))
    assert_clean_error(run_cli_in_process(kind, "--out", out, "--resume", "--max-steps", "8"), fragment)
    assert_clean_error(run_cli_in_process("evaluate", "--model", out, out / "config.json"), fragment)


def test_grid_force_refuses_a_directory_that_is_not_a_grid(tmp_path, files):
    grid = tmp_path / "grid"
    grid.mkdir()
    (grid / "grid.json").write_text("{}")
    (grid / "thesis.tex").write_text("years of work")
    before = snapshot(grid)
    r = run_cli_in_process("grid", "train-lm", files / "corpus.txt", "--lr", "1e-3,3e-3", "--out", grid, "--force",
                           "--max-steps", "2", *LM_FLAGS)
    assert_clean_error(r, "thesis.tex", "not part of a charseq grid")
    assert snapshot(grid) == before


# ----------------------------------------------------------------------------- the property
PROPERTY_EXAMPLES = int(os.environ.get("CHARSEQ_PROPERTY_EXAMPLES", "2"))  # + the two explicit examples


class Killed(BaseException):
    """The process dying at a moment of the run (raised from its log, which every stage calls)."""


def test_force_resume_and_kills_never_touch_foreign_files_nor_lose_a_finished_run(files):
    """Random sequences of train / --force / --resume, each maybe killed at a random moment, on
    random settings, starting from a missing --out, a user's project, an empty directory or a
    file: what charseq did not create is never modified, and once a run has finished at --out,
    --out always holds a loadable model (the finished run, or a newer one that replaced it)."""
    import tempfile

    import keras
    from hypothesis import HealthCheck, example, given, settings, strategies as st

    from charseq.errors import CharseqError

    options = st.fixed_dictionaries({"units": st.sampled_from([8, 12]), "seq_len": st.sampled_from([8, 16]),
                                     "max_steps": st.integers(2, 7), "lr": st.sampled_from([3e-3, 1e-2])})
    operation = st.tuples(st.sampled_from(["train", "force", "resume"]), options,
                          st.one_of(st.none(), st.integers(0, 6)))  # kill at this log line, or never

    tiny = {"units": 8, "seq_len": 8, "max_steps": 4, "lr": 1e-2}

    @settings(max_examples=PROPERTY_EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(start=st.sampled_from(["missing", "project", "empty", "file"]),
           operations=st.lists(operation, min_size=2, max_size=4))
    @example(start="project", operations=[("force", tiny, None), ("resume", tiny, None)])
    @example(start="missing", operations=[("train", tiny, None), ("force", {**tiny, "units": 12}, 1),
                                          ("resume", {**tiny, "max_steps": 2}, None)])
    def check(start, operations):
        root = Path(tempfile.mkdtemp(prefix="charseq-property-"))
        try:
            out = root / "out"
            if start == "project":
                out = project_directory(root)
            elif start == "empty":
                out.mkdir()
            elif start == "file":
                out.write_text("a user's file")
            (root / "beside.txt").write_text("a user's file beside --out")
            foreign = snapshot(out) if start in ("project", "file") else None
            beside = snapshot(root / "beside.txt")
            loadable = False
            for kind, opts, kill_at in operations:
                lines = []

                def log(line):
                    lines.append(line)
                    if kill_at is not None and len(lines) > kill_at:
                        raise Killed(line)
                small = dict(embedding_dim=8, layers=1, batch_size=8, eval_every=3, sample_length=0,
                             precision="float32", progress_bar=False, log=log)
                try:
                    if kind == "resume":
                        train_lm(out=out, resume=True, max_steps=opts["max_steps"], units=opts["units"], log=log,
                                 progress_bar=False, sample_length=0)
                    else:
                        train_lm(files / "corpus.txt", out, force=kind == "force", **opts, **small)
                    loadable = True
                except (CharseqError, Killed):
                    pass
                keras.backend.clear_session()
                if foreign is not None:
                    assert snapshot(out) == foreign, (kind, opts, kill_at)
                assert snapshot(root / "beside.txt") == beside
                if loadable:
                    load_lm(out)
                    assert not_a_run(out) is None
            if start == "missing" and not out.exists():
                assert [p.name for p in root.iterdir()] == ["beside.txt"]  # nothing half-made left
        finally:
            shutil.rmtree(root, ignore_errors=True)

    check()
