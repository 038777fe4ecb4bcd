"""What the tests share besides fixtures: tiny settings, the command line (in this process or a real
one), checks of a clean error, and the small data sets the tests make themselves."""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHARSEQ = [sys.executable, "-m", "charseq.cli"]

# A small corpus with learnable structure: short lines in Chinese and English.
LINES = ["春风吹绿江南岸，明月照我还。", "The river runs to the sea, and the sea runs to the sky.",
         "白日依山尽，黄河入海流。", "One two three four, five six seven eight."]
TINY_SETTINGS = dict(units=32, layers=1, embedding_dim=16, batch_size=8, seq_len=32, eval_every=10,
                     sample_length=0, precision="float32")
QUIET = dict(log=lambda s: None, progress_bar=False)


def tiny_flags(**changes) -> list[str]:
    """TINY_SETTINGS as train-lm options, with `changes` (a change to None leaves that option out)."""
    settings = {k: v for k, v in {**TINY_SETTINGS, **changes}.items() if v is not None}
    return [x for k, v in settings.items() for x in (f"--{k.replace('_', '-')}", str(v))]


TINY_FLAGS = tiny_flags()

# The tiny runs of every train command that --force, --resume and the run tree are tested on.
LM_FLAGS = ["--units", "16", "--layers", "1", "--embedding-dim", "8", "--batch-size", "8", "--seq-len", "16",
            "--eval-every", "5", "--sample-length", "0", "--precision", "float32"]
SMALL = ["--units", "16", "--embedding-dim", "8", "--batch-size", "16", "--eval-every", "5", "--precision", "float32"]
KINDS = ["train-lm", "train-classifier", "classify-mnist", "train-seq2seq"]


def command(kind: str, files: Path, out: Path, *extra) -> list:
    """The command line of a 6-step run of train command `kind` on the `files` fixture's data."""
    if kind == "train-lm":
        return ["train-lm", files / "corpus.txt", "--out", out, "--max-steps", "6", *LM_FLAGS, *extra]
    if kind == "train-classifier":
        return ["train-classifier", files / "reviews.tsv", "--out", out, "--max-steps", "6", *SMALL, *extra]
    if kind == "classify-mnist":
        return ["classify-mnist", "--data", files / "mnist.npz", "--out", out, "--max-steps", "6", *SMALL, *extra]
    return ["train-seq2seq", files / "pairs.tsv", "--out", out, "--max-steps", "6", *SMALL, *extra]


def sigint_once_logged(step: int):
    """A log callback that sends this process SIGINT once `step` has been logged (the loop then
    checkpoints and stops after that step, as on Ctrl-C)."""
    def log(line):
        if line.startswith(f"step {step}:"):
            os.kill(os.getpid(), signal.SIGINT)
    return log


def read_metrics(run) -> list[dict]:
    """The records of a run's metrics.jsonl, one per evaluation."""
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def curve(run) -> list[tuple]:
    """(step, train loss, validation loss) at each evaluation of a run."""
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in read_metrics(run)]


def saved_arrays(path, model_only: bool = False) -> dict:
    """The arrays of a saved .npz (best.npz, checkpoint.npz) by name, without its `__meta__` record;
    with `model_only`, the model's weights (w...) without the optimizer's state (o...)."""
    import numpy as np

    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files if k != "__meta__" and (not model_only or k.startswith("w"))}


def saved_meta(path) -> dict:
    """The `__meta__` record of a saved .npz: its progress (step, ...), weight names and format."""
    import numpy as np

    with np.load(path, allow_pickle=False) as f:
        return json.loads(f["__meta__"].tobytes())


def run_cli(*args, timeout=300, **kwargs) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess (exit status, stdout and stderr as a user sees them):
    for the end-to-end runs, signals, resource limits and what only a fresh process shows."""
    return subprocess.run([*CHARSEQ, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=kwargs.pop("cwd", REPO), **kwargs)


def run_cli_in_process(*args, input: str | bytes | None = None) -> subprocess.CompletedProcess:
    """The same command line run in this process (TensorFlow is imported once, not per call): for
    the command line's surface, its messages, exit codes and options. An exception that escapes
    the command is shown on stderr with its traceback, as the real process would show it. `input`
    is what the command reads on standard input."""
    from click.testing import CliRunner

    from charseq.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], input=input, prog_name="charseq")
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, stderr)


def assert_clean_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """A user error: non-zero exit, one line on stderr naming the problem, no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    err = result.stderr.strip()
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    assert len(err.splitlines()) == 1, f"expected one line, got:\n{err}"
    assert err.startswith("Error:"), err
    for fragment in fragments:
        assert fragment.lower() in err.lower(), f"{fragment!r} not in {err!r}"


def snapshot(root: Path) -> dict:
    """Every file under `root` (and the directory itself) with its bytes: to prove nothing changed."""
    if not root.exists() and not root.is_symlink():
        return {}
    files = {".": "dir" if root.is_dir() else root.read_bytes()}
    if root.is_dir():
        for p in sorted(root.rglob("*")):
            files[str(p.relative_to(root))] = p.read_bytes() if p.is_file() else ("dir" if p.is_dir() else "other")
    return files


def striped_images(n: int, seed: int):
    """A learnable image set: class k has a bright horizontal band starting at row 6k, plus noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n)
    x = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(y):
        x[i, 6 * k + 2: 6 * k + 6, 4:24] = 250
    return x, y.astype(np.uint8)


# ----------------------------------------------------------------------------- the studio for real
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def start_server(*args) -> tuple[subprocess.Popen, str, list[str]]:
    """`charseq serve ARGS --port 0` in a subprocess: (process, the URL printed, the lines printed
    before it served), once it listens."""
    proc = subprocess.Popen([*CHARSEQ, "serve", *map(str, args), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    lines = [proc.stdout.readline()]  # the first line names the URL (the port the OS picked)
    found = re.search(r"http://\S+", lines[0])
    if not found:
        proc.kill()
        raise AssertionError(f"no URL from charseq serve: {lines[0]!r} {proc.stderr.read()}")
    return proc, found.group(0), lines


def stop_server(proc) -> str:
    """Stop a server started by start_server; its stderr, which must hold no traceback."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    err = proc.stderr.read()
    assert "Traceback" not in err, err
    return err


@contextlib.contextmanager
def studio_in_this_process(*directories):
    """The studio on `directories`, served over HTTP by uvicorn from a thread of this process, whose
    TensorFlow is loaded already (a `charseq serve` subprocess loads its own): for a page that needs
    a folder of its own beside the served runs. `charseq serve` itself is tested through
    start_server. Yields the URL."""
    import uvicorn

    from charseq.studio.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(create_app(list(directories)), log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the studio did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
