"""--strategy: two MultiWorkerMirroredStrategy workers on 127.0.0.1 train together, to the same
weights and the same loss curve as one process with the same global batch; mirrored on one
CPU replica matches the default path. For every train command: the classifier's and seq2seq's
batches (odd sizes, a last batch of one row, padded texts) are split with zero-weight padding."""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from charseq.heads.classifier.run import train_classifier, train_mnist
from charseq.data.pairs import make_pairs
from charseq.errors import CharseqError
from charseq.heads.lm.run import train_lm
from charseq.heads.seq2seq.run import train_seq2seq
from helpers import REPO, TINY_SETTINGS, assert_clean_error, read_metrics, run_cli, run_cli_in_process, saved_arrays

# Dropout off: its masks are drawn per replica, so with it the runs agree only in distribution.
FLAGS = ["--units", "32", "--layers", "1", "--embedding-dim", "16", "--batch-size", "8", "--seq-len", "32",
         "--eval-every", "5", "--sample-length", "0", "--precision", "float32", "--dropout", "0"]
SETTINGS = {**TINY_SETTINGS, "eval_every": 5, "dropout": 0.0}
TIMEOUT = 150  # a hung collective must fail the test, not block CI


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run_workers(args, worker_dir, n=2):
    """Run `charseq ARGS` as `n` workers of one cluster; returns their CompletedProcess-like results."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(n)]}
    procs = []
    for i in range(n):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
               "CHARSEQ_WORKER_DIR": str(worker_dir / f"w{i}")}
        procs.append(subprocess.Popen([sys.executable, "-m", "charseq.cli", *map(str, args)], cwd=REPO, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline, results = time.time() + TIMEOUT, []
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(1, deadline - time.time()))
            results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return results


_metrics = read_metrics


def _same_curve(a, b, rel=1e-3):
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=rel), (ra, rb)
        assert ra.keys() == rb.keys()
        if "val_loss" in ra:  # not where MNIST trains without a validation split
            assert rb["val_loss"] == pytest.approx(ra["val_loss"], rel=rel), (ra, rb)


def test_two_workers_train_together_like_one_process(tmp_path, corpus_file):
    single = tmp_path / "single"
    train_lm(corpus_file, single, max_steps=10, log=lambda s: None, progress_bar=False, **SETTINGS)

    out = tmp_path / "multi"
    results = _run_workers(["train-lm", corpus_file, "--out", out, "--max-steps", "10", "--strategy", "multiworker",
                            *FLAGS], tmp_path)
    for i, r in enumerate(results):
        assert r.returncode == 0, f"worker {i}: {r.stderr}"
        assert "step 10:" in r.stdout and "Traceback" not in r.stderr
    # The chief wrote the run; worker 1 wrote only its private copy.
    assert json.loads((out / "config.json").read_text())["train"]["strategy"] == "multiworker"
    assert not (tmp_path / "w0").exists() and (tmp_path / "w1" / "multi" / "checkpoint.npz").exists()
    chief, worker = saved_arrays(out / "checkpoint.npz"), saved_arrays(tmp_path / "w1" / "multi" / "checkpoint.npz")
    assert chief.keys() == worker.keys()
    for key in chief:  # the weights, the optimizer state and the carried RNN state of the whole global batch
        np.testing.assert_allclose(worker[key], chief[key], rtol=0, atol=1e-6, err_msg=key)
    # Each worker read its half of each global batch of 8: together, the single process's curve.
    _same_curve(_metrics(single), _metrics(out))
    lone = saved_arrays(single / "checkpoint.npz")
    assert max(float(np.abs(lone[k] - chief[k]).max()) for k in lone if k.startswith("w")) < 1e-4

    # Both resume from the chief's checkpoint; so does one process from its own.
    train_lm(out=single, resume=True, max_steps=15, log=lambda s: None, progress_bar=False)
    results = _run_workers(["train-lm", "--out", out, "--resume", "--max-steps", "15"], tmp_path)
    for i, r in enumerate(results):
        assert r.returncode == 0 and "resuming from step 10" in r.stdout, f"worker {i}: {r.stderr}"
    _same_curve(_metrics(single), _metrics(out))


def test_two_workers_train_a_language_model_in_mixed_bfloat16(tmp_path, corpus_file):
    """The precision `auto` picks on a CPU with bfloat16 arithmetic: the RNN state the language model
    carries is bfloat16 then, which TensorFlow's all-gather refuses, so the first checkpoint failed."""
    out = tmp_path / "multi"
    at = FLAGS.index("--precision")
    flags = [*FLAGS[:at], "--precision", "mixed_bfloat16", *FLAGS[at + 2:]]
    results = _run_workers(["train-lm", corpus_file, "--out", out, "--max-steps", "12", "--strategy", "multiworker",
                            *flags], tmp_path)
    for i, r in enumerate(results):
        assert r.returncode == 0, f"worker {i}: {r.stderr}"
        assert "WARNING:tensorflow" not in r.stderr, r.stderr  # TensorFlow's notes on its collective ops
    assert json.loads((out / "config.json").read_text())["model"]["precision"] == "mixed_bfloat16"
    state = saved_arrays(out / "checkpoint.npz")["x_state_0_0"]
    assert state.shape[0] == 8 and np.isfinite(state).all()  # the carried state of the whole global batch


@pytest.mark.parametrize("ema", [0.0, 0.9])  # the moving average of the weights is a mirrored variable too
def test_mirrored_on_one_cpu_replica_matches_the_default(tmp_path, corpus_file, ema):
    runs = {}
    for strategy in ("default", "mirrored"):
        runs[strategy] = tmp_path / strategy
        train_lm(corpus_file, runs[strategy], max_steps=10, strategy=strategy, ema=ema, log=lambda s: None,
                 progress_bar=False, **SETTINGS)
    _same_curve(_metrics(runs["default"]), _metrics(runs["mirrored"]), rel=1e-6)
    # The strategy is a setting of the run, and a resumed run may change it.
    r = run_cli_in_process("train-lm", "--out", runs["mirrored"], "--resume", "--max-steps", "12", "--strategy",
                           "default")
    assert r.returncode == 0 and "step 12:" in r.stdout, r.stderr
    assert json.loads((runs["mirrored"] / "config.json").read_text())["train"]["strategy"] == "default"


def test_multiworker_needs_tf_config_and_a_step_count(tmp_path, corpus_file, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    r = run_cli_in_process("train-lm", corpus_file, "--out", tmp_path / "a", "--max-steps", "2", "--strategy",
                           "multiworker", *FLAGS)
    assert_clean_error(r, "TF_CONFIG is not valid JSON")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(CharseqError, match="needs TF_CONFIG"):
        train_lm(corpus_file, tmp_path / "b", max_steps=2, strategy="multiworker", log=lambda s: None, **SETTINGS)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    with pytest.raises(CharseqError, match="--time-budget cannot"):  # workers' clocks would disagree
        train_lm(corpus_file, tmp_path / "c", time_budget=1, strategy="multiworker", log=lambda s: None, **SETTINGS)
    assert not any(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.parametrize("cluster, task, fragments", [
    ({"worker": "127.0.0.1:1"}, {"type": "worker", "index": 0}, ['cluster "worker" must be a list', '"127.0.0.1:1"']),
    ({"worker": []}, {"type": "worker", "index": 0}, ['cluster "worker" must be a list']),
    ({"worker": ["127.0.0.1"]}, {"type": "worker", "index": 0}, ['address "127.0.0.1" must be "host:port"']),
    ({"worker": ["127.0.0.1:99999"]}, {"type": "worker", "index": 0}, ['"127.0.0.1:99999"', "65535"]),
    ({"worker": ["127.0.0.1:1"]}, {"type": "worker", "index": "0"}, ['task index "0"', "below 1"]),
    ({"worker": ["127.0.0.1:1"]}, {"type": "worker", "index": 2}, ["task index 2", "below 1"]),
    ({"worker": ["127.0.0.1:1"]}, {"type": "chief", "index": 0}, ['task type "chief" is not a job']),
    ({"worker": ["127.0.0.1:1", "127.0.0.1:1"]}, {"type": "worker", "index": 0},  # would wait for worker 1 forever
     ['gives worker 0 and worker 1 the same address "127.0.0.1:1"']),
    ({"chief": ["127.0.0.1:1"], "worker": {"0": "127.0.0.1:1"}}, {"type": "chief", "index": 0},
     ['gives chief 0 and worker 0 the same address']),
])
def test_a_malformed_tf_config_is_one_line_naming_the_mistake(tmp_path, corpus_file, monkeypatch, cluster, task,
                                                              fragments):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    r = run_cli_in_process("train-lm", corpus_file, "--out", tmp_path / "a", "--max-steps", "2", "--strategy",
                           "multiworker", *FLAGS)
    assert_clean_error(r, "TF_CONFIG", *fragments)
    assert not any(tmp_path.iterdir())


def test_a_worker_waiting_for_a_missing_one_says_so_and_stops_on_ctrl_c(tmp_path, corpus_file):
    """TensorFlow waits for every worker of the cluster without a word, holding the interpreter, so
    that Ctrl-C did nothing: the worker says what it waits for, and Ctrl-C ends it."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})}
    out = tmp_path / "out.txt"
    with open(out, "w") as stdout:
        p = subprocess.Popen([sys.executable, "-m", "charseq.cli", "train-lm", str(corpus_file), "--out",
                              str(tmp_path / "run"), "--max-steps", "2", "--strategy", "multiworker", *FLAGS],
                             cwd=REPO, env=env, stdout=stdout, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + TIMEOUT
        while "waiting until every one of them has started" not in out.read_text() and p.poll() is None \
                and time.time() < deadline:
            time.sleep(0.5)
        assert "joining the 2 tasks of TF_CONFIG's cluster as worker 0" in out.read_text(), out.read_text()
        time.sleep(2)  # well inside TensorFlow's wait
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=30) != 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert not (tmp_path / "run").exists()


def test_a_worker_reads_its_data_before_it_waits_for_the_cluster(tmp_path):
    """A file that is not text is said at once, not after every worker of the cluster has started."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})}
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1") * 100)
    r = run_cli("train-lm", tmp_path / "latin1.txt", "--out", tmp_path / "run", "--max-steps", "2", "--strategy",
                "multiworker", *FLAGS, env=env, timeout=TIMEOUT)
    assert_clean_error(r, "latin1.txt is not valid utf-8 text")
    assert "joining" not in r.stdout and not (tmp_path / "run").exists()


def test_a_worker_that_loses_another_says_so_and_keeps_its_checkpoint(tmp_path, corpus_file):
    """A worker killed mid-run fails the others' next collective op: each says it lost a worker and
    which checkpoint to resume from, in one line, instead of an internal error."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    out, logs, procs = tmp_path / "run", [tmp_path / "w0.txt", tmp_path / "w1.txt"], []
    for i, log in enumerate(logs):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
               "CHARSEQ_WORKER_DIR": str(tmp_path / f"w{i}")}
        with open(log, "w") as stdout, open(log.with_suffix(".err"), "w") as stderr:
            procs.append(subprocess.Popen([sys.executable, "-m", "charseq.cli", "train-lm", str(corpus_file), "--out",
                                           str(out), "--max-steps", "100000", "--strategy", "multiworker", *FLAGS],
                                          cwd=REPO, env=env, stdout=stdout, stderr=stderr))
    try:
        deadline = time.time() + TIMEOUT
        while "step 10:" not in logs[0].read_text() and procs[0].poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert "step 10:" in logs[0].read_text(), logs[0].with_suffix(".err").read_text()
        procs[1].kill()
        assert procs[0].wait(timeout=TIMEOUT) == 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    # TensorFlow's own C++ log lines about the broken connection come first, out of charseq's hands.
    err = logs[0].with_suffix(".err").read_text().strip()
    last = err.splitlines()[-1]
    assert last.startswith("Error: lost touch with another worker of the cluster at step "), err
    assert "Traceback" not in err, err
    assert last.endswith("is intact; start every worker again with --resume"), last
    assert json.loads((out / "status.json").read_text())["status"] == "failed"


# ----------------------------------------------------------------------------- classifier and seq2seq
# 94 rows: 9 held out, 85 to train on in batches of 7, so the 13 batches of an epoch are odd-sized
# (each padded with a zero-weight row for 2 replicas) and the last holds one row (one worker's
# share is padding only).
HEAD_SETTINGS = dict(units=16, embedding_dim=8, batch_size=7, max_steps=13, eval_every=5, precision="float32",
                     dropout=0.0, lr=3e-3)  # the CLI's default --lr differs by command; the API's does not
HEAD_FLAGS = [f"--{k.replace('_', '-')}" if i == 0 else str(v) for k, v in HEAD_SETTINGS.items() for i in range(2)]
HEADS = {"classifier": ("train-classifier", "reviews.tsv", train_classifier),
         "seq2seq": ("train-seq2seq", "pairs.tsv", train_seq2seq),
         "mnist": ("classify-mnist", "images.npz", lambda data, out, **kw: train_mnist(out, data, **kw))}
# MNIST trains on all 85 images, as the other heads on all their rows: 13 steps of 7 per epoch.
NO_VALIDATION = {"mnist": {"val_fraction": 0.0}}


@pytest.fixture(scope="module")
def head_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("heads")
    rng = random.Random(0)
    good, bad = ["good", "great", "fine", "lovely"], ["bad", "awful", "poor", "dull"]
    rows = ["text\tlabel"]
    for _ in range(94):
        positive = rng.random() < 0.5
        words = rng.choices(good if positive else bad, k=rng.randint(1, 4)) + rng.choices(["film", "plot"], k=2)
        rows.append(" ".join(words) + f"\t{'pos' if positive else 'neg'}")  # 2 to 6 words: uneven padding
    (d / "reviews.tsv").write_text("\n".join(rows) + "\n")
    (d / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in make_pairs("reverse", 94, seed=0, length=(2, 6))))
    images = np.random.default_rng(0)
    np.savez(d / "images.npz", x_train=images.integers(0, 256, (85, 28, 28), dtype=np.uint8),
             y_train=images.integers(0, 3, 85), x_test=images.integers(0, 256, (20, 28, 28), dtype=np.uint8),
             y_test=images.integers(0, 3, 20))
    return d


def _train_head(kind, files, out, **settings):
    _, data, train_fn = HEADS[kind]
    train_fn(files / data, out, log=lambda s: None, progress_bar=False,
             **{**HEAD_SETTINGS, **NO_VALIDATION.get(kind, {}), **settings})


def _two_workers(kind, files, out, tmp_path, *extra):
    command, data, _ = HEADS[kind]
    data = ["--data", files / data, "--val-fraction", "0"] if kind == "mnist" else [files / data]
    results = _run_workers([command, *data, "--out", out, *HEAD_FLAGS, "--strategy", "multiworker", *extra], tmp_path)
    for i, r in enumerate(results):
        assert r.returncode == 0, f"worker {i}: {r.stderr}"
        assert "13 steps per epoch" in r.stdout and "Traceback" not in r.stderr
    return results


def _same_weights(chief, worker, single):
    chief, worker, lone = saved_arrays(chief), saved_arrays(worker), saved_arrays(single)
    assert chief.keys() == worker.keys() == lone.keys()
    for key in chief:  # the weights and the optimizer state
        np.testing.assert_allclose(worker[key], chief[key], rtol=0, atol=1e-6, err_msg=key)
    assert max(float(np.abs(lone[k] - chief[k]).max()) for k in lone if k.startswith("w")) < 1e-4


# Slow (the default suite's time): the language model's two-worker test below covers the multiworker path in it.
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["classifier", "seq2seq"])
def test_every_head_trains_on_two_workers_and_mirrored_like_one_process(tmp_path, head_files, kind):
    single, mirrored, out = tmp_path / "single", tmp_path / "mirrored", tmp_path / "multi"
    _train_head(kind, head_files, single)
    _train_head(kind, head_files, mirrored, strategy="mirrored")  # one CPU replica: the default's very numbers
    _same_curve(_metrics(single), _metrics(mirrored), rel=1e-5)

    _two_workers(kind, head_files, out, tmp_path)
    assert json.loads((out / "config.json").read_text())["train"]["strategy"] == "multiworker"
    assert not (tmp_path / "w0").exists()  # the chief wrote --out, worker 1 its private copy
    _same_weights(out / "checkpoint.npz", tmp_path / "w1" / "multi" / "checkpoint.npz", single / "checkpoint.npz")
    _same_curve(_metrics(single), _metrics(out))
    assert [r["step"] for r in _metrics(out)] == [5, 10, 13]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mnist", "classifier", "seq2seq"])
def test_two_workers_resume_every_head_like_one_process(tmp_path, head_files, kind):
    """Longer: two epochs, stopped at step 13 and resumed by both workers from the chief's checkpoint."""
    single, out = tmp_path / "single", tmp_path / "multi"
    _train_head(kind, head_files, single)
    HEADS[kind][2](None, single, resume=True, max_steps=26, log=lambda s: None, progress_bar=False)
    _two_workers(kind, head_files, out, tmp_path)
    command = HEADS[kind][0]
    results = _run_workers([command, "--out", out, "--resume", "--max-steps", "26"], tmp_path)
    for i, r in enumerate(results):
        assert r.returncode == 0 and "resuming from step 13" in r.stdout, f"worker {i}: {r.stderr}"
    _same_weights(out / "checkpoint.npz", tmp_path / "w1" / "multi" / "checkpoint.npz", single / "checkpoint.npz")
    _same_curve(_metrics(single), _metrics(out))
