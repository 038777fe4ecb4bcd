"""A new head is one folder plus one line: the letter counter in tests/extra_head/, registered with one
entry in charseq.heads.HEADS, is trained, evaluated and documented by charseq's own command line and
listed by the studio, with no change to charseq."""

import json
import random

import pytest
from click.testing import CliRunner

import charseq.heads
from charseq.cli import main
from charseq.train import TrainConfig, learning_rate


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(charseq.heads.HEADS, "count", "extra_head")


def _lines(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join("".join(rng.choice("ab") for _ in range(rng.randint(1, 8))) + "\n" for _ in range(n))


def test_charseq_help_lists_the_new_head_s_command(registered):
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "train-count" in result.output
    result = CliRunner().invoke(main, ["train-count", "--help"])
    assert result.exit_code == 0 and 'counts the letter "a"' in result.output
    assert "--units" in result.output and "--max-steps" in result.output  # the shared options, with the head's defaults
    result = CliRunner().invoke(main, ["evaluate", "--help"])
    assert "Letter counters" in result.output


def test_the_new_head_trains_and_evaluates_through_the_cli(registered, tmp_path):
    (tmp_path / "train.txt").write_text(_lines(300, 0))
    (tmp_path / "test.txt").write_text(_lines(50, 1))
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train-count", str(tmp_path / "train.txt"), "--out", str(out),
                                       "--max-steps", "60", "--eval-every", "30", "--precision", "float32"])
    assert result.exit_code == 0, result.output
    assert "240 lines: 1x16 lstm" in result.output  # the head's own sizing rule, said at start
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "count" and config["train"]["max_steps"] == 60
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) >= 2
    # Its train_step does not take the learning rate: the loop assigns each step's rate of the schedule.
    train = TrainConfig.from_dict(config["train"])
    assert [r["lr"] for r in records] == pytest.approx(
        [learning_rate(train, r["step"] - 1, (r["step"] - 1) / 60) for r in records], rel=1e-6)

    result = CliRunner().invoke(main, ["evaluate", "--model", str(out), str(tmp_path / "test.txt"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["examples"] == 50 and report["mae"] < 2.0  # "a" occurs 0-8 times; guessing 0 is off by ~2.3
    result = CliRunner().invoke(main, ["evaluate", "--model", str(out), str(tmp_path / "test.txt"), "--beam", "3"])
    assert result.exit_code != 0 and "does not apply" in result.output + result.stderr

    result = CliRunner().invoke(main, ["train-count", str(tmp_path / "train.txt"), "--out", str(out), "--resume",
                                       "--units", "32"])
    assert result.exit_code != 0 and "--units" in result.stderr  # the shared resume rules hold for it too


def test_the_studio_lists_a_run_of_the_new_head(registered, tmp_path):
    from starlette.testclient import TestClient

    from charseq.studio.app import create_app

    (tmp_path / "train.txt").write_text(_lines(100, 2))
    out = tmp_path / "runs" / "count"
    result = CliRunner().invoke(main, ["train-count", str(tmp_path / "train.txt"), "--out", str(out),
                                       "--max-steps", "4", "--eval-every", "2", "--precision", "float32"])
    assert result.exit_code == 0, result.output
    with TestClient(create_app([tmp_path / "runs"]), base_url="http://127.0.0.1:8000",
                    raise_server_exceptions=False) as client:
        response = client.get("/api/runs")
        assert response.status_code == 200
        assert "count" in {r["name"] for r in response.json()["runs"]}


def test_grid_runs_the_new_head_s_train_command(registered, tmp_path):
    """`charseq grid` lists the train commands of a head registered after charseq.cli was imported,
    runs them, and refuses their bad data leaving nothing behind."""
    result = CliRunner().invoke(main, ["grid", "--help"])
    assert result.exit_code == 0 and "train-count" in result.output
    (tmp_path / "train.txt").write_text(_lines(100, 3))
    out = tmp_path / "grid"
    result = CliRunner().invoke(main, ["grid", "train-count", str(tmp_path / "train.txt"), "--lr", "0.01,0.02",
                                       "--max-steps", "4", "--eval-every", "2", "--precision", "float32",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    ranked = json.loads((out / "results.json").read_text())
    assert ranked["metric"] == "val_loss" and [r["status"] for r in ranked["runs"]] == ["finished", "finished"]
    assert {r["run"] for r in ranked["runs"]} == {"lr=0.01", "lr=0.02"}

    result = CliRunner().invoke(main, ["grid", "train-count", str(tmp_path / "nosuch.txt"), "--lr", "0.01,0.02",
                                       "--out", str(tmp_path / "bad")])
    assert result.exit_code != 0 and "nosuch.txt" in result.stderr
    assert not (tmp_path / "bad").exists()
