"""The language model end to end: train-lm → generate → evaluate, through the CLI and the Python API."""

import json
import os
import signal

import numpy as np
import pytest

from charseq.data.corpus import Corpus
from charseq.errors import CharseqError, Interrupted
from charseq.heads.lm.beam import beam_search
from charseq.heads.lm.inference import generate
from charseq.heads.lm.run import load_lm, train_lm
from charseq.heads.lm.task import evaluate_ids
from helpers import (LINES, QUIET, TINY_FLAGS, TINY_SETTINGS, assert_clean_error, read_metrics, run_cli,
                     run_cli_in_process, saved_meta, sigint_once_logged, tiny_flags)


def test_train_generate_evaluate_through_the_cli(tmp_path, corpus_file):
    out = tmp_path / "run"
    r = run_cli("train-lm", corpus_file, "--out", out, "--max-steps", "20", *TINY_FLAGS)
    assert r.returncode == 0, r.stderr
    assert "step 20:" in r.stdout and r.stderr == ""
    for name in ("config.json", "vocab.json", "checkpoint.npz", "best.npz", "metrics.jsonl", "data/ids.bin"):
        assert (out / name).exists(), name
    # Atomic writes go through a private temporary file; the result has the user's usual permissions.
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "config.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert list((out / "logs").iterdir()), "TensorBoard logs missing"
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "lm" and config["model"]["units"] == 32 and config["train"]["max_steps"] == 20
    records = read_metrics(out)
    assert [r["step"] for r in records] == [10, 20]
    assert {"step", "elapsed_s", "train_loss", "val_loss", "chars_per_sec"} <= set(records[0])

    r = run_cli_in_process("generate", "--model", out, "--prompt", "春风", "--length", "50", "--seed", "1")
    assert r.returncode == 0, r.stderr
    text = r.stdout.rstrip("\n")
    assert text.startswith("春风") and len(text) == 52

    held_out = tmp_path / "held.txt"
    held_out.write_text("春风吹绿江南岸，明月照我还。\n", encoding="utf-8")
    r = run_cli_in_process("evaluate", "--model", out, held_out, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    # One character per token: the figures are per character, as they are per token, and no more keys.
    assert set(report) == {"loss_nats", "bits_per_char", "perplexity", "chars", "unknown"}
    assert report["chars"] == len("春风吹绿江南岸，明月照我还。\n") - 1  # one stream, its first character unscored
    assert report["bits_per_char"] == pytest.approx(report["loss_nats"] / np.log(2))
    assert report["perplexity"] == pytest.approx(np.exp(report["loss_nats"]))


def test_a_model_learns_the_corpus(tmp_path, corpus_file):
    """Loss falls far below the uniform guess, and greedy text continues a line it has seen."""
    out = tmp_path / "learn"
    settings = {**TINY_SETTINGS, "units": 96, "batch_size": 16, "lr": 1e-2}
    train_lm(corpus_file, out, max_steps=150, log=lambda s: None, progress_bar=False, **settings)
    records = read_metrics(out)
    model, vocab, _ = load_lm(out)
    assert records[-1]["val_loss"] < 0.5 * np.log(vocab.size)
    assert generate(model, vocab, "白日依山", length=3, greedy=True) == "尽，黄"


def test_generation_is_reproducible_and_options_behave(trained_run):
    model, vocab, _ = load_lm(trained_run)
    a = generate(model, vocab, "春", length=40, seed=7)
    assert a == generate(model, vocab, "春", length=40, seed=7)
    assert a != generate(model, vocab, "春", length=40, seed=8)
    greedy = generate(model, vocab, "春", length=20, greedy=True)
    assert generate(model, vocab, "春", length=20, top_k=1, seed=3) == greedy
    assert generate(model, vocab, "春", length=20, top_p=1e-6, seed=3) == greedy
    samples = generate(model, vocab, "", length=10, num_samples=3, seed=1)
    assert len(samples) == 3 and all(len(s) == 10 for s in samples)
    assert "\ufffd" not in "".join(samples)  # never emits unknown/padding


def test_generate_json_prints_each_sample_with_the_seed_that_reproduces_it(trained_run):
    r = run_cli_in_process("generate", "--model", trained_run, "--prompt", "春", "--length", "8",
                           "--num-samples", "2", "--json")
    assert r.returncode == 0, r.stderr
    samples = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(samples) == 2 and all(s["prompt"] == "春" and len(s["text"]) == 8 for s in samples)
    seed = samples[0]["seed"]  # drawn afresh, and said, so that a sample worth keeping can be drawn again
    assert samples[1]["seed"] == seed
    assert [s["sample"] for s in samples] == [1, 2]  # which of the samples drawn with that seed a line is
    again = run_cli_in_process("generate", "--model", trained_run, "--prompt", "春", "--length", "8",
                               "--num-samples", "2", "--seed", str(seed), "--json")
    assert [json.loads(line) for line in again.stdout.splitlines()] == samples

    greedy = run_cli_in_process("generate", "--model", trained_run, "--prompt", "春", "--length", "8",
                                "--greedy", "--json")
    assert greedy.returncode == 0 and json.loads(greedy.stdout).keys() == {"prompt", "text"}
    beam = run_cli_in_process("generate", "--model", trained_run, "--prompt", "春", "--length", "4",
                              "--beam", "3", "--n-best", "2", "--json")
    hyps = [json.loads(line) for line in beam.stdout.splitlines()]
    assert beam.returncode == 0 and len(hyps) == 2 and hyps[0]["log_prob"] >= hyps[1]["log_prob"]
    assert all(h.keys() == {"prompt", "text", "log_prob"} and len(h["text"]) == 4 for h in hyps)


def test_a_model_whose_scores_are_not_numbers_is_said_so(trained_run):
    """Weights that diverged in training make every next-character score nan: generation says so
    instead of failing on an id past the vocabulary."""
    model, vocab, _ = load_lm(trained_run)
    model.head.bias.assign(np.full(model.head.bias.shape, np.nan, np.float32))
    for options in (dict(length=5, seed=0), dict(length=5, greedy=True), dict(length=1, seed=0),
                    dict(length=20, seed=0, on_text=lambda piece: None)):
        with pytest.raises(CharseqError, match="scores for the next character are not numbers"):
            generate(model, vocab, **options)
    with pytest.raises(CharseqError, match="scores for the next character are not numbers"):
        beam_search(model, vocab, length=5, beam=3)


def test_training_goes_on_when_its_sample_cannot_be_drawn(tmp_path, corpus_file, monkeypatch):
    from charseq.heads.lm.inference import Generator

    def diverged(self, *args):
        raise CharseqError("the model's scores for the next character are not numbers")
    monkeypatch.setattr(Generator, "_generate", diverged)
    lines = []
    train_lm(corpus_file, tmp_path / "run", max_steps=20, log=lines.append, progress_bar=False,
             **{**TINY_SETTINGS, "sample_length": 20})
    assert any(line.startswith("  sample: none (the model's scores") for line in lines), lines
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [10, 20]


def test_unknown_prompt_characters(trained_run):
    r = run_cli_in_process("generate", "--model", trained_run, "--prompt", "春Ω", "--length", "5")
    assert r.returncode == 1 and "'Ω'" in r.stderr and "Traceback" not in r.stderr
    # Left out, or read as the unknown symbol: the prompt prints as typed, and stderr says what the model did with it.
    for policy, done in (("skip", "left out"), ("unk", "read as the unknown symbol")):
        r = run_cli_in_process("generate", "--model", trained_run, "--prompt", "春Ω", "--length", "5",
                               "--unknown", policy)
        assert r.returncode == 0 and r.stdout.startswith("春Ω")
        assert r.stderr.splitlines() == [
            f"warning: the prompt's characters 'Ω' are not in the model's vocabulary: {done}"]


def test_a_prompt_with_windows_line_ends_reads_as_the_corpus_did(trained_run):
    # A corpus file's \r\n is read as \n, so the model has no \r: a prompt pasted from a Windows
    # file is not refused for it, and continues as the same prompt with \n.
    windows = run_cli_in_process("generate", "--model", trained_run, "--prompt", "春风\r\n", "--length", "6",
                                 "--seed", "3")
    unix = run_cli_in_process("generate", "--model", trained_run, "--prompt", "春风\n", "--length", "6", "--seed", "3")
    assert windows.returncode == 0 and windows.stderr == "", windows.stderr
    assert windows.stdout.replace("\r\n", "\n") == unix.stdout
    skipped = run_cli_in_process("generate", "--model", trained_run, "--prompt", "春\rΩ", "--length", "3",
                                 "--unknown", "skip")
    assert skipped.stderr.splitlines() == ["warning: the prompt's characters 'Ω' are not in the model's vocabulary: "
                                           "left out"]


def test_length_0_is_refused_by_beam_search_by_name(trained_run):
    # Sampling takes --length 0 (the prompt alone), so the refusal says that beam search needs more.
    assert run_cli_in_process("generate", "--model", trained_run, "--length", "0").returncode == 0
    r = run_cli_in_process("generate", "--model", trained_run, "--length", "0", "--beam", "3")
    assert_clean_error(r, "--length must be at least 1 for beam search, not 0")


def test_train_from_a_sample_string(tmp_path):
    out = tmp_path / "text"
    r = run_cli_in_process("train-lm", "--text", "这是一个基于tensorflow的RNN短句子练习" * 30, "--out", out,
                           "--max-steps", "5", "--val-fraction", "0.2", *tiny_flags(seq_len=16, precision=None))
    assert r.returncode == 0, r.stderr
    vocab = json.loads((out / "vocab.json").read_text())
    assert "练" in vocab["chars"] and len(vocab["chars"]) == len(set("这是一个基于tensorflow的RNN短句子练习"))


def test_sentencepiece_language_model(tmp_path, corpus_file):
    out = tmp_path / "spm"
    train_lm(corpus_file, out, tokenizer="sentencepiece", vocab_size=60, max_steps=5, log=lambda s: None,
             progress_bar=False, **TINY_SETTINGS)
    assert (out / "spm.model").exists()
    model, vocab, _ = load_lm(out)
    text = generate(model, vocab, "The river", length=5, seed=0)
    pieces = vocab.encode(text)  # five new subword pieces, each one the model's vocabulary holds
    assert text and len(pieces) >= 1 and all(0 <= i < vocab.size for i in pieces), text
    # Too few pieces for a vocabulary: refused before the corpus is read, as train-classifier does.
    r = run_cli_in_process("train-lm", corpus_file, "--tokenizer", "sentencepiece", "--vocab-size", "3",
                           "--out", tmp_path / "few")
    assert_clean_error(r, "--vocab-size must be at least 8, not 3")
    assert not (tmp_path / "few").exists()


@pytest.mark.parametrize("options, fragment", [
    (["--vocab-size", "100"], "--vocab-size is the size of a SentencePiece vocabulary"),
    (["--tokenizer", "sentencepiece", "--max-vocab", "50"], "--max-vocab bounds a vocabulary of characters"),
    (["--tokenizer", "sentencepiece", "--min-count", "2"], "--min-count bounds a vocabulary of characters"),
])
def test_the_other_tokenizer_s_vocabulary_options_are_refused(tmp_path, corpus_file, options, fragment):
    """They were ignored without a word: --vocab-size trained a vocabulary of characters."""
    r = run_cli_in_process("train-lm", corpus_file, "--out", tmp_path / "r", *options, *TINY_FLAGS)
    assert_clean_error(r, fragment)
    assert not (tmp_path / "r").exists()


def test_evaluate_counts_one_character_in_the_singular(tmp_path, trained_run):
    held_out = tmp_path / "two.txt"
    held_out.write_text("春风", encoding="utf-8")  # the first character is context, the second is scored
    r = run_cli_in_process("evaluate", "--model", trained_run, held_out, "--full-context")
    assert r.returncode == 0, r.stderr
    assert "over 1 character," in r.stdout, r.stdout


def test_a_piece_model_is_scored_per_character(tmp_path, corpus_file):
    """A SentencePiece model's loss and bits are per character of the text, as a character model's
    are, with the pieces scored and the loss per piece beside them; validation's bits too."""
    out = tmp_path / "spm"
    train_lm(corpus_file, out, tokenizer="sentencepiece", vocab_size=60, max_steps=10, **QUIET, **TINY_SETTINGS)
    model, vocab, _ = load_lm(out)
    text = "\n" + "\n".join(LINES * 4) + "\n"  # it begins with the newline, a piece of one character
    held_out = tmp_path / "held.txt"
    held_out.write_text(text, encoding="utf-8")
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text and ids[0] == vocab.encode("\n")[0]

    r = run_cli_in_process("evaluate", "--model", out, held_out, "--json", "--full-context")
    assert r.returncode == 0, r.stderr
    whole = json.loads(r.stdout)
    # One stream: every piece but the first is scored, and so every character but the newline.
    assert (whole["tokens"], whole["chars"], whole["unknown"]) == (len(ids) - 1, len(text) - 1, 0)
    assert whole["chars"] > whole["tokens"]
    r = run_cli_in_process("evaluate", "--model", out, held_out, "--json")
    assert r.returncode == 0, r.stderr
    streams = json.loads(r.stdout)
    assert streams["tokens"] < whole["tokens"] and streams["chars"] < whole["chars"]  # each stream's first unscored
    for report in (whole, streams):
        assert report["bits_per_char"] * np.log(2) * report["chars"] == pytest.approx(
            report["loss_nats_per_token"] * report["tokens"])
        assert report["perplexity"] == pytest.approx(np.exp(report["loss_nats"]))
    r = run_cli_in_process("evaluate", "--model", out, held_out, "--full-context")
    assert (f"nats/char, {whole['bits_per_char']:.4f} bits/char, perplexity {whole['perplexity']:.3f} over "
            f"{len(text) - 1:,} characters ({len(ids) - 1:,} pieces, {whole['loss_nats_per_token']:.4f} nats/piece)"
            ) in r.stdout

    # A run of characters the model lacks is one unknown piece, and as many characters as it has.
    odd = "\n" + LINES[0] + " ☃☃☃☃☃ " + "\n".join(LINES * 2) + "\n"
    held_out.write_text(odd, encoding="utf-8")
    r = run_cli_in_process("evaluate", "--model", out, held_out, "--json", "--full-context")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["unknown"] >= 1 and report["chars"] == len(odd) - 1

    # Training minimises the loss per piece, and logs it as val_loss; its bits are per character.
    last = read_metrics(out)[-1]
    val = evaluate_ids(model, Corpus(out / "data").val, vocab=vocab)
    assert val["chars"] > val["tokens"]
    assert last["val_loss"] == pytest.approx(val["loss_nats_per_token"], rel=1e-5)
    assert last["val_bits_per_char"] == pytest.approx(val["bits_per_char"], rel=1e-5)


@pytest.mark.parametrize("windows", ["contiguous", "random"])
def test_interrupt_then_resume_matches_an_uninterrupted_run(tmp_path, corpus_file, windows):
    settings = {**TINY_SETTINGS, "dropout": 0.0, "windows": windows}
    full = tmp_path / "full"
    train_lm(corpus_file, full, max_steps=40, log=lambda s: None, progress_bar=False, **settings)

    part = tmp_path / "part"
    with pytest.raises(Interrupted, match="stopped by SIGINT at step 20"):
        train_lm(corpus_file, part, max_steps=40, log=sigint_once_logged(20), progress_bar=False, **settings)
    train_lm(out=part, resume=True, log=lambda s: None, progress_bar=False)
    a, b = read_metrics(full), read_metrics(part)
    assert [r["step"] for r in b] == [r["step"] for r in a] == [10, 20, 30, 40]
    for ra, rb in zip(a, b):
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=1e-4)
        assert rb["val_loss"] == pytest.approx(ra["val_loss"], rel=1e-4)


def test_ctrl_c_writes_a_checkpoint_and_exits_cleanly(tmp_path, corpus_file):
    import subprocess
    import sys
    import time

    out = tmp_path / "sigint"
    proc = subprocess.Popen([sys.executable, "-m", "charseq.cli", "train-lm", str(corpus_file), "--out", str(out),
                             "--max-steps", "100000", *TINY_FLAGS], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "checkpoint saved" in stderr and "--resume" in stderr
    # The stop was asked for and the run is saved: one line, not an error (as Keras and click say a Ctrl-C)
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("stopped by SIGINT at step "), stderr
    step = saved_meta(out / "checkpoint.npz")["progress"]["step"]  # an end before the progress is refused
    r = run_cli_in_process("train-lm", "--out", out, "--resume", "--max-steps", step + 5)
    assert r.returncode == 0, r.stderr
    assert "resuming from step" in r.stdout


def test_an_existing_run_is_never_overwritten_without_force(tmp_path, corpus_file, trained_run):
    r = run_cli_in_process("train-lm", corpus_file, "--out", trained_run, "--max-steps", "2", *TINY_FLAGS)
    assert_clean_error(r, "already exists", "--resume", "--force")
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for force in ([], ["--force"]):  # no remedy offered that would be refused in turn
        r = run_cli_in_process("train-lm", corpus_file, "--out", out, "--max-steps", "2", *force, *TINY_FLAGS)
        assert_clean_error(r, "not a charseq run", "notes.txt", "refusing")
        assert "--resume" not in r.stderr and "--force" not in r.stderr
    assert (out / "notes.txt").read_text() == "mine"
