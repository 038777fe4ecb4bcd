"""The Python guide's blocks run as written: the language model's first steps from a folder that is
not a clone, and for a Keras user the backbone on a batch of ids, a head saved with model.save and
loaded back with keras.models.load_model, and a language model compiled and trained by Keras' own fit."""

import re
import shutil

from helpers import REPO

GUIDE = REPO / "docs" / "guide" / "python.md"


def guide_block(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    [block] = [code for code in blocks if marker in code]
    return block


def test_the_language_model_block_runs_as_written_from_any_folder(tmp_path, monkeypatch, capsys):
    """Trained a few steps of a tiny model instead of two minutes; nothing of a clone's corpora/ at hand."""
    block = guide_block("evaluate_lm(")
    assert "time_budget=2" in block
    tiny = "max_steps=5, eval_every=5, units=16, layers=1, embedding_dim=8, batch_size=8, precision='float32'"
    monkeypatch.chdir(tmp_path)
    exec(compile(block.replace("time_budget=2", tiny), "python.md (language model)", "exec"), {})
    printed = capsys.readouterr().out
    assert "bits_per_char" in printed and (tmp_path / "runs" / "poems" / "config.json").exists()


def test_the_backbone_block_runs_as_written():
    scope = {}
    exec(compile(guide_block("RecurrentBackbone("), "python.md (backbone)", "exec"), scope)
    assert tuple(scope["outputs"].shape) == (*scope["ids"].shape, 256)
    assert tuple(scope["out_t"].shape) == (scope["ids"].shape[0], 256) and len(scope["states"]) == 3


def test_the_keras_save_block_runs_as_written(trained_run, tmp_path, monkeypatch):
    shutil.copytree(trained_run, tmp_path / "runs" / "poems")
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(guide_block("keras.models.load_model"), "python.md (save)", "exec"), scope)
    assert type(scope["model"]).__name__ == "LanguageModel" and (tmp_path / "poems.keras").exists()


def test_the_keras_fit_block_runs_as_written_and_trains_the_head(trained_run, tmp_path, monkeypatch):
    from charseq import generate, load_lm

    shutil.copytree(trained_run, tmp_path / "runs" / "poems")  # and no corpora/: the block runs from any folder
    monkeypatch.chdir(tmp_path)
    before = generate(*load_lm("runs/poems")[:2], prompt="春", length=30, greedy=True)
    scope = {}
    exec(compile(guide_block(".fit("), "python.md (fit)", "exec"), scope)
    losses = scope["history"].history["loss"]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert "accuracy" in scope["history"].history  # metrics scored on the logits too
    after = generate(scope["model"], scope["vocab"], prompt="春", length=30, greedy=True)
    assert after != before  # the model itself was trained, by Keras' fit
