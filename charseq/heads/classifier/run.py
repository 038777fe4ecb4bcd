"""Classifier runs: images read row by row (MNIST and friends) or texts read character by character.

    train_mnist(out="runs/mnist", data=None, bidirectional=True, epochs=10)
    train_classifier("train.tsv", val="dev.tsv", out="runs/sst2", init_from="runs/sst2-lm")
    model, vocab, config = load_classifier("runs/sst2")
    classify("runs/sst2", ["a gorgeous, witty, seductive movie"])
    classify_images("runs/mnist", x_test[:5])               # [n, 28, 28] pixel values 0-255

Both kinds use the shared backbone, the shared training loop and the run directory; only
the batches differ (charseq.heads.classifier.task): images are [batch, rows, pixels] through a dense input projection,
texts are id sequences right-padded per batch to their own length (batches built from texts
of similar length) with the padding masked.
"""

from __future__ import annotations

import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from charseq.heads.classifier.config import (IMAGES_RECORDED, TEXT_RECORDED, ImageData, ModelConfig, TextData,
                                             reads_images)
from charseq.heads.classifier.model import SequenceClassifier
from charseq.heads.classifier.inference import predict_probabilities
from charseq.heads.classifier.task import ImageTask, TextTask
from charseq.heads.lm.run import LM_SHAPE, load_lm, refuse_another_shape
from charseq.data.batching import check_split, pick, shared_texts, split_rows, validation_split
from charseq.data.labeled import picked_columns, read_labeled, say_quoted
from charseq.data.mnist import ImageSet, load_mnist
from charseq.distribute import train_on_worker
from charseq.errors import CharseqError
from charseq.limits import check_model_memory, check_sequence_memory
from charseq.precision import asked_precision, precision_of_run, resolve_precision
from charseq.runs import TEST_FILE, RunDir, discard_unpublished
from charseq.settings import config_from_dict, flat, split_settings
from charseq.sizing import counted
from charseq.heads.classifier.sizing import size_image_classifier, size_text_classifier
from charseq.files import STDIN, write_json_atomic
from charseq.start import Recipe, Start, given_data, resolved, start_run
from charseq.train import TrainConfig, train
from charseq.vocab import (CharVocab, SentencePieceVocab, character_bound, count_characters, load_vocab,
                           refuse_the_other_tokenizers_options)

TASK = "classifier"
UNKNOWN_SHARE_TO_WARN = 0.01  # of the training characters: a few rare ones unknown is usual, more costs accuracy


def build_model(cfg: dict, num_classes: int, vocab_size: int | None, precision: str | None = None,
                     image_shape: tuple[int, int] = (28, 28)):
    """A classifier of texts (ids below `vocab_size`) or, with `vocab_size` None, of images of
    `image_shape` (rows, columns) read row by row, with its weights created."""
    c = config_from_dict(ModelConfig, cfg, "config.json model")
    if not precision and vocab_size is not None:  # texts: float32 where the compiled kernels are faster
        precision = resolve_precision(c.backbone.precision, c.backbone.units, c.backbone.cell,
                                      text_classifier=True)
    model = SequenceClassifier(num_classes, replace(c.backbone, precision=precision or c.backbone.precision),
                               vocab_size=vocab_size, masking=vocab_size is not None, readout=c.readout)
    model(tf.zeros((1, 1), tf.int32) if vocab_size is not None else tf.zeros((1, *image_shape)))
    return model


def _labels_index(labels: list[str]) -> list[str]:
    """Label names in a stable order: numerically if they are all integers, else alphabetically."""
    distinct = set(labels)
    # ASCII digits only: str.isdigit also accepts "²", which int() refuses; ties such as "1" and "01" fall
    # back to the text, so that the order (and the seeded split stratified by it) is the same every run.
    if all(re.fullmatch(r"-?[0-9]+", l) for l in distinct):
        return sorted(distinct, key=lambda l: (int(l), l))
    return sorted(distinct)


def label_ids(labels: list[str]) -> list[int]:
    """Each label's place in `_labels_index` (the class ids the validation split stratifies by)."""
    index = {n: i for i, n in enumerate(_labels_index(labels))}
    return [index[label] for label in labels]


def _merged_by_names(labels: list[str], names: dict[str, str]) -> tuple[str, list[str]] | None:
    """The first name under which --label-names `names` shows two or more of `labels` (renamed, or
    one renamed as another is written), and those labels; None if every label keeps a name of its own.

    >>> _merged_by_names(["0", "1", "2"], {"0": "negative", "2": "1"})
    ('1', ['1', '2'])
    """
    shown_as: dict[str, list[str]] = {}
    for label in labels:
        shown_as.setdefault(names.get(label, label), []).append(label)
    return next(((name, found) for name, found in shown_as.items() if len(found) > 1), None)


SPLIT = "grouped"  # config.json data.split: held out by split_rows (stratified, copies of a text together)


def _same_numbers(unseen: list[str], names: list[str]) -> dict[str, str]:
    """{known label: how `unseen` writes it} if every label of `unseen` is a number that one of
    `names` writes otherwise (1.0 for 1), else empty.

    >>> _same_numbers(["0.0", "1.0"], ["0", "1"])
    {'0': '0.0', '1': '1.0'}
    """
    def number(label: str) -> float | None:
        try:
            return float(label)
        except ValueError:
            return None

    known = {number(n): n for n in names if number(n) is not None}
    found = {known.get(number(label)): label for label in unseen}
    return {} if None in found else found


def _encode_labels(labels: list[str], names: list[str], source, training: str | None = None,
                   split: float | None = None) -> np.ndarray:
    """Class ids of `labels`; a label the model was not trained on is an error that says where it
    came from (a validation file, or the automatic split with `split` its fraction) and what to do."""
    index = {n: i for i, n in enumerate(names)}
    unseen = sorted(set(labels) - set(index))
    if unseen:
        rows = sum(1 for l in labels if l not in index)
        shown = ", ".join(unseen[:5]) + (f" and {len(unseen) - 5} more" if len(unseen) > 5 else "")
        same = _same_numbers(unseen, names) if split is None else {}  # (a split holds the training file's own)
        if same:  # 1.0 for 1: a label column pandas read as floats (it had a missing value) and wrote back
            raise CharseqError(f"{source} writes the labels {', '.join(same)} as {', '.join(same.values())}: the "
                               f"same numbers, but labels are compared as written ({counted(rows, 'row')}); write "
                               f"them as {training or 'the training file'} does")
        if training is None:
            raise CharseqError(f"{source} has labels the model never saw: {shown} ({counted(rows, 'row')})")
        if split is not None:
            raise CharseqError(f"the validation split held out of {training} (--val-fraction {split:g}) took every row "
                               f"of {counted(len(unseen), 'label')}: {shown} ({counted(rows, 'row')}), so training "
                               "never sees them; "
                               "give more rows of those labels, or a validation file with --val")
        raise CharseqError(f"{source} has {counted(len(unseen), 'label')} that {training} lacks: {shown} "
                           f"({counted(rows, 'row')}); a "
                           "classifier predicts only labels it was trained on: add rows of them to the training "
                           "file, or remove them from the validation file")
    return np.array([index[l] for l in labels], np.int64)


def log_duplicates(log, duplicates: int, rows: int, source: str, kept_together: bool = False) -> None:
    """Say how many rows repeat an earlier row's text (and that the split keeps the copies together)."""
    if duplicates:
        log(f"data: {duplicates:,} of the {rows:,} rows of {source} repeat an earlier row's text"
            + ("; the copies of a text are kept on one side of the validation split" if kept_together else ""))


# The validation split held out of the training images: 5,000 of MNIST's 60,000, and of a smaller set
# the same share but at least MNIST_VAL_FLOOR images (an accuracy on a few hundred moves in steps of
# a few tenths of a percent), never more than a fifth of the set.
MNIST_VAL_SHARE = 5_000 / 60_000
MNIST_VAL_FLOOR = 1_000


def mnist_val_images(n: int, val_fraction: float | None = None) -> int:
    """How many of `n` training images are held out for validation (`val_fraction` None: the default).

    >>> mnist_val_images(60_000), mnist_val_images(3_000), mnist_val_images(60_000, 0.0)
    (5000, 600, 0)
    """
    if val_fraction is not None:
        return int(round(n * val_fraction))
    return min(max(int(round(n * MNIST_VAL_SHARE)), MNIST_VAL_FLOOR), n // 5)


def image_split(images, names: list[str], val_fraction: float | None, seed: int):
    """(label ids of the training images, their split): the images held out for validation,
    stratified by class and seeded, as training and the studio both take them."""
    y_all = _encode_labels([str(v) for v in images.y_train.tolist()], names, images.source)
    return y_all, split_rows(None, y_all, mnist_val_images(len(y_all), val_fraction), seed)


def train_mnist(out: str | Path = "runs/mnist", data: str | Path | None = None, *, force: bool = False,
                resume: bool = False, log: Callable[[str], None] = print, progress_bar: bool | None = None,
                **settings) -> RunDir:
    """Train a classifier that reads MNIST-format images row by row (28 steps of 28 pixels).

    `settings` are the fields of :class:`~charseq.heads.classifier.config.ModelConfig`,
    :class:`~charseq.heads.classifier.config.ImageData` and :class:`~charseq.settings.TrainConfig`.
    Validation (every evaluation, early stopping, the best weights) uses images held out of the
    training images, stratified by class and seeded by `seed`: `val_fraction` of them, by default
    5,000 of 60,000 (see mnist_val_images); 0 holds none out, and the last weights are kept. The
    test images are scored once, at the end, with the weights kept: the run's test.json.

    `data` is an MNIST-format set (a Keras-style .npz, or a folder of the four IDX files); None: MNIST
    from charseq's cache (`charseq data get mnist`). With `strategy="multiworker"`, only the chief
    writes `out` (see charseq.distribute).

    `out`, `force`, `resume`, `log` and `progress_bar` are as :func:`~charseq.heads.lm.run.train_lm`
    takes them; it returns the run, a :class:`~charseq.runs.RunDir`.
    """
    return train_on_worker(out, resume, settings, lambda mine: _train_mnist(
        mine, data, force=force, resume=resume, log=log, progress_bar=progress_bar, **settings))


class _Images(Recipe):
    """An image classifier's run: MNIST-format images, a stratified split of the training images."""

    task, model_config, data_config, recorded = TASK, ModelConfig, ImageData, tuple(IMAGES_RECORDED)
    file_key, file_label = "path", "--data"

    def read(self, start: Start) -> None:
        log, val_fraction = start.log, start.data_cfg.val_fraction
        self.file = self.data_file(start)
        self.images = images = load_mnist(self.file, log=log)
        for note in images.notes:
            log(f"data: {images.source}: {note}")
        self.names = names = [str(i) for i in sorted(set(images.y_train.tolist()) | set(images.y_test.tolist()))]
        self.y_test = _encode_labels([str(v) for v in images.y_test.tolist()], names, images.source)
        if len(names) < 2:
            raise CharseqError(f"{images.source} has a single class; a classifier needs at least two")
        y_all, split = image_split(images, names, val_fraction, start.train_cfg.seed)
        if start.resume and "val_images" not in start.config["data"]:
            log(f"note: {start.run.path} was made by a charseq that validated on the test images; from here on it "
                f"validates on {mnist_val_images(len(y_all), val_fraction):,} images held out of the training images")
        self.train = images.x_train[split.train], y_all[split.train]
        self.val = images.x_train[split.val], y_all[split.val]
        train, val = len(split.train), len(split.val)
        held_out = (f"{train:,} training and {val:,} validation images (held out of the {len(y_all):,} training "
                    "images, stratified by class)") if val else f"{train:,} training images, no validation"
        log(f"data: {images.source}: {held_out}, {len(self.y_test):,} test images scored once at the end; "
            f"{images.x_train.shape[1]}x{images.x_train.shape[2]} pixels")
        self.no_validation = None if val else "--val-fraction 0" if not val_fraction else \
            f"--val-fraction {val_fraction:g} holds out no image"
        if start.resume:
            (start.run.path / TEST_FILE).unlink(missing_ok=True)  # it scored weights that training now goes past

    def sizing(self, start: Start):
        return size_image_classifier(len(self.train[1]), start.settings)

    def record(self, start: Start) -> dict:
        return {"input": "images", "labels": self.names, "image_shape": list(self.images.x_train.shape[1:]),
                "data": {"path": resolved(self.file), "source": self.images.source, **asdict(start.data_cfg),
                         "val_images": int(len(self.val[1]))}}

    def build(self, start: Start):
        return build_model(flat(start.model_cfg), len(self.names), None, start.precision,
                           image_shape=self.images.x_train.shape[1:])

    def make_task(self, start: Start, model, strategy):
        m, t = start.model_cfg, start.train_cfg
        return ImageTask(model, *self.train, *self.val, t.batch_size, t.seed, augment_shift=m.augment_shift,
                         augment_rotate=m.augment_rotate, augment_scale=m.augment_scale,
                         augment_elastic=m.augment_elastic, label_smoothing=m.label_smoothing, strategy=strategy)


def _warn_of_unknown_characters(log, texts: list[str], vocab, train_file, lm_dir) -> None:
    """Say so when the language model's vocabulary lacks much of the training texts: all such
    characters read as one unknown id, so the classifier cannot tell them apart, and nothing else
    would show it."""
    counts = count_characters(texts)
    missing = {c: counts[c] for c in vocab.unknown("".join(counts))}
    share = sum(missing.values()) / max(sum(counts.values()), 1)
    if share < UNKNOWN_SHARE_TO_WARN:
        return
    commonest = sorted(missing, key=lambda c: (-missing[c], c))[:5]
    log(f"warning: {share:.1%} of the characters of {train_file} are not in the vocabulary of the language model "
        f"in {lm_dir} and are read as unknown (most often: {', '.join(map(repr, commonest))}); a language model "
        "trained on texts like these would know them")


@discard_unpublished
def _train_mnist(out, data, *, force, resume, log, progress_bar, **settings) -> RunDir:
    recipe = _Images(data)
    start = start_run(recipe, out, settings, resume=resume, force=force, log=log)
    train(start.task, start.run, start.train_cfg, resume=resume, log=log, progress_bar=progress_bar)
    score_test(start.run, start.model, recipe.images.x_test, recipe.y_test, recipe.images.source, log)
    return start.run


def score_test(run: RunDir, model, x_test, y_test, source: str, log) -> dict:
    """Score the test images once, with the weights the run kept (chosen on validation, or the last
    ones without it); say it in one line and record it in the run's test.json."""
    meta = run.load_weights(model)
    chosen = meta.get("metrics") or meta.get("progress") or {}
    probs = predict_probabilities(model, x_test)
    loss = float(-np.mean(np.log(np.maximum(probs[np.arange(len(y_test)), y_test], 1e-12))))
    record = {"split": "test", "test_accuracy": float(np.mean(probs.argmax(-1) == y_test)), "test_loss": loss,
              "test_examples": int(len(y_test)), "step": chosen.get("step"),
              "chosen_by": "val_accuracy" if "val_accuracy" in chosen else "last step", "source": source}
    write_json_atomic(run.path / TEST_FILE, record)
    log(f"test: accuracy {record['test_accuracy']:.4f} on {record['test_examples']:,} images "
        f"(the weights of step {record['step']}, {'chosen on validation' if record['chosen_by'] != 'last step' else 'the last'})")
    return record


def train_classifier(train_file: str | Path | None = None, out: str | Path = "runs/classifier", *,
                     init_from: str | Path | None = None, force: bool = False, resume: bool = False,
                     log: Callable[[str], None] = print, progress_bar: bool | None = None, **settings) -> RunDir:
    """Train a text classifier on `train_file`, a TSV/CSV file with a header (text and label columns).

    `settings` are the fields of :class:`~charseq.heads.classifier.config.ModelConfig`,
    :class:`~charseq.heads.classifier.config.TextData` and :class:`~charseq.settings.TrainConfig`.
    The texts are read as characters, or with `tokenizer="sentencepiece"` as `vocab_size`
    SentencePiece pieces learned from the training texts (each text begins a word). `init_from`: a
    language model's run, whose backbone and vocabulary the classifier starts from.

    With `strategy="multiworker"`, only the chief writes `out` (see charseq.distribute).

    `out`, `force`, `resume`, `log` and `progress_bar` are as :func:`~charseq.heads.lm.run.train_lm`
    takes them; it returns the run, a :class:`~charseq.runs.RunDir`.
    """
    return train_on_worker(out, resume, settings, lambda mine: _train_classifier(
        train_file, mine, init_from=init_from, force=force, resume=resume, log=log, progress_bar=progress_bar,
        **settings))


class _Texts(Recipe):
    """A text classifier's run: labeled texts, a validation file or a stratified split of them; its
    backbone perhaps started from a language model's (--init-from)."""

    task, model_config, data_config, recorded, file_key = TASK, ModelConfig, TextData, tuple(TEXT_RECORDED), "train"

    def __init__(self, train_file, init_from):
        super().__init__(train_file)
        self.init_from = init_from

    def given(self, config: dict) -> dict:
        return {**super().given(config), **given_data({"init_from": resolved(config.get("init_from"))},
                                                      init_from=("--init-from", resolved(self.init_from), None))}

    def as_read(self, data: dict, settings: dict) -> dict:
        named = {key: settings[key] for key in ("text_column", "label_column")
                 if settings.get(key) is not None and data.get(key) is None}
        if not named:
            return data
        given = {**data, **named}
        try:  # the columns the run read, found by their usual names, and those the names given find
            same = picked_columns(data["train"], data["text_column"], data["label_column"], data["encoding"]) == \
                picked_columns(data["train"], given["text_column"], given["label_column"], data["encoding"])
        except (CharseqError, OSError, KeyError, TypeError):
            return data  # the comparison refuses the names given, as for any other setting
        return given if same else data

    def check(self, start: Start) -> None:
        d = start.data_cfg
        check_split(self.file, d.val, d.val_fraction, "(TSV or CSV with a header)", start.settings)
        if d.tokenizer != "char" and self.init_from is not None:
            raise CharseqError("--tokenizer: a classifier started from a language model (--init-from) reads "
                               "the language model's vocabulary")
        refuse_the_other_tokenizers_options(d, start.settings)
        if self.init_from is not None and character_bound(d):
            raise CharseqError(f"{character_bound(d)}: a classifier started from a language model (--init-from) "
                               "reads the language model's vocabulary")
        if self.init_from is not None:  # a missing run, another head's, another shape: said before the data is read
            refuse_another_shape(self.init_from, RunDir.open(self.init_from).require_task("lm"), start.settings,
                                 "a classifier started from a language model")

    def read(self, start: Start) -> None:
        d, log = start.data_cfg, start.log
        train_file = self.data_file(start)
        rows = read_labeled(train_file, d.text_column, d.label_column, d.skip_bad_rows, d.encoding)
        if rows.skipped:
            log(f"skipped {counted(rows.skipped, 'bad row')} of {train_file}")
        say_quoted(rows, train_file, log)
        found = sorted(set(rows.labels))
        absent = [label for label in d.label_names or {} if label not in found]
        if absent:  # a typo would otherwise leave a label under its old name without a word
            raise CharseqError(f"--label-names names {absent[0]!r}, which is not a label of {train_file} (its "
                               f"labels: {', '.join(found[:10])}{', ...' if len(found) > 10 else ''})")
        merged = _merged_by_names(found, d.label_names or {})
        if merged:  # two classes shown as one would be trained as one, without a word
            name, labels = merged
            raise CharseqError(f"--label-names shows the labels {' and '.join(map(repr, labels))} of {train_file} "
                               f"both as {name!r}: each label needs a name of its own (to merge classes, relabel "
                               "them in the file)")
        rows = rows.renamed(d.label_names)
        texts, labels = rows.texts, rows.labels
        if len(set(labels)) < 2:
            raise CharseqError(f"{train_file} has a single class ({labels[0]}); a classifier needs at least two")
        # What the model reads of a text (cut to --max-len characters): copies by this key stay on one side.
        cut = start.model_cfg.max_len  # (of pieces a cut at as many characters is shorter: it groups more, never fewer)
        keys = [t[:cut] if cut else t for t in texts]
        split_kind = start.config["data"].get("split") if start.resume else SPLIT
        self.no_validation = "--val-fraction 0"  # why there is no validation split, if there is none
        if d.val is not None:
            val_rows = read_labeled(d.val, d.text_column, d.label_column, d.skip_bad_rows, d.encoding
                                    ).renamed(d.label_names)
            if val_rows.skipped:
                log(f"skipped {counted(val_rows.skipped, 'bad row')} of {d.val}")
            say_quoted(val_rows, d.val, log)
            val_texts, val_labels = val_rows.texts, val_rows.labels
            log_duplicates(log, len(keys) - len(set(keys)), len(keys), str(train_file))
            shared = shared_texts(keys, [t[:cut] if cut else t for t in val_texts])
            if shared:
                log(f"warning: {shared:,} of the {len(val_texts):,} rows of {d.val} ({shared / len(val_texts):.1%}) "
                    f"have a text that also occurs in {train_file}; the validation figures are flattered by them")
        else:  # a run made before the grouped split is resumed on the rows it was trained on
            split = validation_split(keys, label_ids(labels), d.val_fraction, start.train_cfg.seed,
                                     grouped=split_kind == SPLIT)
            if split_kind == SPLIT:
                log_duplicates(log, split.duplicates, len(texts), str(train_file), kept_together=bool(d.val_fraction))
                if d.val_fraction and not len(split.val):
                    self.no_validation = "no label has two distinct texts, so none can be held out without its copy in training"
            val_texts, val_labels = pick(texts, split.val), pick(labels, split.val)
            texts, labels = pick(texts, split.train), pick(labels, split.train)
        if val_texts:
            self.no_validation = None
        self.names = names = _labels_index(labels)
        if len(names) < 2:
            raise CharseqError(f"{train_file} has a single class ({names[0]}); a classifier needs at least two")
        self.lm = None
        if start.resume:
            vocab = load_vocab(start.run.path)
        elif self.init_from is not None:
            self.lm, vocab, lm_config = load_lm(self.init_from)
            for key in LM_SHAPE:
                start.settings[key] = lm_config["model"][key]
            start.model_cfg, _, start.train_cfg = split_settings(start.settings, ModelConfig, TextData, TrainConfig)
            log(f"starting from the language model in {self.init_from}: {start.model_cfg.backbone.shape()}, "
                f"its vocabulary of {vocab.size}")
        elif d.tokenizer == "sentencepiece":
            vocab = SentencePieceVocab.from_texts(texts, d.vocab_size)
        else:
            vocab = CharVocab.build(count_characters(texts), max_vocab=d.max_vocab, min_count=d.min_count)
        if self.lm is not None:
            _warn_of_unknown_characters(log, texts, vocab, train_file, self.init_from)
        self.vocab, self.texts = vocab, texts
        self.train = [vocab.encode(t) for t in texts], _encode_labels(labels, names, train_file)
        self.val = [vocab.encode(t) for t in val_texts], _encode_labels(
            val_labels, names, d.val or train_file, training=str(train_file),
            split=None if d.val is not None else d.val_fraction)
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        log(f"data: {len(texts):,} training and {len(val_texts):,} validation texts, {len(names)} classes "
            f"({shown}), vocabulary {vocab.size:,}")

    def sizing(self, start: Start):
        return size_text_classifier(len(self.texts), self.vocab.size, start.settings,
                                    pieces=self.vocab.kind == "sentencepiece", inherited=LM_SHAPE if self.lm else ())

    def fit(self, start: Start) -> None:
        m, b = start.model_cfg, start.model_cfg.backbone
        longest = min(max(map(len, self.texts)), m.max_len or 1 << 62)
        check_model_memory(b, self.vocab.size)
        check_sequence_memory(f"the longest text ({longest:,} characters)", "give --max-len to cut texts "
                              "or a smaller --batch-size", start.train_cfg.batch_size, longest, b.units,
                              b.layers * (2 if b.bidirectional else 1), b.cell)

    def save(self, path: Path) -> None:
        self.vocab.save(path)

    def record(self, start: Start) -> dict:
        d, kind = start.data_cfg, self.vocab.kind
        return {"input": "text", "labels": self.names, "init_from": str(self.init_from) if self.init_from else None,
                "data": {"train": resolved(self.file), **asdict(replace(
                    d, val=resolved(d.val), tokenizer=kind, vocab_size=d.vocab_size if kind == "sentencepiece" else None)),
                    "split": SPLIT}}

    def build(self, start: Start):
        model = build_model(flat(start.model_cfg), len(self.names), self.vocab.size, start.precision)
        if self.lm is not None:
            _copy_backbone(self.lm, model)
        return model

    def make_task(self, start: Start, model, strategy):
        m, t = start.model_cfg, start.train_cfg
        return TextTask(model, *self.train, *self.val, t.batch_size, t.seed, max_len=m.max_len,
                        char_noise=m.char_noise, vocab_size=self.vocab.size, label_smoothing=m.label_smoothing,
                        strategy=strategy)


@discard_unpublished
def _train_classifier(train_file, out, *, init_from, force, resume, log, progress_bar, **settings) -> RunDir:
    start = start_run(_Texts(train_file, init_from), out, settings, resume=resume, force=force, log=log)
    train(start.task, start.run, start.train_cfg, resume=resume, log=log, progress_bar=progress_bar)
    return start.run


def _copy_backbone(lm, classifier) -> None:
    """Copy the language model's embedding and recurrent weights into the classifier's backbone
    (forward direction; a backward direction, if any, starts fresh)."""
    source = {v.path.split("backbone/", 1)[1]: v for v in lm.backbone.weights}
    copied = 0
    for v in classifier.backbone.weights:
        key = v.path.split("backbone/", 1)[1]
        if key in source and tuple(source[key].shape) == tuple(v.shape):
            v.assign(source[key])
            copied += 1
    if copied == 0:
        raise CharseqError("the language model's backbone does not fit this classifier")


def load_classifier(path: str | Path, precision: str | None = None):
    """(model, vocab or None, config) of the trained classifier run at `path`, built in `precision`
    (float32 or mixed_bfloat16, only on a CPU with native bfloat16; None: the one it was trained in)."""
    precision = asked_precision(precision)
    run = RunDir.open(path)
    config = run.require_task(TASK)
    vocab = None if reads_images(config) else load_vocab(run.path)
    try:
        model = build_model(config["model"], len(config["labels"]), vocab.size if vocab else None,
                            precision or precision_of_run(config), image_shape=_image_shape(config))
    except (TypeError, KeyError) as e:
        raise CharseqError(f"{run.path}/config.json does not describe a classifier ({e})") from None
    run.load_weights(model)
    return model, vocab, config


def _image_shape(config: dict) -> tuple[int, int]:
    """(rows, cols) of the images an image classifier reads."""
    return tuple(config.get("image_shape", (28, 28)))  # runs before 12-01: 28x28


def _image_run(path: str | Path) -> dict:
    """The config of the image classifier in `path`, or a one-line error if it classifies texts."""
    config = RunDir.open(path).require_task(TASK)
    if not reads_images(config):
        raise CharseqError(f"{path} classifies texts, not images")
    return config


def classifies_images(path: str | Path) -> bool:
    """Whether the classifier in `path` reads images (else texts)."""
    return reads_images(RunDir.open(path).require_task(TASK))


def classify(path: str | Path, texts: list[str], precision: str | None = None,
             log: Callable[[str], None] = lambda s: None) -> list[dict]:
    """Label and class probabilities for each of `texts` (a list of str), by the text classifier run
    at `path`; characters the model does not know become unknown, and are named in one warning line
    to `log`. `precision`: the one the model computes in (None: the one it was trained in)."""
    model, vocab, config = load_classifier(path, precision)
    if vocab is None:
        raise CharseqError(f"{path} classifies images, not texts")
    if any(not t.strip() for t in texts):
        raise CharseqError("cannot classify an empty text")
    _warn_of_unknown_in(texts, vocab, log)
    probs = predict_probabilities(model, [vocab.encode(t) for t in texts], config["model"].get("max_len"))
    names = config["labels"]
    return [{"text": t, "label": names[int(p.argmax())], "probability": float(p.max()),
             "probabilities": {n: float(q) for n, q in zip(names, p)}} for t, p in zip(texts, probs)]


def _warn_of_unknown_in(texts: list[str], vocab, log) -> None:
    """One warning, to `log`, naming the characters of `texts` the vocabulary lacks: the model reads
    them all as one unknown symbol, so a text written mostly in them gets a label that means little."""
    missing = set(vocab.unknown("".join(set("".join(texts)))))  # each distinct character looked up once
    if not missing:
        return
    with_unknown = [t for t in texts if not missing.isdisjoint(t)]
    chars = list(dict.fromkeys(c for t in with_unknown for c in t if c in missing))
    shown = " ".join(map(repr, chars[:10])) + (f" and {len(chars) - 10:,} more" if len(chars) > 10 else "")
    which = ("the text has" if len(texts) == 1 else
             f"{len(with_unknown):,} of the {len(texts):,} texts {'has' if len(with_unknown) == 1 else 'have'}")
    log(f"warning: {which} characters the model never saw, read as unknown: {shown}")


def classify_images(path: str | Path, images: np.ndarray, precision: str | None = None) -> list[dict]:
    """Label and class probabilities for each of `images` [n, rows, cols], by the image classifier
    run at `path`: pixel values 0-255 as MNIST stores them (a light digit on black), of the size the
    run was trained on. Float images whose pixels all lie in [0, 1] are read as scaled (x / 255).
    `precision`: the one the model computes in (None: the one it was trained in)."""
    return _classify_images(path, _image_run(path), images, precision)


def _classify_images(path: str | Path, config: dict, images, precision: str | None) -> list[dict]:
    """`classify_images` of the image classifier in `path`, whose config.json `config` was read already."""
    rows, cols = _image_shape(config)
    images = np.asarray(images)
    if not np.issubdtype(images.dtype, np.number):
        raise CharseqError(f"images must be pixel values 0-255, numbers, not {images.dtype}")
    if images.ndim != 3 or images.shape[1:] != (rows, cols):
        one = " (one image goes in a batch: images[None])" if images.shape == (rows, cols) else ""
        raise CharseqError(f"images must be an array [n, {rows}, {cols}], not one of shape {images.shape}{one}")
    pixels = images.astype(np.float32)
    if pixels.size and not (np.all(pixels >= 0) and np.all(pixels <= 255)):  # NaN fails both
        raise CharseqError("pixel values must be from 0 to 255 (as MNIST stores them), not NaN or others")
    if images.dtype.kind == "f" and len(pixels):
        # Floats all in [0, 1] were scaled as Keras' examples scale MNIST (x / 255): read as such, as
        # classify-mnist reads such a data set and the export does, image by image.
        scaled = pixels.max(axis=(1, 2)) <= 1.0
        pixels[scaled] *= 255.0
    model, _, config = load_classifier(path, precision)
    names = config["labels"]
    return [{"label": names[int(p.argmax())], "probability": float(p.max()),
             "probabilities": {n: float(q) for n, q in zip(names, p)}}
            for p in predict_probabilities(model, pixels)]


def classify_image_files(path: str | Path, files: list[str | Path], precision: str | None = None,
                         log: Callable[[str], None] = lambda s: None) -> list[dict]:
    """`classify_images` of image files (PNG, JPEG, GIF or BMP, read in grey levels; see
    charseq.heads.classifier.image_files), each answer with its file as "image". Every file is read
    before the model is loaded, so a bad one is said at once. Pictures with a light background (a
    dark digit on paper, unlike MNIST's) are named in one warning line to `log`."""
    from charseq.heads.classifier.image_files import light_background, read_image

    config = _image_run(path)
    shape = _image_shape(config)
    images = np.stack([read_image(f, shape) for f in files]) if files else np.zeros((0, *shape), np.uint8)
    light = [str(f) for f, image in zip(files, images) if light_background(image)]
    if light:
        one = len(light) == 1
        which = light[0] if one else f"{len(light):,} of the {len(files):,} images (the first {light[0]})"
        log(f"warning: {which} {'has' if one else 'have'} a light background; a model trained on MNIST reads "
            f"light digits on black, so invert {'it' if one else 'them'} (255 minus each pixel) or the label "
            "means little")
    answers = _classify_images(path, config, images, precision)
    return [{"image": str(f), **answer} for f, answer in zip(files, answers)]


def _report(y_true: np.ndarray, probs: np.ndarray, names: list[str]) -> dict:
    pred = probs.argmax(-1)
    confusion = np.zeros((len(names), len(names)), np.int64)
    np.add.at(confusion, (y_true, pred), 1)
    per_class = {}
    for i, name in enumerate(names):
        support = int(confusion[i].sum())
        predicted = int(confusion[:, i].sum())
        tp = int(confusion[i, i])
        per_class[name] = {"examples": support, "recall": tp / support if support else None,
                           "precision": tp / predicted if predicted else None}
    return {"accuracy": float(np.mean(pred == y_true)), "examples": int(len(y_true)),
            "per_class": per_class, "confusion_matrix": confusion.tolist(), "labels": names}


def evaluate_classifier(path: str | Path, file: str | Path | None = None, text_column: str | None = None,
                        label_column: str | None = None, skip_bad_rows: bool = False, encoding: str | None = None,
                        errors: str = "strict", precision: str | None = None,
                        log: Callable[[str], None] = lambda s: None) -> dict:
    """Accuracy, per-class recall/precision and the confusion matrix on held-out data.

    Text models read `file` (TSV/CSV); image models read the test split of `file` (an .npz or
    IDX directory) or, without it, of the data they were trained on. `precision`: the one the model
    computes in (None: the one it was trained in).

    For a text model, `text_column` and `label_column` name the file's columns (None: those the
    run was trained on); a malformed row is an error naming its line, or with `skip_bad_rows`
    skipped and counted; the file is read in `encoding` (None: the one the training file was read
    in, train_classifier's), with `errors` ("strict", "replace", "ignore") for bytes that do not
    decode. `log` receives the lines the command line prints while an image model's data is read.
    `path` is the run.
    """
    model, vocab, config = load_classifier(path, precision)
    names = config["labels"]
    if vocab is None:
        if file is not None and str(file) == STDIN:
            raise CharseqError(f"{path} reads images: give their test split as FILE (an .npz or IDX directory), "
                               "not standard input")
        trained_on = config["data"]["path"]
        if file is None and trained_on is not None and not Path(trained_on).exists():
            raise CharseqError(f"{trained_on}, the data {path} was trained on, no longer exists; give its test "
                               "split as FILE (an .npz or IDX directory)")
        images: ImageSet = load_mnist(file if file is not None else trained_on, log=log)
        y = _encode_labels([str(v) for v in images.y_test.tolist()], names, images.source)
        return {**_report(y, predict_probabilities(model, images.x_test), names), "source": images.source}
    if file is None:
        raise CharseqError("evaluate needs a FILE of labeled texts for a text classifier (- reads standard input)")
    rows = read_labeled(file, text_column or config["data"]["text_column"],
                        label_column or config["data"]["label_column"], skip_bad_rows,
                        encoding or config["data"].get("encoding", "utf-8"), errors
                        ).renamed(config["data"].get("label_names"))
    y = _encode_labels(rows.labels, names, file)
    probs = predict_probabilities(model, [vocab.encode(t) for t in rows.texts], config["model"].get("max_len"))
    return {**_report(y, probs, names), **({"skipped_rows": rows.skipped} if rows.skipped else {})}
