"""Reading user text and writing files so that a crash never leaves half a file behind."""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows has no flock: directories are then never locked (see lock_directory)
    fcntl = None

from charseq.errors import CharseqError, WriteError
from charseq.settings import DECODE_ERRORS

CHUNK_CHARS = 1 << 22  # 4M characters: large corpora are read, counted and encoded in pieces


def file_on_the_way(path: str | Path) -> Path | None:
    """The nearest existing folder above `path` if it is a file instead (`a` of a/b/c, `a` a file),
    where the system's "File exists" or "Not a directory" would read as a folder that cannot be
    written; else None."""
    nearest = next((parent for parent in Path(path).parents if os.path.exists(parent)), None)
    return nearest if nearest is not None and not os.path.isdir(nearest) else None


def _write_error(path: Path, shown, e: OSError) -> WriteError:
    """`e`, met writing `path` (named as `shown`), as a WriteError: a file on the way said as such."""
    blocker = file_on_the_way(path)
    return WriteError(shown, OSError(e.errno, f"{blocker} is a file, not a directory") if blocker else e)


def make_parent(path: str | Path) -> None:
    """Make the folders `path` goes in, or say in one line why they cannot be made."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _write_error(Path(path), path, e) from None


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write through a temporary file in the same directory, fsync, then rename over `path`.

    A reader sees either the old file or the new one, never a partial write; on any failure
    (disk full, Ctrl-C) the temporary file is removed and the old file is untouched. A symbolic
    link is followed (its target is written, the link stays a link).
    """
    shown = path
    path = Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(path)  # a link: write its target
    if not path.name or path.is_dir():
        raise CharseqError(f"{str(shown) or 'an empty path'} is a directory, not a file name")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:  # name the user's path, not the hidden temporary file
        # A WriteError, as a failure of the write itself is: what catches a full disk (a training run
        # saying what is intact and how to continue) catches a read-only or unwritable folder too.
        raise _write_error(path, shown, e) from None
    try:
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            sync_file(f)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise e if isinstance(e, WriteError) else WriteError(shown, e) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sync_file(f) -> None:
    """Flush `f` and make its bytes durable (fsync): every file charseq writes ends here, so a full
    disk or a failing device is reported at the write that met it, not later."""
    f.flush()
    os.fsync(f.fileno())


def append_text(path: str | Path, text: str) -> None:
    """Append `text` to `path` and sync it. A failure (disk full) is a WriteError naming the file; a
    line cut short by it is dropped by the reader (see RunDir.metrics)."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
            sync_file(f)
    except OSError as e:
        raise WriteError(path, e) from None


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def lock_directory(path: str | Path, wait: bool = True, shared: bool = False) -> int | None:
    """Take an exclusive lock (flock) on the directory `path` and return the descriptor that
    holds it: the lock lasts until the descriptor is closed or the process dies (the kernel drops
    it then, even on SIGKILL), and follows the directory through renames. With `wait` False, a
    lock another process holds raises BlockingIOError. `shared`: a shared lock, which other
    shared locks do not exclude. None where locks are unavailable."""
    if fcntl is None:
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
    except BaseException:
        os.close(fd)
        raise
    return fd


def directory_locked(path: str | Path) -> bool | None:
    """Whether some descriptor holds a lock on the directory `path` (a process training a run
    holds one); None where locks are unavailable or `path` cannot be opened. The test takes and
    drops an exclusive lock at once, so a process waiting to take its own is delayed no longer."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # closing drops a lock taken
    return False


def lock_directory_unless_held(path: str | Path, patience_s: float = 1.0) -> int | None:
    """An exclusive lock on the directory `path` (as lock_directory) without waiting for another
    process that holds one: BlockingIOError if one still does after `patience_s`. The retries are
    for a reader's test of the lock (directory_locked), which holds it for a moment only."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return lock_directory(path, wait=False)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def unlock_directory(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def write_json_atomic(path: str | Path, obj) -> None:
    try:
        text = json.dumps(obj, ensure_ascii=False, indent=1)
        data = (text + "\n").encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (an undecodable byte in a file name or a --text argument) has no UTF-8
        # form; as a \\u escape it still round-trips through json.loads.
        data = (json.dumps(obj, ensure_ascii=True, indent=1) + "\n").encode("ascii")
    write_bytes_atomic(path, data)


def fingerprint(path: str | Path) -> dict:
    """A file's size and SHA-256: what a run records of each data file, to know the file again
    after it has moved (see charseq.start.reopen_run)."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return {"bytes": os.path.getsize(path), "sha256": digest}


def has_fingerprint(path: str | Path, recorded) -> bool:
    """Whether the file at `path` is the one `recorded` (a `fingerprint`) describes; a file that
    cannot be read is not."""
    try:
        return (isinstance(recorded, dict) and os.path.getsize(path) == recorded.get("bytes")
                and fingerprint(path) == recorded)
    except OSError:
        return False


def refuse_an_empty_name(path: str | Path, what: str = "file") -> None:
    """An empty name is refused, not read as the current folder (which `Path("")` is): it is what
    "$(charseq data path NAME)" gives when that command failed, and train-lm would take the current
    folder's .txt files for the corpus."""
    if path == "":  # a Path made of "" is "." already
        raise CharseqError(f'{what} "" names no file; if it came from "$(charseq data path NAME)", '
                           "that command failed (see its error above)")


def moved_with(recorded: str | Path, recorded_fingerprint, near: str | Path) -> str | None:
    """Where the file `recorded` (an absolute path, gone from there) is now, if it moved together
    with `near` (a run directory): a project moved or copied to another machine keeps its files where
    they were relative to one another. Each tail of the recorded path (x.tsv, data/x.tsv,
    proj/data/x.tsv, ...) is tried under each folder that holds `near`, nearest first, and a file is
    taken only with the recorded size and SHA-256, so a file of other content is never picked."""
    tails = [Path(*Path(recorded).parts[-n:]) for n in range(1, len(Path(recorded).parts))]
    for folder in Path(near).resolve().parents:
        for tail in tails:
            candidate = folder / tail
            if candidate.is_file() and has_fingerprint(candidate, recorded_fingerprint):
                return str(candidate)
    return None


def check_readable_file(path: str | Path, what: str = "file") -> Path:
    refuse_an_empty_name(path, what)
    path = Path(path)
    if not path.exists():
        from charseq.data.datasets import hint_for_a_missing_file

        raise CharseqError(f"{what} {path} does not exist{hint_for_a_missing_file(path)}")
    if path.is_dir():
        raise CharseqError(f"{what} {path} is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise CharseqError(f"{what} {path} is not readable")
    return path


def check_encoding(encoding: str) -> str:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise CharseqError(f"unknown text encoding {encoding!r}") from None
    return encoding


def check_errors(errors: str) -> None:
    """What to do with bytes that do not decode: one of DECODE_ERRORS, as bytes.decode takes it."""
    if errors not in DECODE_ERRORS:
        raise CharseqError(f"--errors must be one of {', '.join(DECODE_ERRORS)}, not {errors!r}")


def decoding(encoding: str) -> str:
    """The codec that reads text written in `encoding`: for UTF-8, one that drops a byte-order mark at
    the start, which is not text (spreadsheet exports have one)."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


STDIN = "-"  # the name that means standard input, as for other command-line tools: texts can be piped in


def input_name(path: str | Path) -> str:
    """How messages name a file read: `-` is standard input."""
    return "standard input" if str(path) == STDIN else str(path)


def read_text_chunks(path: str | Path, encoding: str = "utf-8", errors: str = "strict",
                     chunk_chars: int = CHUNK_CHARS) -> Iterator[str]:
    """The text of `path` (`-`: standard input) in chunks of at most `chunk_chars` characters
    (newlines normalised to \\n).

    A file that does not decode is a one-line error naming the file and what to do about it.
    """
    if str(path) == STDIN:
        data = sys.stdin.buffer.read()
        yield from _decoded_chunks(lambda: io.BytesIO(data), input_name(path), encoding, errors, chunk_chars)
        return
    path = check_readable_file(path)
    yield from _decoded_chunks(lambda: open(path, "rb"), str(path), encoding, errors, chunk_chars)


def _decoded_chunks(open_bytes: Callable[[], BinaryIO], name: str, encoding: str, errors: str,
                    chunk_chars: int) -> Iterator[str]:
    """The text behind `open_bytes` (called again to say where decoding fails), with errors that call it `name`."""
    check_encoding(encoding)
    check_errors(errors)
    encoding = decoding(encoding)
    try:
        with io.TextIOWrapper(open_bytes(), encoding=encoding, errors=errors) as f:  # newlines as open() does
            while chunk := f.read(chunk_chars):
                if errors == "strict" and "\x00" in chunk:
                    raise CharseqError(f"{name} contains NUL bytes: it looks like a binary file, not text",
                                       "--errors replace to read it anyway")
                yield chunk
    except UnicodeDecodeError as e:
        offset, line = _where_decoding_fails(open_bytes, encoding)
        where = f"at byte {offset:,} (line {line:,})" if offset is not None else "somewhere"
        encoding_name = encoding.replace('-sig', '')
        start = _start_of(open_bytes)
        wide = next((w for w, marks in WIDE_MARKS.items() if start.startswith(marks)), None)
        if wide:  # Windows' "Unicode" text: its byte-order mark says which
            raise CharseqError(f"{name} is {wide} text (it starts with {wide}'s byte-order mark), not {encoding_name}",
                               f"--encoding {wide}") from None
        if b"\x00" in start:  # a program, an archive, an image: no --errors makes it text
            raise CharseqError(f"{name} looks like a binary file, not text: it holds NUL bytes and is not valid "
                               f"{encoding_name} ({e.reason} {where})",
                               "--encoding if it is text in another encoding") from None
        raise CharseqError(f"{name} is not valid {encoding_name} text ({e.reason} {where})",
                           "--encoding to name its encoding", "--errors replace") from None


# Byte-order marks of the encodings whose text holds NUL bytes (UTF-32's first: UTF-16's begins it).
WIDE_MARKS = {"utf-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE),
              "utf-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)}


def _start_of(open_bytes: Callable[[], BinaryIO]) -> bytes:
    """The first 64 KiB: NUL bytes there mean binary data (or text in UTF-16 or UTF-32)."""
    with open_bytes() as f:
        return f.read(1 << 16)


def _where_decoding_fails(open_bytes: Callable[[], BinaryIO], encoding: str) -> tuple[int | None, int]:
    """The byte offset, and the line, of the first byte that does not decode."""
    decoder = codecs.getincrementaldecoder(encoding)()
    consumed, lines = 0, 1
    with open_bytes() as f:
        while block := f.read(1 << 20):
            for start in range(0, len(block), 4096):
                piece = block[start:start + 4096]
                try:
                    decoder.decode(piece)
                except UnicodeDecodeError as e:
                    # The decoder may hold back up to a few bytes of an unfinished character.
                    held = len(decoder.getstate()[0]) if hasattr(decoder, "getstate") else 0
                    bad = consumed - held + e.start
                    with open_bytes() as g:
                        before = g.read(max(bad, 0))
                    return bad, before.count(b"\n") + 1
                consumed += len(piece)
    try:  # a file cut in the middle of a character fails only here, where the decoder is told the bytes end
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        bad = consumed - len(decoder.getstate()[0])
        with open_bytes() as g:
            return bad, g.read(bad).count(b"\n") + 1
    return None, lines


def read_text(path: str | Path, encoding: str = "utf-8", errors: str = "strict") -> str:
    return "".join(read_text_chunks(path, encoding, errors))
