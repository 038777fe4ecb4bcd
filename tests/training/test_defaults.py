"""Defaults sized to the data (each head's sizing.py) and early stopping when no stopping rule is given."""

import json
import random

import numpy as np
import pytest

from charseq.heads.classifier.sizing import size_image_classifier, size_text_classifier
from charseq.heads.lm.sizing import size_lm
from charseq.heads.seq2seq.sizing import size_seq2seq
from helpers import read_metrics, run_cli_in_process


def noise_corpus(path, chars=2700, seed=0):
    """Random letters: nothing to learn beyond their frequencies, so a model that keeps training
    memorises the training split and its validation loss rises; early stopping must catch that."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrst"
    path.write_text("".join(rng.choice(letters) if i % 40 else "\n" for i in range(1, chars + 1)), encoding="utf-8")
    return path


def test_no_stopping_rule_stops_early_and_keeps_the_best_weights(tmp_path):
    from charseq.data.corpus import Corpus
    from charseq.heads.lm.run import load_lm, train_lm
    from charseq.heads.lm.task import evaluate_ids

    lines = []
    # From Python, no max_steps/epochs/time_budget: the library's early stopping (no "nothing says
    # when to stop"). A small model and a high learning rate so the noise is memorised in seconds.
    run = train_lm(noise_corpus(tmp_path / "noise.txt"), tmp_path / "run", units=64, layers=1, embedding_dim=16,
                   dropout=0.0, lr=1e-2, precision="float32", sample_length=0, log=lines.append, progress_bar=False)
    config = json.loads((run.path / "config.json").read_text())
    train = config["train"]
    assert train["patience"] is not None and train["epochs"] is not None and train["max_steps"] is None
    metrics = read_metrics(run.path)
    losses = [m["val_loss"] for m in metrics]
    best = int(np.argmin(losses))
    corpus = Corpus(run.path / "data")
    cap_steps = train["epochs"] * max(1, (corpus.info.train_tokens - 1) // (train["batch_size"] * config["data"]["seq_len"]))
    # It stopped by early stopping, well before its cap, exactly `patience` evaluations after the best one.
    assert any(l.startswith("early stop at step") for l in lines)
    assert metrics[-1]["step"] < cap_steps / 2
    assert len(metrics) - 1 - best == train["patience"]
    assert losses[-1] > losses[best] + 0.01  # the run did get worse after its best point
    # The weights kept are the best evaluation's, not the last one's: scored again, they give its loss.
    model, _, _ = load_lm(run.path)
    assert run.load_weights(model)["metrics"]["step"] == metrics[best]["step"]
    kept = evaluate_ids(model, corpus.val)["loss_nats"]
    assert kept == pytest.approx(losses[best], abs=1e-4) and abs(kept - losses[-1]) > 0.01


def test_a_time_budget_still_stops_at_the_cap_on_passes(tmp_path):
    """A language model's time budget is a maximum: the sized cap on passes over the corpus ends the run
    first when the budget would read the corpus more often (the cosine schedule anneals to that end)."""
    from charseq.heads.lm.run import train_lm

    lines = []
    run = train_lm(noise_corpus(tmp_path / "noise.txt"), tmp_path / "run", units=8, layers=1, embedding_dim=8,
                   time_budget=10.0, eval_every=50, precision="float32", sample_length=0, log=lines.append,
                   progress_bar=False)
    train = json.loads((run.path / "config.json").read_text())["train"]
    assert (train["time_budget"], train["epochs"], train["patience"]) == (10.0, 250.0, None)
    assert any("stop at 250 epochs or 10 min" in line for line in lines)
    metrics = read_metrics(run.path)
    # 2,700 characters, batch 32 x 64: one step a pass, so the cap is step 250, reached in seconds.
    assert metrics[-1]["step"] == 250 and metrics[-1]["elapsed_s"] < 120


def test_an_explicit_flag_is_never_overridden(tmp_path, corpus_file):
    flags = {"--layers": "1", "--units": "24", "--embedding-dim": "8", "--dropout": "0.1", "--batch-size": "8",
             "--seq-len": "16", "--lr": "0.01", "--eval-every": "3", "--max-steps": "3"}
    r = run_cli_in_process("train-lm", corpus_file, "--out", tmp_path / "run", "--sample-length", "0", "--precision", "float32",
                           *[x for kv in flags.items() for x in kv])
    assert r.returncode == 0, r.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    m, d, t = config["model"], config["data"], config["train"]
    assert (m["layers"], m["units"], m["embedding_dim"], m["dropout"]) == (1, 24, 8, 0.1)
    assert (t["batch_size"], d["seq_len"], t["lr"], t["eval_every"], t["max_steps"]) == (8, 16, 0.01, 3, 3)
    assert t["patience"] is None and t["epochs"] is None  # --max-steps alone means what it says
    summary = [l for l in r.stdout.splitlines() if l.startswith("small corpus")]
    assert len(summary) == 1 and "1x24 lstm, batch 8 x 16, dropout 0.1" in summary[0] and "stop at 3 steps" in summary[0]


@pytest.mark.parametrize("tokens", [30, 20_000, 300_000, 5_000_000])
def test_every_sized_setting_yields_to_the_user(tokens):
    rule = size_lm(tokens, 100, {}).settings
    mine = {k: (v * 2 + 1 if isinstance(v, (int, float)) else "gru") for k, v in rule.items()}
    assert size_lm(tokens, 100, mine).settings == mine
    for fn, args in ((size_text_classifier, (3000, 80)), (size_seq2seq, (3000,)), (size_image_classifier, (60000,))):
        rule = fn(*args, {}).settings
        mine = {k: (v * 2 + 1 if isinstance(v, (int, float)) else "gru") for k, v in rule.items()}
        assert fn(*args, mine).settings == mine


def test_the_rule_scales_with_the_data():
    small, medium, large = (size_lm(n, 100, {}).settings for n in (37_000, 1_000_000, 10_000_000))
    assert small["dropout"] > medium["dropout"] > large["dropout"]  # less data, more regularisation
    # The LSTM below 500k tokens (on 300k it beat a GRU), the GRU from there (it won on 1M).
    assert [size_lm(n, 100, {}).settings["cell"] for n in (37_000, 300_000, 500_000, 10_000_000)] == \
        ["lstm", "lstm", "gru", "gru"]
    # Three layers from 500k tokens on (on 1M, 15 minutes: 1.429 against 1.4525 for two), but two
    # on the large tier (4.2M, 15 minutes: 1.130 against 1.136 for three).
    assert [size_lm(n, 100, {}).settings["layers"] for n in (37_000, 300_000, 1_000_000, 4_000_000)] == \
        [2, 2, 3, 2]
    assert small["batch_size"] * small["seq_len"] < large["batch_size"] * large["seq_len"]
    # Text classifiers: the LSTM below 20k texts, a GRU from there (all of SST-2: 82.6% against 82.0%).
    assert [size_text_classifier(n, 80, {}).settings["cell"] for n in (3_000, 19_999, 20_000, 67_000)] == \
        ["lstm", "lstm", "gru", "gru"]
    assert small["eval_every"] < large["eval_every"] <= 200  # small data: evaluate often enough to catch the best
    assert small["epochs"] > medium["epochs"] > large["epochs"] >= 3  # the cap, in passes over the data
    assert medium["epochs"] >= 20  # tiny-shakespeare (1M) was still improving at a 10-pass cap
    assert all(s["patience"] for s in (small, medium, large))
    # A user's stopping rule replaces early stopping and its cap.
    for stop in ({"max_steps": 10}, {"epochs": 2.0}, {"max_steps": 10, "time_budget": 1.0}):
        settings = size_lm(37_000, 100, stop).settings
        assert "patience" not in settings and {k: settings.get(k) for k in stop} == stop
    # A time budget alone replaces early stopping but not the cap (the run ends at whichever comes
    # first), except on the large tier, where the minutes bound the loss.
    budget = size_lm(1_000_000, 100, {"time_budget": 15.0}).settings
    assert "patience" not in budget and (budget["time_budget"], budget["epochs"]) == (15.0, medium["epochs"])
    assert "epochs" not in size_lm(10_000_000, 100, {"time_budget": 15.0}).settings
    # A corpus shorter than one window (a sample string) gets windows that fit it.
    tiny = size_lm(27, 30, {}).settings
    assert tiny["batch_size"] * tiny["seq_len"] <= 26


def test_the_summary_line_is_printed_and_config_records_the_choice(tmp_path, corpus_file):
    from charseq.heads.lm.run import train_lm

    lines = []
    run = train_lm(corpus_file, tmp_path / "run", max_steps=2, sample_length=0, log=lines.append, progress_bar=False)
    config = json.loads((run.path / "config.json").read_text())
    chosen = size_lm(config["corpus"]["val_start"], config["vocab_size"], {"max_steps": 2}).settings
    recorded = {**config["model"], **config["data"], **config["train"]}
    assert {k: recorded[k] for k in chosen} == chosen
    assert config["sizing"] in lines and sum("corpus (" in l and "lstm" in l for l in lines) == 1
    # Resuming (and extending) keeps the recorded settings.
    train_lm(None, run.path, resume=True, max_steps=3, sample_length=0, log=lines.append, progress_bar=False)
    again = json.loads((run.path / "config.json").read_text())
    assert again["model"] == config["model"] and again["data"] == config["data"]
    assert {**again["train"], "max_steps": 2} == config["train"]


def test_classifier_and_encoder_decoder_are_sized_and_stop_early_by_default(tmp_path):
    from charseq.heads.classifier.run import train_classifier
    from charseq.heads.seq2seq.run import train_seq2seq

    rng = random.Random(0)
    rows = ["text\tlabel"] + [f"{w} {rng.choice(['film', 'play'])} {i}\t{int(w == 'good')}"
                              for i, w in enumerate(rng.choice(["good", "bad"]) for _ in range(200))]
    (tmp_path / "texts.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    lines = []
    run = train_classifier(tmp_path / "texts.tsv", tmp_path / "clf", units=16, embedding_dim=8, precision="float32",
                           log=lines.append, progress_bar=False)
    config = json.loads((run.path / "config.json").read_text())
    assert config["sizing"] in lines and config["sizing"].startswith("small data set (180 texts")
    assert config["model"]["readout"] == "max" and config["model"]["units"] == 16  # the rule's, and yours
    assert config["train"]["patience"] and config["train"]["epochs"] and config["train"]["max_steps"] is None

    (tmp_path / "pairs.tsv").write_text("".join(f"{s}\t{s[::-1]}\n" for s in ("abc", "bca", "cab", "acb", "bac")),
                                        encoding="utf-8")
    run = train_seq2seq(tmp_path / "pairs.tsv", tmp_path / "s2s", units=16, embedding_dim=8, precision="float32",
                        max_steps=2, log=lines.append, progress_bar=False)
    config = json.loads((run.path / "config.json").read_text())
    assert config["sizing"].startswith("small data set (4 pairs)") and config["train"]["patience"] is None
    assert config["train"]["batch_size"] == 32 and config["model"]["dropout"] == 0.2


@pytest.mark.parametrize("given, said", [
    (dict(epochs=1, patience=1), "early stop (patience 1 evaluation, at most 1 epoch)"),
    (dict(epochs=1, max_steps=1, patience=1), "stop at 1 step or 1 epoch, early stop (patience 1 evaluation)"),
    (dict(epochs=2.5, patience=3), "early stop (patience 3 evaluations, at most 2.5 epochs)"),
])
def test_the_start_line_counts_in_words(given, said):
    assert said in size_text_classifier(5_000, 60, given).summary
