"""Every piece of advice in an error names an option the command that printed it has.

The same library readers serve commands with different options (`classify --input` reads a file
but has no --encoding or --errors; `evaluate` reads a TSV like `train-classifier`): each command is
run here, through the real command line, on inputs that make the library advise something."""

import re

import click
import pytest

from charseq.cli import main
from helpers import assert_clean_error, run_cli_in_process

OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def options_of(*commands: str) -> set[str]:
    return {"--help"} | {name for c in commands for p in main.commands[c].params
                         if isinstance(p, click.Option) for name in p.opts + p.secondary_opts}


def assert_advice_fits(result, commands: tuple[str, ...], *advised: str) -> None:
    """One clean error line, whose every --option is one of `commands`' own, advising at least `advised`."""
    assert_clean_error(result)
    named = set(OPTION.findall(result.stderr))
    assert named <= options_of(*commands), f"{result.stderr.strip()!r} names {named - options_of(*commands)}"
    for option in advised:
        assert option in named, f"{result.stderr.strip()!r} does not advise {option}"


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """Files that make the readers advise: undecodable bytes, NUL bytes, a missing column, bad rows."""
    d = tmp_path_factory.mktemp("bad")
    files = {
        "latin1.txt": "caf\xe9 au lait\n".encode("latin-1") * 50,
        "binary.txt": b"abc\x00def\n" * 50,
        "utf16.txt": "caf\xe9 au lait\n".encode("utf-16"),  # Windows' "Unicode": a byte-order mark, NUL bytes
        "program.tsv": b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8,  # NUL bytes, and not UTF-8
        "latin1.tsv": "sentence\tlabel\ncaf\xe9\tpos\nthe tea\tneg\n".encode("latin-1"),
        "columns.tsv": b"words\tclass\nhello\tpos\nbye\tneg\n",
        "rows.tsv": b"sentence\tlabel\na good film\tpos\na bad row\n",
        "latin1-pairs.tsv": "caf\xe9\t\xe9fac\n".encode("latin-1"),
        "pairs.tsv": b"abc\tcba\nno tab here\n",
        "long.tsv": b"abcdefgh\thgfedcba\nab\tba\n",
    }
    for name, content in files.items():
        (d / name).write_bytes(content)
    return d


# (command line after `charseq`, options it must advise); "{runs}" is the served runs, "{bad}" the files.
TRAIN_CASES = [
    (["train-lm", "{bad}/latin1.txt"], ["--encoding", "--errors"]),
    (["train-lm", "{bad}/binary.txt"], ["--errors"]),
    (["train-lm", "{bad}/utf16.txt"], ["--encoding"]),
    (["train-classifier", "{bad}/latin1.tsv"], ["--encoding"]),  # no --errors on train-classifier
    (["train-classifier", "{bad}/columns.tsv"], ["--text-column"]),
    (["train-classifier", "{bad}/program.tsv"], ["--encoding"]),
    (["train-classifier", "{bad}/rows.tsv"], ["--skip-bad-rows"]),
    (["train-seq2seq", "{bad}/latin1-pairs.tsv"], ["--encoding"]),
    (["train-seq2seq", "{bad}/pairs.tsv"], ["--skip-bad-rows"]),
    (["train-seq2seq", "{bad}/long.tsv", "--max-input-len", "4"], ["--skip-long"]),
]
USE_CASES = [
    (["classify", "--model", "{runs}/sentiment", "--input", "{bad}/latin1.txt"], []),  # no option helps here
    (["translate", "--model", "{runs}/reverse", "--input", "{bad}/latin1.txt"], []),
    (["classify", "--model", "{runs}/sentiment", "--input", "{bad}/utf16.txt"], []),
    (["translate", "--model", "{runs}/reverse", "☃"], ["--unknown"]),
    (["generate", "--model", "{runs}/poems", "--prompt", "☃"], ["--unknown"]),
    (["evaluate", "--model", "{runs}/poems", "{bad}/latin1.txt"], ["--encoding", "--errors"]),
    (["evaluate", "--model", "{runs}/sentiment", "{bad}/latin1.tsv"], ["--encoding", "--errors"]),
    (["evaluate", "--model", "{runs}/sentiment", "{bad}/columns.tsv"], ["--text-column"]),
    (["evaluate", "--model", "{runs}/sentiment", "{bad}/rows.tsv"], ["--skip-bad-rows"]),
    (["evaluate", "--model", "{runs}/reverse", "{bad}/latin1-pairs.tsv"], ["--encoding", "--errors"]),
    (["evaluate", "--model", "{runs}/reverse", "{bad}/pairs.tsv"], ["--skip-bad-rows"]),
]


def _argv(args, **where):
    return [a.format(**where) for a in args]


@pytest.mark.parametrize("args, advised", TRAIN_CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_train_commands_advise_their_own_options(args, advised, bad, tmp_path):
    out = tmp_path / "run"
    result = run_cli_in_process(*_argv(args, bad=bad), "--out", out, "--max-steps", "1")
    assert_advice_fits(result, (args[0],), *advised)
    assert not out.exists()  # refused while reading the data: nothing written


def test_a_binary_file_is_called_one(bad, tmp_path):
    """A program given as data was told to name its encoding or replace its bad bytes, as if it were text."""
    result = run_cli_in_process("train-lm", bad / "program.tsv", "--out", tmp_path / "run")
    assert_clean_error(result, "program.tsv looks like a binary file, not text", "--encoding if it is text")
    assert "--errors" not in result.stderr
    result = run_cli_in_process("train-lm", bad / "utf16.txt", "--out", tmp_path / "run")
    assert_clean_error(result, "utf16.txt is utf-16 text (it starts with utf-16's byte-order mark)",
                       "--encoding utf-16")


def test_a_grid_advises_the_options_of_its_command(bad, tmp_path):
    result = run_cli_in_process("grid", "train-classifier", bad / "latin1.tsv", "--lr", "1e-3,2e-3",
                                "--max-steps", "1", "--out", tmp_path / "grid")
    assert_advice_fits(result, ("grid", "train-classifier"), "--encoding")


@pytest.mark.parametrize("args, advised", USE_CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_commands_on_trained_runs_advise_their_own_options(args, advised, bad, studio_dir):
    result = run_cli_in_process(*_argv(args, bad=bad, runs=studio_dir))
    assert_advice_fits(result, (args[0],), *advised)


def test_evaluate_follows_its_advice_for_every_head(bad, studio_dir):
    """--errors (and --text-column) work for classifiers and encoder-decoders, not only for language models."""
    r = run_cli_in_process("evaluate", "--model", studio_dir / "sentiment", bad / "latin1.tsv", "--errors", "replace")
    assert r.returncode == 0, r.stderr
    assert "on 2 examples" in r.stdout
    renamed = bad / "renamed.tsv"
    renamed.write_text("words\tclass\nhello\tpos\nbye\tneg\n")
    r = run_cli_in_process("evaluate", "--model", studio_dir / "sentiment", renamed,
                           "--text-column", "words", "--label-column", "class")
    assert r.returncode == 0, r.stderr
    r = run_cli_in_process("evaluate", "--model", studio_dir / "reverse", bad / "latin1-pairs.tsv", "--errors", "replace",
                           "--json")
    assert r.returncode == 0, r.stderr
    assert '"examples": 1' in r.stdout


@pytest.mark.parametrize("run, option", [("poems", ["--beam", "3"]), ("poems", ["--skip-bad-rows"]),
                                         ("reverse", ["--text-column", "text"])])
def test_evaluate_refuses_an_option_that_does_nothing_for_the_head(run, option, studio_dir, tmp_path):
    held_out = tmp_path / "held-out.txt"
    held_out.write_text("abc\tcba\n")
    r = run_cli_in_process("evaluate", "--model", studio_dir / run, held_out, *option)
    assert_clean_error(r, f"{option[0]} does not apply")
