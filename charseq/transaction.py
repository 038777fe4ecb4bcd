"""Replacing a directory in one step: build the new one beside it, swap it in, roll back on
failure, recover after a crash. Runs (`--force`), grids (`grid --force`), exports and the data
set cache all go through here.

    build = Replacement.begin(Path("runs/poems"), check=..., foreign=...)
    try:
        ...                      # write the new directory in build.path
        build.commit()           # now at runs/poems; the old one is deleted
    except BaseException:
        build.rollback()         # the new one is deleted; the old one was never touched
        raise

Beside the directory NAME, a replacement uses hidden siblings:

    .NAME.new-XXXX    the new directory being built
    .NAME.old-XXXX    an old directory on its way out (deleted once the new one is in place)

The swap is one atomic exchange of the two directories (Linux renameat2 RENAME_EXCHANGE), so a
crash at any moment leaves the old or the new directory at NAME, each whole; elsewhere it is two
renames, the old directory first moving aside. The builder holds a lock (flock) on each sibling it
uses, which the kernel drops when the process dies, so the next replacement of NAME (`recover`)
knows the siblings that have no builder left: an old directory goes back to NAME if nothing is
there (a crash between the two renames), or is deleted; an abandoned build is deleted, or
continued (`adopt`). A sibling holding something the caller did not write (`foreign`) is never
deleted.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

from charseq.errors import CharseqError
from charseq.files import (current_umask, file_on_the_way, lock_directory, lock_directory_unless_held,
                           unlock_directory)

# (directory) -> the first path in it that the caller's code does not write, or None: all its own.
Foreign = Callable[[Path], "str | None"]

# A sibling this young and still empty may be one another process has just made and not yet locked.
UNLOCKED_GRACE_S = 60


def destination(out: Path) -> Path:
    """The directory `--out` names, to be replaced or filled: a symbolic link to a directory is
    followed; a dangling link or a file, there or on the way to it, is a one-line error."""
    if out.is_symlink():
        if not out.exists():
            raise CharseqError(f"--out {out} is a symbolic link to {os.readlink(out)}, which does not exist")
        out = Path(os.path.realpath(out))
    if out.exists() and not out.is_dir():
        raise CharseqError(f"--out {out} is a file, not a directory")
    # Else making its parents fails with the system's "File exists" or "Not a directory", which reads
    # as a folder that cannot be written.
    blocker = None if out.exists() else file_on_the_way(out)
    if blocker is not None:
        raise CharseqError(f"--out {out} cannot be made: {blocker} is a file, not a directory")
    return out


def exchange(a: Path, b: Path) -> bool:
    """Swap the directories `a` and `b` in one atomic step (Linux renameat2 RENAME_EXCHANGE).
    False where the system or filesystem cannot, so the caller falls back to two renames."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(b))


def sync_directory(path: Path) -> None:
    """Make a rename in `path` durable (a power cut after it keeps it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def unheld_siblings(path: Path, kind: str) -> Iterator[Path]:
    """The hidden siblings `.NAME.KIND-XXXX` of `path` (`kind` "new" or "old") that no live process
    holds a lock on: their maker was killed. Each is yielded while this process holds its lock, so
    no other process acts on it meanwhile. Nothing where locks are unavailable (a live maker could
    not be told from a dead one)."""
    if not path.parent.is_dir():
        return
    prefix = f".{path.name}.{kind}-"
    for entry in sorted(path.parent.iterdir()):
        if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            fd = lock_directory(entry, wait=False)
        except OSError:
            continue  # a live process holds it (or it vanished)
        if fd is None:
            return
        try:
            # The directory locked is still the one at that name (a rename may have put another there).
            if os.path.samestat(os.fstat(fd), os.stat(entry)):
                yield entry
        except FileNotFoundError:
            pass
        finally:
            unlock_directory(fd)


def _sibling(final: Path, kind: str) -> Path:
    """A new empty hidden sibling `.NAME.KIND-XXXX` of `final`, with the permissions a plain mkdir
    would give it (mkdtemp's 0700 would hide the result from the user's group)."""
    path = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.{kind}-"))
    path.chmod(0o777 & ~current_umask())
    return path


def _ours(path: Path, foreign: Foreign | None) -> bool:
    return foreign is None or foreign(path) is None


def recover(final: Path, foreign: Foreign | None = None, keep: Callable[[Path], bool] | None = None,
            sweep: bool = True, log: Callable[[str], None] | None = None) -> list[str]:
    """Finish what killed replacements of `final` left beside it; returns the siblings removed.

    An old directory no process holds goes back to `final` if nothing is there (the new one never
    arrived), else it is deleted (the swap it was part of is done). With `sweep`, an abandoned
    build (no process holds it) is deleted, except an empty one made in the last minute (its maker
    may not have locked it yet) and one `keep` says to keep. Nothing holding a `foreign` file is
    deleted."""
    removed = []
    for entry in unheld_siblings(final, "old"):
        if not final.exists() and not final.is_symlink():
            os.rename(entry, final)
            sync_directory(final.parent)
            if log:
                log(f"put back {final}, which a killed process had moved aside to {entry.name}")
        elif _ours(entry, foreign):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    if not sweep:
        return removed
    for entry in unheld_siblings(final, "new"):
        young = time.time() - entry.stat().st_mtime < UNLOCKED_GRACE_S
        if (young and not any(entry.iterdir())) or (keep is not None and keep(entry)) or not _ours(entry, foreign):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry.name)
    return removed


class Replacement:
    """A new directory for `final`, built in a hidden sibling (`path`) that this process holds
    locked until it is committed (moved to `final`, in place of what is there), rolled back
    (deleted) or released (left for a later :meth:`begin` to `adopt`)."""

    def __init__(self, final: Path, path: Path, lock: int | None, check: Callable[[Path], object] | None,
                 foreign: Foreign | None, adopted: bool = False):
        self.final, self.path, self.lock = final, path, lock
        self.check, self.foreign, self.adopted = check, foreign, adopted
        self.committed = False

    @classmethod
    def begin(cls, final: Path, check: Callable[[Path], object] | None = None, foreign: Foreign | None = None,
              keep: Callable[[Path], bool] | None = None, adopt: Callable[[Path], bool] | None = None,
              log: Callable[[str], None] | None = None) -> "Replacement":
        """Start replacing `final`: first :func:`recover` what killed replacements left, then
        continue an abandoned build `adopt` accepts, or make a new one. `check(final)`, which
        raises if what is at `final` may not be replaced, runs at :meth:`commit` (the caller checks
        before it begins too: the commit may come hours later). `foreign` and `keep` as for
        :func:`recover`; `foreign` also guards :meth:`rollback`."""
        final.parent.mkdir(parents=True, exist_ok=True)
        candidates = [entry for entry in unheld_siblings(final, "new") if adopt(entry)] if adopt else []
        recover(final, foreign, keep=lambda entry: entry in candidates or (keep is not None and keep(entry)),
                log=log)
        for entry in candidates:
            try:
                lock = lock_directory(entry, wait=False)
            except OSError:
                continue  # another process took it meanwhile
            if lock is None or os.path.samestat(os.fstat(lock), os.stat(entry)):
                return cls(final, entry, lock, check, foreign, adopted=True)
            unlock_directory(lock)
        path = _sibling(final, "new")
        try:
            lock = lock_directory(path)
        except BaseException:
            path.rmdir()
            raise
        return cls(final, path, lock, check, foreign)

    def commit(self, keep_lock: bool = False) -> None:
        """Move the new directory to `final` (checked again) in one atomic exchange, then delete the
        old one. `keep_lock`: go on holding the lock, which now is on `final`."""
        if self.committed:
            return
        if self.check is not None:
            self.check(self.final)
        final = self.final
        if final.is_dir():  # an old directory (or an empty one): swap, then delete it
            # Locked through the swap: a process using it (training a run in it) holds its lock, and
            # one that starts meanwhile is refused its lock. Two renames also leave it aside locked
            # should a crash come between them (see recover).
            try:
                old_lock = lock_directory_unless_held(final)
            except BlockingIOError:
                raise CharseqError(f"{final} is in use by another process; try again once it is done") from None
            try:
                if exchange(self.path, final):
                    old = _sibling(final, "old")  # the old one, now at our build's name, leaves that name
                    os.replace(self.path, old)
                else:
                    old = _sibling(final, "old")
                    os.replace(final, old)
                    os.replace(self.path, final)
                sync_directory(final.parent)
                shutil.rmtree(old, ignore_errors=True)
            finally:
                unlock_directory(old_lock)
        else:
            os.rename(self.path, final)
            sync_directory(final.parent)
        self.path, self.committed = final, True
        if not keep_lock:
            self.release()

    def rollback(self) -> None:
        """Delete the new directory (unless it holds a foreign file) and let it go; the old
        directory at `final` was never touched."""
        if not self.committed and self.path.is_dir() and _ours(self.path, self.foreign):
            shutil.rmtree(self.path, ignore_errors=True)
        self.release()

    def release(self) -> None:
        """Let go of the lock: an uncommitted build stays where it is, for a later begin to adopt."""
        unlock_directory(self.lock)
        self.lock = None
