"""Classifier runs: images read row by row (MNIST and friends) or texts read character by character.

    train_mnist(out="runs/mnist", data=None, bidirectional=True, epochs=10)
    train_classifier("train.tsv", val="dev.tsv", out="runs/sst2", init_from="runs/sst2-lm")
    model, vocab, config = load_classifier("runs/sst2")
    classify("runs/sst2", ["a gorgeous, witty, seductive movie"])

Both kinds use the shared backbone, the shared training loop and the run directory; only
the batches differ (charseq.heads.classifier.task): images are [batch, rows, pixels] through a dense input projection,
texts are id sequences right-padded per batch to their own length (batches built from texts
of similar length) with the padding masked.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from charseq.heads.classifier.config import IMAGES_RECORDED, TEXT_RECORDED, ModelConfig, ImageData, TextData
from charseq.heads.classifier.model import SequenceClassifier
from charseq.heads.classifier.inference import predict_probabilities
from charseq.heads.classifier.task import ImageTask, TextTask
from charseq.data.batching import check_split, pick, shared_texts, split_rows, validation_split
from charseq.data.labeled import read_labeled
from charseq.data.mnist import ImageSet, load_mnist
from charseq.distribute import make_strategy, scope, train_on_worker
from charseq.errors import CharseqError
from charseq.limits import check_model_memory, check_sequence_memory
from charseq.precision import resolve_precision
from charseq.runs import TEST_FILE, RunDir, discard_unpublished
from charseq.settings import config_from_dict, flat, split_settings
from charseq.heads.classifier.sizing import size_image_classifier, size_text_classifier
from charseq.files import write_json_atomic
from charseq.start import given_data, reopen_run, resolved, sized
from charseq.train import TrainConfig, train
from charseq.vocab import CharVocab, SentencePieceVocab, count_characters, load_vocab

TASK = "classifier"


def _split_settings(settings: dict, data=TextData) -> tuple[ModelConfig, TextData | ImageData, TrainConfig]:
    return split_settings(settings, ModelConfig, data, TrainConfig)


def build_model(cfg: dict, num_classes: int, vocab_size: int | None, precision: str | None = None,
                     image_shape: tuple[int, int] = (28, 28)):
    """A classifier of texts (ids below `vocab_size`) or, with `vocab_size` None, of images of
    `image_shape` (rows, columns) read row by row, with its weights created."""
    c = config_from_dict(ModelConfig, cfg, "config.json model")
    if not precision and vocab_size is not None:  # texts: float32 where the compiled kernels are faster
        precision = resolve_precision(c.backbone.precision, c.backbone.units, c.backbone.cell)
    model = SequenceClassifier(num_classes, replace(c.backbone, precision=precision or c.backbone.precision),
                               vocab_size=vocab_size, masking=vocab_size is not None, readout=c.readout)
    model(tf.zeros((1, 1), tf.int32) if vocab_size is not None else tf.zeros((1, *image_shape)))
    return model


def _labels_index(labels: list[str]) -> list[str]:
    """Label names in a stable order: numerically if they are all integers, else alphabetically."""
    distinct = set(labels)
    if all(l.lstrip("-").isdigit() for l in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def label_ids(labels: list[str]) -> list[int]:
    """Each label's place in `_labels_index` (the class ids the validation split stratifies by)."""
    index = {n: i for i, n in enumerate(_labels_index(labels))}
    return [index[label] for label in labels]


SPLIT = "grouped"  # config.json data.split: held out by split_rows (stratified, copies of a text together)


def _encode_labels(labels: list[str], names: list[str], source, training: str | None = None,
                   split: float | None = None) -> np.ndarray:
    """Class ids of `labels`; a label the model was not trained on is an error that says where it
    came from (a validation file, or the automatic split with `split` its fraction) and what to do."""
    index = {n: i for i, n in enumerate(names)}
    unseen = sorted(set(labels) - set(index))
    if unseen:
        rows = sum(1 for l in labels if l not in index)
        shown = ", ".join(unseen[:5]) + (f" and {len(unseen) - 5} more" if len(unseen) > 5 else "")
        if training is None:
            raise CharseqError(f"{source} has labels the model never saw: {shown} ({rows} rows)")
        if split is not None:
            raise CharseqError(f"the validation split held out of {training} (--val-fraction {split:g}) took every row "
                               f"of {len(unseen)} label(s): {shown} ({rows} rows), so training never sees them; "
                               "give more rows of those labels, or a validation file with --val")
        raise CharseqError(f"{source} has {len(unseen)} label(s) that {training} lacks: {shown} ({rows} rows); a "
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
    :class:`~charseq.heads.classifier.config.ImageData` and :class:`~charseq.train.TrainConfig`.
    Validation (every evaluation, early stopping, the best weights) uses images held out of the
    training images, stratified by class and seeded by `seed`: `val_fraction` of them, by default
    5,000 of 60,000 (see mnist_val_images); 0 holds none out, and the last weights are kept. The
    test images are scored once, at the end, with the weights kept: the run's test.json.

    With `strategy="multiworker"`, only the chief writes `out` (see charseq.distribute)."""
    return train_on_worker(out, resume, settings, lambda mine: _train_mnist(
        mine, data, force=force, resume=resume, log=log, progress_bar=progress_bar, **settings))


@discard_unpublished
def _train_mnist(out, data, *, force, resume, log, progress_bar, **settings) -> RunDir:
    if resume:
        run, config, train_cfg = reopen_run(out, TASK, settings, lambda config: given_data(
            config.get("data"), path=("--data", resolved(data), None)), data_config=ImageData)
        model_cfg = config_from_dict(ModelConfig, config.get("model"), f"{run.path}/config.json model")
        data = config["data"]["path"]
        val_fraction = config["data"].get("val_fraction")
    else:
        model_cfg, data_cfg, train_cfg = _split_settings(settings, ImageData)  # checked before the data loads
        val_fraction = data_cfg.val_fraction
        RunDir.check_out(out, force)  # before reading the data: a wrong --out is said at once
    strategy = make_strategy(train_cfg.strategy)  # before TensorFlow runs anything (see make_strategy)
    images = load_mnist(data, log=log)
    for note in images.notes:
        log(f"data: {images.source}: {note}")
    names = [str(i) for i in sorted(set(images.y_train.tolist()) | set(images.y_test.tolist()))]
    y_test = _encode_labels([str(v) for v in images.y_test.tolist()], names, images.source)
    if len(names) < 2:
        raise CharseqError(f"{images.source} has a single class; a classifier needs at least two")
    y_all, split = image_split(images, names, val_fraction, train_cfg.seed)
    if resume and "val_images" not in config["data"]:
        log(f"note: {run.path} was made by a charseq that validated on the test images; from here on it "
            f"validates on {mnist_val_images(len(y_all), val_fraction):,} images held out of the training images")
    x_train, y_train = images.x_train[split.train], y_all[split.train]
    x_val, y_val = images.x_train[split.val], y_all[split.val]
    log(f"data: {images.source}: {len(y_train):,} training and {len(y_val):,} validation images (held out of "
        f"the {len(y_all):,} training images, stratified by class), {len(y_test):,} test images scored once at "
        f"the end; {images.x_train.shape[1]}x{images.x_train.shape[2]} pixels")
    if not resume:
        sizing = size_image_classifier(len(y_train), settings)
        model_cfg, data_cfg, train_cfg = sized(sizing, settings, (ModelConfig, ImageData, TrainConfig), log, (
            None if len(y_val) else "--val-fraction 0" if not val_fraction else
            f"--val-fraction {val_fraction:g} holds out no image"))
        run = RunDir.create(out, force=force)
        run.write_config({"task": TASK, "input": "images", "model": flat(model_cfg), "sizing": sizing.summary,
                          "train": train_cfg.to_dict(), "labels": names, "image_shape": list(images.x_train.shape[1:]),
                          "data": {"path": resolved(data), "source": images.source, **asdict(data_cfg),
                                   "val_images": int(len(y_val))}})
    else:
        (run.path / TEST_FILE).unlink(missing_ok=True)  # it scored weights that training now goes past
    tf.keras.utils.set_random_seed(train_cfg.seed)
    with scope(strategy):
        model = build_model(flat(model_cfg), len(names), None, image_shape=images.x_train.shape[1:])
    task = ImageTask(model, x_train, y_train, x_val, y_val, train_cfg.batch_size,
                     train_cfg.seed, augment_shift=model_cfg.augment_shift,
                     augment_rotate=model_cfg.augment_rotate, augment_scale=model_cfg.augment_scale,
                     augment_elastic=model_cfg.augment_elastic, label_smoothing=model_cfg.label_smoothing,
                     strategy=strategy)
    _log_model(log, model, model_cfg, task)
    train(task, run, train_cfg, resume=resume, log=log, progress_bar=progress_bar)
    score_test(run, model, images.x_test, y_test, images.source, log)
    return run


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


def _log_model(log, model, cfg: ModelConfig, task) -> None:
    params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    log(f"model: {cfg.backbone.shape()}, "
        f"{params:,} parameters, {model.backbone.dtype_policy.name}; {task.steps_per_epoch} steps per epoch")


def train_classifier(train_file: str | Path | None = None, out: str | Path = "runs/classifier", *,
                     init_from: str | Path | None = None, force: bool = False, resume: bool = False,
                     log: Callable[[str], None] = print, progress_bar: bool | None = None, **settings) -> RunDir:
    """Train a text classifier on a TSV/CSV file with a header (text and label columns).

    `settings` are the fields of :class:`~charseq.heads.classifier.config.ModelConfig`,
    :class:`~charseq.heads.classifier.config.TextData` and :class:`~charseq.train.TrainConfig`.
    The texts are read as characters, or with `tokenizer="sentencepiece"` as `vocab_size`
    SentencePiece pieces learned from the training texts (each text begins a word).

    With `strategy="multiworker"`, only the chief writes `out` (see charseq.distribute)."""
    return train_on_worker(out, resume, settings, lambda mine: _train_classifier(
        train_file, mine, init_from=init_from, force=force, resume=resume, log=log, progress_bar=progress_bar,
        **settings))


@discard_unpublished
def _train_classifier(train_file, out, *, init_from, force, resume, log, progress_bar, **settings) -> RunDir:
    if resume:
        run, config, train_cfg = reopen_run(out, TASK, settings, lambda config: {**given_data(
            config.get("data"), train=("TRAIN_FILE", resolved(train_file), None)), **given_data(
            {"init_from": resolved(config.get("init_from"))}, init_from=("--init-from", resolved(init_from), None))},
            data_config=TextData)
        model_cfg = config_from_dict(ModelConfig, config.get("model"), f"{run.path}/config.json model")
        data_cfg = config_from_dict(TextData, {k: v for k, v in config["data"].items() if k not in TEXT_RECORDED},
                                    f"{run.path}/config.json data")
        train_file = config["data"]["train"]
    else:
        model_cfg, data_cfg, train_cfg = _split_settings(settings)  # checked before the data loads
        check_split(train_file, data_cfg.val, data_cfg.val_fraction, "(TSV or CSV with a header)")
        if data_cfg.tokenizer != "char" and init_from is not None:
            raise CharseqError("--tokenizer: a classifier started from a language model (--init-from) reads "
                               "the language model's vocabulary")
        RunDir.check_out(out, force)  # before reading the data: a wrong --out is said at once
    d = data_cfg
    val, val_fraction, text_column, label_column = d.val, d.val_fraction, d.text_column, d.label_column
    strategy = make_strategy(train_cfg.strategy)  # before TensorFlow runs anything (load_lm below does)
    rows = read_labeled(train_file, text_column, label_column, d.skip_bad_rows, d.encoding)
    if rows.skipped:
        log(f"skipped {rows.skipped} bad rows of {train_file}")
    texts, labels = rows.texts, rows.labels
    if len(set(labels)) < 2:
        raise CharseqError(f"{train_file} has a single class ({labels[0]}); a classifier needs at least two")
    # What the model reads of a text (cut to --max-len characters): copies by this key stay on one side.
    cut = model_cfg.max_len  # (of pieces a cut at as many characters is shorter: it groups more, never fewer)
    keys = [t[:cut] if cut else t for t in texts]
    split_kind = config["data"].get("split") if resume else SPLIT
    no_split = "--val-fraction 0"  # why there is no validation split, if there is none
    if val is not None:
        val_rows = read_labeled(val, text_column, label_column, d.skip_bad_rows, d.encoding)
        val_texts, val_labels = val_rows.texts, val_rows.labels
        log_duplicates(log, len(keys) - len(set(keys)), len(keys), str(train_file))
        shared = shared_texts(keys, [t[:cut] if cut else t for t in val_texts])
        if shared:
            log(f"warning: {shared:,} of the {len(val_texts):,} rows of {val} ({shared / len(val_texts):.1%}) have a "
                f"text that also occurs in {train_file}; the validation figures are flattered by them")
    else:  # a run made before the grouped split is resumed on the rows it was trained on
        split = validation_split(keys, label_ids(labels), val_fraction, train_cfg.seed, grouped=split_kind == SPLIT)
        if split_kind == SPLIT:
            log_duplicates(log, split.duplicates, len(texts), str(train_file), kept_together=bool(val_fraction))
            if val_fraction and not len(split.val):
                no_split = "no label has two distinct texts, so none can be held out without its copy in training"
        val_texts, val_labels = pick(texts, split.val), pick(labels, split.val)
        texts, labels = pick(texts, split.train), pick(labels, split.train)
    names = _labels_index(labels)
    if len(names) < 2:
        raise CharseqError(f"{train_file} has a single class ({names[0]}); a classifier needs at least two")

    if resume:
        vocab = load_vocab(run.path)
    elif init_from is not None:
        from charseq.heads.lm.run import load_lm

        lm, vocab, lm_config = load_lm(init_from)
        for key in ("cell", "layers", "units", "embedding_dim"):
            settings[key] = lm_config["model"][key]
        model_cfg, _, train_cfg = _split_settings(settings)
        log(f"starting from the language model in {init_from}: {model_cfg.backbone.shape()}, "
            f"its vocabulary of {vocab.size}")
    elif d.tokenizer == "sentencepiece":
        vocab = SentencePieceVocab.from_texts(texts, d.vocab_size)
    else:
        vocab = CharVocab.build(count_characters(texts), max_vocab=d.max_vocab, min_count=d.min_count)
    y_train = _encode_labels(labels, names, train_file)
    y_val = _encode_labels(val_labels, names, val or train_file, training=str(train_file),
                           split=None if val is not None else val_fraction)
    x_train = [vocab.encode(t) for t in texts]
    x_val = [vocab.encode(t) for t in val_texts]

    if not resume:
        sizing = size_text_classifier(len(texts), vocab.size, settings, pieces=vocab.kind == "sentencepiece")
        model_cfg, _, train_cfg = sized(sizing, settings, (ModelConfig, TextData, TrainConfig), log,
                                        None if val_texts else no_split)
        longest = min(max(map(len, texts)), model_cfg.max_len or 1 << 62)
        check_model_memory(model_cfg.backbone, vocab.size)
        check_sequence_memory(f"the longest text ({longest:,} characters)", "give --max-len to cut texts "
                              "or a smaller --batch-size", train_cfg.batch_size, longest, model_cfg.backbone.units,
                              model_cfg.backbone.layers * (2 if model_cfg.backbone.bidirectional else 1),
                              model_cfg.backbone.cell)
        run = RunDir.create(out, force=force)
        vocab.save(run.path)
        run.write_config({"task": TASK, "input": "text", "model": flat(model_cfg), "train": train_cfg.to_dict(),
                          "sizing": sizing.summary,
                          "labels": names, "init_from": str(init_from) if init_from else None,
                          "data": {"train": resolved(train_file), **asdict(replace(
                              d, val=resolved(d.val), tokenizer=vocab.kind,
                              vocab_size=d.vocab_size if vocab.kind == "sentencepiece" else None)), "split": SPLIT}})
    log(f"data: {len(texts):,} training and {len(val_texts):,} validation texts, {len(names)} classes "
        f"({', '.join(names[:10])}), vocabulary {vocab.size}")
    tf.keras.utils.set_random_seed(train_cfg.seed)
    with scope(strategy):
        model = build_model(flat(model_cfg), len(names), vocab.size)
    if init_from is not None and not resume:
        _copy_backbone(lm, model)
    task = TextTask(model, x_train, y_train, x_val, y_val, train_cfg.batch_size, train_cfg.seed,
                    max_len=model_cfg.max_len, char_noise=model_cfg.char_noise, vocab_size=vocab.size,
                    label_smoothing=model_cfg.label_smoothing, strategy=strategy)
    _log_model(log, model, model_cfg, task)
    train(task, run, train_cfg, resume=resume, log=log, progress_bar=progress_bar)
    return run


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
    """(model, vocab or None, config) of a trained classifier run."""
    run = RunDir.open(path)
    config = run.require_task(TASK)
    vocab = load_vocab(run.path) if config.get("input") == "text" else None
    try:
        model = build_model(config["model"], len(config["labels"]), vocab.size if vocab else None, precision,
                                 image_shape=tuple(config.get("image_shape", (28, 28))))  # runs before 12-01: 28x28
    except (TypeError, KeyError) as e:
        raise CharseqError(f"{run.path}/config.json does not describe a classifier ({e})") from None
    run.load_weights(model)
    return model, vocab, config


def classify(path: str | Path, texts: list[str]) -> list[dict]:
    """Label and class probabilities for each text; characters the model does not know become unknown."""
    model, vocab, config = load_classifier(path)
    if vocab is None:
        raise CharseqError(f"{path} classifies images, not texts")
    if any(not t.strip() for t in texts):
        raise CharseqError("cannot classify an empty text")
    probs = predict_probabilities(model, [vocab.encode(t) for t in texts], config["model"].get("max_len"))
    names = config["labels"]
    return [{"text": t, "label": names[int(p.argmax())], "probability": float(p.max()),
             "probabilities": {n: float(q) for n, q in zip(names, p)}} for t, p in zip(texts, probs)]


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
                        label_column: str | None = None, skip_bad_rows: bool = False, encoding: str = "utf-8",
                        errors: str = "strict", log: Callable[[str], None] = lambda s: None) -> dict:
    """Accuracy, per-class recall/precision and the confusion matrix on held-out data.

    Text models read `file` (TSV/CSV); image models read the test split of `file` (an .npz or
    IDX directory) or, without it, of the data they were trained on.
    """
    model, vocab, config = load_classifier(path)
    names = config["labels"]
    if vocab is None:
        images: ImageSet = load_mnist(file if file is not None else config["data"]["path"], log=log)
        y = _encode_labels([str(v) for v in images.y_test.tolist()], names, images.source)
        return {**_report(y, predict_probabilities(model, images.x_test), names), "source": images.source}
    if file is None:
        raise CharseqError("evaluate needs a FILE of labeled texts for a text classifier")
    rows = read_labeled(file, text_column or config["data"]["text_column"],
                        label_column or config["data"]["label_column"], skip_bad_rows, encoding, errors)
    y = _encode_labels(rows.labels, names, file)
    probs = predict_probabilities(model, [vocab.encode(t) for t in rows.texts], config["model"].get("max_len"))
    return _report(y, probs, names)
