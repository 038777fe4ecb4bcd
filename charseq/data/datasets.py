"""Public data sets fetched once into charseq's cache, the way `keras.datasets` does it.

    get_dataset("tinyshakespeare")                     # downloads, verifies the SHA-256, caches; a Path
    get_dataset("mnist", source="/media/usb/mnist")    # a local copy or a mirror, verified the same way
    dataset_path("sst2")                               # the cached copy, or an error saying how to get it
    list_datasets()                                    # name, cached or not, size, source of each
    dataset_path("poems")                              # a corpus that ships with charseq (charseq.data.shipped)

Each data set is downloaded from its canonical public URL, checked against the SHA-256 recorded
here, and written into ``<cache root>/datasets/NAME/`` (see charseq.cache) in one rename: an
interrupted download or a file with the wrong checksum leaves nothing behind, and a data set in the
cache is never downloaded again; its checksum is checked again each time it is used, and a copy
changed since then is fetched again (`get_dataset`) or refused (`dataset_path`). `source`
(``--from`` on the command line) takes a local file or folder, a ``file://`` URL or an
``http(s)://`` mirror instead of the canonical URL, so machines without internet work.

What is verified is what charseq reads: the text file itself (tiny-shakespeare), the four
decompressed IDX files (MNIST: the gzip bytes differ between mirrors, the IDX bytes do not), and
SST-2's examples (label and stripped sentence of each row, in sorted order: copies differ in column
order, line endings and row order). Nothing here imports TensorFlow or numpy.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from charseq.cache import cache_root
from charseq.data import keras_mnist
from charseq.data.shipped import SHIPPED
from charseq.errors import CharseqError, Interrupted
from charseq.transaction import Replacement

TIMEOUT = 30  # seconds without data before a download is given up
CHUNK = 1 << 16  # read at most this much at a time: the progress line moves on a slow connection too
URL_SCHEMES = ("http://", "https://", "file://")
SHIPPED_SOURCE = "ships with charseq"


@dataclass(frozen=True)
class Member:
    """One file of a data set: the name charseq caches it under, where it comes from, its checksum."""

    name: str
    url: str  # canonical source; for SST-2 the zip holding it
    sha256: str  # of the bytes charseq reads (see `digest` of the data set)
    aliases: tuple[str, ...] = ()  # other names a local copy may use (the .gz, Windows-style names)


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    homepage: str
    members: tuple[Member, ...]
    # bytes as obtained -> (bytes to cache, SHA-256 to compare with the member's)
    prepare: Callable[[Member, bytes], tuple[bytes, str]]
    single_file: bool = False  # `dataset_path` gives the file itself, not its folder

    @property
    def urls(self) -> list[str]:
        return list(dict.fromkeys(m.url for m in self.members))

    @property
    def source(self) -> str:
        """The canonical URL, or the folder URL of several files."""
        urls = self.urls
        return urls[0] if len(urls) == 1 else f"{os.path.commonprefix(urls).rsplit('/', 1)[0]}/ ({len(urls)} files)"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _plain(member: Member, data: bytes) -> tuple[bytes, str]:
    return data, _sha256(data)


def _gunzipped(member: Member, data: bytes) -> tuple[bytes, str]:
    """IDX files come gzipped from the mirrors; charseq caches and verifies them decompressed."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise CharseqError(f"{member.name}: the gzip file is damaged ({e})") from None
    return data, _sha256(data)


def sst2_rows(data: bytes, where: str) -> list[tuple[str, str]]:
    """(label, sentence) of each row of an SST-2 TSV with a header naming a `label` column and one
    sentence column (GLUE writes `sentence<TAB>label`; other copies `label<TAB>sentence`)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CharseqError(f"{where} is not UTF-8 text (byte {e.start}); it is not an SST-2 TSV file") from None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    header = lines[0].split("\t") if lines else []
    if len(header) != 2 or "label" not in header:
        raise CharseqError(f"{where} is not an SST-2 TSV file: its header should be two columns, one named label")
    label_at = header.index("label")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != 2:
            raise CharseqError(f"{where} line {number} has {len(cells)} columns, not 2")
        rows.append((cells[label_at].strip(), cells[1 - label_at].strip()))
    return rows


def _sst2(member: Member, data: bytes) -> tuple[bytes, str]:
    """SST-2 split, cached as `label<TAB>sentence` with LF line ends, in the source's row order."""
    rows = sst2_rows(data, member.name)
    digest = _sha256("".join(sorted(f"{label}\t{sentence}\n" for label, sentence in rows)).encode())
    stored = "label\tsentence\n" + "".join(f"{label}\t{sentence}\n" for label, sentence in rows)
    return stored.encode("utf-8"), digest


MNIST_MIRROR = "https://storage.googleapis.com/cvdf-datasets/mnist/"  # the copy Keras and TF Datasets read
SST2_ZIP = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"


def _idx(name: str, sha256: str) -> Member:
    dotted = name.replace("-idx", ".idx")  # train-images.idx3-ubyte, as some copies spell it
    return Member(name, MNIST_MIRROR + name + ".gz", sha256, (name + ".gz", dotted, dotted + ".gz"))


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("tinyshakespeare", "Tiny Shakespeare: 1,115,394 characters of Shakespeare's plays (char-rnn)",
            "https://github.com/karpathy/char-rnn",
            (Member("input.txt", "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                    "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", ("tinyshakespeare.txt",)),),
            _plain, single_file=True),
    Dataset("sst2", "SST-2 (GLUE): movie-review phrases labelled negative (0) or positive (1), train and dev",
            "https://gluebenchmark.com/tasks",
            (Member("train.tsv", SST2_ZIP, "8f928cd3a49e285bafd5e3ba01307c12a0b9b81413c54a25fb82a129b3856df7"),
             Member("dev.tsv", SST2_ZIP, "207a724789ced45d8ebd60dcce19b2d3f051f3dc7380b369e579668c239a5cd1")),
            _sst2),
    Dataset("mnist", "MNIST: 70,000 handwritten digits, 28x28 pixels, as the four IDX files",
            "https://yann.lecun.com/exdb/mnist/",
            (_idx("train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
             _idx("train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
             _idx("t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
             _idx("t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2")),
            _gunzipped),
)}


# ----------------------------------------------------------------------------- where things are
def datasets_dir() -> Path:
    return cache_root("datasets")


def dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise CharseqError(f"no data set named {name!r}; charseq knows {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def cached_path(name: str) -> Path | None:
    """The cached copy of data set `name` (its file for a one-file set, else its folder), or None."""
    spec = dataset(name)
    folder = datasets_dir() / spec.name
    if not all((folder / m.name).is_file() for m in spec.members):
        return None
    return folder / spec.members[0].name if spec.single_file else folder


def changed_files(name: str) -> list[str]:
    """The files of cached data set `name` whose contents no longer match their SHA-256 (edited or
    damaged since they were verified). Checked on each use, as Keras checks a file's hash: a SHA-256 of
    MNIST's 55 MB takes a tenth of a second."""
    spec = dataset(name)
    folder = datasets_dir() / spec.name
    changed = []
    for member in spec.members:
        try:
            digest = spec.prepare(member, (folder / member.name).read_bytes())[1]
        except (CharseqError, OSError):
            digest = None
        if digest != member.sha256:
            changed.append(member.name)
    return changed


def dataset_path(name: str) -> Path:
    """The cached copy of data set `name`, verified, or a one-line error saying how to get it; for a
    corpus that ships with charseq, its file in the package."""
    if name in SHIPPED:
        return SHIPPED[name].path
    path = cached_path(name)
    if path is None:
        raise CharseqError(f"{name} is not in the cache ({datasets_dir() / name}); run: charseq data get {name}")
    changed = changed_files(name)
    if changed:
        raise CharseqError(f"the cached copy of {name} has changed since it was verified: "
                           f"{', '.join(str(datasets_dir() / name / f) for f in changed)} no longer "
                           f"{'matches its' if len(changed) == 1 else 'match their'} SHA-256; "
                           f"run: charseq data get {name} (it fetches the data set again)")
    return path


def hint_for_a_missing_file(path: Path) -> str:
    """What to add when a file that does not exist is named like a data set: the examples'
    `corpora/poems.txt` outside a clone, or a data set's name given as a file (`train-lm
    tinyshakespeare`); else ""."""
    shipped = next((c for c in SHIPPED.values() if path.name == c.file or str(path) == c.name), None)
    if shipped is not None:
        return (f"; {shipped.name} ships with charseq, wherever it is installed: give "
                f"\"$(charseq data path {shipped.name})\"")
    spec = DATASETS.get(str(path))
    if spec is not None and (spec.single_file or spec.members[0].name.endswith(".tsv")):  # a text, not MNIST
        file = "" if spec.single_file else f"/{spec.members[0].name}"
        return (f"; for the {spec.name} data set, run charseq data get {spec.name} and give "
                f"\"$(charseq data path {spec.name}){file}\"")
    return ""


def list_datasets() -> list[dict]:
    """One dict per data set: name, description, cached (bool), changed (bool: cached, but no longer
    matching its SHA-256), path, size in bytes (0 if not cached), source; then one per corpus that
    ships with charseq, with shipped=True."""
    out = []
    for name, spec in DATASETS.items():
        path = cached_path(name)
        folder = datasets_dir() / name
        size = sum((folder / m.name).stat().st_size for m in spec.members) if path else 0
        out.append(dict(name=name, description=spec.description, cached=path is not None,
                        changed=path is not None and bool(changed_files(name)),
                        shipped=False, path=str(path) if path else None, size=size, source=spec.source,
                        urls=spec.urls))
    for name, corpus in SHIPPED.items():  # always there, read in place
        out.append(dict(name=name, description=corpus.description, cached=True, changed=False, shipped=True,
                        path=str(corpus.path), size=corpus.path.stat().st_size, source=SHIPPED_SOURCE, urls=[]))
    return out


# ----------------------------------------------------------------------------- fetching
def get_dataset(name: str, source: str | os.PathLike | None = None, log: Callable[[str], None] = print) -> Path:
    """Data set `name` from the cache, fetched and verified first if it is not there yet.

    `source`: a local file or folder, or a ``file://``, ``http://`` or ``https://`` URL, used instead
    of the canonical URL (a folder or folder URL holds the data set's files under their usual names).
    `log` receives the lines the command line prints (what is downloaded, verified and cached).
    Returns what `dataset_path` returns; raises CharseqError (one line) when it cannot be had.
    """
    if name in SHIPPED:
        if source is not None:
            raise CharseqError(f"{name} ships with charseq ({SHIPPED[name].path}); --from is for the data sets "
                               "charseq downloads")
        return SHIPPED[name].path
    spec = dataset(name)
    if source is not None and not str(source).strip():  # an unset variable: not the current folder, cached or not
        raise CharseqError("--from is empty; give the path or URL of a copy of the data set")
    if cached_path(name) is not None:
        changed = changed_files(name)
        if not changed:
            return cached_path(name)
        verb = "matches its" if len(changed) == 1 else "match their"
        log(f"{name}: the cached {', '.join(changed)} no longer {verb} SHA-256 (changed since it was verified); "
            "fetching the data set again")
    root = datasets_dir()
    # The folders made here, deepest first: removed again if nothing is cached.
    made = [p for p in (root, *root.parents) if not p.exists()]
    try:
        build = Replacement.begin(root / name)  # a folder of its own beside the cached one, until verified
    except OSError as e:
        raise CharseqError(f"cannot write to charseq's cache {root}: {e.strerror or e} "
                           "(set CHARSEQ_CACHE to a folder you can write)") from None
    try:
        fetched = _Fetcher(spec, source, build.path, log)
        for member in spec.members:
            raw = fetched.raw(member)
            if _is_a_web_page(raw):
                raise CharseqError(f"{name}: {member.name} from {fetched.origin(member)} is a web page (HTML), not "
                                   "the data set's file; give the address of the file itself (on GitHub, its Raw "
                                   "link); nothing was cached")
            data, digest = spec.prepare(member, raw)
            if digest != member.sha256:
                keras_npz = str(fetched.origin(member)).endswith(".npz")  # another data set, or MNIST changed
                raise CharseqError(f"{name}: {member.name} from {fetched.origin(member)} has SHA-256 {digest}, "
                                   f"expected {member.sha256}; nothing was cached" + (
                                       " (classify-mnist --data reads an .npz as it is)" if keras_npz else ""))
            try:
                with open(build.path / member.name, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                raise cannot_write_the_cache(e) from None
        fetched.clean()
        if cached_path(name) is None or changed_files(name):  # an incomplete or changed copy is replaced
            build.commit()
        else:  # another process got there first: its copy stays
            build.rollback()
    except BaseException as e:
        build.rollback()
        _remove_empty(made)
        if isinstance(e, KeyboardInterrupt):  # Ctrl-C: say what it left, nothing, as a cut-off download does
            raise Interrupted(f"interrupted: nothing was cached; charseq data get {name} starts again") from None
        raise
    log(f"{name}: verified and cached in {root / name}")
    return dataset_path(name)


def _remove_empty(folders: list[Path]) -> None:
    """Remove `folders` (deepest first) while they are empty: a failed fetch leaves no cache behind."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


class _Fetcher:
    """The raw bytes of each member, from the canonical URL or from `source`, downloading each URL once."""

    def __init__(self, spec: Dataset, source, staging: Path, log):
        self.spec, self.staging, self.log = spec, staging, log
        self.downloads: dict[str, Path] = {}
        self.source = None if source is None else str(source)
        self.local: Path | None = None
        if self.source is not None and self.source.startswith("file://"):
            self.local = Path(urllib.request.url2pathname(urllib.parse.urlparse(self.source).path))
        elif self.source is not None and not self.source.startswith(URL_SCHEMES):
            if "://" in self.source:
                raise CharseqError(f"--from {self.source}: only http://, https:// and file:// URLs are supported")
            self.local = Path(self.source).expanduser()
        if self.local is not None and not self.local.exists():
            raise CharseqError(f"--from {self.source} does not exist")

    def origin(self, member: Member) -> str:
        if self.source is None:
            return member.url
        return self.source if self.local is None or self.local.is_file() else str(self._local_file(member))

    def raw(self, member: Member) -> bytes:
        if self.source is None:
            return self._from_archive_or_file(member, self._download(member.url), member.url)
        if self.local is None:  # a mirror URL: the file itself, a zip, or a folder holding the files
            url = self.source
            if url.endswith("/") or len(self.spec.urls) > 1:  # a folder: each file under its usual name
                archive = len(self.spec.urls) < len(self.spec.members)  # files that come in one zip
                url = url.rstrip("/") + "/" + (member.name if archive else member.url.rsplit("/", 1)[1])
            return self._from_archive_or_file(member, self._download(url), url)
        if self.local.is_dir():
            path = self._local_file(member)
            return self._from_archive_or_file(member, path, str(path))
        return self._from_archive_or_file(member, self.local, self.source)

    def _local_file(self, member: Member) -> Path:
        for name in (member.name, *member.aliases, member.url.rsplit("/", 1)[1]):
            for candidate in (self.local / name, self.local / Path(member.url).stem / name):
                if candidate.is_file():
                    return candidate
        if member.name in keras_mnist.ARRAYS and (self.local / "mnist.npz").is_file():  # ~/.keras/datasets/
            return self.local / "mnist.npz"
        # A folder such as ~/Downloads or ~/.keras/datasets holds other zips too: the one holding the
        # file, else the first (whose error then says what it lacks).
        zips = sorted(self.local.glob("*.zip"))
        for archive in zips:
            if _zip_holds(archive, (member.name, *member.aliases)):
                return archive
        if zips:
            return zips[0]
        raise CharseqError(f"--from {self.source} has no {member.name} (nor {', '.join(member.aliases) or 'a zip'})")

    def _from_archive_or_file(self, member: Member, path: Path, where: str) -> bytes:
        """`path` itself, or the member inside it when it is a zip (SST-2's GLUE archive)."""
        if zipfile.is_zipfile(path):
            try:
                with zipfile.ZipFile(path) as archive:
                    # Under any of the names a folder may hold it by (MNIST's gzipped or dotted spellings).
                    usual = (member.name, *member.aliases)
                    names = _members_named(archive, usual)
                    if not names and member.name in keras_mnist.ARRAYS and keras_mnist.is_keras_mnist(archive):
                        return keras_mnist.idx_bytes(archive, member.name, where)  # Keras' mnist.npz
                    if not names:
                        also = f" (nor {', '.join(member.aliases)})" if member.aliases else ""
                        raise CharseqError(f"{where} is a zip without {member.name}{also}")
                    return archive.read(min(names, key=lambda n: (usual.index(Path(n).name), len(n))))
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise CharseqError(f"{where} is a damaged zip file ({e})") from None
        if _starts_like_a_zip(path):  # a zip cut off before its directory, which is at its end
            raise CharseqError(f"{where} is a damaged zip file (it ends before the zip's list of files: cut off?); "
                               "nothing was cached")
        if len(self.spec.members) > 1 and self.local is not None and self.local.is_file():
            if path.suffix == ".npz":  # named as Keras' copy is, but not a zip as every .npz is
                raise CharseqError(f"--from {where} is no .npz file (an .npz is a zip of arrays; this file is "
                                   "not a zip: damaged, or another kind of file); nothing was cached")
            keras = ", or Keras' mnist.npz" if member.name in keras_mnist.ARRAYS else ""
            raise CharseqError(f"--from {where}: {self.spec.name} has {len(self.spec.members)} files "
                               f"({', '.join(m.name for m in self.spec.members)}); give the folder (or zip) "
                               f"that holds them{keras}")
        try:
            return path.read_bytes()
        except OSError as e:
            raise CharseqError(f"cannot read {path}: {e.strerror or e}") from None

    def _download(self, url: str) -> Path:
        if url in self.downloads:
            return self.downloads[url]
        target = self.staging / f".download-{len(self.downloads)}"
        # A full disk is the cache's problem, not the network's: no reason to copy the files from another machine.
        try:
            with open(target, "wb") as out:  # closing flushes the last bytes, which may not fit either
                self._receive(url, out)
        except OSError as e:
            raise cannot_write_the_cache(e) from None
        self.downloads[url] = target
        return target

    def _receive(self, url: str, out) -> None:
        """The body of `url`, written to `out`; a network problem is a one-line CharseqError."""
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                # Said once the server answers: offline, the error that names the URL is the one line.
                self.log(f"downloading {url}")
                expected = response.headers.get("Content-Length")
                received = 0
                with _Progress(int(expected) if expected is not None and expected.isdigit() else None) as progress:
                    while chunk := response.read1(CHUNK):
                        _write(out, chunk)
                        received += len(chunk)
                        progress.show(received)
            if expected is not None and expected.isdigit() and received != int(expected):
                raise CharseqError(f"the download of {url} was cut off after {received:,} of {int(expected):,} "
                                   f"bytes; nothing was cached (try again, or {self._advice()})")
        except urllib.error.HTTPError as e:
            raise CharseqError(f"could not download {url} (HTTP {e.code} {e.reason}); {self._advice()}") from None
        except http.client.HTTPException as e:  # e.g. the connection closed in the middle of the body
            raise CharseqError(f"the download of {url} failed ({type(e).__name__}); nothing was cached "
                               f"(try again, or {self._advice()})") from None
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as e:
            reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
            raise CharseqError(f"could not download {url} ({reason}); {self._advice()}") from None

    def _advice(self) -> str:
        advice = (f"without internet, copy the file(s) from another machine and run: charseq data get "
                  f"{self.spec.name} --from PATH_OR_URL")
        keras_copy = keras_mnist.keras_copy() if self.spec.name == "mnist" else None
        return advice + (f" (Keras' copy is on this machine: --from {keras_copy})" if keras_copy else "")

    def clean(self) -> None:
        for path in self.downloads.values():
            path.unlink(missing_ok=True)


class _Progress:
    """How much of a download has arrived, redrawn in place on stderr where it is a terminal (as pip
    and curl do); nothing in a log file, a pipe or a notebook, whose lines stay as they were."""

    EVERY_S = 0.2

    def __init__(self, expected: int | None):
        self.expected, self.received, self.drawn, self.last = expected, 0, 0.0, ""
        try:
            self.on = sys.stderr.isatty()
        except (AttributeError, ValueError):  # no stderr, or a closed one
            self.on = False

    def show(self, received: int, final: bool = False) -> None:
        now, self.received = time.monotonic(), received
        if not self.on or (not final and now - self.drawn < self.EVERY_S):
            return
        line = f"  {format_size(received)}" + (
            f" of {format_size(self.expected)} ({100 * received // max(self.expected, 1)}%)" if self.expected else "")
        sys.stderr.write("\r" + line.ljust(len(self.last)))
        sys.stderr.flush()
        self.drawn, self.last = now, line

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.on and self.last:  # the last count, then a line of its own for whatever is said next
            self.show(self.received, final=True)
            sys.stderr.write("\n")
            sys.stderr.flush()
        return False


def cannot_write_the_cache(e: OSError) -> CharseqError:
    """Writing into the cache failed (a full disk, a file size limit): not the network's fault."""
    return CharseqError(f"cannot write to charseq's cache {datasets_dir()}: {e.strerror or e}; nothing was "
                        "cached (free some space, or set CHARSEQ_CACHE to a folder on another disk)")


def _write(out, data: bytes) -> None:
    """`data` into a file of the cache; an error writing it is the cache's, said as such."""
    try:
        out.write(data)
    except OSError as e:
        raise cannot_write_the_cache(e) from None


def _is_a_web_page(data: bytes) -> bool:
    """Whether `data` is an HTML page: what a link to a file's page (GitHub's blob view) or a sign-in
    page gives instead of the file. None of the data sets starts so."""
    start = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html"))


def _members_named(archive: zipfile.ZipFile, names: tuple[str, ...]) -> list[str]:
    """The files of `archive` under one of `names`, in any folder of it (macOS' __MACOSX copies aside)."""
    return [n for n in archive.namelist() if Path(n).name in names and not n.startswith("__MACOSX")]


def _zip_holds(path: Path, names: tuple[str, ...]) -> bool:
    """Whether zip `path` holds a file under one of `names`, in any folder of it."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(_members_named(archive, names))
    except (zipfile.BadZipFile, OSError):
        return False


def _starts_like_a_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def format_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size} B"
