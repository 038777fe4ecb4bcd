#!/usr/bin/env python
"""charseq against PyTorch on the same CPU, side by side in one run.

    .venv/bin/pip install -e '.[bench]'        # PyTorch, for the benchmark only
    .venv/bin/charseq data get tinyshakespeare  # its data (and `data get sst2` for the SST-2 row)
    .venv/bin/python scripts/bench.py           # the full benchmark (~10 minutes on 2 cores)
    .venv/bin/python scripts/bench.py --quick   # a smaller one (~2-3 minutes) while developing
    .venv/bin/python scripts/bench.py --only "classifier mnist" --rounds 4   # one row, 4 rounds: median ratio

Every measurement runs in its own subprocess (this script with `--worker`), so its peak
RSS is its own and neither framework's thread pools or caches disturb the other's. The
charseq side goes through the code `charseq train-lm` / `generate` / `classify-mnist` run
(build_model + LMTask's compiled step, Generator, the classifier's build_model + ImageTask / TextTask); the
PyTorch side is the textbook model (nn.Embedding -> nn.LSTM -> nn.Linear) fed the very same
batches. A busy machine is noisy, so what counts are the ratios of runs taken minutes
apart: each figure is the median over its steps, which shrugs off a burst of someone else's work.

Prints a table of charseq/PyTorch speed ratios (above 1: charseq is faster), then each training
configuration against PyTorch at its fastest precision on this CPU (float32 or bfloat16 autocast,
whichever is faster), with the share of the matrix-product peak in the precision used, and writes
everything, with the CPU's model and flags, as JSON (--out). Without PyTorch installed the charseq
side still runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def data_file(name: str, variable: str, member: str = "") -> Path | None:
    """$variable if set, else data set `name` from charseq's cache (`charseq data get NAME`), else None."""
    if os.environ.get(variable):
        return Path(os.environ[variable])
    from charseq.data.datasets import cached_path

    path = cached_path(name)
    return None if path is None else path / member


SHAKESPEARE = data_file("tinyshakespeare", "CHARSEQ_BENCH_CORPUS")
SST2 = data_file("sst2", "CHARSEQ_BENCH_SST2", "train.tsv")  # optional: its row runs only when it is there
RESULT_TAG = "BENCH_RESULT "
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux: the high-water mark of this (worker) process alone.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def lm_flops_per_step(cell: str, units: int, layers: int, embedding_dim: int, vocab: int,
                      batch: int, seq_len: int) -> float:
    """Matrix-product FLOPs of one training step: forward 2*gates*units*(in+units) per layer and
    token plus the output layer, times 3 for forward + backward (two products per forward one)."""
    per_token = sum(2 * GATES[cell] * units * ((embedding_dim if i == 0 else units) + units) for i in range(layers))
    per_token += 2 * units * vocab
    return 3.0 * per_token * batch * seq_len


def timed_steps(step, warmup: int, steps: int) -> tuple[list[float], list[float], float]:
    """Run `step(i)` (returns a loss it has waited for) warmup + steps times: (seconds of each
    measured step, every loss, seconds of the first step, which includes compiling)."""
    times, losses, first = [], [], 0.0
    for i in range(warmup + steps):
        t = time.perf_counter()
        losses.append(float(step(i)))
        dt = time.perf_counter() - t
        if i == 0:
            first = dt
        if i >= warmup:
            times.append(dt)
    return times, losses, first


def speed_report(times: list[float], losses: list[float], first: float, tokens_per_step: int,
                 flops_per_step: float | None = None) -> dict:
    median = statistics.median(times)
    out = {"step_s": median, "mean_step_s": statistics.fmean(times), "first_step_s": first,
           "chars_per_s": tokens_per_step / median, "steps": len(times), "losses": losses,
           "final_loss": statistics.fmean(losses[-min(10, len(losses)):])}
    if flops_per_step:
        out["gflops"] = flops_per_step / median / 1e9
    return out


# ----------------------------------------------------------------------------- workers

def _quiet_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    return tf


def _torch():
    import torch

    torch.set_num_threads(cores())
    return torch


def _corpus(spec):
    from charseq.data.corpus import Corpus, WindowSampler
    from charseq.vocab import load_vocab

    corpus = Corpus(Path(spec["corpus_dir"]) / "data")
    vocab = load_vocab(spec["corpus_dir"])
    sampler = WindowSampler(corpus.train, spec["seq_len"], spec["batch"], "contiguous", 0)
    return corpus, vocab, sampler


def worker_matmul(spec) -> dict:
    """The best GFLOP/s of square matrix products in float32 and bfloat16, growing the size up to
    `n` while one product takes under half a second (bfloat16 without native support in the CPU
    can be a hundred times slower than float32)."""
    if spec["framework"] == "charseq":
        tf = _quiet_tf()
        mm = tf.function(lambda x: tf.matmul(x, x))

        def make(size, dtype):
            a = tf.cast(tf.random.normal((size, size)), dtype)
            return lambda: mm(a).numpy()
        dtypes = ("float32", "bfloat16")
    else:
        torch = _torch()
        dtypes = ("float32", "bfloat16")

        def make(size, dtype):
            a = torch.randn(size, size).to(getattr(torch, dtype))
            return lambda: a @ a
    out = {}
    for dtype in dtypes:
        best, size = 0.0, 256
        while size <= spec["n"]:
            run = make(size, dtype)
            t = time.perf_counter()
            run()  # warm-up (and compile)
            if time.perf_counter() - t > 0.5:
                reps = 1
            else:
                reps = spec["reps"]
            for _ in range(reps):
                t = time.perf_counter()
                run()
                dt = time.perf_counter() - t
                best = max(best, 2 * size ** 3 / dt / 1e9)
            if dt > 0.5:
                break
            size *= 2
        out[dtype] = best
    return {"gflops": out}


def worker_lm(spec) -> dict:
    """Train the character LM for warmup + steps on tiny-shakespeare windows."""
    corpus, vocab, sampler = _corpus(spec)
    cell, units, layers, emb = spec["cell"], spec["units"], spec["layers"], spec["embedding_dim"]
    batch, seq_len, bf16 = spec["batch"], spec["seq_len"], spec["precision"] == "bf16"
    flops = lm_flops_per_step(cell, units, layers, emb, vocab.size, batch, seq_len)
    if spec["framework"] == "charseq":
        tf = _quiet_tf()
        from charseq.heads.lm.run import DataConfig, build_model
        from charseq.heads.lm.task import LMTask
        from charseq.train import TrainConfig, make_optimizer

        tf.keras.utils.set_random_seed(0)
        model = build_model(dict(cell=cell, units=units, layers=layers, embedding_dim=emb, dropout=0.2),
                            vocab.size, "mixed_bfloat16" if bf16 else "float32")
        task = LMTask(model, corpus, DataConfig(seq_len=seq_len), batch, seed=0)
        optimizer = make_optimizer(TrainConfig(lr=3e-3, clip_norm=1.0))
        optimizer.build(model.trainable_variables)
        step = lambda i: task.train_step(i, optimizer)  # noqa: E731
        backbone = model.backbone
        from charseq.precision import resolve_precision

        extra = {"impl": "compiled" if backbone.use_compiled else "fused" if backbone.use_fused else "keras",
                 "recurrence": backbone.recurrence if backbone.use_compiled else None,
                 "auto_precision": resolve_precision("auto", units, cell)}
    else:
        torch = _torch()
        nn = torch.nn
        torch.manual_seed(0)
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]

        class Reference(nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = nn.Embedding(vocab.size, emb)
                self.rnn = rnn_cls(emb, units, num_layers=layers, batch_first=True, dropout=0.2)
                self.dropout = nn.Dropout(0.2)
                self.head = nn.Linear(units, vocab.size)

            def forward(self, x, state):
                y, state = self.rnn(self.embedding(x), state)
                return self.head(self.dropout(y)), state

        model = Reference()
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        carried = [None]

        carry = spec.get("state") == "carried"

        def step(i):
            x, y = sampler.batch(i)
            if sampler.starts_new_pass(i) or not carry:
                carried[0] = None
            x, y = torch.from_numpy(x).long(), torch.from_numpy(y).long()
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                logits, state = model(x, carried[0])
            loss = nn.functional.cross_entropy(logits.float().reshape(-1, vocab.size), y.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            carried[0] = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
            return loss.item()

        extra = {}
    times, losses, first = timed_steps(step, spec["warmup"], spec["steps"])
    return {**speed_report(times, losses, first, batch * seq_len, flops), **extra}


def worker_seq_len(spec) -> dict:
    """charseq's step time at several --seq-len: it should grow linearly."""
    tf = _quiet_tf()
    from charseq.heads.lm.run import DataConfig, build_model
    from charseq.heads.lm.task import LMTask
    from charseq.train import TrainConfig, make_optimizer

    corpus, vocab, _ = _corpus({**spec, "seq_len": max(spec["seq_lens"])})
    tf.keras.utils.set_random_seed(0)
    model = build_model(dict(cell="lstm", units=spec["units"], layers=2, dropout=0.2), vocab.size, "float32")
    out = {}
    for seq_len in spec["seq_lens"]:
        task = LMTask(model, corpus, DataConfig(seq_len=seq_len), spec["batch"], seed=0)
        optimizer = make_optimizer(TrainConfig(lr=3e-3))
        optimizer.build(model.trainable_variables)
        times, _, _ = timed_steps(lambda i: task.train_step(i, optimizer), spec["warmup"], spec["steps"])
        out[str(seq_len)] = statistics.median(times)
    return {"step_s": out}


def worker_generate(spec) -> dict:
    """500 characters after a 20-character prompt, `batch` samples at once, untrained weights of
    the trained model's shape (speed does not depend on what the weights say)."""
    _, vocab, _ = _corpus({**spec, "seq_len": 100})
    prompt, length, batch = spec["prompt"], spec["length"], spec["batch"]
    units, layers, bf16 = spec["units"], spec["layers"], spec.get("precision") == "bf16"
    if spec["framework"] == "charseq":
        tf = _quiet_tf()
        from charseq.heads.lm.run import build_model
        from charseq.heads.lm.inference import Generator, sample_on_one_op_thread

        one_op_thread = batch > 1 and sample_on_one_op_thread()  # as `charseq generate --num-samples N`
        tf.keras.utils.set_random_seed(0)
        # bf16: a model trained in mixed_bfloat16 (what `train-lm` makes where `auto` picks bfloat16),
        # sampling in its own precision, as `generate` does by default.
        model = build_model(dict(cell="lstm", units=units, layers=layers), vocab.size,
                            "mixed_bfloat16" if bf16 else "float32")
        generator = Generator(model, vocab)
        from charseq.precision import resolve_precision

        extra = {"auto_precision": resolve_precision("auto", units, "lstm"),  # a language model's, trained here
                 "one_op_thread": one_op_thread}
        run = lambda: generator(prompt, length=length, temperature=1.0, seed=0, num_samples=batch)  # noqa: E731
    else:
        torch = _torch()
        nn = torch.nn
        torch.manual_seed(0)
        embedding, lstm = nn.Embedding(vocab.size, 64), nn.LSTM(64, units, num_layers=layers, batch_first=True)
        head = nn.Linear(units, vocab.size)
        prompt_ids = torch.from_numpy(vocab.encode(prompt)).long()[None].repeat(batch, 1)
        extra = {}

        @torch.inference_mode()
        @torch.autocast("cpu", torch.bfloat16, enabled=bf16)
        def run():
            y, state = lstm(embedding(prompt_ids))
            logits = head(y[:, -1])
            out = torch.empty(batch, length, dtype=torch.long)
            for i in range(length):
                token = torch.multinomial(torch.softmax(logits.float(), -1), 1)
                out[:, i] = token[:, 0]
                y, state = lstm(embedding(token), state)  # carries (h, c) one step at a time
                logits = head(y[:, 0])
            return [vocab.decode(row) for row in out.numpy()]

    times = []
    for _ in range(spec["reps"] + 1):  # the first call compiles (charseq) or warms caches
        t = time.perf_counter()
        texts = run()
        times.append(time.perf_counter() - t)
    assert len(texts) == batch and all(len(s) > 0 for s in texts)
    median = statistics.median(times[1:])
    return {"seconds": median, "first_s": times[0], "chars_per_s": batch * length / median, **extra}


def mnist_flops_per_step(units: int, batch: int, embedding_dim: int = 64) -> float:
    """Matrix-product FLOPs of one MNIST-row training step (28 rows of 28 pixels projected to
    `embedding_dim`, one LSTM layer, the last state into 10 classes), forward + backward as above."""
    per_row = 2 * 28 * embedding_dim + 2 * GATES["lstm"] * units * (embedding_dim + units)
    return 3.0 * (per_row * 28 + 2 * units * 10) * batch


def torch_mnist_step(torch, images, labels, batch: int, units: int, bf16: bool, rng):
    """PyTorch's MNIST-row training step, as the plain peer writes it: the rows projected to 64, an
    LSTM, the last state into 10 classes; Adam, norm clipping; bf16 autocast with `bf16`.
    Returns step(i) -> loss, on a batch drawn from `images` [n, 28, 28] uint8 by `rng`."""
    import numpy as np

    nn = torch.nn
    torch.manual_seed(0)
    projection, lstm, head = nn.Linear(28, 64), nn.LSTM(64, units, batch_first=True), nn.Linear(units, 10)
    params = [*projection.parameters(), *lstm.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)

    def step(i):
        idx = rng.permutation(len(images))[:batch]
        x = torch.from_numpy(images[idx].astype(np.float32) / 255.0)
        y = torch.from_numpy(labels[idx]).long()
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            _, (h, _) = lstm(projection(x))
            logits = head(h[-1])
        loss = nn.functional.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        return loss.item()
    return step


def worker_classifier(spec) -> dict:
    """MNIST rows: 28 steps of 28 pixels, LSTM 128, batch 128, on random images (step time
    does not depend on the pixels)."""
    import numpy as np

    batch, units, bf16 = spec["batch"], spec["units"], spec["precision"] == "bf16"
    rng = np.random.default_rng(0)
    n = batch * 8
    images, labels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n)
    extra = {}
    if spec["framework"] == "charseq":
        _quiet_tf()
        from charseq.heads.classifier.run import build_model
        from charseq.heads.classifier.task import ImageTask
        from charseq.precision import resolve_precision
        from charseq.train import TrainConfig, make_optimizer

        model = build_model(dict(units=units), 10, None, "mixed_bfloat16" if bf16 else "float32")
        task = ImageTask(model, images, labels, images[:batch], labels[:batch], batch, seed=0)
        optimizer = make_optimizer(TrainConfig(lr=1e-3))
        optimizer.build(model.trainable_variables)
        step = lambda i: task.train_step(i, optimizer)  # noqa: E731
        extra["auto_precision"] = resolve_precision("auto")  # what classify-mnist computes in here
    else:
        step = torch_mnist_step(_torch(), images, labels, batch, units, bf16, rng)

    times, losses, first = timed_steps(step, spec["warmup"], spec["steps"])
    return {**speed_report(times, losses, first, batch * 28, mnist_flops_per_step(units, batch)), **extra}


def worker_text_classifier(spec) -> dict:
    """Sentiment from raw characters (SST-2's training sentences, right-padded batches of texts of
    similar length, the padding masked): 2x256 LSTM, batch 64, the final state of the last layer
    into a linear layer. PyTorch reads the same batches through `pack_padded_sequence`."""
    import numpy as np

    from charseq.data.batching import bucketed_batches, pad_batch
    from charseq.data.labeled import read_labeled
    from charseq.vocab import CharVocab

    data = read_labeled(spec["data"])
    vocab = CharVocab.build("".join(data.texts))
    texts = [vocab.encode(t) for t in data.texts]
    classes = sorted(set(data.labels))
    labels = np.array([classes.index(label) for label in data.labels])
    batch, units, layers, dropout = spec["batch"], spec["units"], spec["layers"], spec["dropout"]
    lengths = np.array([len(t) for t in texts])
    if spec["framework"] == "charseq":
        _quiet_tf()
        from charseq.heads.classifier.run import build_model
        from charseq.heads.classifier.task import TextTask
        from charseq.train import TrainConfig, make_optimizer

        model = build_model(dict(units=units, layers=layers, dropout=dropout), len(classes), vocab.size,
                                 "float32")
        task = TextTask(model, texts, labels, texts[:batch], labels[:batch], batch, seed=0)
        optimizer = make_optimizer(TrainConfig(lr=1e-3))
        optimizer.build(model.trainable_variables)
        step = lambda i: task.train_step(i, optimizer)  # noqa: E731
    else:
        torch = _torch()
        nn = torch.nn
        torch.manual_seed(0)
        embedding = nn.Embedding(vocab.size, 64, padding_idx=0)
        lstm = nn.LSTM(64, units, num_layers=layers, dropout=dropout, batch_first=True)
        drop, head = nn.Dropout(dropout), nn.Linear(units, len(classes))
        params = [*embedding.parameters(), *lstm.parameters(), *head.parameters()]
        optimizer = torch.optim.Adam(params, lr=1e-3)
        # The batches TextTask draws (seed 0): bucketed by length, a new order each epoch.
        batches = bucketed_batches(lengths, batch, np.random.default_rng([0, 0]))

        def step(i):
            idx = batches[i % len(batches)]
            x = torch.from_numpy(pad_batch([texts[j] for j in idx])).long()
            packed = nn.utils.rnn.pack_padded_sequence(embedding(x), torch.from_numpy(lengths[idx]),
                                                       batch_first=True, enforce_sorted=False)
            _, (h, _) = lstm(packed)
            loss = nn.functional.cross_entropy(head(drop(h[-1])), torch.from_numpy(labels[idx]).long())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            return loss.item()

    times, losses, first = timed_steps(step, spec["warmup"], spec["steps"])
    return speed_report(times, losses, first, batch * int(lengths.mean()))


def worker_corpus(spec) -> dict:
    """The real corpus path on a corpus of `megabytes`: count characters, build the vocabulary,
    encode to ids.bin, then train from the memmap. Peak RSS must not grow with the corpus."""
    tf = _quiet_tf()
    from charseq.data.corpus import prepare_corpus
    from charseq.heads.lm.run import DataConfig, build_model
    from charseq.heads.lm.task import LMTask
    from charseq.data.corpus import Corpus
    from charseq.train import TrainConfig, make_optimizer

    directory = Path(spec["work_dir"])
    directory.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    data = DataConfig(seq_len=100)
    vocab, info = prepare_corpus(spec["text_file"], None, directory, data.val_fraction)
    prepare_s = time.perf_counter() - t
    rss_after_prepare = peak_rss_mb()
    tf.keras.utils.set_random_seed(0)
    model = build_model(dict(cell="lstm", units=spec["units"], layers=2), vocab.size, "float32")
    task = LMTask(model, Corpus(directory / "data"), data, spec["batch"], seed=0)
    optimizer = make_optimizer(TrainConfig())
    optimizer.build(model.trainable_variables)
    # Steps spread over the whole corpus, so the memmap is read from end to end.
    spread = max(1, task.sampler.windows_per_pass // spec["steps"])
    times, _, _ = timed_steps(lambda i: task.train_step(i * spread, optimizer), 1, spec["steps"])
    return {"tokens": info.tokens, "prepare_s": prepare_s, "rss_after_prepare_mb": rss_after_prepare,
            "step_s": statistics.median(times)}


WORKERS = {"matmul": worker_matmul, "lm": worker_lm, "seq_len": worker_seq_len, "generate": worker_generate,
           "classifier": worker_classifier, "text_classifier": worker_text_classifier, "corpus": worker_corpus}


def run_worker(spec: dict) -> dict:
    """`spec` measured in this process; adds its peak RSS."""
    t = time.perf_counter()
    result = WORKERS[spec["kind"]](spec)
    return {**result, "peak_rss_mb": peak_rss_mb(), "wall_s": time.perf_counter() - t}


# ----------------------------------------------------------------------------- the plan

def torch_available() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def plan(quick: bool, frameworks: list[str], work: Path) -> list[tuple[str, dict]]:
    """(name, spec) of every measurement, the two frameworks of a comparison next to each other."""
    corpus_dir = str(work / "shakespeare")
    lm = dict(kind="lm", corpus_dir=corpus_dir, layers=2, embedding_dim=64, batch=64, seq_len=100)
    # Steps per configuration: enough for a stable median after the compile/warm-up steps,
    # few enough that the whole benchmark fits ~10 minutes on 2 cores. The 2x256 float32 run
    # is also the loss comparison, so it runs longest.
    # Each LSTM and GRU configuration in float32 and in bfloat16 (charseq's mixed_bfloat16, PyTorch's
    # bf16 autocast), so that each charseq row meets PyTorch at its fastest precision.
    if quick:
        lm_runs = [("lstm", 256, "fp32", 64, 2, 8), ("lstm", 256, "bf16", 64, 2, 8)]
    else:
        lm_runs = [("lstm", 256, "fp32", 64, 3, 57), ("lstm", 512, "fp32", 64, 2, 8),
                   ("lstm", 256, "fp32", 128, 2, 10), ("lstm", 512, "fp32", 128, 2, 6),
                   ("gru", 256, "fp32", 64, 2, 10), ("gru", 512, "fp32", 64, 2, 6),
                   ("lstm", 256, "bf16", 64, 2, 10), ("lstm", 512, "bf16", 64, 2, 6),
                   ("gru", 256, "bf16", 64, 2, 10), ("gru", 512, "bf16", 64, 2, 6)]
    jobs = [(f"matmul/{fw}", dict(kind="matmul", framework=fw, n=1024 if quick else 2048, reps=5))
            for fw in frameworks]
    for cell, units, precision, batch, warmup, steps in lm_runs:
        for fw in frameworks:
            # The 64-row runs keep their old names, so figures stay comparable with those already published.
            name = f"train {cell} 2x{units} {precision}" + (f" batch {batch}" if batch != 64 else "")
            jobs.append((f"{name}/{fw}", dict(lm, cell=cell, units=units, precision=precision, batch=batch,
                                              warmup=warmup, steps=steps, framework=fw)))
    # Generation and the MNIST-row step too run in both precisions on both sides.
    precisions = ("fp32",) if quick else ("fp32", "bf16")
    for batch in (1, 32):
        for precision in precisions:
            for fw in frameworks:
                jobs.append((f"generate batch {batch} {precision}/{fw}",
                             dict(kind="generate", framework=fw, corpus_dir=corpus_dir, batch=batch, units=256,
                                  layers=2, length=100 if quick else 500, reps=1 if quick else 2, precision=precision,
                                  prompt="ROMEO:\nWhat say you, ", seq_len=100)))
    for precision in precisions:
        for fw in frameworks:
            jobs.append((f"classifier mnist rows {precision}/{fw}",
                         dict(kind="classifier", framework=fw, batch=128, units=128, warmup=3, precision=precision,
                              steps=10 if quick else 30)))
    if SST2 is not None and SST2.is_file():
        for fw in frameworks:
            jobs.append((f"classifier sst2 text masked/{fw}",
                         dict(kind="text_classifier", framework=fw, data=str(SST2), batch=64, units=256, layers=2,
                              dropout=0.3, warmup=3, steps=10 if quick else 30)))
    jobs.append(("seq_len/charseq", dict(kind="seq_len", corpus_dir=corpus_dir, units=256, batch=64,
                                         seq_lens=[50, 100, 200], warmup=2, steps=3 if quick else 6)))
    for megabytes in ((1, 20) if quick else (1, 200)):
        jobs.append((f"corpus {megabytes} MB/charseq",
                     dict(kind="corpus", megabytes=megabytes, units=256, batch=64, steps=3 if quick else 5,
                          text_file=str(work / f"corpus_{megabytes}mb.txt"), work_dir=str(work / f"run_{megabytes}mb"))))
    return jobs


def prepare_inputs(work: Path, jobs) -> None:
    """tiny-shakespeare encoded once (both frameworks read the same windows), and the synthetic
    corpora: tiny-shakespeare repeated to the size asked for."""
    from charseq.data.corpus import encode_corpus
    from charseq.files import read_text
    from charseq.vocab import CharVocab

    if SHAKESPEARE is None:
        sys.exit("Error: tinyshakespeare is not in charseq's cache; run: charseq data get tinyshakespeare")
    if not SHAKESPEARE.is_file():
        sys.exit(f"Error: {SHAKESPEARE} (CHARSEQ_BENCH_CORPUS) not found")
    text = read_text(SHAKESPEARE)
    vocab = CharVocab.build(text)
    (work / "shakespeare").mkdir(parents=True, exist_ok=True)
    vocab.save(work / "shakespeare")
    encode_corpus([text], vocab, work / "shakespeare" / "data", 0.1, str(SHAKESPEARE))
    raw = text.encode("utf-8")
    for _, spec in jobs:
        if spec["kind"] == "corpus":
            size = spec["megabytes"] * 1_000_000
            with open(spec["text_file"], "wb") as f:
                for _ in range(size // len(raw)):
                    f.write(raw)
                f.write(raw[: size % len(raw)])


def run_job(name: str, spec: dict, log) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    t, load_before = time.perf_counter(), os.getloadavg()[0]
    # PyTorch runs with its defaults, as a user's script would: its OpenMP threads spin at each
    # barrier. (OMP_WAIT_POLICY=PASSIVE, which this benchmark once set to ride out a loaded machine,
    # made PyTorch's LSTM 13-15% slower on a quiet one: run it under a lock, not beside other work.)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        log(f"  {name}: FAILED ({' | '.join(tail)})")
        return {"error": "\n".join(tail)}
    result = json.loads(lines[-1][len(RESULT_TAG):])
    # The 1-minute load average, this run's own threads included: above the core count, other
    # work used the cores too.
    result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    log(f"  {name}: {time.perf_counter() - t:.0f}s (load average {load_before:.1f} -> {os.getloadavg()[0]:.1f})")
    return result


# ----------------------------------------------------------------------------- the report

def _ratio(a, b):
    return a / b if a and b else None


def summarize(results: dict) -> dict:
    """Ratios (charseq speed / PyTorch speed: above 1 means charseq is faster) and checks."""
    peak = {}
    for fw in ("charseq", "torch"):
        for dtype, g in results.get(f"matmul/{fw}", {}).get("gflops", {}).items():
            peak[dtype] = max(peak.get(dtype, 0.0), g)
    rows = []
    names = sorted({n.rsplit("/", 1)[0] for n in results})
    for name in names:
        cs, pt = results.get(f"{name}/charseq", {}), results.get(f"{name}/torch", {})
        if name.startswith(("matmul", "seq_len", "corpus")):
            continue
        if name.startswith("generate"):
            a, b, unit = cs.get("chars_per_s"), pt.get("chars_per_s"), "chars/s"
        elif name.startswith("classifier"):
            a = 1 / cs["step_s"] if "step_s" in cs else None
            b = 1 / pt["step_s"] if "step_s" in pt else None
            unit = "steps/s"
        else:
            a, b, unit = cs.get("chars_per_s"), pt.get("chars_per_s"), "chars/s"
        row = {"name": name, "unit": unit, "charseq": a, "torch": b, "ratio": _ratio(a, b),
               "charseq_rss_mb": cs.get("peak_rss_mb"), "torch_rss_mb": pt.get("peak_rss_mb")}
        if "final_loss" in cs or "final_loss" in pt:
            row.update(charseq_loss=cs.get("final_loss"), torch_loss=pt.get("final_loss"),
                       loss_steps=len(cs.get("losses", pt.get("losses", []))))
        dtype = "bfloat16" if "bf16" in name else "float32"
        for fw, r in (("charseq", cs), ("torch", pt)):
            if "gflops" in r and peak.get(dtype):
                row[f"{fw}_peak_fraction"] = r["gflops"] / peak[dtype]
        rows.append(row)
    loads = [x for r in results.values() for x in r.get("load_average", [])]
    summary: dict = {"rows": rows, "matmul_peak_gflops": peak, "max_load_average": max(loads, default=None),
                     "vs_fastest": fastest_precision(results, peak)}
    seq = results.get("seq_len/charseq", {}).get("step_s")
    if seq:
        lens = sorted(seq, key=int)
        per_char = {k: seq[k] / int(k) for k in lens}
        base = per_char[lens[len(lens) // 2]]
        summary["seq_len"] = {"step_s": seq, "per_char_vs_middle": {k: v / base for k, v in per_char.items()},
                              "linear": all(0.8 <= v / base <= 1.25 for v in per_char.values())}
    corpora = sorted((int(n.split()[1]), r) for n, r in results.items() if n.startswith("corpus") and "peak_rss_mb" in r)
    if len(corpora) == 2:
        (small, a), (large, b) = corpora
        growth = b["peak_rss_mb"] / a["peak_rss_mb"] - 1
        summary["corpus_rss"] = {f"{small}MB": a["peak_rss_mb"], f"{large}MB": b["peak_rss_mb"],
                                 "growth": growth, "within_10_percent": abs(growth) < 0.10}
    return summary


PRECISION_NAMES = {"fp32": "float32", "bf16": "bfloat16"}


def _speed(name: str, r: dict) -> float | None:
    """A measurement's speed in its row's unit: steps/s for the classifiers, the best GFLOP/s for the
    matmul peak, chars/s for the rest."""
    if name.startswith("classifier"):
        return 1 / r["step_s"] if "step_s" in r else None
    if name == "matmul":
        return max(r.get("gflops", {}).values(), default=None)
    return r.get("chars_per_s")


def fastest_precision(results: dict, peak: dict) -> list[dict]:
    """Each configuration measured in both precisions (its name less the precision word): charseq's
    fastest and its default (what `--precision auto` picks here) against PyTorch's fastest, each
    with its share of the matrix-product peak in the precision it ran."""
    groups: dict = {}
    for name, r in results.items():
        measurement, fw = name.rsplit("/", 1)
        words = measurement.split()
        precision = next((w for w in words if w in PRECISION_NAMES), None)
        if precision is None or _speed(measurement, r) is None:
            continue
        key = " ".join(w for w in words if w != precision)
        groups.setdefault(key, {})[(fw, precision)] = r
    out = []
    for key, runs in groups.items():
        row: dict = {"name": key, "unit": "steps/s" if key.startswith("classifier") else "chars/s"}
        for fw in ("charseq", "torch"):
            speeds = {p: _speed(key, r) for (f, p), r in runs.items() if f == fw}
            for p, v in speeds.items():
                row[f"{fw}_{p}"] = v
                g = runs[(fw, p)].get("gflops")
                if g and peak.get(PRECISION_NAMES[p]):
                    row[f"{fw}_{p}_peak_fraction"] = g / peak[PRECISION_NAMES[p]]
            if speeds:
                best = max(speeds, key=speeds.get)
                row[f"{fw}_best"], row[f"{fw}_best_precision"] = speeds[best], best
        auto = next((r.get("auto_precision") for (f, _), r in runs.items() if f == "charseq" and r.get("auto_precision")),
                    None)
        if auto:
            row["charseq_default_precision"] = "bf16" if auto == "mixed_bfloat16" else "fp32"
            row["charseq_default"] = row.get(f"charseq_{row['charseq_default_precision']}")
        row["ratio_best"] = _ratio(row.get("charseq_best"), row.get("torch_best"))
        row["ratio_default"] = _ratio(row.get("charseq_default"), row.get("torch_best"))
        out.append(row)
    return sorted(out, key=lambda r: r["name"])


def _median_results(rounds: list[dict]) -> dict:
    """One result per measurement from several rounds: the round whose speed (_speed) is the median,
    the lower of the two middle ones for an even count; a measurement with no speed (or failed in
    every round), its last round's."""
    merged = {}
    for name in rounds[0]:
        runs = [r[name] for r in rounds if name in r]
        measurement = name.rsplit("/", 1)[0]
        ranked = sorted((v, i) for i, v in enumerate(_speed(measurement, r) for r in runs) if v)
        merged[name] = runs[ranked[(len(ranked) - 1) // 2][1]] if ranked else runs[-1]
    return merged


def summarize_rounds(rounds: list[dict]) -> dict:
    """summarize() of one round; of several, the speeds of each measurement's median round, and each
    ratio the median of the rounds' own ratios with their range (min, max): the two frameworks of a
    round ran minutes apart, so a round's ratio sees the same machine on both sides."""
    if len(rounds) == 1:
        return summarize(rounds[0])
    each = [summarize(r) for r in rounds]
    summary = summarize(_median_results(rounds))
    summary["rounds"] = len(rounds)
    for table_key, ratio_keys in (("rows", ("ratio",)), ("vs_fastest", ("ratio_best", "ratio_default"))):
        for row in summary[table_key]:
            for key in ratio_keys:
                values = [r[key] for s in each for r in s[table_key] if r["name"] == row["name"] and r.get(key)]
                if values:
                    row[key], row[f"{key}_range"] = statistics.median(values), [min(values), max(values)]
    return summary


def _ratio_text(row: dict, key: str) -> str:
    """A ratio, with its range over the rounds where there were several."""
    text = _fmt(row.get(key), ".2f")
    if row.get(f"{key}_range"):
        low, high = row[f"{key}_range"]
        text += f" [{low:.2f}-{high:.2f}]"
    return text


def fastest_table(rows: list[dict]) -> str:
    lines = ["| measurement | charseq fp32 | charseq bf16 | PyTorch fp32 | PyTorch bf16 | charseq default "
             "/ PyTorch's fastest | charseq's fastest / PyTorch's fastest | matmul peak % (each in its precision) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        peaks = ", ".join(f"{fw} {p} {100 * r[f'{fw}_{p}_peak_fraction']:.0f}" for fw in ("charseq", "torch")
                          for p in PRECISION_NAMES if f"{fw}_{p}_peak_fraction" in r)
        if not r.get("charseq_default_precision"):
            default = "-"
        elif r.get("charseq_default") is None:  # auto picks a precision this row was not measured in
            default = f"- ({r['charseq_default_precision']} not measured)"
        else:
            default = (f"{_ratio_text(r, 'ratio_default')} ({r['charseq_default_precision']} vs "
                       f"{r.get('torch_best_precision', '-')})")
        best = (f"{_ratio_text(r, 'ratio_best')} ({r.get('charseq_best_precision', '-')} vs "
                f"{r.get('torch_best_precision', '-')})")
        spec = ",.2f" if r["unit"] == "steps/s" else ",.0f"
        speeds = " | ".join(_fmt(r.get(f"{fw}_{p}"), spec) for fw in ("charseq", "torch") for p in PRECISION_NAMES)
        lines.append(f"| {r['name']} ({r['unit']}) | {speeds} | {default} | {best} | {peaks or '-'} |")
    return "\n".join(lines)


def _fmt(x, spec=",.0f"):
    return "-" if x is None else format(x, spec)


def table(summary: dict) -> str:
    lines = ["| measurement | charseq | PyTorch | charseq/PyTorch | peak RSS MB (cs / pt) | "
             "matmul peak % (cs / pt) | loss after N steps (cs / pt) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in summary["rows"]:
        loss = "-"
        if r.get("charseq_loss") is not None or r.get("torch_loss") is not None:
            loss = f"{_fmt(r.get('charseq_loss'), '.3f')} / {_fmt(r.get('torch_loss'), '.3f')} ({r['loss_steps']})"
        frac = "-"
        if "charseq_peak_fraction" in r or "torch_peak_fraction" in r:
            frac = (f"{_fmt(100 * r['charseq_peak_fraction'] if 'charseq_peak_fraction' in r else None, '.0f')} / "
                    f"{_fmt(100 * r['torch_peak_fraction'] if 'torch_peak_fraction' in r else None, '.0f')}")
        value_spec = ",.2f" if r["unit"] == "steps/s" else ",.0f"
        lines.append(f"| {r['name']} ({r['unit']}) | {_fmt(r['charseq'], value_spec)} | {_fmt(r['torch'], value_spec)} | "
                     f"{_ratio_text(r, 'ratio')} | {_fmt(r['charseq_rss_mb'])} / {_fmt(r['torch_rss_mb'])} | {frac} | {loss} |")
    out = ["\n".join(lines)]
    if summary.get("rounds"):
        out.insert(0, f"Over {summary['rounds']} rounds: each speed is its measurement's median round; each ratio "
                   "the median of the rounds' ratios [lowest-highest].")
    if summary.get("vs_fastest"):
        out.append("Against PyTorch at its fastest precision on this CPU (above 1: charseq is faster):\n"
                   + fastest_table(summary["vs_fastest"]))
    peak = summary.get("matmul_peak_gflops")
    if peak:
        out.append("matmul peak (best of TF and PyTorch): " +
                   ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()))
    if "seq_len" in summary:
        s = summary["seq_len"]
        out.append("charseq step time by --seq-len: " + ", ".join(f"{k}: {v:.3f}s" for k, v in s["step_s"].items())
                   + " (per character vs the middle one: "
                   + ", ".join(f"{v:.2f}" for v in s["per_char_vs_middle"].values())
                   + f"; {'linear' if s['linear'] else 'NOT linear'})")
    if "corpus_rss" in summary:
        c = summary["corpus_rss"]
        sizes = [k for k in c if k.endswith("MB")]
        out.append(f"peak RSS, corpus {sizes[0]} vs {sizes[1]}: {c[sizes[0]]:.0f} vs {c[sizes[1]]:.0f} MB "
                   f"({100 * c['growth']:+.1f}%; {'within' if c['within_10_percent'] else 'NOT within'} 10%)")
    load = summary.get("max_load_average")
    if load is not None and load > cores() + 1:
        out.append(f"WARNING: the load average reached {load:.1f} on {cores()} cores: other work used the CPU too, "
                   "so these figures are noisy (ratios less so); run again on a quiet machine for absolute numbers.")
    return "\n".join(out)


def machine() -> dict:
    from charseq.precision import cpu_info

    model, flags = cpu_info()
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
           if f in flags]
    from importlib.metadata import PackageNotFoundError, version

    def installed(package):
        try:
            return version(package)
        except PackageNotFoundError:
            return None
    return {"cpu": model, "cores": cores(), "isa": isa, "flags": sorted(flags), "python": platform.python_version(),
            **{package: installed(package) for package in ("tensorflow", "keras", "torch")}}


def commit() -> str | None:
    """The commit of the code measured, with "+changes" when the work tree differs from it (None outside git)."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if dirty else "")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer configurations and steps (~2-3 minutes)")
    parser.add_argument("--out", default="bench.json", help="where to write the JSON results (default bench.json)")
    parser.add_argument("--only", default=None,
                        help="run only measurements whose name contains this text (or one of these, comma-separated)")
    parser.add_argument("--no-torch", action="store_true", help="measure the charseq side only")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every measurement this many times, one round after the other, and report each "
                        "ratio as the median of the rounds' (default 1)")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        print(f"Error: --rounds must be at least 1, not {args.rounds}", file=sys.stderr)
        return 2
    if args.worker:
        result = run_worker(json.loads(args.worker))
        print(RESULT_TAG + json.dumps(result), flush=True)
        return 0

    frameworks = ["charseq"]
    if args.no_torch:
        pass
    elif torch_available():
        frameworks.append("torch")
    else:
        print("PyTorch is not installed (pip install -e '.[bench]'): measuring the charseq side only")
    out = Path(args.out)
    if out.is_dir() or (out.exists() and not args.force):
        print(f"Error: --out {out} already exists; use --force to overwrite it or give another path",
              file=sys.stderr)
        return 2
    started, measured = time.perf_counter(), commit()  # the code as it was when the measurements began
    with tempfile.TemporaryDirectory(prefix="charseq-bench-") as tmp:
        work = Path(tmp)
        jobs = [(n, s) for n, s in plan(args.quick, frameworks, work) if not args.only or any(o in n for o in args.only.split(","))]
        prepare_inputs(work, jobs)
        print(f"{len(jobs)} measurements, each in its own process"
              + (f", in {args.rounds} rounds:" if args.rounds > 1 else ":"))
        rounds = []
        for r in range(args.rounds):
            if args.rounds > 1:
                print(f" round {r + 1} of {args.rounds}")
            rounds.append({name: run_job(name, spec, print) for name, spec in jobs})
    summary = summarize_rounds(rounds)
    report = {"date": date.today().isoformat(), "commit": measured, "machine": machine(), "quick": args.quick,
              "command": " ".join([Path(sys.executable).name, "scripts/bench.py", *(argv or sys.argv[1:])]),
              "wall_s": round(time.perf_counter() - started, 1), "summary": summary,
              "results": rounds[0] if len(rounds) == 1 else _median_results(rounds)}
    if len(rounds) > 1:
        report["rounds"] = rounds
    from charseq.files import write_json_atomic

    write_json_atomic(out, report)
    m = report["machine"]
    print(f"\n{report['date']}, commit {report['commit'] or '-'}, {m['cpu']}, {m['cores']} cores ({', '.join(m['isa']) or 'no AVX2'}); "
          f"TensorFlow {m['tensorflow']}, PyTorch {m['torch'] or '-'}; "
          f"{report['wall_s']:.0f}s; ratio above 1: charseq faster")
    print(table(summary))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
