"""The classifier head: MNIST-format loaders, row-by-row images, text classification, transfer, bad input."""

import gzip
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from charseq.heads.classifier.inference import predict_probabilities
from charseq.heads.classifier.run import _copy_backbone, build_model
from charseq.data.labeled import read_labeled
from charseq.data.mnist import IDX_IMAGES, IDX_LABELS, load_mnist
from charseq.errors import CharseqError
from helpers import assert_clean_error, read_metrics, run_cli, run_cli_in_process, striped_images

FAST = ["--units", "32", "--embedding-dim", "16", "--precision", "float32"]


def write_idx(path, array, magic, compress):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("idx")
    (xt, yt), (xv, yv) = striped_images(512, 0), striped_images(128, 1)
    write_idx(d / "train-images-idx3-ubyte.gz", xt, IDX_IMAGES, True)
    write_idx(d / "train-labels-idx1-ubyte.gz", yt, IDX_LABELS, True)
    write_idx(d / "t10k-images-idx3-ubyte", xv, IDX_IMAGES, False)
    write_idx(d / "t10k-labels-idx1-ubyte", yv, IDX_LABELS, False)
    return d


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """A small two-class sentiment set and a three-class CSV with quoted commas."""
    d = tmp_path_factory.mktemp("text")
    rng = np.random.default_rng(0)
    good = ["a good film", "great fun", "truly wonderful", "good and great", "a wonderful ride"]
    bad = ["a bad film", "awful mess", "truly boring", "bad and awful", "a boring ride"]
    rows = ["sentence\tlabel"]
    for _ in range(300):
        pos = rng.random() < 0.5
        rows.append(f"{rng.choice(good if pos else bad)}, {rng.choice(['really', 'so', 'quite'])}\t{int(pos)}")
    (d / "train.tsv").write_text("\n".join(rows[:250]) + "\n")
    (d / "dev.tsv").write_text("\n".join([rows[0]] + rows[250:]) + "\n")
    (d / "three.csv").write_text('id,review,stars\n1,"good, great",high\n2,"bad, awful",low\n3,"so-so, fine",mid\n')
    return d


def test_idx_directory_gz_and_raw(idx_dir):
    images = load_mnist(idx_dir)
    assert images.x_train.shape == (512, 28, 28) and images.x_test.shape == (128, 28, 28)
    assert images.y_train.max() == 3


def test_npz_loader(tmp_path):
    (xt, yt), (xv, yv) = striped_images(20, 0), striped_images(10, 1)
    np.savez(tmp_path / "m.npz", x_train=xt, y_train=yt, x_test=xv, y_test=yv)
    assert len(load_mnist(tmp_path / "m.npz").y_test) == 10
    np.savez(tmp_path / "bad.npz", x_train=xt, y_train=yt[:5], x_test=xv, y_test=yv)
    with pytest.raises(CharseqError, match="20 train images but 5 labels"):
        load_mnist(tmp_path / "bad.npz")


def test_classify_mnist_learns_and_evaluates(tmp_path, idx_dir):
    out = tmp_path / "mnist"
    r = run_cli_in_process("classify-mnist", "--data", idx_dir, "--out", out, "--epochs", "4", "--batch-size", "32",
                           "--lr", "1e-2", *FAST)
    assert r.returncode == 0, r.stderr
    assert str(idx_dir) in r.stdout and "val_accuracy" in r.stdout and "train_accuracy" in r.stdout
    r = run_cli_in_process("evaluate", "--model", out, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["accuracy"] > 0.9 and report["examples"] == 128
    assert np.array(report["confusion_matrix"]).sum() == 128


def test_classify_mnist_defaults_to_the_benchmark_recipe_and_yields_to_flags(tmp_path, idx_dir):
    """No model flags: both directions, shifts, turns and scalings, lr 3e-3, said in the start line and
    recorded; --no-bidirectional and zero augmentation are the user's and are kept."""
    def train(name, *flags):
        r = run_cli_in_process("classify-mnist", "--data", idx_dir, "--out", tmp_path / name, "--max-steps", "2",
                               *FAST, *flags)
        assert r.returncode == 0, r.stderr
        config = json.loads((tmp_path / name / "config.json").read_text())
        (line,) = [l for l in r.stdout.splitlines() if l.startswith("410 images:")]
        return config["model"], config["train"], line

    model, train_cfg, line = train("recipe")
    assert (model["bidirectional"], model["augment_shift"], model["augment_rotate"], model["augment_scale"]) == \
        (True, 2, 10.0, 0.1) and train_cfg["lr"] == 3e-3
    assert "1x32 bidirectional lstm, batch 128, shifts ±2 px, turns ±10°, scalings ±10%" in line
    model, _, line = train("plain", "--no-bidirectional", "--augment-shift", "0", "--augment-rotate", "0",
                           "--augment-scale", "0")
    assert (model["bidirectional"], model["augment_shift"], model["augment_rotate"], model["augment_scale"]) == \
        (False, 0, 0.0, 0.0)
    assert "1x32 lstm, batch 128, no augmentation" in line
    assert "[yours: augment_rotate, augment_scale, augment_shift, bidirectional, units]" in line


def test_bidirectional_reading(idx_dir):
    model = build_model({"units": 8, "bidirectional": True, "precision": "float32"}, 4, None)
    assert model.head.kernel.shape[0] == 16  # both directions' final states
    probs = predict_probabilities(model, load_mnist(idx_dir).x_test[:5])
    np.testing.assert_allclose(probs.sum(-1), 1, rtol=1e-5)


def test_padding_does_not_change_a_prediction():
    model = build_model({"units": 16, "precision": "float32", "bidirectional": True}, 3, 30)
    short = [np.array([5, 6, 7])]
    alone = predict_probabilities(model, short)
    padded = model(tf.constant([[5, 6, 7, 0, 0, 0, 0]]), training=False)
    np.testing.assert_allclose(tf.nn.softmax(padded).numpy(), alone, atol=1e-5)


def test_long_texts_are_predicted_in_smaller_batches(monkeypatch):
    from charseq.heads.classifier import inference

    model = build_model({"units": 16, "embedding_dim": 16, "precision": "float32"}, 3, 30)
    rng = np.random.default_rng(0)
    texts = [rng.integers(1, 30, n) for n in (3, 500, 40, 1000, 7, 800, 2)]
    shapes, probabilities = [], model.probabilities
    monkeypatch.setattr(model, "probabilities", lambda batch: shapes.append(batch.shape) or probabilities(batch))
    # 16 units and a 16-wide embedding: 32 floats a step.
    monkeypatch.setattr(inference, "MAX_BATCH_FLOATS", 60_000)
    together = predict_probabilities(model, texts)
    # The short ones stay together; 500 and 800 make 51,200 floats padded; 1,000 goes alone.
    assert [tuple(s) for s in shapes] == [(4, 40), (2, 800), (1, 1000)]
    alone = np.concatenate([predict_probabilities(model, [t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_text_classifier_train_classify_evaluate(tmp_path, reviews):
    out = tmp_path / "sent"
    r = run_cli("train-classifier", reviews / "train.tsv", "--val", reviews / "dev.tsv", "--out", out,
                "--epochs", "6", "--batch-size", "16", "--lr", "1e-2", *FAST)
    assert r.returncode == 0, r.stderr
    # Phrases the training set has (in other combinations), and one in characters it never saw.
    r = run_cli_in_process("classify", "--model", out, "truly wonderful, so", "an awful mess, really", "日本語 ✨")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("1\t") and lines[1].startswith("0\t") and len(lines) == 3
    # The characters it never saw are read as unknown, and named in one warning.
    assert r.stderr.splitlines() == ["warning: 1 of the 3 texts has characters the model never saw, read as unknown: "
                                     "'日' '本' '語' '✨'"], r.stderr
    (tmp_path / "texts.txt").write_text("good and great, quite\nbad and awful, so\n")
    r = run_cli_in_process("classify", "--model", out, "--input", tmp_path / "texts.txt", "--json")
    results = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["label"] for x in results] == ["1", "0"] and 0.5 < results[0]["probability"] <= 1
    assert r.stderr == "", r.stderr  # texts in the model's own characters: nothing to say
    r = run_cli_in_process("evaluate", "--model", out, reviews / "dev.tsv", "--json")
    report = json.loads(r.stdout)
    assert report["accuracy"] > 0.9 and set(report["per_class"]) == {"0", "1"}


def test_label_names_show_numeric_labels_by_name_in_every_file_the_run_reads(tmp_path, reviews):
    """SST-2 labels its rows 0 and 1: --label-names 0=negative,1=positive trains, classifies and
    evaluates under those names, reading the validation and test files' 0 and 1 as the training file's."""
    out = tmp_path / "sent"
    r = run_cli_in_process("train-classifier", reviews / "train.tsv", "--val", reviews / "dev.tsv", "--out", out,
                           "--label-names", "0=negative,1=positive", "--epochs", "6", "--batch-size", "16",
                           "--lr", "1e-2", *FAST)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "config.json").read_text())["labels"] == ["negative", "positive"]
    r = run_cli_in_process("classify", "--model", out, "truly wonderful, so", "an awful mess, really")
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == ["positive", "negative"], r.stderr
    r = run_cli_in_process("evaluate", "--model", out, reviews / "dev.tsv", "--json")
    report = json.loads(r.stdout)
    assert set(report["per_class"]) == {"negative", "positive"} and report["accuracy"] > 0.9, r.stderr

    # A name for a label the file does not have (a typo) is refused before anything is trained, and a
    # value that is not LABEL=NAME is one line.
    assert_clean_error(run_cli_in_process("train-classifier", reviews / "train.tsv", "--out", tmp_path / "typo",
                                          "--label-names", "0=negative,2=positive", *FAST),
                       "--label-names names '2'", "its labels: 0, 1")
    assert not (tmp_path / "typo").exists()
    assert_clean_error(run_cli_in_process("train-classifier", reviews / "train.tsv", "--out", tmp_path / "bad",
                                          "--label-names", "0:negative", *FAST), "'0:negative' is not LABEL=NAME")
    # Names show labels: two labels under one name would be trained as one class, so that is refused,
    # whether both are renamed alike or one is renamed as the other is written.
    for names in ("0=bad,1=bad", "0=1"):
        assert_clean_error(run_cli_in_process("train-classifier", reviews / "train.tsv", "--out", tmp_path / "merged",
                                              "--label-names", names, *FAST),
                           "--label-names shows the labels '0' and '1'", "a name of its own")
        assert not (tmp_path / "merged").exists()
    assert_clean_error(run_cli_in_process("train-classifier", reviews / "train.tsv", "--out", out, "--resume",
                                          "--label-names", "0=neg,1=pos"), "--label-names", "cannot change")


def test_a_tie_in_accuracy_keeps_the_weights_of_the_lower_validation_loss(tmp_path, reviews):
    """Easy data reaches full validation accuracy early and its loss goes on falling: of the
    evaluations at the best accuracy, the weights kept are those of the lowest validation loss."""
    out = tmp_path / "sent"
    r = run_cli_in_process("train-classifier", reviews / "train.tsv", "--val", reviews / "dev.tsv", "--out", out,
                           "--max-steps", "120", "--eval-every", "10", "--batch-size", "16", "--lr", "1e-2", *FAST)
    assert r.returncode == 0, r.stderr
    metrics = read_metrics(out)
    top = max(m["val_accuracy"] for m in metrics)
    at_top = [m for m in metrics if m["val_accuracy"] == top]
    assert len(at_top) >= 3 and at_top[0]["val_loss"] > min(m["val_loss"] for m in at_top)  # a tie to break
    expected = min(at_top, key=lambda m: m["val_loss"])["step"]
    from charseq.heads.classifier.run import load_classifier
    from charseq.runs import RunDir

    assert RunDir.open(out).load_weights(load_classifier(out)[0])["metrics"]["step"] == expected


def test_sentencepiece_pieces_train_classify_and_explain(tmp_path, reviews):
    from charseq.heads.classifier.inspect import explain_text
    from charseq.heads.classifier.run import load_classifier

    out = tmp_path / "pieces"
    r = run_cli_in_process("train-classifier", reviews / "train.tsv", "--val", reviews / "dev.tsv", "--out", out,
                           "--tokenizer", "sentencepiece", "--vocab-size", "40", "--epochs", "6", "--batch-size", "16",
                           "--lr", "1e-2", *FAST)
    assert r.returncode == 0, r.stderr
    assert "over pieces" in r.stdout and "vocabulary 40" in r.stdout
    data = json.loads((out / "config.json").read_text())["data"]
    assert (data["tokenizer"], data["vocab_size"]) == ("sentencepiece", 40) and (out / "spm.model").is_file()
    model, vocab, config = load_classifier(out)
    assert vocab.kind == "sentencepiece" and vocab.size == 40
    # Each text begins a word: a first word is cut into the pieces it has mid-sentence.
    first = vocab.encode("wonderful").tolist()
    assert vocab.encode("truly wonderful").tolist()[-len(first):] == first
    r = run_cli_in_process("classify", "--model", out, "truly wonderful, so", "an awful mess, really")
    assert r.returncode == 0, r.stderr
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == ["1", "0"]
    report = json.loads(run_cli_in_process("evaluate", "--model", out, reviews / "dev.tsv", "--json").stdout)
    assert report["accuracy"] > 0.9
    explained = explain_text(model, vocab, config, "a good film")  # the studio's view: one saliency per piece
    assert "".join(explained["tokens"]).strip() == "a good film"
    assert len(explained["tokens"]) == len(explained["saliency"]) < len("a good film")
    # What pieces cannot do, or a resumed run may not change, is one line.
    assert_clean_error(run_cli_in_process("export", "--model", out, "--out", tmp_path / "exported"),
                       "only character vocabularies export")
    assert_clean_error(run_cli_in_process("train-classifier", reviews / "train.tsv", "--out", out, "--resume",
                                          "--vocab-size", "50"), "--vocab-size")
    assert_clean_error(run_cli_in_process("train-classifier", reviews / "train.tsv", "--out", tmp_path / "bad",
                                          "--tokenizer", "sentencepiece", "--init-from", out),
                       "--tokenizer: a classifier started from a language model")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "exported").exists()


@pytest.mark.parametrize("options, fragment", [
    (["--vocab-size", "100"], "--vocab-size is the size of a SentencePiece vocabulary"),
    (["--tokenizer", "sentencepiece", "--max-vocab", "50"], "--max-vocab bounds a vocabulary of characters"),
    (["--tokenizer", "sentencepiece", "--min-count", "2"], "--min-count bounds a vocabulary of characters"),
])
def test_the_other_tokenizer_s_vocabulary_options_are_refused(tmp_path, reviews, options, fragment):
    r = run_cli_in_process("train-classifier", reviews / "train.tsv", "--out", tmp_path / "r", *options,
                           "--max-steps", "1", *FAST)
    assert_clean_error(r, fragment)
    assert not (tmp_path / "r").exists()


def test_csv_columns_by_name_and_three_classes(reviews):
    rows = read_labeled(reviews / "three.csv", label_column="stars")
    assert rows.texts == ["good, great", "bad, awful", "so-so, fine"] and rows.labels == ["high", "low", "mid"]
    # Reading the labels as the texts would train a model on its answers.
    with pytest.raises(CharseqError, match="the text column and the label column are the same column, 'stars'"):
        read_labeled(reviews / "three.csv", text_column="stars", label_column="stars")
    with pytest.raises(CharseqError, match="same column, 'label'"):
        read_labeled(reviews / "train.tsv", text_column="label")


@pytest.mark.parametrize("name", ["x.tsv", "x.csv"])
def test_a_line_of_spaces_only_is_a_blank_line(tmp_path, name):
    """An editor may leave spaces on a line that looks blank, and a spreadsheet saves an emptied row as
    its separators: neither is a row with an empty text."""
    sep = "\t" if name.endswith(".tsv") else ","
    (tmp_path / name).write_text(f"text{sep}label\ngood{sep}pos\n   \n{sep}\nbad{sep}neg\n \n{sep * 3}\n")
    rows = read_labeled(tmp_path / name)
    assert rows.texts == ["good", "bad"] and rows.labels == ["pos", "neg"] and rows.skipped == 0


@pytest.mark.parametrize("name", ["long.tsv", "long.csv"])
def test_a_text_longer_than_the_csv_module_s_field_limit_is_read(tmp_path, name):
    import csv

    long = "good " * 40_000  # 200,000 characters, past csv's default limit of 131,072
    sep = "\t" if name.endswith(".tsv") else ","
    (tmp_path / name).write_text(f"text{sep}label\nshort{sep}0\n{long}{sep}1\n")
    limit = csv.field_size_limit()
    rows = read_labeled(tmp_path / name)
    assert rows.texts == ["short", long] and rows.labels == ["0", "1"]
    assert csv.field_size_limit() == limit  # lifted while reading only


def test_init_from_a_language_model(tmp_path, reviews):
    from charseq.heads.lm.run import load_lm, train_lm

    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(line.split("\t")[0] for line in (reviews / "train.tsv").read_text().splitlines()[1:]))
    lm_dir = tmp_path / "lm"
    train_lm(texts, lm_dir, max_steps=3, units=24, layers=1, embedding_dim=8, batch_size=8, seq_len=20,
             sample_length=0, precision="float32", log=lambda s: None, progress_bar=False)
    lm, vocab, _ = load_lm(lm_dir)
    clf = build_model({"units": 24, "embedding_dim": 8, "precision": "float32"}, 2, vocab.size)
    _copy_backbone(lm, clf)
    for a, b in zip(lm.backbone.weights, clf.backbone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    out = tmp_path / "clf"
    r = run_cli_in_process("train-classifier", reviews / "train.tsv", "--out", out, "--init-from", lm_dir, "--max-steps", "3",
                           "--batch-size", "16")
    assert r.returncode == 0, r.stderr
    assert "starting from the language model" in r.stdout
    assert "[yours: batch_size]" in r.stdout  # the shape is the language model's, not named as the user's
    assert json.loads((out / "config.json").read_text())["model"]["units"] == 24
    assert "warning" not in r.stdout  # the language model knows every character of these texts
    # Texts in another script than the language model's all read as one unknown id: that is said.
    greek = tmp_path / "greek.tsv"
    greek.write_text("text\tlabel\n" + "καλή ταινία\tpos\nκακή ταινία\tneg\n" * 20, encoding="utf-8")
    r = run_cli_in_process("train-classifier", greek, "--out", tmp_path / "greek", "--init-from", lm_dir,
                           "--max-steps", "1", "--batch-size", "16")
    assert r.returncode == 0, r.stderr
    assert "warning: 90.9% of the characters of" in r.stdout and "read as unknown (most often: 'α'" in r.stdout
    # A shape given that is not the language model's would be quietly replaced: it is refused instead.
    r = run_cli_in_process("train-classifier", reviews / "train.tsv", "--out", tmp_path / "wider", "--init-from",
                           lm_dir, "--units", "64", "--max-steps", "1")
    assert_clean_error(r, "--units 64 (the language model's: 24)")
    assert not (tmp_path / "wider").exists() and r.stdout == ""  # said before the texts are read
    for wrong, said in ((tmp_path / "none", "does not exist"), (out, "not a language model")):
        r = run_cli_in_process("train-classifier", reviews / "train.tsv", "--out", tmp_path / "x", "--init-from",
                               wrong, "--max-steps", "1")
        assert_clean_error(r, str(wrong), said)
        assert r.stdout == ""
    for option in (["--max-vocab", "5"], ["--min-count", "3"]):  # the vocabulary is the language model's too
        r = run_cli_in_process("train-classifier", reviews / "train.tsv", "--out", tmp_path / "fewer", "--init-from",
                               lm_dir, *option, "--max-steps", "1")
        assert_clean_error(r, f"{option[0]}: a classifier started from a language model")
    assert not (tmp_path / "fewer").exists()


# ----------------------------------------------------------------------------- bad input
def test_missing_text_column_names_the_columns(tmp_path):
    (tmp_path / "x.tsv").write_text("words\tclass\nhello\t1\n")
    r = run_cli_in_process("train-classifier", tmp_path / "x.tsv", "--out", tmp_path / "r")
    assert_clean_error(r, "words, class", "--text-column")


def test_a_file_separated_by_semicolons_is_named_as_such(tmp_path):
    (tmp_path / "x.csv").write_text("text;label\ngood;pos\nbad;neg\n")
    r = run_cli_in_process("train-classifier", tmp_path / "x.csv", "--out", tmp_path / "r")
    assert_clean_error(r, "looks separated by ';'", "CSV (separated by commas) or TSV")
    assert "--text-column" not in r.stderr  # no column name can split it


def test_a_file_without_its_header_is_told_to_add_one(tmp_path):
    """SST-2's layout without its header row: its first row is data, which no --text-column reads."""
    (tmp_path / "x.tsv").write_text("a gorgeous movie\t1\na dull mess\t0\n")
    r = run_cli_in_process("train-classifier", tmp_path / "x.tsv", "--out", tmp_path / "r")
    assert_clean_error(r, "line 1 looks like a row of data", "'a gorgeous movie', '1'", "add one")
    assert "--text-column" not in r.stderr
    (tmp_path / "y.tsv").write_text("0\t1\ngood\tpos\n")  # columns named by numbers (a DataFrame's) are a header
    assert_clean_error(run_cli_in_process("train-classifier", tmp_path / "y.tsv", "--out", tmp_path / "r"),
                       "no text column", "--text-column")


def test_a_tsv_quoted_as_pandas_writes_one_is_read_as_written_and_said(tmp_path):
    """pandas' to_csv(sep="\t") quotes a text holding a quote: a TSV is read as written (GLUE's keep
    their quotes), so the run trains on the quotes, and says so once, with what to do."""
    import csv
    with open(tmp_path / "q.tsv", "w", newline="") as f:  # as pandas writes it, with the csv module's rules
        writer = csv.writer(f, delimiter="\t")
        writer.writerows([["text", "label"], ['a "nice" film', "1"], ["a bad film", "0"], ["so good", "1"],
                          ['an "awful" mess', "0"], ["great", "1"], ["boring", "0"]])
    r = run_cli_in_process("train-classifier", tmp_path / "q.tsv", "--out", tmp_path / "r", "--max-steps", "1", *FAST)
    assert r.returncode == 0, r.stderr
    warned = [line for line in r.stdout.splitlines() if line.startswith("warning:")]
    assert warned == [f'warning: 2 texts of {tmp_path / "q.tsv"} look quoted as a CSV quotes them ("a ""good"" '
                      'film"); a TSV is read as written, quotes and all: write it without quoting (pandas: '
                      "quoting=csv.QUOTE_NONE), or comma-separated"]
    assert read_labeled(tmp_path / "q.tsv").texts[0] == '"a ""nice"" film"'
    (tmp_path / "plain.tsv").write_text('text\tlabel\nsaid "fine"\t1\n"quoted"\t0\n')  # quotes of its own
    assert read_labeled(tmp_path / "plain.tsv").quoted == 0


def test_a_csv_named_tsv_is_told_to_be_renamed(tmp_path):
    (tmp_path / "x.tsv").write_text("text,label\ngood,pos\nbad,neg\n")
    r = run_cli_in_process("train-classifier", tmp_path / "x.tsv", "--out", tmp_path / "r")
    assert_clean_error(r, "separated by commas", "rename it to .csv")
    assert "--text-column" not in r.stderr  # no column name can split it
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name, content", [
    ("x.json", '[{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}]\n'),
    ("x.json", '[\n  {\n    "text": "good",\n    "label": "pos"\n  }\n]\n'),
    ("x.jsonl", '{"text": "good", "label": "pos"}\n{"text": "bad", "label": "neg"}\n'),
    ("x.csv", '[{"text": "good", "label": "pos"}]\n'),
    ("x.tsv", '[{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}]\n'),  # not a CSV named .tsv
])
def test_a_json_file_is_named_as_such(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    r = run_cli_in_process("train-classifier", tmp_path / name, "--out", tmp_path / "r")
    assert_clean_error(r, f"{name} looks like JSON", "CSV or TSV")
    assert "--text-column" not in r.stderr  # no column name reads it
    assert not (tmp_path / "r").exists()


def test_a_column_name_in_brackets_is_not_taken_for_json(tmp_path):
    (tmp_path / "x.csv").write_text("[id],words,label\n1,good,pos\n")
    assert_clean_error(run_cli_in_process("train-classifier", tmp_path / "x.csv", "--out", tmp_path / "r"),
                       "no text column", "[id], words, label")


def test_a_spreadsheet_export_with_a_byte_order_mark_resumes_with_its_columns_named(tmp_path, reviews):
    """A CSV saved by a spreadsheet starts with a UTF-8 byte-order mark: the run finds its text column
    by its usual name, and resuming with that name given is the same run, not a changed setting."""
    rows = [line.split("\t") for line in (reviews / "train.tsv").read_text().splitlines()[1:]]
    (tmp_path / "x.csv").write_text("text,label\n" + "".join(f'"{text}",{label}\n' for text, label in rows),
                                    encoding="utf-8-sig")
    out = tmp_path / "r"
    r = run_cli_in_process("train-classifier", tmp_path / "x.csv", "--out", out, "--max-steps", "1", *FAST)
    assert r.returncode == 0, r.stderr
    r = run_cli_in_process("train-classifier", "--out", out, "--resume", "--text-column", "text",
                           "--label-column", "label", "--max-steps", "2")
    assert r.returncode == 0, r.stderr
    assert [m["step"] for m in read_metrics(out)][-1] == 2


def test_row_with_wrong_field_count(tmp_path, reviews):
    content = (reviews / "train.tsv").read_text().splitlines()
    content.insert(5, "one\ttoo\tmany")
    (tmp_path / "x.tsv").write_text("\n".join(content) + "\n")
    assert_clean_error(run_cli_in_process("train-classifier", tmp_path / "x.tsv", "--out", tmp_path / "r"), "line 6")
    r = run_cli_in_process("train-classifier", tmp_path / "x.tsv", "--out", tmp_path / "r", "--skip-bad-rows",
                           "--max-steps", "1", *FAST)
    assert r.returncode == 0 and "skipped 1 bad row of" in r.stdout
    r = run_cli_in_process("train-classifier", reviews / "train.tsv", "--val", tmp_path / "x.tsv", "--out",
                           tmp_path / "v", "--skip-bad-rows", "--max-steps", "1", *FAST)
    assert r.returncode == 0 and f"skipped 1 bad row of {tmp_path / 'x.tsv'}" in r.stdout  # the validation file's


def test_empty_text_and_single_class(tmp_path):
    (tmp_path / "e.tsv").write_text("text\tlabel\nfine\t1\n\t0\n")
    assert_clean_error(run_cli_in_process("train-classifier", tmp_path / "e.tsv", "--out", tmp_path / "r"), "line 3", "empty")
    (tmp_path / "one.tsv").write_text("text\tlabel\n" + "fine\t1\n" * 20)
    assert_clean_error(run_cli_in_process("train-classifier", tmp_path / "one.tsv", "--out", tmp_path / "r"), "single class")


def test_labels_that_look_almost_numeric_train(tmp_path):
    from charseq.heads.classifier.run import _labels_index

    # "²" passes str.isdigit and "--1" an lstrip of "-", but neither is an integer: ordered as text.
    assert _labels_index(["²", "1", "1"]) == ["1", "²"]
    assert _labels_index(["--1", "1"]) == ["--1", "1"]
    assert _labels_index(["10", "-2", "9"]) == ["-2", "9", "10"]
    assert _labels_index(["01", "1", "0"]) == _labels_index(["1", "01", "0"]) == ["0", "01", "1"]
    (tmp_path / "t.tsv").write_text("text\tlabel\n" + "".join(f"good {i}\t²\nbad {i}\t1\n" for i in range(10)))
    r = run_cli_in_process("train-classifier", tmp_path / "t.tsv", "--out", tmp_path / "r", "--max-steps", "1", *FAST)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "r" / "config.json").read_text())["labels"] == ["1", "²"]


def test_the_start_line_says_how_many_classes_it_does_not_name(tmp_path):
    (tmp_path / "t.tsv").write_text("text\tlabel\n" + "".join(f"text {i} {chr(97 + i % 12) * 3}\tc{i % 12:02d}\n"
                                                               for i in range(48)))
    r = run_cli_in_process("train-classifier", tmp_path / "t.tsv", "--out", tmp_path / "r", "--max-steps", "1", *FAST)
    assert r.returncode == 0, r.stderr
    assert "12 classes (c00, c01, c02, c03, c04, c05, c06, c07, c08, c09 and 2 more)" in r.stdout


def test_unseen_label_at_evaluation(tmp_path, reviews):
    out = tmp_path / "sent"
    assert run_cli_in_process("train-classifier", reviews / "train.tsv", "--out", out, "--max-steps", "1", *FAST).returncode == 0
    (tmp_path / "t.tsv").write_text("text\tlabel\ngood\t1\nmeh\t7\n")
    assert_clean_error(run_cli_in_process("evaluate", "--model", out, tmp_path / "t.tsv"), "never saw", "7")
    # 1.0 for 1 (a label column pandas read as floats, for a missing value, and wrote back) is said as such,
    # in a test file and in a validation file.
    (tmp_path / "floats.tsv").write_text("text\tlabel\ngood\t1.0\nbad\t0.0\n")
    assert_clean_error(run_cli_in_process("evaluate", "--model", out, tmp_path / "floats.tsv"),
                       "floats.tsv writes the labels 0, 1 as 0.0, 1.0", "compared as written")
    assert_clean_error(run_cli_in_process("train-classifier", reviews / "train.tsv", "--val", tmp_path / "floats.tsv",
                                          "--out", tmp_path / "floats", *FAST),
                       "writes the labels 0, 1 as 0.0, 1.0", "write them as", "train.tsv does")
    # --skip-bad-rows "skips (and counts)": the count is in the report, and said.
    (tmp_path / "gaps.tsv").write_text("text\tlabel\ngood\t1\n\t0\nbad\t0\none\ttoo\tmany\n")
    r = run_cli_in_process("evaluate", "--model", out, tmp_path / "gaps.tsv", "--skip-bad-rows", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["examples"] == 2 and report["skipped_rows"] == 2
    r = run_cli_in_process("evaluate", "--model", out, tmp_path / "gaps.tsv", "--skip-bad-rows")
    assert r.returncode == 0 and "on 2 examples (2 bad rows skipped)" in r.stdout


@pytest.mark.parametrize("damage, fragment", [("magic", "magic number"), ("truncate", "truncated"),
                                              ("count", "but")])


def test_damaged_idx_files(tmp_path, idx_dir, damage, fragment):
    import shutil
    d = tmp_path / "idx"
    shutil.copytree(idx_dir, d)
    f = d / "t10k-images-idx3-ubyte"
    data = bytearray(f.read_bytes())
    if damage == "magic":
        data[3] = 1
        f.write_bytes(bytes(data))
    elif damage == "truncate":
        f.write_bytes(bytes(data[: len(data) // 2]))
    else:
        write_idx(d / "t10k-labels-idx1-ubyte", np.zeros(5, np.uint8), IDX_LABELS, False)
    assert_clean_error(run_cli_in_process("classify-mnist", "--data", d, "--out", tmp_path / "r", "--max-steps", "1"), fragment)


def test_missing_data_path_and_wrong_task(tmp_path, trained_run):
    assert_clean_error(run_cli_in_process("classify-mnist", "--data", tmp_path / "nope", "--out", tmp_path / "r"),
                       "does not exist")
    assert_clean_error(run_cli_in_process("classify", "--model", trained_run, "hello"), "holds a language model, not a classifier")


def test_evaluate_names_the_missing_images_as_the_command_took_them(tmp_path, idx_dir):
    """evaluate's images are its FILE, or the data the run was trained on: an error says which, and
    names no option evaluate lacks."""
    data, run = tmp_path / "idx", tmp_path / "run"
    shutil.copytree(idx_dir, data)
    r = run_cli_in_process("classify-mnist", "--data", data, "--out", run, "--max-steps", "2", *FAST)
    assert r.returncode == 0, r.stderr
    assert " rows/s " in r.stdout and "chars/s" not in r.stdout  # its speed counts rows of pixels read
    r = run_cli_in_process("evaluate", "--model", run, tmp_path / "nosuch.npz")
    assert_clean_error(r, "nosuch.npz does not exist")
    assert "--data" not in r.stderr
    shutil.rmtree(data)
    assert_clean_error(run_cli_in_process("evaluate", "--model", run), "was trained on, no longer exists", "FILE")


def test_char_noise_deletes_and_replaces_at_its_rate():
    from charseq.heads.classifier.task import add_char_noise
    ids = np.full(20_000, 7, np.int32)
    noisy = add_char_noise(ids, 0.2, 50, np.random.default_rng(0))
    assert 0.88 < len(noisy) / len(ids) < 0.92  # about half the touched 20% deleted
    replaced = np.mean(noisy != 7)
    assert 0.08 < replaced < 0.12 and noisy.min() >= 4 and noisy.max() < 50  # never a reserved id
    assert add_char_noise(np.array([9]), 0.49, 50, np.random.default_rng(1)).size == 1  # never empty


def test_char_noise_needs_the_vocabulary_it_draws_from():
    from charseq.heads.classifier.task import TextTask
    with pytest.raises(ValueError, match="give vocab_size"):
        TextTask(None, [np.array([4, 5])], np.array([0]), [], np.array([]), 8, 0, char_noise=0.1)


def test_char_noise_trains_and_is_recorded(tmp_path, reviews):
    out = tmp_path / "noisy"
    r = run_cli_in_process("train-classifier", reviews / "train.tsv", "--val", reviews / "dev.tsv", "--out", out,
                           "--epochs", "6", "--batch-size", "16", "--lr", "1e-2", "--char-noise", "0.05", *FAST)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "config.json").read_text())["model"]["char_noise"] == 0.05
    report = json.loads(run_cli_in_process("evaluate", "--model", out, reviews / "dev.tsv", "--json").stdout)
    assert report["accuracy"] > 0.9
    r = run_cli_in_process("train-classifier", reviews / "train.tsv", "--out", tmp_path / "bad", "--char-noise", "0.6")
    assert_clean_error(r, "--char-noise must be in [0, 0.5)")
    assert not (tmp_path / "bad").exists()


class _Fixed:
    """A stand-in for the generator: every image gets the largest angle, scale and shift asked for."""

    def __init__(self, shift=(0.0, 0.0)):
        self.shift = shift

    def uniform(self, low, high, size):
        if isinstance(size, tuple):  # the (dy, dx) shifts
            return np.stack([np.full(size[1], s, np.float64) for s in self.shift])
        return np.full(size, high, np.float64)


def distort_images(images, max_shift, max_degrees, max_scale, rng, elastic=0.0) -> np.ndarray:
    """Distortions drawn as a training batch draws them, applied as the training step applies them."""
    from charseq.heads.classifier.augment import distort, draw_distortions
    return distort(images, *draw_distortions(len(images), max_shift, max_degrees, max_scale, rng, elastic)).numpy()


def test_whole_pixel_shifts_move_images_exactly():
    from charseq.heads.classifier.augment import distort, draw_shifts
    images = np.random.default_rng(0).integers(0, 256, (64, 28, 28)).astype(np.uint8)
    distortions = draw_shifts(64, 2, np.random.default_rng(1))
    moved = tf.function(distort)(images, distortions).numpy()  # as inside the compiled step
    assert len({tuple(d) for d in distortions[:, 2:]}) > 10  # many of the 25 shifts
    for image, out, (_, _, dy, dx) in zip(images, moved, distortions):
        dy, dx = int(dy), int(dx)
        expected = np.zeros((28, 28))
        expected[max(dy, 0): 28 + min(dy, 0), max(dx, 0): 28 + min(dx, 0)] = \
            image[max(-dy, 0): 28 - max(dy, 0), max(-dx, 0): 28 - max(dx, 0)]
        np.testing.assert_array_equal(out, expected)


def test_distortions_move_turn_and_keep_the_border_empty():
    images = np.zeros((2, 28, 28), np.uint8)
    images[:, 5:20, 12:15] = 200  # an upright bar, off the centre
    images[:, 27, 27] = images[:, 0, 3] = 90  # pixels on the border
    unchanged = distort_images(images, 0, 0, 0, np.random.default_rng(0))
    np.testing.assert_array_equal(unchanged, images)
    # A whole-pixel shift is exact, and what leaves the frame is gone rather than read from the border.
    moved = distort_images(images, 2, 0, 0, _Fixed(shift=(2.0, -1.0)))
    expected = np.zeros((28, 28)); expected[2:, :-1] = images[0, :-2, 1:]
    np.testing.assert_array_equal(moved[0], expected)
    # 90 degrees turns the upright bar on its side (the largest angle asked for, about the centre).
    turned = distort_images(images, 0, 90, 0, _Fixed())
    np.testing.assert_allclose(turned[0], np.rot90(images[0], -1), atol=1e-3)
    # Random small distortions: every image changes, ink stays in proportion, nothing leaves 0-255.
    rng = np.random.default_rng(1)
    out = distort_images(np.repeat(images[:1], 64, 0), 2, 10, 0.1, rng)
    assert all(np.abs(o - images[0]).max() > 10 for o in out)
    ratio = out.sum((1, 2)) / images[0].sum()
    assert 0.75 < ratio.min() and ratio.max() < 1.3 and out.min() >= 0 and out.max() <= 255.001
    # An elastic field bends each image its own way, smoothly: it stretches or thins the bar here and there,
    # but neighbouring pixels move together, so the bent bar is still a thin stroke.
    bar = np.zeros((28, 28), np.uint8)
    bar[5:20, 12:15] = 200
    bent = distort_images(np.repeat(bar[None], 64, 0), 0, 0, 0, np.random.default_rng(2), elastic=1.0)
    assert all(np.abs(b - bar).max() > 10 for b in bent)
    assert len({b.tobytes() for b in bent}) == 64
    ratio = bent.sum((1, 2)) / bar.sum()
    assert 0.5 < ratio.min() and ratio.max() < 2.5 and bent.min() >= 0 and bent.max() <= 255.001
    ink = bent > 100
    assert np.median(ink.sum(axis=2)[ink.any(axis=2)]) <= 4  # inked pixels per row: about the bar's 3
    starts = (np.diff(ink.astype(int), axis=2) == 1).sum(axis=2) + ink[:, :, 0]
    assert starts.max() == 1  # one run of ink per row: a field drawn pixel by pixel would leave gaps


def test_classify_mnist_with_distortions_is_recorded_and_checked(tmp_path, idx_dir):
    out = tmp_path / "distorted"
    r = run_cli_in_process("classify-mnist", "--data", idx_dir, "--out", out, "--epochs", "4", "--batch-size", "32",
                           "--lr", "1e-2", "--augment-shift", "1", "--augment-rotate", "8", "--augment-scale", "0.05",
                           "--augment-elastic", "0.5", *FAST)
    assert r.returncode == 0, r.stderr
    model = json.loads((out / "config.json").read_text())["model"]
    assert (model["augment_rotate"], model["augment_scale"], model["augment_elastic"]) == (8.0, 0.05, 0.5)
    report = json.loads(run_cli_in_process("evaluate", "--model", out, "--json").stdout)
    assert report["accuracy"] > 0.9
    for flag, value, message in (("--augment-rotate", "-5", "--augment-rotate must be in [0, 180]"),
                                 ("--augment-scale", "1", "--augment-scale must be in [0, 1)"),
                                 ("--augment-elastic", "5", "--augment-elastic must be in [0, 4] pixels")):
        r = run_cli_in_process("classify-mnist", "--data", idx_dir, "--out", tmp_path / "bad", flag, value)
        assert_clean_error(r, message)
        assert not (tmp_path / "bad").exists()


def test_label_smoothing_trains_towards_the_smoothed_target(tmp_path, idx_dir, reviews):
    """Examples told apart perfectly: plain training drives the true class's probability towards 1,
    --label-smoothing 0.3 towards 1 - 0.3 + 0.3 / classes (the smoothed target's optimum), at the
    same accuracy, for images and texts. val_loss is the plain cross-entropy, -log p(true class)."""
    import math

    def train(command, data, name, *flags):
        out = tmp_path / name
        r = run_cli_in_process(command, *data, "--out", out, "--epochs", "6", "--lr", "1e-2", *flags, *FAST)
        assert r.returncode == 0, r.stderr
        return json.loads((out / "config.json").read_text()), read_metrics(out)[-1]

    images = ["--data", idx_dir, "--batch-size", "32"]
    texts = [reviews / "train.tsv", "--val", reviews / "dev.tsv", "--batch-size", "16"]
    _, plain = train("classify-mnist", images, "plain")
    assert plain["val_accuracy"] == 1.0 and plain["val_loss"] < 0.05
    for command, data in (("classify-mnist", images), ("train-classifier", texts)):
        config, smoothed = train(command, data, f"smoothed-{command}", "--label-smoothing", "0.3")
        assert config["model"]["label_smoothing"] == 0.3 and smoothed["val_accuracy"] == 1.0
        optimum = 1 - 0.3 + 0.3 / len(config["labels"])  # 0.73 for MNIST's 10 digits, 0.85 for 2 classes
        assert abs(math.exp(-smoothed["val_loss"]) - optimum) < 0.08, (command, smoothed["val_loss"], optimum)
    assert_clean_error(run_cli_in_process("classify-mnist", "--data", idx_dir, "--out", tmp_path / "bad",
                                          "--label-smoothing", "1"), "--label-smoothing must be in [0, 1)")
    assert not (tmp_path / "bad").exists()


def test_classify_mnist_pools_over_the_rows(tmp_path, idx_dir):
    out = tmp_path / "pooled"
    r = run_cli_in_process("classify-mnist", "--data", idx_dir, "--out", out, "--epochs", "4", "--batch-size", "32",
                           "--lr", "1e-2", "--readout", "max", *FAST)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "config.json").read_text())["model"]["readout"] == "max"
    report = json.loads(run_cli_in_process("evaluate", "--model", out, "--json").stdout)
    assert report["accuracy"] > 0.9
    assert_clean_error(run_cli_in_process("classify-mnist", "--data", idx_dir, "--out", tmp_path / "bad",
                                          "--readout", "sum"), "--readout")
    assert not (tmp_path / "bad").exists()
