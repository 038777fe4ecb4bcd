"""`--precision auto` (charseq.precision): bfloat16 on a CPU with native bf16, except for a text
classifier's LSTM or GRU of up to 256 units on the compiled kernels, and a GRU of that width on Keras'
layer; resolved when a run starts, and recorded, so that the run loads and resumes in it."""

import json
import shutil

import pytest

from charseq import kernels, precision
from charseq.errors import CharseqError
from charseq.precision import precision_of_run, resolve_precision
from helpers import assert_clean_error, command, run_cli_in_process


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


# ----------------------------------------------------------------------------- what a run records
def set_trained_precision(run, value) -> None:
    """config.json as a run that `auto` started in `value` has it (float32: one trained on a CPU without
    native bf16, or before `auto` chose bfloat16 there)."""
    path = run / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "trained_precision": value}))


def test_a_run_loads_and_resumes_in_the_precision_auto_chose(files, tmp_path, monkeypatch):
    """`auto` is resolved once, when the run starts, and recorded: a model trained in float32 loads,
    evaluates, generates and resumes in float32 on a CPU where `auto` now means bfloat16; one trained
    in bfloat16 loads in float32 where this CPU would not pick bfloat16."""
    from charseq.heads.lm.run import load_lm

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    run = tmp_path / "lm"
    r = run_cli_in_process(*command("train-lm", files, run, "--precision", "auto"))
    assert r.returncode == 0, r.stderr
    assert "mixed_bfloat16;" in r.stdout  # the start line
    config = json.loads((run / "config.json").read_text())
    assert (config["model"]["precision"], config["trained_precision"]) == ("auto", "mixed_bfloat16")
    assert load_lm(run)[0].precision == "mixed_bfloat16"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert load_lm(run)[0].precision == "float32"  # as `auto` would pick on this CPU

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    set_trained_precision(run, "float32")
    assert load_lm(run)[0].precision == "float32"
    r = run_cli_in_process("train-lm", "--out", run, "--resume", "--max-steps", "9")
    assert r.returncode == 0, r.stderr
    assert "float32;" in r.stdout and "bfloat16" not in r.stdout
    assert json.loads((run / "config.json").read_text())["trained_precision"] == "float32"
    assert load_lm(run, "float32")[0].precision == "float32"  # generate --precision: products as asked


def _policy(kind: str, run) -> str:
    """The dtype policy of `run`'s model as its head's loader builds it."""
    from charseq.heads.classifier.run import load_classifier
    from charseq.heads.seq2seq.run import load_seq2seq

    if kind == "train-seq2seq":
        return load_seq2seq(run)[0].decoder.dtype_policy.name
    return load_classifier(run)[0].backbone.dtype_policy.name


@pytest.mark.parametrize("kind", ["train-classifier", "classify-mnist", "train-seq2seq"])
def test_every_head_loads_and_resumes_in_its_recorded_precision(kind, files, tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    run = tmp_path / kind
    r = run_cli_in_process(*command(kind, files, run, "--precision", "auto"))
    assert r.returncode == 0, r.stderr
    chosen = json.loads((run / "config.json").read_text())["trained_precision"]
    assert f"{chosen};" in r.stdout and _policy(kind, run) == chosen
    other = "float32" if chosen == "mixed_bfloat16" else "mixed_bfloat16"
    set_trained_precision(run, other)  # as if `auto` had chosen the other one when the run started
    assert _policy(kind, run) == other
    r = run_cli_in_process(kind, "--out", run, "--resume", "--max-steps", "8")
    assert r.returncode == 0, r.stderr
    assert f"{other};" in r.stdout


def test_a_precision_named_or_not_recorded_is_resolved_where_it_loads():
    model = {"cell": "lstm", "units": 8}
    assert precision_of_run({"model": {**model, "precision": "float32"}, "trained_precision": "float32"}) is None
    assert precision_of_run({"model": {**model, "precision": "auto"}}) is None  # a run of an older charseq
    assert precision_of_run({"model": model, "trained_precision": "float32"}) == "float32"


def test_a_damaged_record_is_one_line(finished, tmp_path):
    run = tmp_path / "lm"
    shutil.copytree(finished["train-lm"], run)
    set_trained_precision(run, "float16")
    assert_clean_error(run_cli_in_process("generate", "-m", run, "--length", "5"), "trained_precision", "float16")


def test_evaluate_and_classify_compute_in_the_precision_asked(finished, files, monkeypatch):
    """`evaluate --precision` and `classify --precision`: a model trained in float32 computes in
    bfloat16 when asked (its figures move a little, and only a little) and in float32 as before; on a
    CPU without native bf16 bfloat16 is refused in one line."""
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)

    def loss(*extra):
        r = run_cli_in_process("evaluate", "-m", finished["train-lm"], files / "other.txt", "--json", *extra)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["loss_nats"]

    def probabilities(*extra):
        r = run_cli_in_process("classify", "-m", finished["train-classifier"], "--json", "good film", "awful",
                               *extra)
        assert r.returncode == 0, r.stderr
        return [p for line in r.stdout.splitlines() for p in json.loads(line)["probabilities"].values()]

    as_trained, float32, bf16 = loss(), loss("--precision", "float32"), loss("--precision", "mixed_bfloat16")
    assert as_trained == float32 and bf16 != float32 and abs(bf16 - float32) < 0.02
    as_trained, float32, bf16 = (probabilities(), probabilities("--precision", "float32"),
                                 probabilities("--precision", "mixed_bfloat16"))
    assert as_trained == float32 and bf16 != float32 and max(abs(a - b) for a, b in zip(bf16, float32)) < 0.02
    r = run_cli_in_process("evaluate", "-m", finished["classify-mnist"], "--json", "--precision", "mixed_bfloat16")
    assert r.returncode == 0 and 0 <= json.loads(r.stdout)["accuracy"] <= 1, r.stderr
    scores = [run_cli_in_process("evaluate", "-m", finished["train-seq2seq"], files / "pairs.tsv", "--json", *extra)
              for extra in ([], ["--precision", "float32"])]
    assert all(r.returncode == 0 for r in scores), scores[-1].stderr
    assert [json.loads(r.stdout)["char_error_rate"] for r in scores] == [json.loads(scores[0].stdout)["char_error_rate"]] * 2

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    for args in (["evaluate", "-m", finished["train-lm"], files / "other.txt"],
                 ["classify", "-m", finished["train-classifier"], "good film"]):
        assert_clean_error(run_cli_in_process(*args, "--precision", "mixed_bfloat16"), "AVX512-BF16")
    assert_clean_error(run_cli_in_process("evaluate", "-m", finished["train-lm"], files / "other.txt",
                                          "--precision", "half"), "--precision")
