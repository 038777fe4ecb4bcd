"""The classifier's commands: classify-mnist, train-classifier and classify, thin over
charseq.heads.classifier.run; and what `charseq evaluate` takes for a classifier."""

from __future__ import annotations

import os
from functools import partial

import click

from charseq.cli_errors import one_line
from charseq.files import input_name
from charseq.options import (SIZED, blank_argument, configure_output, echo_done, given_settings, inputs,
                             json_line, library_option, model_options, train_on_file, training_options,
                             validation_options)
from charseq.heads.classifier.sizing import PIECES_EMBEDDING
from charseq.settings import INFERENCE_PRECISIONS, READOUTS, TOKENIZERS

CLASSIFIER_MODEL = "charseq.heads.classifier.config:ModelConfig"
TRAIN_CLASSIFIER = "charseq.heads.classifier.config:TextData"  # owns train-classifier's data defaults
label_smoothing_option = library_option(  # both classifiers'
    "--label-smoothing", type=float, owner=f"{CLASSIFIER_MODEL}.label_smoothing",
    help="Train towards 1 - this on the true class and this spread over all classes (0: off).")


@click.command("classify-mnist")
@click.option("--data", type=click.Path(), help="An MNIST-format set: Keras-style .npz, or a directory of the four "
              "IDX files (.gz or raw). Default: MNIST from charseq's cache, fetched once (charseq data get mnist).")
@click.option("--val-fraction", type=float, help="The fraction of the training images (stratified by class, "
              "shuffled by --seed) held out for validation; 0: none, the last weights are kept. [default: 5,000 of "
              "60,000; of a smaller set the same share but at least 1,000 images, at most a fifth]")
@model_options(CLASSIFIER_MODEL)
@click.option("--bidirectional/--no-bidirectional", default=None,
              help=f"Also read the rows bottom to top, or not. {SIZED}")
@click.option("--augment-shift", type=int, help=f"Shift training images by up to this many pixels (augmentation; "
              f"0: off). {SIZED}")
@click.option("--augment-rotate", type=float, help="Also turn training images by up to this many degrees (bilinear; "
              f"augmentation; 0: off). {SIZED}")
@click.option("--augment-scale", type=float, help="Also scale training images by a factor within 1 ± this "
              f"(bilinear; augmentation; 0: off). {SIZED}")
@library_option("--augment-elastic", type=float, owner=f"{CLASSIFIER_MODEL}.augment_elastic",
                help="Also bend training images by a smooth random field of this many pixels (standard deviation; "
                "Simard's elastic distortion; augmentation).")
@library_option("--readout", type=click.Choice(READOUTS), owner=f"{CLASSIFIER_MODEL}.readout",
                help="What the classifier reads: the final state, the mean or max of the outputs over the rows, "
                "an attention-weighted mean, or final+mean+max.")
@label_smoothing_option
@training_options(CLASSIFIER_MODEL)
def classify_mnist_command(data, out, force, resume, **settings):
    """Classify MNIST digits read row by row: 28 steps of 28 pixels.

    Holds a validation split out of the training images and prints train and validation accuracy
    after every epoch (default: until validation stops improving, at most 20 epochs, reading the
    rows both ways from training images shifted, turned and scaled a little). At the end the test
    images are scored once, with the weights validation chose: one "test:" line, recorded in
    RUN/test.json. The run directory defaults to runs/mnist.
    """
    configure_output()
    from charseq.heads.classifier.run import train_mnist

    settings = given_settings(settings, resume, out)
    out = out or os.path.join("runs", "mnist")
    train_mnist(out, data, force=force, resume=resume, log=click.echo, **settings)
    echo_done(out)


def label_names(value: str | None) -> dict[str, str] | None:
    """--label-names 0=negative,1=positive as {"0": "negative", "1": "positive"}."""
    if value is None:
        return None
    pairs = [item.partition("=") for item in value.split(",")]
    bad = next((label for label, sep, _ in pairs if not sep), None)
    if bad is not None:  # an empty label or name is the library's to refuse, as from Python
        raise click.BadParameter(f"{bad!r} is not LABEL=NAME; give 0=negative,1=positive")
    names = {label.strip(): name.strip() for label, _, name in pairs}
    if len(names) < len(pairs):
        raise click.BadParameter("a label is named twice")
    return names


@click.command("train-classifier")
@click.argument("train_file", required=False, type=click.Path())
@validation_options(TRAIN_CLASSIFIER, "file (same format)", "rows held out for validation, stratified by label and "
                    "shuffled by --seed, copies of a text kept on one side")
@click.option("--text-column", help="Column with the texts [default: text, sentence, content or review].")
@click.option("--label-column", help="Column with the labels [default: label].")
@click.option("--skip-bad-rows", is_flag=True, help="Skip (and count) rows with the wrong number of fields or no text.")
@click.option("--label-names", callback=lambda ctx, param, value: label_names(value), metavar="LABEL=NAME,...",
              help="Show labels under other names, in every file the run reads: 0=negative,1=positive for SST-2's "
              "0 and 1 [default: the labels as written].")
@library_option("--tokenizer", type=click.Choice(TOKENIZERS), owner=f"{TRAIN_CLASSIFIER}.tokenizer",
                help="Read the texts as characters, or as SentencePiece pieces learned from the training texts.")
@library_option("--vocab-size", type=int, owner=f"{TRAIN_CLASSIFIER}.vocab_size",
                help="SentencePiece vocabulary size (at most: few texts get fewer).")
@click.option("--max-len", type=int, help="Cut texts to this many characters (or pieces) [default: no limit].")
@click.option("--max-vocab", type=int, help="Keep at most this many characters (rest map to unknown) [default: all].")
@library_option("--min-count", type=int, owner=f"{TRAIN_CLASSIFIER}.min_count",
                help="Characters seen fewer times map to unknown.")
@click.option("--init-from", type=click.Path(), help="Start from the backbone and vocabulary of a train-lm run.")
@library_option("--encoding", owner=f"{TRAIN_CLASSIFIER}.encoding", help="Text encoding of the files.")
@model_options(CLASSIFIER_MODEL, embedding_note=f" With --tokenizer sentencepiece: {PIECES_EMBEDDING}.")
@click.option("--bidirectional", is_flag=True, help="Also read each text backwards.")
@click.option("--readout", type=click.Choice(READOUTS),
              help="What the classifier reads: the final state, the mean or max of the outputs over the text, "
              f"an attention-weighted mean, or final+mean+max. {SIZED}")
@click.option("--char-noise", type=float,
              help="Augmentation: delete or replace this fraction of each training text's characters (or pieces) "
              f"at random. {SIZED}")
@label_smoothing_option
@training_options(CLASSIFIER_MODEL)
def train_classifier_command(train_file, out, force, resume, **settings):
    """Train a text classifier on TRAIN_FILE: a TSV or CSV with a header, one text and label per row.

    Any number of classes; label names are kept. Default: sized to the data, trained until validation
    stops improving; run directory runs/<file name>.
    """
    configure_output()
    from charseq.heads.classifier.run import train_classifier

    train_on_file(train_classifier, train_file, out, force, resume, settings)


@click.command("classify")
@click.option("--model", "-m", "model_dir", required=True, type=click.Path(), help="Run directory of a classifier.")
@click.argument("texts", nargs=-1, metavar="[TEXT | IMAGE_FILE]...")
@click.option("--input", "input_file", type=click.Path(),
              help="A file with one text (or image file name) per line; - reads standard input.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per text or image.")
@click.option("--precision", type=click.Choice(INFERENCE_PRECISIONS),
              help="What the model computes in: float32, or mixed_bfloat16 (bfloat16 products with float32 sums; "
              "needs a CPU with AVX512-BF16), whose probabilities may differ a little from float32's. "
              "[default: the precision the model was trained in]")
def classify_command(model_dir, texts, input_file, as_json, precision):
    """Print the label and its probability for each TEXT (or each line of --input).

    An image classifier (classify-mnist) takes an IMAGE_FILE for each: PNG, JPEG, GIF or BMP, of the
    size it was trained on (28x28 for MNIST), read in grey levels as MNIST stores them, a light
    digit on black.
    """
    configure_output()
    from charseq.heads.classifier.run import classifies_images, classify, classify_image_files
    from charseq.errors import CharseqError

    texts, lines = inputs(texts, input_file)
    images = classifies_images(model_dir)
    # An image classifier reads files: each argument (or line) is one's name. Warnings go to stderr.
    warn = partial(click.echo, err=True)
    what, blank_what, key, answer = (("image files", "an empty file name (IMAGE_FILE", "image",
                                      partial(classify_image_files, log=warn)) if images else
                                     ("texts", "an empty text (TEXT", "text", partial(classify, log=warn)))
    if not texts:
        raise CharseqError(f"nothing to classify: {input_name(input_file)} is empty" if input_file is not None
                           else f"nothing to classify: give {what} or --input FILE")
    blank = blank_argument(texts, lines, lambda text: not text.strip())
    if blank:
        raise CharseqError(f"cannot classify {blank_what} argument {blank})")
    given = [i for i, t in enumerate(texts) if t.strip()]  # a blank line gets a blank output line
    results = dict(zip(given, answer(model_dir, [texts[i] for i in given], precision) if given else []))
    for i, (text, line) in enumerate(zip(texts, lines)):
        result = results.get(i, {key: text, "label": None})
        if as_json:
            click.echo(json_line({**({"line": line} if line else {}), **result}))
        elif i in results:
            click.echo(f"{result['label']}\t{result['probability']:.3f}\t{one_line(result[key])}")
        else:
            click.echo("")


COMMANDS = (classify_mnist_command, train_classifier_command, classify_command)
EVALUATE_OPTIONS = (
    click.Option(["--text-column"], help="Text classifiers: the column with the texts [default: the training file's]."),
    click.Option(["--label-column"], help="Text classifiers: the column with the labels [default: the training "
                 "file's]."),
)
EVALUATE_HELP = ("Classifiers: accuracy, per-class recall and precision and the confusion matrix, of a text "
                 "classifier on a TSV/CSV file, of an image classifier on the test split of FILE (.npz or IDX "
                 "directory) or of the data the model was trained on.")
