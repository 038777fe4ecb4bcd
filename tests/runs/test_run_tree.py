"""The whole run tree is the user's unless charseq wrote it.

Before anything in a run directory is replaced or deleted (--force, checkpoint rotation, the sweep
of half-written files and of abandoned builds, grid --force), every path in its tree is checked
against what charseq writes for a run; the first foreign one is named and nothing is touched.
"""

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from charseq.errors import CharseqError
from charseq.grid import GRID_FILE, open_grid
from charseq.runs import RunDir, foreign_entry, not_a_run, sweep_abandoned_builds
from helpers import assert_clean_error, run_cli_in_process, snapshot
from helpers import KINDS, command

# The places a user puts files in a run: each of charseq's folders, and folders of their own.
USER_FILES = {"data/my_dataset.txt": "secret", "logs/mine/thesis.tex": "keep", "checkpoints/notes.txt": "notes"}


def copy_run(finished, kind: str, where: Path) -> Path:
    out = where / "run"
    shutil.copytree(finished[kind], out)
    return out


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("user_file", sorted(USER_FILES))
def test_force_refuses_a_run_with_a_user_file_in_any_subfolder(tmp_path, files, finished, kind, user_file):
    out = copy_run(finished, kind, tmp_path)
    (out / user_file).parent.mkdir(parents=True, exist_ok=True)
    (out / user_file).write_text(USER_FILES[user_file])
    before = snapshot(out)
    r = run_cli_in_process(*command(kind, files, out, "--force"))
    shown = user_file.split("/")[0] + "/" + user_file.split("/")[1] + ("/" if user_file.count("/") > 1 else "")
    assert_clean_error(r, "not a charseq run", shown, "refusing")
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no build left beside it


def test_charseqs_own_runs_have_nothing_foreign(finished):
    for kind in KINDS:
        assert foreign_entry(finished[kind]) is None and not_a_run(finished[kind]) is None


def test_resume_keeps_user_files_that_look_like_charseqs(tmp_path, files, finished):
    """Rotation (--keep) and the sweep of half-written files delete only charseq's own names."""
    out = copy_run(finished, "train-lm", tmp_path)
    mine = {"checkpoints/step-old.npz": b"a user's checkpoint", ".notes.tmp": b"draft",
            "checkpoints/.step-1.npz.tmp": b"x", ".config.json.tmp": b"y"}
    for name, data in mine.items():
        (out / name).parent.mkdir(exist_ok=True)
        (out / name).write_bytes(data)
    r = run_cli_in_process("train-lm", "--out", out, "--resume", "--max-steps", "12")
    assert r.returncode == 0, r.stderr
    for name, data in mine.items():
        assert (out / name).read_bytes() == data, name


# ----------------------------------------------------------------------------- the property
def charseqs_own(folder: str, name: str) -> bool:
    """Whether charseq itself writes a file of this name there (a checkpoint, a temporary file)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch, folder, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        return foreign_entry(Path(scratch)) is None


TREE_EXAMPLES = int(os.environ.get("CHARSEQ_PROPERTY_EXAMPLES", "40"))


def test_no_user_file_anywhere_in_a_run_tree_is_ever_lost(finished):
    """Random run trees (copies of real runs of every head, with extra kept checkpoints and
    half-written files), user files at random depths with random names, and every operation that
    replaces or deletes in a run: --force (build beside, then swap), rotation, the sweep of
    temporary files and of abandoned builds, grid --force. No user file is ever lost or changed,
    a refusal names one of them, and a tree without any is replaced (the check is not a blanket no)."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    folders = st.sampled_from(["", "data", "logs", "checkpoints", "target", "logs/mine", "data/raw/2024",
                               "checkpoints/old", "notes", "target/extra/deep"])
    names = st.one_of(st.sampled_from(["notes.txt", ".notes.tmp", "step-old.npz", "step-1.npz", "ids.bin.bak",
                                       "events.txt", "vocab.json.orig", ".config.json.tmp", "thesis.tex",
                                       "corpus.json~", "best.npz.bak", "spm.model.old"]),
                      st.text("abcdefgh._-", min_size=1, max_size=12).filter(lambda s: s not in (".", "..")))
    user_files = st.lists(st.tuples(folders, names), max_size=3, unique=True)
    operations = st.sampled_from(["force", "rotate", "sweep_temporaries", "sweep_builds", "grid_force"])

    @settings(max_examples=TREE_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(KINDS), placed=user_files, operation=operations, keep=st.integers(1, 3))
    def check(kind, placed, operation, keep):
        root = Path(tempfile.mkdtemp(prefix="charseq-tree-"))
        try:
            out = root / "grid" / "lr=0.1" if operation == "grid_force" else root / "run"
            shutil.copytree(finished[kind], out)
            if operation == "grid_force":
                (out.parent / GRID_FILE).write_text('{"command": "train-lm"}')
            if operation == "sweep_builds":  # a build a killed process left beside the run
                build = root / ".run.new-abcd1234"
                shutil.copytree(out, build)
                old = time.time() - 3600
                os.utime(build, (old, old))
                out = build
            (out / ".checkpoint.npz.abcdefgh.tmp").write_bytes(b"half")  # a write a kill cut short
            ours = {}
            for folder, name in placed:
                path = out / folder / name
                if path.exists() or any(p.exists() and not p.is_dir() for p in path.parents) or charseqs_own(folder, name):
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(f"{folder}/{name}".encode())
                ours[path] = path.read_bytes()
            refused = None
            try:
                if operation == "force":
                    run = RunDir.create(out, force=True)
                    (run.path / "config.json").write_text((out / "config.json").read_text())
                    run.publish()
                elif operation == "rotate":
                    for step in range(1, 4):
                        RunDir(out)._keep_history(step + 100, keep)
                elif operation == "sweep_temporaries":
                    RunDir(out).remove_stale_temporaries()
                elif operation == "sweep_builds":
                    sweep_abandoned_builds(root / "run")
                else:
                    _, build, _ = open_grid(out.parent, {"command": "train-lm", "fixed": {}}, True, log=lambda s: None)
                    build.commit()
            except CharseqError as e:
                refused = str(e)
            for path, data in ours.items():
                assert path.is_file() and path.read_bytes() == data, (operation, path)
            if refused is not None:
                assert ours and any(str(p.relative_to(out)).split("/")[0] in refused for p in ours), refused
            elif operation in ("force", "grid_force"):
                assert not ours  # replaced: only a tree without user files may be
        finally:
            shutil.rmtree(root, ignore_errors=True)

    check()


@pytest.mark.parametrize("user_file", ["variables/my-notes.txt", "assets.extra/README", "assets/vocab-mine.txt"])
def test_export_force_refuses_a_saved_model_with_a_user_file_inside(tmp_path, finished, user_file):
    from charseq.export import export_saved_model

    out = tmp_path / "export"
    export_saved_model(finished["train-lm"], out)
    (out / user_file).parent.mkdir(exist_ok=True)
    (out / user_file).write_text("mine")
    before = snapshot(out)
    r = run_cli_in_process("export", "--model", finished["train-lm"], "--out", out, "--force")
    assert_clean_error(r, "not a SavedModel", user_file, "refusing")
    assert snapshot(out) == before
