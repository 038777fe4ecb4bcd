"""Measure the no-flags defaults (charseq.sizing): each case trains through the real CLI with no
options at all, in a scratch directory, and reports minutes, where it stopped and the best validation
result (best_val_*: the evaluation that chose the weights kept, so a selected figure, not a held-out one).

    .venv/bin/python scripts/bench_defaults.py poems poems-20k sst2-3k dates-5k shakespeare-300k
    .venv/bin/python scripts/bench_defaults.py sst2-3k --readout mean sst2-3k --readout concat   # options per case

Cases (the data is cut here at run time, never committed; `charseq data get tinyshakespeare` and
`charseq data get sst2` put the public sets in charseq's cache first):
  poems             corpora/poems.txt as shipped (41k characters, vocabulary ~1.1k)
  poems-20k         its first ~20k characters (whole lines)
  shakespeare-300k  the first 300k characters of tiny-shakespeare
  shakespeare-1m    all of tiny-shakespeare (1.1M characters)
  sst2-3k           3,000 SST-2 training sentences of 6+ words (seeded sample), as a CSV
  dates-5k          `charseq make-pairs dates --n 5000`
Language models report the best validation loss (the run's validation split, the corpus' last 10%) against
an add-one unigram model of the training split; classifiers and encoder-decoders their validation
metric, and the classifier also its accuracy on SST-2 dev. One JSON line per case goes to stdout.
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHARSEQ = str(ROOT / ".venv" / "bin" / "charseq")
CASES = ("poems", "poems-20k", "shakespeare-300k", "shakespeare-1m", "sst2-3k", "dates-5k")


def dataset(name: str) -> Path:
    """Data set `name` from charseq's cache (`charseq data get NAME` puts it there), or exit saying so."""
    found = subprocess.run([CHARSEQ, "data", "path", name], capture_output=True, text=True)
    if found.returncode != 0:
        raise SystemExit(found.stderr.strip())
    return Path(found.stdout.strip())


def cut_text(source: Path, chars: int | None, dest: Path) -> Path:
    text = source.read_text(encoding="utf-8")
    if chars is not None and len(text) > chars:
        text = text[: text.rfind("\n", 0, chars) + 1]  # whole lines
    dest.write_text(text, encoding="utf-8")
    return dest


def sst2_sample(n: int, dest: Path) -> Path:
    with open(dataset("sst2") / "train.tsv", encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    rows = [(s, l) for l, s in rows if len(s.split()) >= 6]
    random.Random(0).shuffle(rows)
    with open(dest, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["review", "label"])
        w.writerows(rows[:n])
    return dest


def unigram_loss(run: Path) -> float:
    """Cross-entropy (nats/token) of the validation split under an add-one unigram of the training split."""
    import numpy as np

    meta = json.loads((run / "data" / "corpus.json").read_text())
    ids = np.fromfile(run / "data" / "ids.bin", dtype=meta["dtype"])
    train, val = ids[: meta["val_start"]], ids[meta["val_start"]:]
    vocab = json.loads((run / "config.json").read_text())["vocab_size"]
    counts = np.bincount(train, minlength=vocab).astype(np.float64) + 1
    return float(-np.mean(np.log(counts[val] / counts.sum())))


def run_case(name: str, work: Path, extra: list[str]) -> dict:
    if name.startswith("poems") or name.startswith("shakespeare"):
        chars = {"poems": None, "poems-20k": 20_000, "shakespeare-300k": 300_000, "shakespeare-1m": None}[name]
        source = ROOT / "corpora" / "poems.txt" if name.startswith("poems") else dataset("tinyshakespeare")
        data = cut_text(source, chars, work / f"{name}.txt")
        command = [CHARSEQ, "train-lm", data.name]
    elif name == "sst2-3k":
        data = sst2_sample(3000, work / f"{name}.csv")
        command = [CHARSEQ, "train-classifier", data.name]
    elif name == "dates-5k":
        data = work / f"{name}.tsv"
        subprocess.run([CHARSEQ, "make-pairs", "dates", "--n", "5000", "--out", str(data)], check=True,
                       stdout=subprocess.DEVNULL)
        command = [CHARSEQ, "train-seq2seq", data.name]
    else:
        raise SystemExit(f"unknown case {name}")
    command += extra
    start = time.perf_counter()
    done = subprocess.run(command, cwd=work, capture_output=True, text=True)
    minutes = (time.perf_counter() - start) / 60
    if done.returncode != 0:
        raise SystemExit(f"{name}: {' '.join(command)} failed:\n{done.stderr[-2000:]}")
    lines = done.stdout.splitlines()
    run = work / "runs" / data.stem
    metrics = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    config = json.loads((run / "config.json").read_text())
    result = {"case": name, "command": "charseq " + " ".join(command[1:]), "minutes": round(minutes, 2),
              "sizing": config.get("sizing"), "steps": metrics[-1]["step"],
              "early_stop": any(l.startswith("early stop") for l in lines)}
    if config["task"] == "lm":
        best = min(metrics, key=lambda m: m["val_loss"])
        result.update(best_val_loss=round(best["val_loss"], 4), best_step=best["step"],
                      unigram_loss=round(unigram_loss(run), 4), chars_per_sec=metrics[-1]["chars_per_sec"])
    elif config["task"] == "classifier":
        best = max(metrics, key=lambda m: m["val_accuracy"])
        dev = subprocess.run([CHARSEQ, "evaluate", "--model", str(run), str(dataset("sst2") / "dev.tsv"), "--json"],
                             capture_output=True, text=True, check=True)
        result.update(best_val_accuracy=round(best["val_accuracy"], 4), best_step=best["step"],
                      sst2_dev_accuracy=round(json.loads(dev.stdout)["accuracy"], 4))
    else:
        best = max(metrics, key=lambda m: m["val_exact_match"])
        result.update(best_val_exact_match=round(best["val_exact_match"], 4), best_step=best["step"],
                      val_char_error_rate=best.get("val_char_error_rate"))
    monitor = {"lm": "val_loss", "classifier": "val_accuracy"}.get(config["task"], "val_exact_match")
    result["curve"] = [[m["step"], round(m[monitor], 3)] for m in metrics]  # where the best point was
    return result


def main(args: list[str]) -> None:
    """Each CASE, with the options that follow it (none, to measure the defaults)."""
    cases: list[tuple[str, list[str]]] = []
    for arg in args:
        if arg in CASES:
            cases.append((arg, []))
        elif cases:
            cases[-1][1].append(arg)
        else:
            raise SystemExit(f"unknown case {arg}; cases: {', '.join(CASES)}")
    for name, extra in cases:
        with tempfile.TemporaryDirectory(prefix=f"charseq-defaults-{name}-") as work:
            print(json.dumps(run_case(name, Path(work), extra), ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["poems"])
