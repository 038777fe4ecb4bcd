"""Slow checks on the project's own corpora (minutes each): `scripts/test.sh -m slow`."""

import numpy as np
import pytest

from charseq.heads.lm.run import train_lm
from charseq.heads.seq2seq.run import train_seq2seq, translate
from helpers import REPO, read_metrics, run_cli

pytestmark = pytest.mark.slow


def test_default_language_model_learns_the_poems(tmp_path):
    """The defaults, on the corpus the demo uses: in 90 seconds the validation loss falls well
    below the corpus's unigram entropy (4.25 nats/char: what a model without context reaches),
    and generation from a Chinese prompt gives Chinese text."""
    out = tmp_path / "poems"
    train_lm(REPO / "corpora" / "poems.txt", out, time_budget=1.5, eval_every=50, sample_length=0,
             log=lambda s: None, progress_bar=False)
    records = read_metrics(out)
    assert records[-1]["val_loss"] < 0.9 * 4.25
    r = run_cli("generate", "--model", out, "--prompt", "春风", "--length", "40", "--seed", "1")
    assert r.returncode == 0, r.stderr
    chinese = sum("\u4e00" <= c <= "\u9fff" for c in r.stdout)
    assert chinese > 20


def test_phrasebook_translates_its_first_pair(tmp_path):
    """README's N→M example: corpora/zh-en.tsv learnt, 我英语不好 → my English is poor."""
    pairs = REPO / "corpora" / "zh-en.tsv"
    out = tmp_path / "zh-en"
    train_seq2seq(pairs, out, val=pairs, epochs=60, log=lambda s: None, progress_bar=False)
    assert translate(out, ["我英语不好"], beam=5)[0][0][0] == "my English is poor"
    records = read_metrics(out)
    assert np.max([r["val_exact_match"] for r in records]) > 0.9
