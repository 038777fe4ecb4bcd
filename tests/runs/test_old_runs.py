"""Run directories written by an earlier charseq still load, evaluate, generate and resume.

tests/fixtures/runs-2026-12-01/ holds tiny runs of every head made by charseq's main branch of
2026-12-01 (before the heads moved into charseq/heads/), the data they were trained on, and what
that version printed for them (expected/; see the fixture's README.md for the commands). Their
config.json files record the data where it was then (/tmp/fx/...); the copy each test makes points
them at the copied data, as a user who moved a run together with its data would.
"""

import json
import shutil
from pathlib import Path

import pytest

from helpers import run_cli_in_process

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "runs-2026-12-01"
RECORDED_DATA = "/tmp/fx/"


@pytest.fixture(scope="module")
def old(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("old-runs")
    shutil.copytree(FIXTURE, root, dirs_exist_ok=True)
    for config in root.glob("*/config.json"):
        config.write_text(config.read_text(encoding="utf-8").replace(RECORDED_DATA, f"{root / 'data'}/"),
                          encoding="utf-8")
    return root


def expected(name: str) -> str:
    return (FIXTURE / "expected" / name).read_text(encoding="utf-8")


def cli(*args) -> str:
    r = run_cli_in_process(*args)
    assert r.returncode == 0, r.stderr
    return r.stdout


# What later versions say besides: that a translation stopped at the decoding limit.
ADDED_KEYS = {"cut_off"}


def same(a, b, path="") -> None:
    """Equal JSON values, numbers to 1e-4 (the same weights; only float summation order may differ)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5), path
    elif isinstance(a, dict):
        assert a.keys() - ADDED_KEYS == b.keys(), path
        for k in b:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


@pytest.mark.parametrize("run, file, out", [
    ("lm", "lm_heldout.txt", "out_eval_lm.json"), ("classifier", "reviews_heldout.tsv", "out_eval_cls.json"),
    ("mnist", "stripes.npz", "out_eval_mnist.json"), ("seq2seq", "reverse_heldout.tsv", "out_eval_s2s.json")])
def test_old_runs_evaluate_as_they_did(old, run, file, out):
    report = json.loads(cli("evaluate", "--model", old / run, old / "data" / file, "--json"))
    want = json.loads(expected(out))
    for timing in ("decode_seconds", "sequences_per_sec", "source"):
        report.pop(timing, None), want.pop(timing, None)
    same(report, want)


def test_an_old_language_model_generates_the_same_text(old):
    lm = old / "lm"
    assert cli("generate", "--model", lm, "--prompt", "春风", "--length", "20", "--greedy") == expected("out_gen_greedy.txt")
    assert cli("generate", "--model", lm, "--prompt", "The", "--length", "20", "--seed", "3") == expected("out_gen_seed3.txt")
    assert cli("generate", "--model", lm, "--prompt", "The", "--length", "10", "--beam", "3") == expected("out_gen_beam.txt")


def test_an_old_classifier_and_encoder_decoder_answer_the_same(old):
    lines = cli("classify", "--model", old / "classifier", "--json", "a good film, so", "awful mess, really")
    for got, want in zip(lines.splitlines(), expected("out_classify.json").splitlines(), strict=True):
        same(json.loads(got), json.loads(want))
    for beam, out in (("1", "out_translate.json"), ("3", "out_translate_beam.json")):
        lines = cli("translate", "--model", old / "seq2seq", "--beam", beam, "--json", "abc", "dcba")
        for got, want in zip(lines.splitlines(), expected(out).splitlines(), strict=True):
            same(json.loads(got), json.loads(want))


@pytest.mark.parametrize("run, command", [("lm", "train-lm"), ("classifier", "train-classifier"),
                                          ("mnist", "classify-mnist"), ("seq2seq", "train-seq2seq")])
def test_old_runs_resume(old, run, command, tmp_path):
    path = tmp_path / run  # a copy: the other tests read the old runs as they were made
    shutil.copytree(old / run, path)
    out = cli(command, "--out", path, "--resume", "--max-steps", "9")
    assert "resuming from step 6" in out, out
    steps = [json.loads(line)["step"] for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [3, 6, 9]
