"""Classifier readouts (--readout): final state, masked mean and max, attention pooling, all three."""

import json
import warnings

import numpy as np
import pytest
import tensorflow as tf

from charseq.heads.classifier.model import READOUTS
from charseq.heads.classifier.run import build_model
from helpers import run_cli_in_process


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("readout", READOUTS)
def test_padding_never_changes_a_readout(readout, bidirectional):
    model = build_model({"units": 16, "precision": "float32", "bidirectional": bidirectional,
                              "readout": readout}, 3, 30)
    alone = model.features(tf.constant([[5, 6, 7]])).numpy()
    # In a batch with a longer text, the short one is right-padded: its readout must not move.
    padded = model.features(tf.constant([[5, 6, 7, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7]])).numpy()[:1]
    np.testing.assert_allclose(padded, alone, atol=1e-5)


def test_each_readout_is_what_it_says():
    ids = tf.constant([[5, 6, 7, 8, 0, 0]])
    concat = build_model({"units": 16, "precision": "float32", "readout": "concat"}, 3, 30)
    assert concat.head.kernel.shape[0] == 3 * 16
    outputs, states = concat.backbone(ids)
    real = outputs.numpy()[0, :4]  # the four real steps; the two padded ones must not count
    final, mean, top = np.split(concat.features(ids).numpy()[0], 3)
    np.testing.assert_allclose(final, states[-1][0].numpy()[0], atol=1e-5)
    np.testing.assert_allclose(mean, real.mean(0), atol=1e-5)
    np.testing.assert_allclose(top, real.max(0), atol=1e-5)
    assert not np.allclose(mean, final, atol=1e-3)

    attention = build_model({"units": 16, "precision": "float32", "readout": "attention"}, 3, 30)
    outputs, _ = attention.backbone(ids)
    real = outputs.numpy()[0, :4]
    scores = real @ attention.attention_score.kernel.numpy()[:, 0]
    weights = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    np.testing.assert_allclose(attention.features(ids).numpy()[0], weights @ real, atol=1e-5)


def test_attention_over_one_character_is_quiet():
    """Building the model and reading a one-character text: attention over one step weighs it 1,
    with no warning on the user's terminal."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attention = build_model({"units": 16, "precision": "float32", "readout": "attention"}, 3, 30)
        outputs, _ = attention.backbone(tf.constant([[5]]))
        np.testing.assert_allclose(attention.features(tf.constant([[5]])).numpy()[0], outputs.numpy()[0, 0], atol=1e-6)


def test_a_pooled_readout_trains_saves_and_classifies(tmp_path):
    rng = np.random.default_rng(0)
    good, bad = ["a good film", "great fun", "truly wonderful"], ["a bad film", "awful mess", "truly boring"]
    rows = ["sentence\tlabel"]
    for _ in range(240):
        pos = rng.random() < 0.5
        rows.append(f"{rng.choice(good if pos else bad)}, {rng.choice(['really', 'so', 'quite'])}\t{int(pos)}")
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    r = run_cli_in_process("train-classifier", tmp_path / "train.tsv", "--out", out, "--readout", "mean", "--epochs", "6",
                           "--batch-size", "16", "--lr", "1e-2", "--units", "32", "--embedding-dim", "16", "--precision", "float32")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "config.json").read_text())["model"]["readout"] == "mean"
    r = run_cli_in_process("classify", "--model", out, "truly wonderful, so", "awful mess, really")
    assert r.returncode == 0, r.stderr
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == ["1", "0"]
