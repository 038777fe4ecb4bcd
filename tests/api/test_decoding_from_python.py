"""Every way the command line decodes is a function of `charseq` too: `charseq generate --beam` is
`charseq.beam_search`, and `translate --precision` is `translate(..., precision=...)`, with the same
output as the command."""

import pytest

import charseq
from charseq.cli_errors import one_line
from charseq.errors import ArgumentTypeError

from helpers import run_cli_in_process


def test_beam_search_gives_the_continuations_generate_beam_prints(finished):
    run = finished["train-lm"]
    model, vocab, _ = charseq.load_lm(run)
    hyps = charseq.beam_search(model, vocab, "T", length=12, beam=4, n_best=2)
    assert len(hyps) == 2 and all(len(text) == 12 for text, _ in hyps) and hyps[0][1] >= hyps[1][1]
    r = run_cli_in_process("generate", "--model", str(run), "--prompt", "T", "--length", "12", "--beam", "4",
                           "--n-best", "2")
    assert r.returncode == 0, r.stderr
    printed = r.stdout.splitlines()
    assert printed == [line for text, log_prob in hyps
                       for line in (f"--- log-probability {log_prob:.4f} ---", f"T{text}")]
    assert charseq.beam_search(model, vocab, "T", precision="float32", length=12, beam=4, n_best=2) == hyps


def test_beam_search_refuses_what_it_does_not_take(finished):
    model, vocab, _ = charseq.load_lm(finished["train-lm"])
    with pytest.raises(ArgumentTypeError, match=r"beam_search\(\): got an unexpected keyword argument 'temperature'"):
        charseq.beam_search(model, vocab, "T", temperature=0.5)
    with pytest.raises(charseq.CharseqError, match="n_best must be between 1 and beam"):
        charseq.beam_search(model, vocab, "T", beam=2, n_best=3)


def test_translate_takes_the_precision_translate_precision_does(finished):
    run = finished["train-seq2seq"]
    hyps = charseq.translate(run, ["ab", "abc"], precision="float32", beam=2)
    assert hyps == charseq.Translator(run, "float32")(["ab", "abc"], beam=2)
    r = run_cli_in_process("translate", "--model", str(run), "--precision", "float32", "--beam", "2", "ab", "abc")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [one_line(h[0][0]) for h in hyps]  # as the command prints an output


def test_the_language_model_guide_s_beam_search_block_runs_as_written(tmp_path, monkeypatch, capsys):
    import re

    from helpers import QUIET, REPO, TINY_SETTINGS

    guide = (REPO / "docs" / "guide" / "language-model.md").read_text(encoding="utf-8")
    [block] = [code for code in re.findall(r"```python\n(.*?)```", guide, re.S) if "beam_search(" in code]
    monkeypatch.chdir(tmp_path)
    charseq.train_lm(REPO / "corpora" / "poems.txt", "runs/poems", max_steps=2, **QUIET, **TINY_SETTINGS)
    exec(compile(block, "language-model.md (beam search)", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 3 and all(line.split("  ", 1)[1].startswith("春风") for line in printed)
