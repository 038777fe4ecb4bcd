"""Every bad input ends in one line on stderr and a non-zero exit, never a traceback, and loses nothing."""

import os
import shutil
import subprocess

import pytest

from charseq.data.corpus import Corpus
from charseq.heads.lm.run import load_lm
from helpers import CHARSEQ, TINY_FLAGS, assert_clean_error, run_cli_in_process


def train(corpus, out, *extra):
    return run_cli_in_process("train-lm", corpus, "--out", out, "--max-steps", "2", *TINY_FLAGS, *extra)


def test_missing_corpus(tmp_path):
    assert_clean_error(train(tmp_path / "nope.txt", tmp_path / "r"), "does not exist")
    assert not (tmp_path / "r").exists()


def test_a_corpus_and_text_together(tmp_path, corpus_file):
    r = run_cli_in_process("train-lm", corpus_file, "--text", "abcabc", "--out", tmp_path / "run", *TINY_FLAGS)
    assert_clean_error(r, "a corpus file or --text, not both")
    assert not (tmp_path / "run").exists()


def test_resume_and_force_together(trained_run):
    r = run_cli_in_process("train-lm", "--out", trained_run, "--resume", "--force", "--max-steps", "99")
    assert_clean_error(r, "--resume", "--force", "one of them")


def test_empty_corpus(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    assert_clean_error(train(tmp_path / "empty.txt", tmp_path / "r"), "empty")
    assert not (tmp_path / "r").exists()


def test_corpus_shorter_than_one_window(tmp_path):
    (tmp_path / "short.txt").write_text("just a few characters")
    assert_clean_error(train(tmp_path / "short.txt", tmp_path / "r"), "--seq-len")
    assert not (tmp_path / "r").exists() and not list(tmp_path.glob(".r.*"))


def test_binary_file(tmp_path):
    (tmp_path / "model.bin").write_bytes(bytes(range(256)) * 50)
    assert_clean_error(train(tmp_path / "model.bin", tmp_path / "r"), "model.bin")


def test_non_utf8_file_and_the_encoding_option(tmp_path):
    (tmp_path / "latin1.txt").write_bytes(("café crème brûlée, " * 40).encode("latin-1"))
    assert_clean_error(train(tmp_path / "latin1.txt", tmp_path / "r"), "not valid utf-8", "--encoding")
    ok = train(tmp_path / "latin1.txt", tmp_path / "r", "--encoding", "latin-1")
    assert ok.returncode == 0, ok.stderr
    # Held-out text of the corpus is read in the corpus' encoding unless another is named.
    scored = run_cli_in_process("evaluate", "--model", tmp_path / "r", tmp_path / "latin1.txt", "--json")
    assert scored.returncode == 0 and '"unknown": 0' in scored.stdout, scored.stderr
    assert_clean_error(run_cli_in_process("evaluate", "--model", tmp_path / "r", tmp_path / "latin1.txt",
                                          "--encoding", "utf-8"), "not valid utf-8")
    ok = train(tmp_path / "latin1.txt", tmp_path / "r2", "--errors", "replace")
    assert ok.returncode == 0, ok.stderr


def test_evaluate_reads_a_file_in_the_encoding_training_read_its_data_in(tmp_path):
    """A classifier's and an encoder-decoder's held-out file, like a language model's, is read as their
    training data was (--encoding latin-1), unless evaluate's own --encoding names another."""
    words = ["café", "crème", "brûlée", "où", "élan", "façade"]
    labeled = "text\tlabel\n" + "".join(f"{w} {v}\t{w[0] in 'cé'}\n" for w in words for v in words)
    pairs = "".join(f"{w}\t{w[::-1]}\n" for w in words for _ in range(8))
    for command, name, data in (("train-classifier", "labeled.tsv", labeled), ("train-seq2seq", "pairs.tsv", pairs)):
        (tmp_path / name).write_bytes(data.encode("latin-1"))
        ok = run_cli_in_process(command, tmp_path / name, "--out", tmp_path / command, "--max-steps", "2",
                                "--units", "8", "--encoding", "latin-1")
        assert ok.returncode == 0, ok.stderr
        scored = run_cli_in_process("evaluate", "--model", tmp_path / command, tmp_path / name, "--json")
        assert scored.returncode == 0 and scored.stdout.startswith("{"), scored.stderr
        assert_clean_error(run_cli_in_process("evaluate", "--model", tmp_path / command, tmp_path / name,
                                              "--encoding", "utf-8"), "not valid utf-8")


def test_an_output_file_under_a_file_is_one_line_saying_so(tmp_path, trained_run):
    """make-pairs and plot --out a/x where `a` is a file: not the system's "File exists" or "Not a
    directory", which read as a folder that cannot be written."""
    (tmp_path / "a").write_text("a file the user has")
    for args, out in ((("make-pairs", "addition", "--n", "5"), tmp_path / "a" / "pairs.tsv"),
                      (("plot", trained_run), tmp_path / "a" / "curves.png"),
                      (("plot", trained_run), tmp_path / "a" / "deeper" / "curves.png")):
        assert_clean_error(run_cli_in_process(*args, "--out", out), f"cannot write {out} ({tmp_path / 'a'} is a file, "
                           "not a directory)")
    assert (tmp_path / "a").read_text() == "a file the user has"


def test_a_corpus_folder_is_its_txt_files_in_order(tmp_path):
    """A folder stands for its .txt files, subfolders included, in order of their paths, each ending
    its last line; hidden folders (.git) and other files are left out. One without any is refused."""
    folder = tmp_path / "texts"
    (folder / "b").mkdir(parents=True)
    (folder / ".git").mkdir()
    (folder / "a.txt").write_text("first file\n" * 30)
    (folder / "b" / "c.txt").write_text("second file, no newline at its end")
    (folder / "b" / "d.txt").write_text("third file\n" * 10)
    (folder / ".git" / "e.txt").write_text("hidden")
    (folder / "notes.md").write_text("# not text to train on")
    r = train(folder, tmp_path / "r", "--val-fraction", "0")
    assert r.returncode == 0 and "corpus: 3 .txt files, " in r.stdout, r.stderr
    expected = "first file\n" * 30 + "second file, no newline at its end\n" + "third file\n" * 10
    model, vocab, _ = load_lm(tmp_path / "r")
    assert vocab.decode(Corpus(tmp_path / "r" / "data").ids) == expected
    again = run_cli_in_process("train-lm", folder, "--out", tmp_path / "r", "--resume", "--max-steps", "3")
    assert again.returncode == 0, again.stderr
    one = tmp_path / "one"
    one.mkdir()
    (one / "input.txt").write_text("char-rnn's data folder holds one input.txt\n" * 20)
    r = train(one, tmp_path / "r1")
    assert r.returncode == 0 and "corpus: 1 .txt file, " in r.stdout, r.stderr
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.md").write_text("text, but not .txt")
    assert_clean_error(train(empty, tmp_path / "r2"), f"corpus {empty} is a folder with no .txt file in it")
    assert not (tmp_path / "r2").exists()


# Options out of their range, each with what the one-line error must name: for training and generation.
NONSENSE = {
    "train-lm": [("--dropout", "1.5", "--dropout"), ("--dropout", "-0.1", "--dropout"),
                 ("--input-dropout", "1", "--input-dropout"), ("--seq-len", "-5", "--seq-len"),
                 ("--batch-size", "0", "--batch-size"), ("--lr", "0", "--lr"),
                 ("--val-fraction", "1", "--val-fraction"), ("--units", "0", "--units"),
                 ("--max-vocab", "2", "--max-vocab"), ("--encoding", "klingon", "encoding")],
    "generate": [("--length", "-1", "--length"), ("--temperature", "0", "--greedy"),
                 ("--temperature", "-1", "--temperature"), ("--top-p", "0", "--top-p"),
                 ("--top-k", "-3", "--top-k"), ("--num-samples", "0", "--num-samples")],
}


@pytest.mark.parametrize("command, option, value, fragment",
                         [(command, *case) for command, cases in NONSENSE.items() for case in cases])
def test_nonsensical_options(request, tmp_path, command, option, value, fragment):
    if command == "train-lm":
        assert_clean_error(train(request.getfixturevalue("corpus_file"), tmp_path / "r", option, value), fragment)
        assert not (tmp_path / "r").exists()
    else:
        run = request.getfixturevalue("trained_run")
        assert_clean_error(run_cli_in_process("generate", "--model", run, "--prompt", "春", option, value), fragment)


def test_missing_model_directory(tmp_path):
    assert_clean_error(run_cli_in_process("generate", "--model", tmp_path / "none", "--prompt", "a"), "does not exist")


def test_a_misspelt_run_or_its_folder_given_as_the_model_names_the_run_meant(tmp_path, trained_run):
    """`--model runs/poem` for runs/poems, or `--model runs` for the folder of runs: the message
    names the run meant, as click offers the command closest to a misspelt one."""
    import shutil

    shutil.copytree(trained_run, tmp_path / "runs" / "poems")
    r = run_cli_in_process("generate", "--model", tmp_path / "runs" / "poem", "--prompt", "a")
    assert_clean_error(r, f"does not exist; did you mean {tmp_path / 'runs' / 'poems'}?")
    r = run_cli_in_process("generate", "--model", tmp_path / "runs", "--prompt", "a")
    assert_clean_error(r, "is not a charseq run directory (no config.json); "
                          f"it holds the run {tmp_path / 'runs' / 'poems'}")
    shutil.copytree(trained_run, tmp_path / "runs" / "add")
    r = run_cli_in_process("evaluate", "--model", tmp_path / "runs")
    assert_clean_error(r, f"it holds the runs {tmp_path / 'runs' / 'add'}, {tmp_path / 'runs' / 'poems'}")


def test_a_file_given_as_the_model(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a text, not a run\n")
    assert_clean_error(run_cli_in_process("generate", "--model", corpus, "--prompt", "a"), "is a file",
                       "run directory")
    assert corpus.read_text() == "a text, not a run\n"


def test_incomplete_model_directory(tmp_path, trained_run):
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(trained_run / "config.json", partial)
    assert_clean_error(run_cli_in_process("generate", "--model", partial), "vocab.json")
    shutil.copy(trained_run / "vocab.json", partial)
    assert_clean_error(run_cli_in_process("generate", "--model", partial), "no trained weights")
    assert_clean_error(run_cli_in_process("generate", "--model", tmp_path), "not a charseq run")


def test_corrupted_weights(tmp_path, trained_run):
    broken = tmp_path / "broken"
    shutil.copytree(trained_run, broken)
    data = (broken / "best.npz").read_bytes()
    (broken / "best.npz").write_bytes(data[: len(data) // 2])
    assert_clean_error(run_cli_in_process("generate", "--model", broken), "best.npz", "corrupt")
    flipped = bytearray((broken / "checkpoint.npz").read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    (broken / "best.npz").unlink()
    (broken / "checkpoint.npz").write_bytes(bytes(flipped))
    assert_clean_error(run_cli_in_process("generate", "--model", broken), "checkpoint.npz", "corrupt")


def test_evaluate_bad_files(tmp_path, trained_run):
    assert_clean_error(run_cli_in_process("evaluate", "--model", trained_run, tmp_path / "none.txt"), "does not exist")
    (tmp_path / "empty.txt").write_text("")
    assert_clean_error(run_cli_in_process("evaluate", "--model", trained_run, tmp_path / "empty.txt"), "empty")


def test_resume_without_a_checkpoint(tmp_path):
    assert_clean_error(run_cli_in_process("train-lm", "--out", tmp_path / "none", "--resume"), "does not exist")


def test_output_cut_short_by_its_reader_ends_quietly(trained_run):
    """`charseq generate ... | head`: when the reader goes away, charseq stops without an error line,
    with the status a Unix tool killed by SIGPIPE has (128 + 13)."""
    p = subprocess.Popen([*CHARSEQ, "generate", "--model", str(trained_run), "--length", "5000", "--num-samples", "40",
                          "--seed", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert len(p.stdout.read(10)) == 10
    p.stdout.close()  # as `head -c 10` does once it has read enough
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141
    assert "Error" not in err and "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize("args, choices", [(["data", "get"], "tinyshakespeare, sst2, mnist"),
                                           (["make-pairs"], "addition, reverse, sort, dates")])
def test_a_missing_choice_argument_lists_the_choices_on_the_line(args, choices):
    r = run_cli_in_process(*args)
    assert_clean_error(r, "Missing argument", f"Choose from: {choices}")
    assert "\\n" not in r.stderr and "\\t" not in r.stderr, r.stderr


def test_a_missing_file_named_like_a_data_set_says_where_to_get_it(tmp_path):
    """Outside a clone there is no corpora/ folder: the tour's corpus is named by `charseq data path`."""
    r = train(tmp_path / "corpora" / "poems.txt", tmp_path / "r")
    assert_clean_error(r, "does not exist", 'poems ships with charseq', '"$(charseq data path poems)"')
    r = run_cli_in_process("train-seq2seq", tmp_path / "zh-en.tsv", "--out", tmp_path / "r")
    assert_clean_error(r, "does not exist", '"$(charseq data path zh-en)"')
    r = train("tinyshakespeare", tmp_path / "r")  # a data set's name given as the file
    assert_clean_error(r, "charseq data get tinyshakespeare", '"$(charseq data path tinyshakespeare)"')
    r = run_cli_in_process("train-classifier", "sst2", "--out", tmp_path / "r")
    assert_clean_error(r, '"$(charseq data path sst2)/train.tsv"')
    assert "charseq data" not in train(tmp_path / "nope.txt", tmp_path / "r").stderr
    assert not (tmp_path / "r").exists()
