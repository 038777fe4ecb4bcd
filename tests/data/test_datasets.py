"""Data sets fetched into the cache (charseq.data.datasets, `charseq data`): served by a local HTTP
server on 127.0.0.1 and from file:// and local copies the tests make; the registry's URLs and
checksums are pointed at those fixtures."""

import dataclasses
import gzip
import hashlib
import http.server
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import charseq as charseq_package
from charseq import cli
from charseq.cache import cache_root
from charseq.data import datasets
from charseq.data.datasets import DATASETS, Member, get_dataset
from charseq.data.shipped import SHIPPED
from charseq.errors import CharseqError, Interrupted
from helpers import CHARSEQ, REPO, run_cli

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 200).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Files(dict):
    """What the server serves: path -> bytes, or (bytes, True) to send half of it and hang up."""

    def __init__(self):
        super().__init__()
        self.requests = []


@pytest.fixture
def server():
    files = Files()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            files.requests.append(self.path)
            entry = files.get(self.path)
            if entry is None:
                self.send_error(404)
                return
            body, cut = entry if isinstance(entry, tuple) else (entry, False)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if cut:  # the connection drops halfway through the body
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
            else:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll, so that shutdown() at the end of each test returns at once (the default waits 0.5 s).
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    files.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield files
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("CHARSEQ_CACHE", str(root))
    return root


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def point(monkeypatch, name: str, *members: Member) -> None:
    """Data set `name` with these files (URLs, checksums) instead of the public ones."""
    monkeypatch.setitem(DATASETS, name, dataclasses.replace(DATASETS[name], members=members))


def shakespeare(monkeypatch, url: str, data: bytes = TEXT) -> None:
    point(monkeypatch, "tinyshakespeare", dataclasses.replace(DATASETS["tinyshakespeare"].members[0], url=url,
                                                              sha256=sha256(data)))


def charseq(*args):
    """The CLI in this process (so the registry can be pointed at fixtures): (exit code, stdout, stderr)."""
    result = CliRunner().invoke(cli.main, list(map(str, args)))
    return result.exit_code, result.stdout, result.stderr


def leftovers(root) -> list[str]:
    """Everything under the cache's datasets folder (temporary files included)."""
    folder = root / "datasets"
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# ----------------------------------------------------------------------------- cache root
def test_one_cache_root_for_data_and_kernels(tmp_path, monkeypatch):
    from charseq import kernels

    monkeypatch.delenv("CHARSEQ_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "charseq"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "charseq"
    monkeypatch.setenv("CHARSEQ_CACHE", str(tmp_path / "mine"))
    assert cache_root("datasets") == tmp_path / "mine" / "datasets"
    assert kernels.cache_root() == tmp_path / "mine" / "kernels"
    assert datasets.datasets_dir() == tmp_path / "mine" / "datasets"


def test_the_folder_data_list_names_is_the_one_to_copy_and_point_charseq_cache_at(tmp_path, monkeypatch, cache):
    """Offline, a whole cache folder is copied from a machine that has the data sets and
    CHARSEQ_CACHE is pointed at it: `charseq data list` names that folder, and which setting chose it."""
    copy = tmp_path / "input.txt"
    copy.write_bytes(TEXT)
    shakespeare(monkeypatch, f"http://127.0.0.1:{closed_port()}/input.txt")
    get_dataset("tinyshakespeare", copy, log=lambda line: None)
    first = charseq("data", "list")[1].splitlines()[0]
    assert first == f"cache: {cache} (CHARSEQ_CACHE); data sets in {cache / 'datasets'}"
    shown = first.removeprefix("cache: ").split(" (")[0]
    shutil.copytree(shown, tmp_path / "carried")
    monkeypatch.setenv("CHARSEQ_CACHE", str(tmp_path / "carried"))
    code, out, err = charseq("data", "path", "tinyshakespeare")
    assert code == 0 and out == f"{tmp_path / 'carried' / 'datasets' / 'tinyshakespeare' / 'input.txt'}\n", err

    monkeypatch.delenv("CHARSEQ_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert charseq("data", "list")[1].startswith(f"cache: {tmp_path / 'xdg' / 'charseq'} (XDG_CACHE_HOME/charseq); ")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert charseq("data", "list")[1].startswith(
        f"cache: {tmp_path / 'home' / '.cache' / 'charseq'} (the default; CHARSEQ_CACHE moves it); ")


def test_the_cli_names_every_data_set():
    assert set(cli.DATASET_NAMES) == set(DATASETS) | set(SHIPPED)
    for spec in DATASETS.values():
        assert all(len(m.sha256) == 64 and m.url.startswith("https://") for m in spec.members)


# ----------------------------------------------------------------------------- shipped corpora
@pytest.mark.parametrize("name, file", [("poems", "poems.txt"), ("zh-en", "zh-en.tsv")])
def test_the_shipped_corpora_are_found_inside_the_installed_package(cache, name, file):
    """An installed charseq has no corpora/ folder beside it: the examples' corpora are in the package
    (the wheel takes them from there), and `charseq data path` names them, offline and uncached."""
    package = Path(charseq_package.__file__).parent
    code, out, err = charseq("data", "path", name)
    assert code == 0, err
    assert Path(out.strip()) == package / "corpora" / file
    assert Path(out.strip()).read_bytes() == (REPO / "corpora" / file).read_bytes()  # the clone's corpora/ too
    code, out, err = charseq("data", "get", name)
    assert (code, Path(out.strip()), err) == (0, package / "corpora" / file, "")
    assert not cache.exists()  # read in place: nothing is copied into the cache
    code, out, err = charseq("data", "list")
    assert code == 0 and any(line.split()[:2] == [name, "shipped"] for line in out.splitlines()), out
    row, = [json.loads(line) for line in charseq("data", "list", "--json")[1].splitlines()
            if json.loads(line)["name"] == name]
    assert row["shipped"] and row["path"] == str(package / "corpora" / file) and row["size"] > 10_000


def test_a_shipped_corpus_takes_no_from(cache, tmp_path):
    code, out, err = charseq("data", "get", "poems", "--from", tmp_path)
    assert code == 1 and out == ""
    assert err.startswith("Error: poems ships with charseq") and len(err.splitlines()) == 1, err


# ----------------------------------------------------------------------------- download
def test_download_verifies_caches_and_never_downloads_twice(server, cache, monkeypatch):
    server["/input.txt"] = TEXT
    shakespeare(monkeypatch, server.url + "/input.txt")
    code, out, err = charseq("data", "path", "tinyshakespeare")
    assert code == 1 and "not in the cache" in err and "charseq data get tinyshakespeare" in err

    code, out, err = charseq("data", "get", "tinyshakespeare")
    assert code == 0, err
    path = cache / "datasets" / "tinyshakespeare" / "input.txt"
    assert out.strip() == str(path) and path.read_bytes() == TEXT
    assert server.requests == ["/input.txt"] and server.url in err

    # Cached: neither the CLI nor the Python API downloads again.
    assert charseq("data", "get", "tinyshakespeare")[:2] == (0, f"{path}\n")
    assert get_dataset("tinyshakespeare") == path
    assert server.requests == ["/input.txt"]
    assert charseq("data", "path", "tinyshakespeare")[:2] == (0, f"{path}\n")
    assert datasets.dataset_path("tinyshakespeare") == path

    rows = {r["name"]: r for r in map(json.loads, charseq("data", "list", "--json")[1].splitlines())}
    assert rows["tinyshakespeare"]["cached"] and rows["tinyshakespeare"]["size"] == len(TEXT)
    assert not rows["mnist"]["cached"] and rows["mnist"]["size"] == 0
    table = charseq("data", "list")[1]
    assert "tinyshakespeare" in table and "not cached" in table and str(cache / "datasets") in table
    assert leftovers(cache) == ["tinyshakespeare", "tinyshakespeare/input.txt"]


def test_a_cached_copy_changed_since_it_was_verified_is_said_and_fetched_again(server, cache, monkeypatch):
    server["/input.txt"] = TEXT
    shakespeare(monkeypatch, server.url + "/input.txt")
    path = get_dataset("tinyshakespeare", log=lambda line: None)
    path.write_bytes(TEXT.replace(b"speak", b"spake"))  # edited by hand, or damaged on disk

    table = charseq("data", "list")[1]
    assert any(line.split()[:2] == ["tinyshakespeare", "changed"] for line in table.splitlines()), table
    rows = {r["name"]: r for r in map(json.loads, charseq("data", "list", "--json")[1].splitlines())}
    assert rows["tinyshakespeare"]["changed"] and not rows["mnist"]["changed"]
    code, out, err = charseq("data", "path", "tinyshakespeare")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "has changed since it was verified" in err and "charseq data get tinyshakespeare" in err
    with pytest.raises(CharseqError, match="changed since it was verified"):
        datasets.dataset_path("tinyshakespeare")

    code, out, err = charseq("data", "get", "tinyshakespeare")  # the remedy: fetched again, verified
    assert code == 0, err
    assert "no longer matches its SHA-256" in err and out.strip() == str(path) and path.read_bytes() == TEXT
    assert server.requests == ["/input.txt", "/input.txt"]
    assert charseq("data", "path", "tinyshakespeare")[:2] == (0, f"{path}\n")
    assert leftovers(cache) == ["tinyshakespeare", "tinyshakespeare/input.txt"]


def test_a_checksum_mismatch_is_one_line_and_caches_nothing(server, cache, monkeypatch):
    server["/input.txt"] = TEXT.replace(b"speak", b"spake")
    shakespeare(monkeypatch, server.url + "/input.txt")
    code, out, err = charseq("data", "get", "tinyshakespeare")
    lines = err.strip().splitlines()
    assert code == 1 and out == "" and len(lines) == 2, err  # "downloading URL", then the error
    assert lines[1].startswith("Error: tinyshakespeare: input.txt from " + server.url)
    assert sha256(TEXT) in lines[1] and "nothing was cached" in lines[1]
    assert leftovers(cache) == []
    with pytest.raises(CharseqError, match="expected"):
        get_dataset("tinyshakespeare", log=lambda line: None)
    assert leftovers(cache) == []


def test_a_web_page_instead_of_the_file_is_named_as_such(server, cache, monkeypatch, tmp_path):
    """The link to a file's page (GitHub's blob view, not its Raw link), or that page saved from a
    browser, is said to be a web page, not only to differ from the data set's checksum."""
    page = b"\n\n<!DOCTYPE html>\n<html lang=\"en\"><head><title>char-rnn/input.txt</title></head></html>\n"
    server["/blob/input.txt"] = page
    saved = tmp_path / "input.txt"
    saved.write_bytes(page)
    shakespeare(monkeypatch, f"http://127.0.0.1:{closed_port()}/input.txt")
    for source in (server.url + "/blob/input.txt", saved):
        code, out, err = charseq("data", "get", "tinyshakespeare", "--from", source)
        assert code == 1 and out == "", err
        assert err.splitlines()[-1] == (f"Error: tinyshakespeare: input.txt from {source} is a web page (HTML), not "
                                        "the data set's file; give the address of the file itself (on GitHub, its "
                                        "Raw link); nothing was cached")
    assert leftovers(cache) == []


def test_an_interrupted_download_leaves_no_partial_file(server, cache, monkeypatch):
    server["/input.txt"] = (TEXT, True)
    shakespeare(monkeypatch, server.url + "/input.txt")
    code, out, err = charseq("data", "get", "tinyshakespeare")
    assert code == 1 and err.count("\n") == 2, err
    assert f"the download of {server.url}/input.txt was cut off after {len(TEXT) // 2:,} of {len(TEXT):,} bytes" in err
    assert server.url + "/input.txt" in err and "nothing was cached" in err
    assert leftovers(cache) == []
    # The server recovers: the next try downloads it whole.
    server["/input.txt"] = TEXT
    assert get_dataset("tinyshakespeare", log=lambda line: None).read_bytes() == TEXT


def test_ctrl_c_in_a_download_says_that_nothing_was_cached(server, cache, monkeypatch):
    """A user who stops a download wonders whether half of it stays in the cache: the one line says."""
    server["/input.txt"] = TEXT
    shakespeare(monkeypatch, server.url + "/input.txt")

    def ctrl_c_once_it_starts(line):
        if line.startswith("downloading"):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="interrupted: nothing was cached; charseq data get tinyshakespeare"):
        get_dataset("tinyshakespeare", log=ctrl_c_once_it_starts)
    assert not cache.exists()

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets.urllib.request, "urlopen", ctrl_c)
    code, out, err = charseq("data", "get", "tinyshakespeare")
    assert (code, out) == (130, "") and err == ("interrupted: nothing was cached; charseq data get "
                                                "tinyshakespeare starts again\n"), err
    assert not cache.exists()


def test_a_download_shows_its_progress_on_a_terminal_only(server, cache, tmp_path):
    """On a terminal, stderr counts what has arrived, redrawn in place, then ends its line before
    what follows (here the checksum's error: the file is not Shakespeare); in a pipe, nothing."""
    import pty

    body = TEXT * 40  # ~400 KB, several reads
    server["/input.txt"] = body
    command = [*CHARSEQ, "data", "get", "tinyshakespeare", "--from", server.url + "/input.txt"]
    env = {**os.environ, "CHARSEQ_CACHE": str(cache)}
    terminal, stderr = pty.openpty()
    try:
        r = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, env=env, cwd=REPO, timeout=120)
        os.close(stderr)
        shown = b""
        while True:
            try:
                piece = os.read(terminal, 1 << 16)
            except OSError:  # EIO: everything written to the terminal has been read
                break
            if not piece:
                break
            shown += piece
    finally:
        os.close(terminal)
    shown = shown.decode().replace("\r\n", "\n")
    total = datasets.format_size(len(body))
    assert r.returncode == 1 and f"\r  {total} of {total} (100%)\nError: " in shown, shown
    assert shown.index(f"downloading {server.url}/input.txt\n") < shown.index("\r  ")
    piped = run_cli(*command[len(CHARSEQ):], env=env)
    assert piped.returncode == 1 and "\r" not in piped.stderr and " of " not in piped.stderr.split("Error:")[0]


def test_no_network_is_one_line_naming_the_url_and_from(cache, monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}/char-rnn/input.txt"
    shakespeare(monkeypatch, url)
    code, out, err = charseq("data", "get", "tinyshakespeare")
    error, = err.strip().splitlines()  # no "downloading URL" before it: nothing was downloading
    assert code == 1 and error.startswith(f"Error: could not download {url} (")
    assert "--from" in error and "charseq data get tinyshakespeare" in error
    assert not cache.exists()  # nothing cached: not even the empty folders a copy would have gone in


def test_the_real_command_line_refuses_a_wrong_copy_and_an_unreachable_mirror(tmp_path, cache):
    env = {**os.environ, "CHARSEQ_CACHE": str(cache)}
    wrong = tmp_path / "input.txt"
    wrong.write_bytes(TEXT)
    r = run_cli("data", "get", "tinyshakespeare", "--from", wrong, env=env)
    assert r.returncode == 1 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"from {wrong} has SHA-256 {sha256(TEXT)}" in r.stderr and "nothing was cached" in r.stderr
    url = f"http://127.0.0.1:{closed_port()}/input.txt"
    r = run_cli("data", "get", "tinyshakespeare", "--from", url, env=env)
    assert r.returncode == 1 and f"could not download {url}" in r.stderr and "--from" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("data", "path", "tinyshakespeare", env=env)
    assert r.returncode == 1 and "charseq data get tinyshakespeare" in r.stderr
    assert leftovers(cache) == []
    r = run_cli("data", "get", "imagenet", env=env)
    assert r.returncode == 2 and "tinyshakespeare" in r.stderr


def test_a_full_disk_is_said_as_the_cache_s_problem_not_the_network_s(server, cache):
    """The download cannot be written (a file size limit, as a full disk): one line naming the cache and
    what to do about it, not advice to copy the files from another machine; nothing is left behind."""
    server["/input.txt"] = TEXT * 4
    r = run_cli("data", "get", "tinyshakespeare", "--from", server.url + "/input.txt",
                env={**os.environ, "CHARSEQ_CACHE": str(cache)},
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (len(TEXT), len(TEXT))))
    error = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert error.startswith(f"Error: cannot write to charseq's cache {cache / 'datasets'}: File too large"), error
    assert "CHARSEQ_CACHE" in error and "without internet" not in error
    assert leftovers(cache) == []


# ----------------------------------------------------------------------------- --from
@pytest.mark.parametrize("kind", ["file", "folder", "file-url", "mirror-url"])
def test_from_a_local_copy_or_a_mirror(server, cache, monkeypatch, tmp_path, kind):
    shakespeare(monkeypatch, f"http://127.0.0.1:{closed_port()}/input.txt")  # the canonical URL is down
    copy = tmp_path / "copies" / "tinyshakespeare.txt"
    copy.parent.mkdir()
    copy.write_bytes(TEXT)
    server["/mirror/input.txt"] = TEXT
    source = {"file": copy, "folder": copy.parent, "file-url": copy.as_uri(),
              "mirror-url": server.url + "/mirror/"}[kind]
    code, out, err = charseq("data", "get", "tinyshakespeare", "--from", source)
    assert code == 0, err
    assert (cache / "datasets" / "tinyshakespeare" / "input.txt").read_bytes() == TEXT
    assert server.requests == (["/mirror/input.txt"] if kind == "mirror-url" else [])


def test_an_empty_from_is_refused_instead_of_reading_the_current_folder(cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "input.txt").write_bytes(TEXT)  # what the current folder would have given
    shakespeare(monkeypatch, f"http://127.0.0.1:{closed_port()}/input.txt")
    code, out, err = charseq("data", "get", "tinyshakespeare", "--from", "")
    assert code == 1 and out == "" and err == "Error: --from is empty; give the path or URL of a copy of the data set\n"
    with pytest.raises(CharseqError, match="--from is empty"):
        get_dataset("tinyshakespeare", " ", log=lambda line: None)
    assert leftovers(cache) == []
    get_dataset("tinyshakespeare", tmp_path / "input.txt", log=lambda line: None)  # cached: still a mistake
    assert charseq("data", "get", "tinyshakespeare", "--from", "")[0] == 1


def test_from_what_does_not_exist_or_holds_nothing(cache, tmp_path):
    with pytest.raises(CharseqError, match="does not exist"):
        get_dataset("tinyshakespeare", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CharseqError, match="has no input.txt"):
        get_dataset("tinyshakespeare", tmp_path / "empty")
    with pytest.raises(CharseqError, match="only http://, https:// and file://"):
        get_dataset("tinyshakespeare", "ftp://example.org/input.txt")
    with pytest.raises(CharseqError, match="no data set named 'cifar'"):
        get_dataset("cifar")
    assert leftovers(cache) == []


# ----------------------------------------------------------------------------- SST-2 (a zip)
GLUE_TRAIN = "sentence\tlabel\nhide new secretions \t0\nthat loves its characters \t1\na dull film \t0\n"
GLUE_DEV = "sentence\tlabel\nit 's a charming journey . \t1\n"


def canonical(rows) -> str:
    """SST-2's checksum, written out: SHA-256 of the sorted `label<TAB>sentence` lines."""
    return sha256("".join(sorted(f"{label}\t{sentence}\n" for label, sentence in rows)).encode())


@pytest.fixture
def sst2(monkeypatch, server, tmp_path):
    archive = tmp_path / "SST-2.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("SST-2/train.tsv", GLUE_TRAIN)
        z.writestr("SST-2/dev.tsv", GLUE_DEV)
        z.writestr("SST-2/test.tsv", "index\tsentence\n0\tunlabelled\n")
    server["/glue/SST-2.zip"] = archive.read_bytes()
    train = [("0", "hide new secretions"), ("1", "that loves its characters"), ("0", "a dull film")]
    dev = [("1", "it 's a charming journey .")]
    url = server.url + "/glue/SST-2.zip"
    point(monkeypatch, "sst2", Member("train.tsv", url, canonical(train)), Member("dev.tsv", url, canonical(dev)))
    return archive


def test_sst2_is_extracted_from_the_zip_once_and_normalised(server, cache, sst2):
    folder = get_dataset("sst2", log=lambda line: None)
    assert folder == cache / "datasets" / "sst2" and sorted(p.name for p in folder.iterdir()) == ["dev.tsv", "train.tsv"]
    assert server.requests == ["/glue/SST-2.zip"]  # one download for both files
    assert (folder / "train.tsv").read_text() == (
        "label\tsentence\n0\thide new secretions\n1\tthat loves its characters\n0\ta dull film\n")
    assert (folder / "dev.tsv").read_text() == "label\tsentence\n1\tit 's a charming journey .\n"


def test_the_cached_sst2_is_verified_on_use(server, cache, sst2):
    folder = get_dataset("sst2", log=lambda line: None)
    assert datasets.dataset_path("sst2") == folder and not datasets.changed_files("sst2")
    (folder / "dev.tsv").write_text("label\tsentence\n0\tit 's a charming journey .\n")  # a label flipped
    assert datasets.changed_files("sst2") == ["dev.tsv"]
    with pytest.raises(CharseqError, match="dev.tsv no longer matches its SHA-256"):
        datasets.dataset_path("sst2")


@pytest.mark.parametrize("kind", ["zip", "folder", "reordered-folder"])
def test_sst2_from_a_zip_or_a_folder(monkeypatch, cache, sst2, tmp_path, kind):
    monkeypatch.setitem(DATASETS, "sst2", dataclasses.replace(DATASETS["sst2"], members=tuple(
        dataclasses.replace(m, url=f"http://127.0.0.1:{closed_port()}/SST-2.zip") for m in DATASETS["sst2"].members)))
    folder = tmp_path / "copy"
    folder.mkdir()
    if kind == "folder":
        (folder / "train.tsv").write_text(GLUE_TRAIN)
        (folder / "dev.tsv").write_text(GLUE_DEV)
    elif kind == "reordered-folder":  # label first, CRLF, other row order: the same examples
        (folder / "train.tsv").write_bytes(
            b"label\tsentence\r\n0\ta dull film\r\n0\thide new secretions\r\n1\tthat loves its characters\r\n")
        (folder / "dev.tsv").write_bytes(b"label\tcontent\n1\tit 's a charming journey .\n")
    code, out, err = charseq("data", "get", "sst2", "--from", sst2 if kind == "zip" else folder)
    assert code == 0, err
    rows = (cache / "datasets" / "sst2" / "train.tsv").read_text().splitlines()
    assert rows[0] == "label\tsentence" and sorted(rows[1:]) == ["0\ta dull film", "0\thide new secretions",
                                                                 "1\tthat loves its characters"]


def test_a_cut_off_sst2_zip_is_named_as_a_damaged_zip(monkeypatch, cache, sst2, tmp_path):
    whole = sst2.read_bytes()
    (tmp_path / "downloads").mkdir()
    cut = tmp_path / "downloads" / "SST-2.zip"
    cut.write_bytes(whole[: len(whole) // 2])  # its list of files, at the end, is missing
    for source in (cut, cut.parent):  # the zip, or the folder holding it
        code, out, err = charseq("data", "get", "sst2", "--from", source)
        assert code == 1 and err == (f"Error: {cut} is a damaged zip file (it ends before the zip's list of files: "
                                     "cut off?); nothing was cached\n")
    assert leftovers(cache) == []


def test_sst2_with_a_changed_example_is_refused(monkeypatch, cache, sst2, tmp_path):
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "train.tsv").write_text(GLUE_TRAIN.replace("\t0\n", "\t1\n", 1))  # one label flipped
    (tmp_path / "copy" / "dev.tsv").write_text(GLUE_DEV)
    with pytest.raises(CharseqError, match=r"sst2: train.tsv from .*copy/train.tsv has SHA-256 .*nothing was cached"):
        get_dataset("sst2", tmp_path / "copy", log=lambda line: None)
    (tmp_path / "copy" / "train.tsv").write_text("just some text\n")
    with pytest.raises(CharseqError, match="not an SST-2 TSV file"):
        get_dataset("sst2", tmp_path / "copy", log=lambda line: None)
    assert leftovers(cache) == []


# ----------------------------------------------------------------------------- MNIST (IDX files)
def idx(array: np.ndarray, magic: int) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()


@pytest.fixture
def mnist(monkeypatch, server):
    """Four small gzipped IDX files on a mirror; the registry expects the SHA-256 of the IDX bytes."""
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": (rng.integers(0, 256, (12, 28, 28), dtype=np.uint8), 2051),
              "train-labels-idx1-ubyte": (np.arange(12, dtype=np.uint8) % 10, 2049),
              "t10k-images-idx3-ubyte": (rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), 2051),
              "t10k-labels-idx1-ubyte": (np.arange(5, dtype=np.uint8), 2049)}
    members = []
    for name, (array, magic) in arrays.items():
        raw = idx(array, magic)
        server[f"/mnist/{name}.gz"] = gzip.compress(raw)
        public = next(m for m in DATASETS["mnist"].members if m.name == name)
        members.append(dataclasses.replace(public, sha256=sha256(raw), url=f"{server.url}/mnist/{name}.gz"))
    point(monkeypatch, "mnist", *members)
    return {name: array for name, (array, _) in arrays.items()}


def test_mnist_is_fetched_decompressed_and_read_from_the_cache(server, cache, mnist):
    from charseq.data.mnist import load_mnist

    images = load_mnist(log=lambda line: None)  # no --data: the cache, fetched first
    assert len(server.requests) == 4
    np.testing.assert_array_equal(images.x_train, mnist["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(images.y_test, mnist["t10k-labels-idx1-ubyte"])
    assert str(cache / "datasets" / "mnist") in images.source
    cached = cache / "datasets" / "mnist" / "t10k-images-idx3-ubyte"
    assert cached.read_bytes()[:4] == (2051).to_bytes(4, "big")  # stored decompressed
    load_mnist(log=lambda line: None)
    assert len(server.requests) == 4


def test_mnist_from_a_folder_of_raw_or_gzipped_files(server, cache, mnist, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for path, body in server.items():
        name = path.rsplit("/", 1)[1]
        if "train" in name:  # train gzipped, test raw and spelt with a dot, as some copies have them
            (folder / name).write_bytes(body)
        else:
            (folder / name[:-3].replace("-idx", ".idx")).write_bytes(gzip.decompress(body))
    code, out, err = charseq("data", "get", "mnist", "--from", folder)
    assert code == 0, err
    assert server.requests == [] and out.strip() == str(cache / "datasets" / "mnist")


@pytest.mark.parametrize("spelling", ["gzipped", "dotted"])
def test_mnist_from_a_zip_of_the_files_a_folder_may_hold(server, cache, mnist, tmp_path, spelling):
    """A zip of the four files is read like a folder of them: gzipped, or spelt with a dot as some
    copies have them, in a subfolder of the zip or not."""
    archive = tmp_path / "mnist.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path, body in server.items():
            name = path.rsplit("/", 1)[1]
            if spelling == "gzipped":
                zipped.writestr(f"mnist/{name}", body)
            else:
                zipped.writestr(name[:-3].replace("-idx", ".idx"), gzip.decompress(body))
    code, out, err = charseq("data", "get", "mnist", "--from", archive)
    assert code == 0, err
    assert server.requests == [] and out.strip() == str(cache / "datasets" / "mnist")
    for name, array in mnist.items():
        assert (cache / "datasets" / "mnist" / name).read_bytes() == idx(array, 2051 if array.ndim == 3 else 2049)
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("readme.txt", "no digits here")
    shutil.rmtree(cache / "datasets" / "mnist")
    code, out, err = charseq("data", "get", "mnist", "--from", archive)
    assert code == 1 and err == (f"Error: {archive} is a zip without train-images-idx3-ubyte (nor "
                                 "train-images-idx3-ubyte.gz, train-images.idx3-ubyte, train-images.idx3-ubyte.gz)\n")


def test_mnist_offline_says_how_to_get_it(cache, mnist, monkeypatch, tmp_path):
    from charseq.data.mnist import load_mnist

    point(monkeypatch, "mnist", *(dataclasses.replace(m, url=f"http://127.0.0.1:{closed_port()}/{m.name}.gz")
                                  for m in DATASETS["mnist"].members))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # a machine where Keras has not fetched MNIST
    monkeypatch.delenv("KERAS_HOME", raising=False)
    with pytest.raises(CharseqError) as e:
        load_mnist(log=lambda line: None)
    assert "could not download http://127.0.0.1" in str(e.value) and "charseq data get mnist --from" in str(e.value)
    assert "--data" in str(e.value) and "Keras' copy" not in str(e.value)
    # Where keras.datasets.mnist.load_data() has run, the error says where its copy is.
    for keras_home in (tmp_path / "home" / ".keras", tmp_path / "keras-home"):
        if keras_home.name == "keras-home":
            monkeypatch.setenv("KERAS_HOME", str(keras_home))
        (keras_home / "datasets").mkdir(parents=True)
        (keras_home / "datasets" / "mnist.npz").write_bytes(b"PK")
        code, out, err = charseq("data", "get", "mnist")
        assert code == 1 and len(err.splitlines()) == 1, err
        assert err.rstrip().endswith(f"--from PATH_OR_URL (Keras' copy is on this machine: --from "
                                     f"{keras_home / 'datasets' / 'mnist.npz'})"), err
    (tmp_path / "one.idx").write_bytes(b"\0" * 16)
    with pytest.raises(CharseqError, match="give the folder"):
        get_dataset("mnist", tmp_path / "one.idx")
    assert leftovers(cache) == []


def test_one_file_given_for_mnist_is_told_what_to_give(cache, tmp_path):
    """MNIST is four files: one file is their folder's zip or Keras' mnist.npz, which the error names;
    a file named .npz that is no zip (a failed download's error page) is said to be none."""
    (tmp_path / "one.idx").write_bytes(b"\0" * 16)
    with pytest.raises(CharseqError, match="give the folder \\(or zip\\) that holds them, or Keras' mnist.npz"):
        get_dataset("mnist", tmp_path / "one.idx")
    (tmp_path / "mnist.npz").write_text("<Error>AccessDenied</Error>\n")
    code, out, err = charseq("data", "get", "mnist", "--from", tmp_path / "mnist.npz")
    assert code == 1 and err == (f"Error: --from {tmp_path / 'mnist.npz'} is no .npz file (an .npz is a zip of "
                                 "arrays; this file is not a zip: damaged, or another kind of file); nothing was "
                                 "cached\n"), err
    assert leftovers(cache) == []


def test_a_damaged_idx_file_is_refused(server, cache, mnist):
    server["/mnist/t10k-labels-idx1-ubyte.gz"] = server["/mnist/t10k-labels-idx1-ubyte.gz"][:-9]
    with pytest.raises(CharseqError, match="t10k-labels-idx1-ubyte"):
        get_dataset("mnist", log=lambda line: None)
    assert leftovers(cache) == []


def test_the_data_commands_load_neither_tensorflow_nor_numpy(cache):
    code = ("import sys\nfrom charseq.cli import main\n"
            "for args in (['data', 'list'], ['data', 'get', '--help'], ['data', 'path', 'sst2']):\n"
            "    try:\n        main(args, prog_name='charseq')\n"
            "    except SystemExit:\n        pass\n"
            "loaded = [m for m in ('tensorflow', 'keras', 'numpy') if m in sys.modules]\n"
            "assert not loaded, loaded\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "CHARSEQ_CACHE": str(cache)})
    assert r.returncode == 0, r.stderr
    assert "sst2 is not in the cache" in r.stderr


def test_sst2_and_mnist_from_folder_urls(server, cache, sst2, mnist):
    server["/copy/train.tsv"] = GLUE_TRAIN.encode()
    server["/copy/dev.tsv"] = GLUE_DEV.encode()
    assert get_dataset("sst2", server.url + "/copy/", log=lambda line: None) == cache / "datasets" / "sst2"
    assert get_dataset("mnist", server.url + "/mnist", log=lambda line: None) == cache / "datasets" / "mnist"
    assert sorted(server.requests) == sorted(["/copy/train.tsv", "/copy/dev.tsv",
                                              *(p for p in server if p.startswith("/mnist/"))])


def test_keras_mnist_npz_is_cached_as_the_four_idx_files(server, cache, mnist, tmp_path):
    """Keras' mnist.npz (~/.keras/datasets/, where keras.datasets.mnist keeps it) is a copy of MNIST
    like any other: its arrays are the IDX files' contents, checked by the same SHA-256."""
    from charseq.data.mnist import load_mnist

    keras = tmp_path / "keras" / "datasets"
    keras.mkdir(parents=True)
    np.savez(keras / "mnist.npz", x_train=mnist["train-images-idx3-ubyte"], y_train=mnist["train-labels-idx1-ubyte"],
             x_test=mnist["t10k-images-idx3-ubyte"], y_test=mnist["t10k-labels-idx1-ubyte"])
    for source in (keras / "mnist.npz", keras):  # the file, or the folder holding it
        code, out, err = charseq("data", "get", "mnist", "--from", source)
        assert code == 0 and out.strip() == str(cache / "datasets" / "mnist"), err
        assert server.requests == []
        images = load_mnist(log=lambda line: None)
        np.testing.assert_array_equal(images.x_train, mnist["train-images-idx3-ubyte"])
        np.testing.assert_array_equal(images.y_test, mnist["t10k-labels-idx1-ubyte"])
        for name, array in mnist.items():
            assert (cache / "datasets" / "mnist" / name).read_bytes() == idx(array, 2051 if array.ndim == 3 else 2049)
        (cache / "datasets" / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(b"changed")  # fetched again next


def test_a_folder_with_other_zips_gives_the_copy_it_holds(server, cache, mnist, sst2, tmp_path):
    """~/.keras/datasets holds the zips of other tutorials beside mnist.npz, and ~/Downloads other zips
    beside a renamed SST-2 zip: the copy of the data set is found, not the first zip by name."""
    keras = tmp_path / "keras-datasets"
    keras.mkdir()
    np.savez(keras / "mnist.npz", x_train=mnist["train-images-idx3-ubyte"], y_train=mnist["train-labels-idx1-ubyte"],
             x_test=mnist["t10k-images-idx3-ubyte"], y_test=mnist["t10k-labels-idx1-ubyte"])
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    shutil.copy(sst2, downloads / "glue-sst2 (1).zip")
    for folder in (keras, downloads):
        with zipfile.ZipFile(folder / "cats_and_dogs_filtered.zip", "w") as other:  # first by name
            other.writestr("cats_and_dogs_filtered/train/cat.0.jpg", b"\xff\xd8")
    for name, folder in (("mnist", keras), ("sst2", downloads)):
        code, out, err = charseq("data", "get", name, "--from", folder)
        assert code == 0 and out.strip() == str(cache / "datasets" / name), err
    assert server.requests == []


def test_a_keras_npz_that_is_not_mnist_is_refused_and_points_to_classify_mnist(cache, mnist, tmp_path):
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(2, np.uint8),
             x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.zeros(1, np.uint8))
    with pytest.raises(CharseqError, match=r"has SHA-256 .*nothing was cached \(classify-mnist --data reads an "
                                           r"\.npz as it is\)"):
        get_dataset("mnist", source=str(npz), log=lambda line: None)
    np.savez(npz, x_train=np.zeros((2, 28, 28), np.float32), y_train=np.zeros(2, np.uint8),
             x_test=np.zeros((1, 28, 28), np.float32), y_test=np.zeros(1, np.uint8))
    code, out, err = charseq("data", "get", "mnist", "--from", npz)
    assert code == 1 and err == (f"Error: {npz}: x_train holds <f4 values, not MNIST's bytes (uint8); "
                                 "classify-mnist --data reads such an .npz as it is\n"), err
    with zipfile.ZipFile(npz, "w") as archive:  # damaged arrays
        for array in ("x_train", "y_train", "x_test", "y_test"):
            archive.writestr(f"{array}.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': 'tr" if array == "x_train" else b"")
    code, out, err = charseq("data", "get", "mnist", "--from", npz)
    assert code == 1 and err == f"Error: {npz}: x_train is not a readable .npy array (damaged or cut off)\n", err
    assert leftovers(cache) == []

def test_evaluate_json_is_json_alone_while_the_images_it_scores_are_fetched(server, cache, mnist, tmp_path):
    """`evaluate --json` of an image classifier trained on the cached MNIST fetches it again if the cache
    lost it; the download's line goes to stderr, as `data get`'s do, and stdout is the JSON alone."""
    from charseq.heads.classifier.run import train_mnist
    from helpers import QUIET

    run = train_mnist(tmp_path / "run", units=8, batch_size=4, max_steps=2, eval_every=1, precision="float32",
                      **QUIET).path
    shutil.rmtree(cache / "datasets" / "mnist")
    code, out, err = charseq("evaluate", "--model", run, "--json")
    assert code == 0, err
    assert json.loads(out)["examples"] == 5 and "mnist: verified and cached" in err
