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
    machine = report["machine"]  # what the figures need beside them: the CPU, its flags, the versions
    assert machine["cpu"] and machine["flags"] and machine["tensorflow"] and "commit" in report
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


def test_each_row_meets_pytorch_at_its_fastest_precision(bench):
    """Rows measured in both precisions are grouped by what they measure: charseq at its default (what
    auto picks) and at its fastest against PyTorch's faster precision, each share of the matmul peak
    taken in the precision it ran; the MNIST-row step in steps/s."""
    mnist_flops = bench.mnist_flops_per_step(128, 128)
    assert 2.0e9 < mnist_flops < 2.3e9  # the profile's 2.1 GFLOP per step
    results = {
        "matmul/charseq": {"gflops": {"float32": 100.0, "bfloat16": 400.0}},
        "classifier mnist rows fp32/charseq": {"step_s": 0.02, "gflops": 50.0, "auto_precision": "mixed_bfloat16"},
        "classifier mnist rows bf16/charseq": {"step_s": 0.01, "gflops": 100.0, "auto_precision": "mixed_bfloat16"},
        "classifier mnist rows fp32/torch": {"step_s": 0.0125, "gflops": 80.0},
        "classifier mnist rows bf16/torch": {"step_s": 0.025, "gflops": 40.0},
        "train gru 2x8 fp32/charseq": {"chars_per_s": 900.0, "auto_precision": "float32"},
        "train gru 2x8 bf16/charseq": {"chars_per_s": 1200.0, "auto_precision": "float32"},
        "train gru 2x8 fp32/torch": {"chars_per_s": 600.0},
        "train gru 2x8 bf16/torch": {"chars_per_s": 1000.0},
        # measured in float32 only, where auto would pick bfloat16
        "train lstm 2x8 batch 128 fp32/charseq": {"chars_per_s": 500.0, "auto_precision": "mixed_bfloat16"},
        "train lstm 2x8 batch 128 fp32/torch": {"chars_per_s": 400.0},
    }
    rows = {r["name"]: r for r in bench.summarize(results)["vs_fastest"]}
    mnist, gru = rows["classifier mnist rows"], rows["train gru 2x8"]
    assert mnist["unit"] == "steps/s" and mnist["torch_best_precision"] == "fp32"
    assert mnist["charseq_default_precision"] == "bf16" and mnist["ratio_default"] == pytest.approx(100 / 80)
    assert mnist["charseq_bf16_peak_fraction"] == pytest.approx(0.25)  # of the bfloat16 peak
    assert mnist["torch_fp32_peak_fraction"] == pytest.approx(0.8)  # of the float32 peak
    assert gru["torch_best_precision"] == "bf16" and gru["charseq_default_precision"] == "fp32"
    assert gru["ratio_default"] == pytest.approx(0.9) and gru["ratio_best"] == pytest.approx(1.2)
    text = bench.table(bench.summarize(results))
    assert "| classifier mnist rows (steps/s) | 50.00 | 100.00 | 80.00 | 40.00 | 1.25 (bf16 vs fp32) |" in text
    assert "| train lstm 2x8 batch 128 (chars/s) | 500 | - | 400 | - | - (bf16 not measured) | 1.25 (fp32 vs fp32) |" \
        in text


def test_rounds_report_the_median_ratio_and_its_range(bench):
    """Over several rounds each ratio is the median of the rounds' own ratios (the two frameworks of a
    round ran minutes apart), shown with its range; the speeds are each measurement's median round."""
    def round_of(charseq_steps_per_s, torch_steps_per_s):
        return {"matmul/charseq": {"gflops": {"float32": 100.0, "bfloat16": 400.0}},
                "classifier mnist rows bf16/charseq": {"step_s": 1 / charseq_steps_per_s, "gflops": 100.0,
                                                       "auto_precision": "mixed_bfloat16"},
                "classifier mnist rows bf16/torch": {"step_s": 1 / torch_steps_per_s, "gflops": 100.0}}

    # Per round 1.10, 0.80 and 1.05: the median ratio is 1.05, not the ratio of the median speeds (120 / 120).
    summary = bench.summarize_rounds([round_of(110, 100), round_of(120, 150), round_of(126, 120)])
    row = summary["rows"][0]
    assert summary["rounds"] == 3 and row["charseq"] == pytest.approx(120) and row["torch"] == pytest.approx(120)
    assert row["ratio"] == pytest.approx(1.05) and row["ratio_range"] == pytest.approx([0.8, 1.1])
    mnist = summary["vs_fastest"][0]
    assert mnist["ratio_default"] == pytest.approx(1.05) and mnist["ratio_best_range"] == pytest.approx([0.8, 1.1])
    text = bench.table(summary)
    assert "Over 3 rounds" in text and "| 1.05 [0.80-1.10] (bf16 vs bf16) |" in text
    # One round is summarize() itself: no ranges.
    assert "ratio_range" not in bench.summarize_rounds([round_of(110, 100)])["rows"][0]


def test_rounds_run_every_measurement_again(bench, corpus_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "SHAKESPEARE", corpus_file)
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--no-torch", "--only", "matmul", "--rounds", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert len(report["rounds"]) == 2 and all(set(r) == {"matmul/charseq"} for r in report["rounds"])
    assert report["summary"]["rounds"] == 2 and "round 2 of 2" in capsys.readouterr().out
    assert bench.main(["--no-torch", "--rounds", "0", "--out", str(tmp_path / "x.json")]) == 2
    assert "--rounds must be at least 1" in capsys.readouterr().err
