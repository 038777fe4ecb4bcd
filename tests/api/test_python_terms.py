"""An error raised to a Python caller names its keywords, not the command line's options: the
library's messages say `--top-p` and "use --greedy", which the CLI prints as they are, and the public
boundary (charseq.X, Generator, Translator) rewords them as `top_p` and `greedy=True`."""

import pytest

import charseq
from charseq.errors import ArgumentTypeError, ArgumentValueError, CharseqError

from helpers import assert_clean_error, run_cli_in_process


def _raised(call) -> str:
    with pytest.raises(CharseqError) as e:
        call()
    return str(e.value)


def test_errors_name_keywords_and_remedies_as_python_spells_them(finished, files, tmp_path):
    lm = finished["train-lm"]
    model, vocab, _ = charseq.load_lm(lm)
    (tmp_path / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    cases = [
        (lambda: charseq.generate(model, vocab, prompt="T", temperature=0),
         "temperature must be in", "(use greedy=True for the most likely character)"),
        (lambda: charseq.generate(model, vocab, prompt="T", top_p=2.0), "top_p must be in (0, 1]"),
        (lambda: charseq.generate(model, vocab, prompt="T\x07"), '(use unknown="skip" or unknown="unk")'),
        (lambda: charseq.Generator(model, vocab)("T", length=-1), "length must be between 0 and"),
        (lambda: charseq.Generator(model, vocab)("T\x07"), 'unknown="skip"'),
        (lambda: charseq.train_lm(files / "corpus.txt", lm),  # refused before anything is written
         "use resume=True to continue it or force=True to replace it"),
        (lambda: charseq.train_lm(files / "corpus.txt", tmp_path / "new", units=10**6, layers=9),
         "units=1000000 with layers=9 and embedding_dim=64 makes a model"),
        (lambda: charseq.evaluate_lm(lm, tmp_path / "latin1.txt"),
         'is not valid utf-8 text', '(use encoding to name its encoding or errors="replace")'),
        (lambda: charseq.translate(finished["train-seq2seq"], ["ab"], beam=2, n_best=3),
         "n_best must be between 1 and beam (2), not 3"),
        (lambda: charseq.read_pairs(files / "pairs.tsv", max_input_len=-1), "max_input_len must be at least 1"),
        (lambda: charseq.translate(finished["train-seq2seq"], ["ab"], max_len=0), "max_len must be at least 1"),
        (lambda: charseq.train_seq2seq(files / "pairs.tsv", tmp_path / "new", max_output_len=0),
         "max_output_len must be between 1 and"),
        (lambda: charseq.get_dataset("sst2", source=""), "source is empty"),
        (lambda: charseq.serve([tmp_path], port=99999), "port must be between 0 and 65535"),
        # The loaders take the precisions evaluate_lm and Generator take: "auto" is a training choice.
        (lambda: charseq.load_lm(lm, precision="auto"), "precision must be one of float32, mixed_bfloat16"),
        (lambda: charseq.load_classifier(finished["train-classifier"], precision="float16"), "precision must be"),
        (lambda: charseq.load_seq2seq(finished["train-seq2seq"], precision="auto"), "precision must be"),
    ]
    for call, *fragments in cases:
        message = _raised(call)
        assert "--" not in message, message
        for fragment in fragments:
            assert fragment in message, (fragment, message)
    assert not (tmp_path / "new").exists()
    with pytest.raises(ArgumentValueError, match=r"^lr must be a finite number in \(0, inf\), not nan$"):
        charseq.train_lm(files / "corpus.txt", tmp_path / "new", lr=float("nan"))


def test_the_command_line_keeps_its_options(finished):
    """The CLI calls the same Generator: its messages keep the options it has."""
    result = run_cli_in_process("generate", "-m", finished["train-lm"], "--prompt", "T", "--temperature", "0")
    assert_clean_error(result, "--temperature must be in", "(use --greedy for the most likely character)")


def test_a_pair_of_lengths_is_checked_as_a_pair():
    for length in ((5,), (5, "a"), 5):
        with pytest.raises(ArgumentTypeError, match=r"length must be a tuple \(int, int\)"):
            charseq.make_pairs("reverse", 3, length=length)
    assert len(charseq.make_pairs("reverse", 3, length=[2, 4])) == 3


def test_a_data_set_s_commands_are_said_as_the_python_functions_that_do_the_same(tmp_path, monkeypatch):
    """Outside a clone, `corpora/poems.txt` is not there: a Python caller is told to give
    charseq.dataset_path("poems"), not a shell's "$(charseq data path poems)"; the CLI keeps its shell."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARSEQ_CACHE", str(tmp_path / "cache"))
    said = _raised(lambda: charseq.train_lm("corpora/poems.txt", out="runs/poems", max_steps=1))
    assert said.endswith('poems ships with charseq, wherever it is installed: give charseq.dataset_path("poems")'), said
    said = _raised(lambda: charseq.train_classifier("sst2", "runs/sst2"))
    assert said.endswith('run charseq.get_dataset("sst2") and give charseq.dataset_path("sst2") / "train.tsv"'), said
    assert _raised(lambda: charseq.dataset_path("sst2")).endswith('; run: charseq.get_dataset("sst2")')
    result = run_cli_in_process("train-lm", "corpora/poems.txt", "--out", "runs/poems")
    assert_clean_error(result, 'give "$(charseq data path poems)"')
