"""Property-based tests (hypothesis): arbitrary text through the vocabulary, arbitrary bytes
through the file readers, random options and random files through every CLI command.

Each input must either work or end with one line "Error: ..." and a non-zero exit; no
traceback ever reaches the user. More examples: CHARSEQ_FUZZ_EXAMPLES=500 scripts/test.sh -k fuzz
"""

import os
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from charseq.cli import main
from charseq.data.labeled import read_labeled
from charseq.data.pairs import read_pairs
from charseq.errors import CharseqError
from charseq.files import read_text
from charseq.vocab import CharVocab, load_vocab

EXAMPLES = int(os.environ.get("CHARSEQ_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
# Any code point, lone surrogates included (they reach charseq from undecodable command-line bytes).
ANY_CHAR = st.characters(codec=None, categories=None, exclude_categories=[])
TRICKY = st.sampled_from(["\r\n", "\r", "\x00", "\ufeff", "e\u0301", "👩‍👩‍👧", "\ud800", "\udcff", "\U0010ffff",
                          "\u202e", "\t", "\n\n", "漢字", ""])
TEXT = st.lists(st.one_of(st.text(ANY_CHAR, max_size=20), TRICKY), max_size=12).map("".join)
BYTES = st.one_of(st.binary(max_size=400), TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
                  st.lists(st.sampled_from([b"text\tlabel\n", b"a\tb\n", b"\xff\xfe", b"\xed\xa0\x80", b"\x00",
                                            b'"unclosed', b"\t\t\n", b"\r\n", b"x,y\n", b"1\t\n", b"\n"]),
                           max_size=20).map(b"".join))


@FUZZ
@given(TEXT)
def test_vocabulary_round_trips_any_text(tmp_path_factory, text):
    assume(text)
    vocab = CharVocab.build(text)
    ids = vocab.encode(text)
    assert len(ids) == len(text) and vocab.decode(ids) == text
    directory = tmp_path_factory.mktemp("vocab")
    vocab.save(directory)
    assert load_vocab(directory).decode(ids) == text


@FUZZ
@given(TEXT, TEXT)
def test_unknown_characters_encode_to_unknown(known, other):
    assume(known)
    vocab = CharVocab.build(known)
    ids = vocab.encode(other)
    assert len(ids) == len(other)
    assert {c for c, i in zip(other, ids) if i == vocab.unk_id} == set(vocab.unknown(other))


def _write(tmp_path_factory, data: bytes, suffix: str) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / f"input{suffix}"
    path.write_bytes(data)
    return path


@FUZZ
@given(BYTES, st.sampled_from([".tsv", ".csv", ".txt"]), st.booleans())
def test_readers_accept_or_refuse_any_bytes(tmp_path_factory, data, suffix, skip_bad_rows):
    path = _write(tmp_path_factory, data, suffix)
    for read in (lambda: read_text(path), lambda: read_labeled(path, skip_bad_rows=skip_bad_rows),
                 lambda: read_pairs(path, skip_bad_rows=skip_bad_rows)):
        try:
            read()
        except CharseqError as e:  # (the CLI keeps its message to one line; see _check)
            assert str(e)


# ----------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def runs(tmp_path_factory, trained_run):
    """One trained run of each kind, for the commands that read a model."""
    from charseq.heads.classifier.run import train_classifier
    from charseq.data.pairs import make_pairs
    from charseq.heads.seq2seq.run import train_seq2seq

    d = tmp_path_factory.mktemp("fuzzruns")
    rows = ["text\tlabel"] + [f"{w} film\t{'pos' if w in ('good', 'great') else 'neg'}"
                              for w in ["good", "great", "bad", "awful"] * 20]
    (d / "reviews.tsv").write_text("\n".join(rows) + "\n")
    tiny = dict(units=8, embedding_dim=4, batch_size=8, max_steps=2, log=lambda s: None, progress_bar=False,
                precision="float32")
    train_classifier(d / "reviews.tsv", d / "classifier", **tiny)
    (d / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in make_pairs("reverse", 60, length=(2, 4))))
    train_seq2seq(d / "pairs.tsv", d / "seq2seq", **tiny)
    return {"lm": trained_run, "classifier": d / "classifier", "seq2seq": d / "seq2seq"}


NUMBERS = st.sampled_from(["0", "-1", "1", "2", "0.5", "1e309", "nan", "inf", "-inf", "99999999999", "abc", "", "3.7"])
TINY_TRAINING = ["--units", "4", "--layers", "1", "--embedding-dim", "4", "--max-steps", "1", "--batch-size", "2",
                 "--eval-every", "1", "--precision", "float32"]
COMMANDS = {
    # command: (options that take a value, flags, takes a model, trains)
    "train-lm": (["--seq-len", "--val-fraction", "--min-count", "--max-vocab", "--dropout", "--lr", "--clip-norm",
                  "--ema", "--keep", "--decay-steps", "--time-budget", "--epochs", "--encoding", "--vocab-size",
                  "--seed"],
                 ["--staircase"], False, True),
    "train-classifier": (["--val-fraction", "--max-len", "--max-vocab", "--dropout", "--lr", "--text-column",
                          "--label-column", "--keep", "--encoding", "--val"], ["--skip-bad-rows", "--bidirectional"],
                         False, True),
    "train-seq2seq": (["--val-fraction", "--max-input-len", "--max-output-len", "--lr", "--dropout", "--val"],
                      ["--skip-bad-rows", "--skip-long", "--shared-vocab", "--reverse-source"], False, True),
    "generate": (["--prompt", "--length", "--temperature", "--top-k", "--top-p", "--seed", "--num-samples"],
                 ["--greedy"], True, False),
    "evaluate": (["--encoding", "--beam"], ["--json"], True, False),
    "classify": (["--input"], ["--json"], True, False),
    "translate": (["--beam", "--n-best", "--length-penalty", "--max-output-len", "--input"], ["--json"], True, False),
    "make-pairs": (["--n", "--digits", "--min-length", "--max-length", "--seed"], ["--force"], False, False),
}


@st.composite
def invocations(draw, tmp_path_factory, runs):
    command = draw(st.sampled_from(sorted(COMMANDS)))
    options, flags, takes_model, trains = COMMANDS[command]
    directory = tmp_path_factory.mktemp("cli")
    data = draw(BYTES)
    suffix = draw(st.sampled_from([".txt", ".tsv", ".csv"]))
    a_file = directory / f"input{suffix}"
    a_file.write_bytes(data)
    values = st.one_of(NUMBERS, TEXT, st.sampled_from([str(a_file), str(directory), str(directory / "missing"),
                                                       str(runs["lm"]), str(runs["classifier"])]))
    args = [command]
    if command == "make-pairs":
        args += [draw(st.sampled_from(["addition", "reverse", "sort", "dates", "nonsense"])),
                 "--out", str(directory / "pairs.tsv")]
    elif takes_model:
        args += ["--model", draw(st.sampled_from([*map(str, runs.values()), str(directory), str(a_file)]))]
    for option in draw(st.lists(st.sampled_from(options), max_size=4)):
        args += [option, draw(values)]
    args += draw(st.lists(st.sampled_from(flags), max_size=2))
    if trains:
        args += [str(a_file), "--out", str(directory / "run"), *TINY_TRAINING]
    elif command != "make-pairs":
        args += draw(st.lists(st.one_of(TEXT, st.just(str(a_file))), max_size=2))
    return args


def _check(args):
    result = CliRunner().invoke(main, args, catch_exceptions=True)
    shown = shlex.join(args)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{shown}: {type(result.exception).__name__}: {result.exception}"
    assert "Traceback" not in result.output, shown
    if result.exit_code != 0:
        error = result.stderr.strip().splitlines()
        assert len(error) == 1 and error[0].startswith("Error: "), f"{shown}\n{result.stderr}"
        assert "internal error" not in error[0], f"{shown}\n{error[0]}"


def test_seeds_out_of_range_are_one_line_errors(tmp_path, corpus_file):
    """What the random search found once: numpy's seeding refuses a negative seed with a ValueError."""
    for args in (["make-pairs", "addition", "--out", tmp_path / "p.tsv", "--seed", "-1"],
                 ["train-lm", corpus_file, "--out", tmp_path / "r", "--seed", "-1", *TINY_TRAINING],
                 ["train-lm", corpus_file, "--out", tmp_path / "r", "--seed", str(2**32), *TINY_TRAINING]):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.strip().startswith("Error: --seed must be in [0, 2**32)"), result.stderr
    assert not (tmp_path / "p.tsv").exists() and not (tmp_path / "r").exists()


@pytest.mark.parametrize("train", [False, True], ids=["read-commands", "train-commands"])
def test_every_command_with_random_options_and_files(tmp_path_factory, runs, train):
    commands = {name for name, spec in COMMANDS.items() if spec[3] == train}

    @settings(max_examples=EXAMPLES // (4 if train else 1), deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(invocations(tmp_path_factory, runs).filter(lambda args: args[0] in commands))
    def check(args):
        _check(args)
    check()
