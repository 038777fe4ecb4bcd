"""--strategy: two MultiWorkerMirroredStrategy workers on 127.0.0.1 train together, to the same
weights and the same loss curve as one process with the same global batch; mirrored on one
CPU replica matches the default path."""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from charseq.errors import CharseqError
from charseq.lm_run import train_lm
from conftest import REPO, TINY_SETTINGS, assert_clean_error, run_cli

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


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _weights(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files if k != "__meta__"}


def _same_curve(a, b, rel=1e-3):
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=rel), (ra, rb)
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
    chief, worker = _weights(out / "checkpoint.npz"), _weights(tmp_path / "w1" / "multi" / "checkpoint.npz")
    assert chief.keys() == worker.keys()
    for key in chief:  # the weights, the optimizer state and the carried RNN state of the whole global batch
        np.testing.assert_allclose(worker[key], chief[key], rtol=0, atol=1e-6, err_msg=key)
    # Each worker read its half of each global batch of 8: together, the single process's curve.
    _same_curve(_metrics(single), _metrics(out))
    lone = _weights(single / "checkpoint.npz")
    assert max(float(np.abs(lone[k] - chief[k]).max()) for k in lone if k.startswith("w")) < 1e-4

    # Both resume from the chief's checkpoint; so does one process from its own.
    train_lm(out=single, resume=True, max_steps=15, log=lambda s: None, progress_bar=False)
    results = _run_workers(["train-lm", "--out", out, "--resume", "--max-steps", "15"], tmp_path)
    for i, r in enumerate(results):
        assert r.returncode == 0 and "resuming from step 10" in r.stdout, f"worker {i}: {r.stderr}"
    _same_curve(_metrics(single), _metrics(out))


def test_mirrored_on_one_cpu_replica_matches_the_default(tmp_path, corpus_file):
    runs = {}
    for strategy in ("default", "mirrored"):
        runs[strategy] = tmp_path / strategy
        train_lm(corpus_file, runs[strategy], max_steps=10, strategy=strategy, log=lambda s: None,
                 progress_bar=False, **SETTINGS)
    _same_curve(_metrics(runs["default"]), _metrics(runs["mirrored"]), rel=1e-6)
    # The strategy is a setting of the run, and a resumed run may change it.
    r = run_cli("train-lm", "--out", runs["mirrored"], "--resume", "--max-steps", "12", "--strategy", "default",
                timeout=TIMEOUT)
    assert r.returncode == 0 and "step 12:" in r.stdout, r.stderr
    assert json.loads((runs["mirrored"] / "config.json").read_text())["train"]["strategy"] == "default"


def test_multiworker_needs_tf_config_and_a_step_count(tmp_path, corpus_file, monkeypatch):
    r = run_cli("train-lm", corpus_file, "--out", tmp_path / "a", "--max-steps", "2", "--strategy", "multiworker",
                *FLAGS, env={**os.environ, "TF_CONFIG": "{not json"})
    assert_clean_error(r, "TF_CONFIG is not valid JSON")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(CharseqError, match="needs TF_CONFIG"):
        train_lm(corpus_file, tmp_path / "b", max_steps=2, strategy="multiworker", log=lambda s: None, **SETTINGS)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    with pytest.raises(CharseqError, match="--time-budget cannot"):  # workers' clocks would disagree
        train_lm(corpus_file, tmp_path / "c", time_budget=1, strategy="multiworker", log=lambda s: None, **SETTINGS)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_heads_not_yet_distributed_refuse_a_strategy(tmp_path):
    from charseq.classifier_run import train_mnist

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("ab\tba\n" * 20, encoding="utf-8")
    r = run_cli("train-seq2seq", pairs, "--out", tmp_path / "s2s", "--strategy", "multiworker")
    assert_clean_error(r, "--strategy multiworker is not available for train-seq2seq")
    with pytest.raises(CharseqError, match="not available for classify-mnist"):
        train_mnist(tmp_path / "mnist", strategy="mirrored", log=lambda s: None)
    assert not any(p.name != "pairs.tsv" for p in tmp_path.iterdir())
