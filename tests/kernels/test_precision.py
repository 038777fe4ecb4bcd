"""`--precision auto` (charseq.precision): bfloat16 on a CPU with native bf16, except for a text
classifier's LSTM or GRU of up to 256 units on the compiled kernels, and a GRU of that width on Keras'
layer."""

import pytest

from charseq import kernels, precision
from charseq.errors import CharseqError
from charseq.precision import resolve_precision


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU with native bfloat16 and the compiled float32 LSTM kernel (the 2026-12-01 machine)."""
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(kernels, "available", lambda: True)


def test_auto_on_a_bf16_cpu(bf16_cpu):
    # a language model: float32's loss in fewer minutes
    assert resolve_precision("auto", units=256) == "mixed_bfloat16"
    assert resolve_precision("auto", units=64, cell="gru") == "mixed_bfloat16"
    assert resolve_precision("auto", units=384) == "mixed_bfloat16"
    # a text classifier: float32 up to 256 units, bfloat16 wider
    assert resolve_precision("auto", units=256, text_classifier=True) == "float32"
    assert resolve_precision("auto", units=64, cell="gru", text_classifier=True) == "float32"
    assert resolve_precision("auto", units=384, text_classifier=True) == "mixed_bfloat16"
    assert resolve_precision("auto", units=256, cell="rnn", text_classifier=True) == "mixed_bfloat16"  # not measured
    assert resolve_precision("auto") == "mixed_bfloat16"  # MNIST's reader, encoder-decoders


def test_auto_without_the_kernel_or_without_native_bf16(bf16_cpu, monkeypatch):
    monkeypatch.setattr(kernels, "available", lambda: False)
    assert resolve_precision("auto", units=256) == "mixed_bfloat16"  # the fused path, then
    assert resolve_precision("auto", units=256, text_classifier=True) == "mixed_bfloat16"
    assert resolve_precision("auto", units=256, cell="gru") == "float32"  # Keras' layer either way
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", units=512) == "float32"
    assert resolve_precision("auto") == "float32"


def test_a_precision_given_is_kept(bf16_cpu):
    assert resolve_precision("mixed_bfloat16", units=256) == "mixed_bfloat16"
    assert resolve_precision("float32") == "float32"
    with pytest.raises(CharseqError, match="--precision must be one of"):
        resolve_precision("half")


def test_the_language_model_passes_its_width(bf16_cpu, monkeypatch):
    """build_model resolves `auto` with the model's width and cell (the rule above)."""
    from charseq.heads.lm.run import build_model

    lstm = build_model({"cell": "lstm", "units": 8, "layers": 1, "embedding_dim": 4}, 10)
    gru = build_model({"cell": "gru", "units": 8, "layers": 1, "embedding_dim": 4}, 10)
    rnn = build_model({"cell": "rnn", "units": 8, "layers": 1, "embedding_dim": 4}, 10)
    wide = build_model({"cell": "gru", "units": 320, "layers": 1, "embedding_dim": 4}, 10)
    assert lstm.precision == gru.precision == rnn.precision == wide.precision == "mixed_bfloat16"
    monkeypatch.setattr(kernels, "available", lambda: False)
    gru = build_model({"cell": "gru", "units": 8, "layers": 1, "embedding_dim": 4}, 10)
    assert gru.precision == "float32"


def test_the_text_classifier_passes_its_width_and_mnist_does_not(bf16_cpu):
    """build_model resolves `auto` with the width and cell of a text classifier (masked texts run
    Keras' layers in bfloat16, slower than the compiled kernels); MNIST's unmasked reader keeps bfloat16."""
    from charseq.heads.classifier.run import build_model

    def policy(cfg, vocab_size):
        return build_model({"units": 8, "layers": 1, "embedding_dim": 4, **cfg}, 2, vocab_size).backbone.dtype_policy.name
    assert policy({"cell": "gru"}, 10) == policy({"cell": "lstm"}, 10) == "float32"
    assert policy({"cell": "gru", "units": 320}, 10) == "mixed_bfloat16"
    assert policy({"cell": "lstm"}, None) == "mixed_bfloat16"  # MNIST rows


def test_the_measured_default_language_model_computes_in_bfloat16(bf16_cpu):
    """The default model for tiny-shakespeare's training split (3x256 GRU), whose 15-minute pairs
    decided the rule, resolves to bfloat16; a change of the sizing that changes the model shows here."""
    from charseq.heads.lm.sizing import size_lm

    rule = size_lm(953_662, 69, {}).settings
    assert (rule["cell"], rule["layers"], rule["units"]) == ("gru", 3, 256)
    assert resolve_precision("auto", rule["units"], rule["cell"]) == "mixed_bfloat16"
