"""The speed benchmark (scripts/bench.py): its charseq side, its FLOP count, its report. PyTorch is
not needed: the benchmark measures the charseq side alone when it is missing."""

import importlib.util
import json
import math

import pytest

from helpers import REPO


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("charseq_bench", REPO / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, corpus_file, bench):
    from charseq.data.corpus import encode_corpus
    from charseq.vocab import CharVocab

    directory = tmp_path_factory.mktemp("bench") / "corpus"
    text = corpus_file.read_text(encoding="utf-8")
    vocab = CharVocab.build(text)
    directory.mkdir()
    vocab.save(directory)
    encode_corpus([text], vocab, directory / "data", 0.1, str(corpus_file))
    return directory


def test_flops_of_a_training_step_follow_the_usual_formula(bench):
    # One LSTM layer (4 gates), input 3, 5 units, vocabulary 7, batch 2 x 11 steps.
    per_token = 2 * 4 * 5 * (3 + 5) + 2 * 5 * 7
    assert bench.lm_flops_per_step("lstm", 5, 1, 3, 7, 2, 11) == 3 * per_token * 2 * 11
    assert bench.lm_flops_per_step("gru", 5, 2, 3, 7, 1, 1) == 3 * (2 * 3 * 5 * 8 + 2 * 3 * 5 * 10 + 2 * 5 * 7)


def test_charseq_training_measurement_runs_the_real_step(bench, encoded):
    spec = dict(kind="lm", framework="charseq", corpus_dir=str(encoded), cell="lstm", units=16, layers=2,
                embedding_dim=8, batch=4, seq_len=12, precision="fp32", warmup=1, steps=3)
    result = bench.run_worker(spec)
    from charseq.kernels import available

    assert result["impl"] == ("compiled" if available() else "keras")
    assert result["steps"] == 3 and len(result["losses"]) == 4
    assert all(math.isfinite(x) for x in result["losses"])
    assert result["chars_per_s"] == pytest.approx(4 * 12 / result["step_s"])
    assert result["gflops"] > 0 and result["peak_rss_mb"] > 100  # TensorFlow alone is more than that

    # The report: ratio is charseq's speed over PyTorch's, loss and peak fraction carried through.
    other = dict(result, chars_per_s=result["chars_per_s"] / 2, final_loss=9.0, peak_rss_mb=50.0)
    summary = bench.summarize({"train lstm 2x16 fp32/charseq": result, "train lstm 2x16 fp32/torch": other,
                               "matmul/charseq": {"gflops": {"float32": result["gflops"] * 4}}})
    row = summary["rows"][0]
    assert row["ratio"] == pytest.approx(2.0)
    assert row["charseq_peak_fraction"] == pytest.approx(0.25)
    text = bench.table(summary)
    assert "| train lstm 2x16 fp32 (chars/s) |" in text and "| 2.00 |" in text and "9.000" in text


def test_command_writes_json_without_torch(bench, corpus_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "SHAKESPEARE", corpus_file)
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--no-torch", "--only", "matmul", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"matmul/charseq"}
    assert report["summary"]["matmul_peak_gflops"]["float32"] > 1
    assert "matmul peak" in capsys.readouterr().out
    assert bench.main(["--quick", "--no-torch", "--out", str(out)]) == 2  # never overwrites without --force
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("framework", ["charseq", "torch"])
def test_masked_text_classifier_measurement_reads_the_same_batches(bench, tmp_path, framework):
    if framework == "torch" and not bench.torch_available():
        pytest.skip("PyTorch (the [bench] extra) is not installed")
    tsv = tmp_path / "train.tsv"
    rows = [f"{i % 2}\t{'a good film ' * (1 + i % 5)}{'bad ' * (i % 3)}" for i in range(40)]
    tsv.write_text("label\tsentence\n" + "\n".join(rows) + "\n", encoding="utf-8")
    spec = dict(kind="text_classifier", framework=framework, data=str(tsv), batch=8, units=8, layers=2,
                dropout=0.3, warmup=1, steps=2)
    result = bench.run_worker(spec)
    assert result["steps"] == 2 and len(result["losses"]) == 3
    assert all(0 < x < 5 for x in result["losses"])  # cross-entropy of 2 classes starts near log 2
