"""Inputs at the edges: sizes beyond the machine, generation bounds, the exported SavedModel's
inputs, damaged MNIST data, CSV quirks, line-oriented input, links and empty paths, impossible
pair counts, translate's limits. Each ends in one clear line (or the right output), nothing half-made."""

import json

import numpy as np
import pytest

from charseq.data.pairs import make_pairs
from charseq.errors import CharseqError
from helpers import assert_clean_error, run_cli, run_cli_in_process

LM_FLAGS = ["--units", "16", "--layers", "1", "--embedding-dim", "8", "--batch-size", "8", "--seq-len", "16",
            "--eval-every", "5", "--sample-length", "0", "--precision", "float32", "--max-steps", "4"]
SMALL = ["--units", "16", "--embedding-dim", "8", "--batch-size", "16", "--precision", "float32", "--max-steps", "4"]


def nothing_made(parent, name="r") -> bool:
    return not (parent / name).exists() and not [p for p in parent.iterdir() if p.name.startswith(f".{name}.")]


# ----------------------------------------------------------------------------- resource bounds
def test_a_model_too_big_for_memory_is_refused_up_front_through_the_real_cli(tmp_path, corpus_file):
    r = run_cli("train-lm", corpus_file, "--out", tmp_path / "r", *LM_FLAGS, "--units", "100000000")
    assert_clean_error(r, "--units 100000000", " PB for its weights", "GB. Use", "smaller --units")  # not 1e9 GB
    assert nothing_made(tmp_path)


@pytest.mark.parametrize("command", ["train-classifier", "train-seq2seq", "classify-mnist"])
def test_every_head_refuses_a_model_too_big(tmp_path, command):
    (tmp_path / "pairs.tsv").write_text("abc\tcba\nde\ted\n" * 20)
    args = {"train-classifier": [tmp_path / "pairs.tsv"], "train-seq2seq": [tmp_path / "pairs.tsv"],
            "classify-mnist": ["--data", tmp_path / "none.npz"]}[command]
    r = run_cli_in_process(command, *args, "--out", tmp_path / "r", "--units", "50000000", "--layers", "3")
    assert_clean_error(r, "--units 50000000")
    assert nothing_made(tmp_path)


def test_huge_seq2seq_sides_name_max_input_len(tmp_path):
    pairs = [("abc", "cba")] * 30 + [("x" * 100_000, "y" * 100_000)]
    (tmp_path / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    r = run_cli_in_process("train-seq2seq", tmp_path / "pairs.tsv", "--out", tmp_path / "r", *SMALL)
    assert_clean_error(r, "100,000 source", "--max-input-len")
    assert nothing_made(tmp_path)
    ok = run_cli_in_process("train-seq2seq", tmp_path / "pairs.tsv", "--out", tmp_path / "r", *SMALL,
                            "--max-input-len", "10", "--skip-long")
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("length", ["-1", "2000000"])
def test_a_sample_length_out_of_range_is_refused_before_the_run_is_made(tmp_path, corpus_file, length):
    """The samples shown while training are drawn at the first evaluation, when the run is already at
    --out: a length they cannot have is refused up front, by its own name, and no run is made."""
    at = LM_FLAGS.index("--sample-length")
    flags = LM_FLAGS[:at] + ["--sample-length", length] + LM_FLAGS[at + 2:]
    r = run_cli_in_process("train-lm", corpus_file, "--out", tmp_path / "r", *flags)
    assert_clean_error(r, f"--sample-length must be between 0 (no samples) and 1,000,000, not {length}")
    assert nothing_made(tmp_path)
    from charseq import train_lm

    with pytest.raises(CharseqError, match=f"^sample_length must be between .* not {length}$"):
        train_lm(corpus_file, tmp_path / "r", sample_length=int(length), max_steps=4, log=lambda s: None)
    assert nothing_made(tmp_path)


# ----------------------------------------------------------------------------- generation
@pytest.mark.parametrize("flags, fragment", [
    (["--length", "4294967301", "--num-samples", "2"], "--length"),
    (["--length", "3000000000"], "--length"),
    (["--temperature", "1e-45"], "--temperature"),
    (["--temperature", "inf"], "--temperature"),
    (["--temperature", "nan"], "--temperature"),
    (["--temperature", "0"], "--greedy"),
    (["--num-samples", "100000", "--length", "5000"], "--num-samples"),
    (["--seed", "99999999999"], "--seed"),
    (["--length", "3000000000", "--beam", "2"], "--length"),
    (["--beam", "2", "--temperature", "0.5"], "--temperature does not apply to beam search"),
    (["--greedy", "--num-samples", "3"], "--num-samples does not apply with --greedy"),
])
def test_generation_options_out_of_range_print_nothing(trained_run, flags, fragment):
    r = run_cli_in_process("generate", "--model", trained_run, "--prompt", "春风", *flags)
    assert_clean_error(r, fragment)
    assert r.stdout == ""  # not even the prompt


def test_generation_at_the_bounds_works(trained_run):
    r = run_cli_in_process("generate", "--model", trained_run, "--prompt", "春", "--length", "5",
                           "--temperature", "0.01", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("春") and len(r.stdout) == 1 + 5 + 1, r.stdout  # the prompt, 5 characters, a newline


# ----------------------------------------------------------------------------- the exported SavedModel
@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained_run):
    from charseq.heads.classifier.run import train_classifier
    from charseq.export import export_saved_model
    from charseq.heads.seq2seq.run import train_seq2seq

    d = tmp_path_factory.mktemp("exported")
    (d / "reviews.tsv").write_text("text\tlabel\n" + "good film\tpos\nbad film\tneg\n" * 30)
    (d / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in make_pairs("reverse", 60, length=(2, 4))))
    quiet = dict(log=lambda s: None, progress_bar=False, units=8, embedding_dim=8, max_steps=2, batch_size=8,
                 precision="float32")
    train_classifier(d / "reviews.tsv", d / "text", **quiet)
    train_seq2seq(d / "pairs.tsv", d / "seq2seq", **quiet)
    for kind, run in (("lm", trained_run), ("text", d / "text"), ("seq2seq", d / "seq2seq")):
        export_saved_model(run, d / f"{kind}-export")
    return d


def test_the_exported_signatures_validate_their_inputs(exported):
    import tensorflow as tf

    generate = tf.saved_model.load(str(exported / "lm-export")).signatures["generate"]

    def gen(length=5, temperature=1.0):
        return generate(prompt=tf.constant("春"), length=tf.constant(length, tf.int32),
                        temperature=tf.constant(temperature, tf.float32), seed=tf.constant(1))["text"]

    assert len(gen().numpy().decode()) == 5 and gen(temperature=0.0).numpy()  # greedy stays
    for length, temperature, fragment in ((10**7, 1.0, "length must be at most"), (-1, 1.0, "length must be 0"),
                                          (5, -1.0, "temperature"), (5, float("nan"), "temperature"),
                                          (5, float("inf"), "temperature"), (5, 1e-30, "temperature")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=fragment):
            gen(length, temperature)
    classify = tf.saved_model.load(str(exported / "text-export")).signatures["classify"]
    assert classify(text=tf.constant(["good film"]))["label"].numpy()[0] in (b"pos", b"neg")
    with pytest.raises(tf.errors.InvalidArgumentError, match="classify: a text is empty"):
        classify(text=tf.constant(["good", "  "]))
    translate = tf.saved_model.load(str(exported / "seq2seq-export")).signatures["translate"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="translate: a source is empty"):
        translate(source=tf.constant(["ab", ""]))


def test_export_out_links_and_empty(exported, tmp_path):
    run = exported / "text"
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    assert_clean_error(run_cli_in_process("export", "--model", run, "--out", dangling), str(dangling),
                       "symbolic link", "does not exist")
    assert dangling.is_symlink() and not (tmp_path / "nowhere").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["dangling"]  # no hidden staging named in a message
    assert_clean_error(run_cli_in_process("export", "--model", run, "--out", ""), "--out")
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    r = run_cli_in_process("export", "--model", run, "--out", link)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and (target / "saved_model.pb").exists()


@pytest.mark.parametrize("command", ["train-lm", "train-classifier", "train-seq2seq", "classify-mnist"])
def test_an_empty_file_name_is_refused_not_read_as_the_current_folder(tmp_path, monkeypatch, command):
    """"$(charseq data path NAME)" gives "" when that command fails (a data set not cached): train-lm
    took "" for the current folder and trained on its .txt files; the others named it as "."."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("a note of the user's, not a corpus\n" * 100)
    data = ["--data", ""] if command == "classify-mnist" else [""]
    r = run_cli_in_process(command, *data, "--out", tmp_path / "r", *SMALL)
    assert_clean_error(r, '"" names no file', "charseq data path")
    assert nothing_made(tmp_path)


# ----------------------------------------------------------------------------- MNIST data
def _npz(path, **change):
    x = np.random.default_rng(0).integers(0, 255, size=(16, 28, 28), dtype=np.uint8)
    y = np.arange(16, dtype=np.uint8) % 2
    arrays = dict(x_train=x, y_train=y, x_test=x[:4], y_test=y[:4])
    arrays.update(change)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("change, fragment", [
    (dict(x_train=np.zeros((16, 28, 32), np.uint8)), "28x32"),
    (dict(x_train=np.zeros((16, 28, 0), np.uint8)), "28x0"),
    (dict(x_train=np.full((16, 28, 28), "7")), "type <U1"),
    (dict(y_train=np.eye(2, dtype=np.uint8)[np.arange(16) % 2]), "one-hot"),
    (dict(x_train=np.zeros((16, 28, 28), np.complex64)), "complex64"),
    (dict(x_train=np.full((16, 28, 28), np.nan, np.float32)), "NaN"),
    (dict(x_train=np.full((16, 28, 28), 300.0, np.float32)), "0-255"),
])
def test_damaged_mnist_npz_is_one_line_naming_the_file(tmp_path, change, fragment):
    path = _npz(tmp_path / "bad.npz", **change)
    r = run_cli_in_process("classify-mnist", "--data", path, "--out", tmp_path / "r", *SMALL)
    assert_clean_error(r, "bad.npz", fragment)
    assert nothing_made(tmp_path)


def test_garbage_npz_and_overflowing_idx_header(tmp_path):
    (tmp_path / "garbage.npz").write_bytes(b"not a zip at all " * 40)
    r = run_cli_in_process("classify-mnist", "--data", tmp_path / "garbage.npz", "--out", tmp_path / "r")
    assert_clean_error(r, "garbage.npz", "not an .npz file")
    assert "allow_pickle" not in r.stderr
    from charseq.data.mnist import IDX_IMAGES, read_idx

    header = IDX_IMAGES.to_bytes(4, "big") + b"".join((2**32 - 1).to_bytes(4, "big") for _ in range(3))
    (tmp_path / "images-idx3-ubyte").write_bytes(header + bytes(100))
    with pytest.raises(CharseqError, match="header"):
        read_idx(tmp_path / "images-idx3-ubyte", IDX_IMAGES)


def test_pixels_in_unit_range_are_read_as_such(tmp_path):
    from charseq.data.mnist import load_mnist

    x = np.random.default_rng(0).random((16, 28, 28)).astype(np.float32)
    images = load_mnist(_npz(tmp_path / "unit.npz", x_train=x, x_test=x[:4]))
    assert images.x_train.dtype == np.uint8 and images.x_train.max() > 200
    assert any("[0, 1]" in note for note in images.notes)


# ----------------------------------------------------------------------------- text files
def test_csv_with_a_byte_order_mark(tmp_path):
    from charseq.data.labeled import read_labeled

    (tmp_path / "export.csv").write_bytes(b"\xef\xbb\xbftext,label\r\ngood film,pos\r\nbad film,neg\r\n")
    rows = read_labeled(tmp_path / "export.csv")
    assert rows.texts == ["good film", "bad film"] and rows.labels == ["pos", "neg"]


def test_an_unclosed_quote_names_its_own_line(tmp_path):
    lines = ["text,label"] + [f"row {i},1" for i in range(5)] + ['"never closed,0'] + [f"row {i},0" for i in range(55)]
    (tmp_path / "q.csv").write_text("\n".join(lines) + "\n")
    r = run_cli_in_process("train-classifier", tmp_path / "q.csv", "--out", tmp_path / "r", *SMALL)
    assert_clean_error(r, "q.csv line 7", "closing quote")


def test_a_decoding_error_names_its_byte_in_the_file(tmp_path):
    (tmp_path / "latin.txt").write_bytes(b"x" * 5000 + b"\n" + b"y" * 100 + "café".encode("latin-1") + b"\n")
    r = run_cli_in_process("train-lm", tmp_path / "latin.txt", "--out", tmp_path / "r", *LM_FLAGS)
    assert_clean_error(r, "at byte 5,104 (line 2)")
    assert "of a block" not in r.stderr


def test_a_file_cut_in_the_middle_of_a_character_names_where(tmp_path):
    # head -c on UTF-8 text cuts its last character in two: the error says where, not "somewhere".
    (tmp_path / "cut.txt").write_bytes(("春风\n" * 40).encode()[:-2])
    r = run_cli_in_process("train-lm", tmp_path / "cut.txt", "--out", tmp_path / "r", *LM_FLAGS)
    assert_clean_error(r, "at byte 276 (line 40)")
    assert "somewhere" not in r.stderr


# ----------------------------------------------------------------------------- line-oriented input
@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    from charseq.heads.classifier.run import train_classifier

    d = tmp_path_factory.mktemp("cls")
    (d / "reviews.tsv").write_text("text\tlabel\n" + "good film\tpos\nbad film\tneg\n" * 30)
    train_classifier(d / "reviews.tsv", d / "run", units=8, embedding_dim=8, max_steps=2, batch_size=8,
                     precision="float32", log=lambda s: None, progress_bar=False)
    return d / "run"


def test_classify_gives_one_output_per_input_line(tmp_path, classifier_run):
    (tmp_path / "in.txt").write_text("good film\n\nbad\u2028film\n  \nfilm\n", encoding="utf-8")
    r = run_cli_in_process("classify", "--model", classifier_run, "--input", tmp_path / "in.txt")
    assert r.returncode == 0, r.stderr
    out = r.stdout.split("\n")[:-1]
    assert len(out) == 5 and out[1] == "" and out[3] == "" and out[2].endswith("bad\\u2028film")
    r = run_cli_in_process("classify", "--model", classifier_run, "--input", tmp_path / "in.txt", "--json")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["line"] for row in rows] == [1, 2, 3, 4, 5] and rows[1]["label"] is None
    assert rows[2]["text"] == "bad\u2028film"
    r = run_cli_in_process("classify", "--model", classifier_run, "two\nlines")  # one text, one output line
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1 and "two\\nlines" in r.stdout


def test_classify_an_empty_input_file_is_nothing_to_classify(tmp_path, classifier_run):
    (tmp_path / "empty.txt").write_text("")  # no lines, where "\n" is one blank line
    r = run_cli_in_process("classify", "--model", classifier_run, "--input", tmp_path / "empty.txt")
    assert_clean_error(r, "nothing to classify", "empty.txt is empty")
    assert r.stdout == ""
    (tmp_path / "blank.txt").write_text("\n")
    r = run_cli_in_process("classify", "--model", classifier_run, "--input", tmp_path / "blank.txt")
    assert r.returncode == 0 and r.stdout == "\n"


def test_translate_gives_one_output_per_input_line_and_echoes_its_source(tmp_path, exported):
    (tmp_path / "in.txt").write_text("ab\n\nbca\n")
    r = run_cli_in_process("translate", "--model", exported / "seq2seq", "--input", tmp_path / "in.txt")
    assert r.returncode == 0, r.stderr
    out = r.stdout.split("\n")[:-1]
    assert len(out) == 3 and out[0].endswith("\tab") and out[1] == "" and out[2].endswith("\tbca")
    r = run_cli_in_process("translate", "--model", exported / "seq2seq", "--input", tmp_path / "in.txt", "--json")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(row["line"], row["source"]) for row in rows] == [(1, "ab"), (2, ""), (3, "bca")]


def test_translate_max_output_len_0_is_refused(exported):
    assert_clean_error(run_cli_in_process("translate", "--model", exported / "seq2seq", "--max-output-len", "0",
                                          "ab"), "--max-output-len")


# ----------------------------------------------------------------------------- paths and make-pairs
def test_make_pairs_writes_through_links_and_never_replaces_them(tmp_path):
    dangling = tmp_path / "dangling.tsv"
    dangling.symlink_to(tmp_path / "target.tsv")
    r = run_cli_in_process("make-pairs", "reverse", "--n", "5", "--out", dangling)
    assert r.returncode == 0, r.stderr
    assert dangling.is_symlink() and len((tmp_path / "target.tsv").read_text().splitlines()) == 5
    r = run_cli_in_process("make-pairs", "sort", "--n", "7", "--out", dangling, "--force")
    assert r.returncode == 0 and dangling.is_symlink() and len((tmp_path / "target.tsv").read_text().splitlines()) == 7
    r = run_cli_in_process("make-pairs", "sort", "--n", "7", "--out", tmp_path / "missing" / "x.tsv")
    assert_clean_error(r, str(tmp_path / "missing" / "x.tsv"))
    assert ".x.tsv." not in r.stderr  # the user's path, never a hidden temporary file
    assert_clean_error(run_cli_in_process("make-pairs", "sort", "--n", "7", "--out", ""))


def test_make_pairs_refuses_impossible_counts_at_once(tmp_path):
    r = run_cli("make-pairs", "addition", "--digits", "1", "--n", "100000000", "--out", tmp_path / "a.tsv", timeout=60)
    assert_clean_error(r, "--n", "100")
    r = run_cli_in_process("make-pairs", "addition", "--digits", "1", "--n", "101", "--out", tmp_path / "a.tsv")
    assert_clean_error(r, "only 100 distinct")
    r = run_cli_in_process("make-pairs", "addition", "--digits", "1", "--n", "100", "--out", tmp_path / "a.tsv")
    assert r.returncode == 0 and len((tmp_path / "a.tsv").read_text().splitlines()) == 100
    assert not (tmp_path / "b.tsv").exists()


def test_classify_input_dash_reads_standard_input(classifier_run):
    r = run_cli("classify", "--model", classifier_run, "--input", "-", "--json", input="good film\n\nbad film\n")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(row["line"], row["text"]) for row in rows] == [(1, "good film"), (2, ""), (3, "bad film")]
    assert_clean_error(run_cli("classify", "--model", classifier_run, "--input", "-", input=""),
                       "nothing to classify", "standard input is empty")


def test_standard_input_that_is_not_text_is_named_as_a_file_would_be(classifier_run):
    def classify_stdin(data: bytes):
        return run_cli_in_process("classify", "--model", classifier_run, "--input", "-", input=data)

    assert_clean_error(classify_stdin(b"good film\nbad \xff film\n"),
                       "standard input is not valid utf-8 text", "(line 2)")
    assert_clean_error(classify_stdin("good film\n".encode("utf-16")),
                       "standard input is utf-16 text", "byte-order mark")
    assert_clean_error(classify_stdin(b"\x7fELF\x02\x01\x00\x00\xff\xfe"), "standard input looks like a binary file")
    r = classify_stdin(b"\xef\xbb\xbfgood film\r\nbad film\r\n")  # a byte-order mark and Windows line ends
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2 and "\r" not in r.stdout and "\ufeff" not in r.stdout


@pytest.mark.parametrize("kind, data", [("train-lm", "corpus.txt"), ("train-classifier", "reviews.tsv"),
                                        ("train-seq2seq", "pairs.tsv")])
def test_evaluate_reads_standard_input_as_it_reads_the_file(finished, files, kind, data):
    """`evaluate --model RUN -` scores piped text, pairs or labeled texts: the same report as the file;
    a bad row is named by its line of standard input."""
    file = files / data
    from_file = run_cli_in_process("evaluate", "--model", finished[kind], file, "--json")
    piped = run_cli_in_process("evaluate", "--model", finished[kind], "-", "--json", input=file.read_bytes())
    assert from_file.returncode == 0 and piped.returncode == 0, from_file.stderr + piped.stderr
    timing = ("decode_seconds", "sequences_per_sec")  # how fast it went, the one thing that may differ
    assert ({k: v for k, v in json.loads(piped.stdout).items() if k not in timing}
            == {k: v for k, v in json.loads(from_file.stdout).items() if k not in timing})
    if kind != "train-lm":
        bad = file.read_text().rstrip("\n") + "\nno separator at all\n"
        r = run_cli_in_process("evaluate", "--model", finished[kind], "-", input=bad)
        assert_clean_error(r, f"standard input line {len(bad.splitlines())}")


@pytest.mark.parametrize("kind, data", [("train-lm", "corpus.txt"), ("train-classifier", "reviews.tsv"),
                                        ("train-seq2seq", "pairs.tsv")])
def test_evaluate_without_a_file_says_that_dash_reads_standard_input(finished, files, kind, data):
    """Text piped in with no FILE is not read (the command would wait on a terminal): the error says how."""
    r = run_cli_in_process("evaluate", "--model", finished[kind], input=(files / data).read_bytes())
    assert_clean_error(r, "needs a FILE", "- reads standard input")


def test_evaluate_of_an_image_classifier_refuses_standard_input(finished):
    r = run_cli_in_process("evaluate", "--model", finished["classify-mnist"], "-", input=b"")
    assert_clean_error(r, "reads images", "not standard input")
