"""The one directory transaction (charseq.transaction): build beside, swap in, roll back, recover.

Runs, grids and exports replace a directory through it; these tests drive it directly, including
real processes killed by SIGKILL between its steps."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from charseq import transaction
from charseq.errors import CharseqError
from charseq.transaction import Replacement, recover
from helpers import REPO, snapshot


def make(path: Path, **files: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def no_user_file(path: Path) -> str | None:
    """The test's stand-in for what charseq writes: anything named mine* is the user's."""
    return next((p.name for p in sorted(path.rglob("*")) if p.name.startswith("mine")), None)


def siblings(final: Path) -> list[str]:
    return sorted(p.name for p in final.parent.iterdir() if p.name.startswith(f".{final.name}."))


@pytest.fixture(params=["exchange", "two renames"])
def swap(request, monkeypatch):
    """Both ways of swapping: the atomic exchange, and the two renames of a system without it."""
    if request.param == "two renames":
        monkeypatch.setattr(transaction, "exchange", lambda a, b: False)
    return request.param


def test_commit_swaps_the_new_directory_in_and_deletes_the_old(tmp_path, swap):
    final = make(tmp_path / "out", a="old")
    build = Replacement.begin(final, foreign=no_user_file)
    assert build.path.parent == tmp_path and build.path.name.startswith(".out.new-")
    assert oct(build.path.stat().st_mode & 0o777) == oct(0o777 & ~transaction.current_umask())
    make(build.path, b="new")
    assert snapshot(final) == {".": "dir", "a": b"old"}  # untouched until the commit
    build.commit()
    assert snapshot(final) == {".": "dir", "b": b"new"} and siblings(final) == []
    fresh = Replacement.begin(tmp_path / "fresh")  # nothing there before: a plain rename
    make(fresh.path, c="c")
    fresh.commit()
    assert (tmp_path / "fresh" / "c").read_text() == "c" and siblings(tmp_path / "fresh") == []


def test_rollback_leaves_the_old_directory_and_nothing_beside(tmp_path):
    final = make(tmp_path / "out", a="old")
    build = Replacement.begin(final)
    make(build.path, b="half")
    build.rollback()
    assert snapshot(final) == {".": "dir", "a": b"old"} and siblings(final) == []


def test_commit_checks_again_and_refuses_by_name(tmp_path):
    final = make(tmp_path / "out", a="old")

    def check(path):
        found = no_user_file(path)
        if found:
            raise CharseqError(f"{path} holds {found}; refusing to replace it")

    build = Replacement.begin(final, check=check)
    make(build.path, b="new")
    (final / "mine.txt").write_text("added while the new one was built")
    before = snapshot(final)
    with pytest.raises(CharseqError, match="mine.txt"):
        build.commit()
    assert snapshot(final) == before
    build.rollback()
    assert siblings(final) == []


def test_commit_refuses_a_directory_another_process_holds(tmp_path, swap):
    """A directory in use (a run being trained holds its lock) is not swapped out from under it."""
    from charseq.files import lock_directory, unlock_directory

    final = make(tmp_path / "out", a="old")
    build = Replacement.begin(final)
    make(build.path, b="new")
    user = lock_directory(final)  # its own descriptor: flock sets it against this process's others too
    try:
        with pytest.raises(CharseqError, match="in use by another process"):
            build.commit()
    finally:
        unlock_directory(user)
    assert snapshot(final) == {".": "dir", "a": b"old"}
    build.commit()
    assert snapshot(final) == {".": "dir", "b": b"new"} and siblings(final) == []


def test_a_released_build_is_adopted_by_the_next_begin(tmp_path):
    final = make(tmp_path / "out", a="old")
    build = Replacement.begin(final)
    make(build.path, progress="half")
    build.release()
    again = Replacement.begin(final, adopt=lambda d: (d / "progress").exists())
    assert again.adopted and again.path == build.path
    other = Replacement.begin(final, adopt=lambda d: True)
    assert other.path != again.path  # held by a live builder: neither adopted nor swept
    other.rollback()
    again.commit()
    assert (final / "progress").read_text() == "half"


def test_recover_deletes_abandoned_builds_but_never_a_user_file(tmp_path):
    final = make(tmp_path / "out", a="ok")
    make(tmp_path / ".out.new-dead", config="x")
    make(tmp_path / ".out.new-users", mine="keep")
    make(tmp_path / ".out.old-dead", a="old")
    make(tmp_path / ".other.new-dead", config="x")  # another directory's
    old = os.path.getmtime(final) - 3600
    os.utime(tmp_path / ".out.new-dead", (old, old))
    assert sorted(recover(final, no_user_file)) == [".out.new-dead", ".out.old-dead"]
    assert siblings(final) == [".out.new-users"] and (tmp_path / ".other.new-dead").exists()


KILLED = """
import os, signal, sys
from pathlib import Path
from charseq import transaction
final, where = Path(sys.argv[1]), sys.argv[2]
if where == "between the renames":
    transaction.exchange = lambda a, b: False
    replace = os.replace
    calls = []
    def dying(a, b):
        calls.append(a)
        if len(calls) == 2:  # the old directory is aside, the new one not yet in place
            os.kill(os.getpid(), signal.SIGKILL)
        replace(a, b)
    transaction.os.replace = dying
else:
    transaction.shutil.rmtree = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
build = transaction.Replacement.begin(final)
(build.path / "b").write_text("new")
build.commit()
"""


@pytest.mark.parametrize("where, left", [("between the renames", "old"), ("before the old one is deleted", "new")])
def test_a_kill_at_any_step_of_the_swap_leaves_one_whole_directory_and_the_next_begin_recovers(tmp_path, where, left):
    final = make(tmp_path / "out", a="old")
    r = subprocess.run([sys.executable, "-c", KILLED, str(final), where], cwd=REPO)
    assert r.returncode == -signal.SIGKILL
    assert any(".old-" in name for name in siblings(final))
    recover(final, no_user_file)  # what the next replacement does first
    assert snapshot(final) == ({".": "dir", "a": b"old"} if left == "old" else {".": "dir", "b": b"new"})
    assert siblings(final) == []  # the abandoned build and the old directory are gone
