"""Each head is a Keras model: one loaded from a run saves with `model.save("x.keras")` and comes back
from `keras.models.load_model` (no custom_objects) as the same class, computing the same outputs."""

import warnings

import keras
import numpy as np
import pytest

import charseq


@pytest.mark.parametrize("kind", ["train-lm", "train-classifier", "classify-mnist", "train-seq2seq"])
def test_a_loaded_head_saves_and_loads_back_with_keras(kind, finished, tmp_path):
    run = finished[kind]
    if kind == "train-lm":
        model, vocab, _ = charseq.load_lm(run)
        inputs = vocab.encode("春风")[None]
        outputs = lambda m: m(inputs)[0]  # noqa: E731 (logits; the states are the backbone's)
    elif kind == "train-seq2seq":
        model, source_vocab, target_vocab, _ = charseq.load_seq2seq(run)
        inputs = (source_vocab.encode("abc")[None], np.array([[target_vocab.bos_id]]))
        outputs = lambda m: m(inputs)  # noqa: E731
    else:
        model, vocab, _ = charseq.load_classifier(run)
        inputs = vocab.encode("good film")[None] if vocab else np.full((1, 28, 28), 0.5, np.float32)
        outputs = lambda m: m(inputs)  # noqa: E731
    model.save(tmp_path / "head.keras")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*build")
        again = keras.models.load_model(tmp_path / "head.keras")
    assert type(again) is type(model)
    assert again.get_config() == model.get_config()
    np.testing.assert_allclose(np.asarray(outputs(again)), np.asarray(outputs(model)), rtol=1e-6)
