"""What a train function returns goes wherever a run's path goes: `load_lm(train_lm(...))`, as a
Keras user passes a model on, and it shows where the run is."""

import os

import charseq
from helpers import QUIET, TINY_SETTINGS


def test_the_returned_run_is_the_path_the_other_functions_take(files, tmp_path):
    held_out = files / "corpus.txt"
    run = charseq.train_lm(held_out, tmp_path / "poems", max_steps=2, **QUIET, **TINY_SETTINGS)
    assert os.fspath(run) == str(tmp_path / "poems")
    assert repr(run) == f"RunDir({str(tmp_path / 'poems')!r})"
    model, vocab, config = charseq.load_lm(run)
    assert config["task"] == "lm" and charseq.generate(model, vocab, length=3, seed=0)
    assert "loss_nats" in charseq.evaluate_lm(run, held_out)

    pairs = charseq.train_seq2seq(files / "pairs.tsv", tmp_path / "pairs", units=8, embedding_dim=4, max_steps=2,
                                  **QUIET)
    assert len(charseq.translate(pairs, ["abc"], beam=2)) == 1
