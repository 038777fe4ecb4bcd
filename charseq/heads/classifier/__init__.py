"""The classifier head: one label per sequence, read from the shared backbone's final state (or a pooling).

    model.py     SequenceClassifier: backbone, readout, softmax over the classes
    task.py      TextTask, ImageTask: batches (bucketed texts / images row by row), loss, accuracy
    inference.py predict_probabilities: class probabilities of texts or images, in batches
    image_files.py  image files (PNG, JPEG, ...) read as the grey pixels `classify` takes
    run.py       train_classifier, train_mnist, load_classifier, classify, classify_images, evaluate_classifier
    inspect.py   explain_text, explain_image: what each character or row contributes (the studio)
    export.py    the `classify` and `labels` signatures of a SavedModel
    studio.py    the Classify tab and its routes (page/: its HTML and JS)
"""

from charseq.heads import Head, lazy
from charseq.heads.classifier.sizing import size_image_classifier, size_text_classifier
from charseq.heads.classifier.config import (IMAGES_RECORDED, TEXT_RECORDED, ImageData, ModelConfig, TextData,
                                             reads_images)
from charseq.settings import MAYBE_TEXT, TEXT, json_fields
from charseq.sizing import counted

MONITOR = ("val_accuracy", "max")


MAX_CONFUSION_SHOWN = 20  # classes; beyond that the matrix is too wide for a terminal (--json has it)


def summary(report: dict) -> str:
    """`charseq evaluate`'s lines for a classifier's report: accuracy, per-class recall and precision,
    and the confusion matrix."""
    split = "test " if "source" in report else ""  # images: the test split of the set (charseq.data.mnist)

    def rate(value):
        return f"{value:.4f}" if value is not None else "-"
    skipped = f" ({counted(report['skipped_rows'], 'bad row')} skipped)" if report.get("skipped_rows") else ""
    lines = [f"{split}accuracy {report['accuracy']:.4f} on {counted(report['examples'], 'example')}{skipped}"]
    lines += [f"  {name}: recall {rate(c['recall'])}, precision {rate(c.get('precision'))} "
              f"({counted(c['examples'], 'example')})"
              for name, c in report["per_class"].items()]
    return "\n".join(lines + confusion_lines(report.get("labels", []), report.get("confusion_matrix", [])))


def confusion_lines(names: list[str], matrix: list[list[int]]) -> list[str]:
    """The confusion matrix as a table: a row per true label, a column per predicted one."""
    if not names or len(names) > MAX_CONFUSION_SHOWN:
        return [f"(--json has the {len(names)}x{len(names)} confusion matrix)"] if names else []
    labels = [name if len(name) <= 12 else name[:11] + "…" for name in names]
    corner = "true \\ predicted"
    first = max(len(corner), *map(len, labels))
    width = max(*map(len, labels), *(len(str(n)) for row in matrix for n in row))
    rows = [f"  {corner:<{first}}  " + " ".join(f"{label:>{width}}" for label in labels)]
    rows += [f"  {label:<{first}}  " + " ".join(f"{n:>{width}}" for n in row) for label, row in zip(labels, matrix)]
    return ["confusion matrix:", *rows]


def evaluate(path, file, *, log=None, **options) -> dict:
    from charseq.heads.classifier.run import evaluate_classifier

    return evaluate_classifier(path, file, **options, **({"log": log} if log else {}))


def kind(config: dict) -> str:
    return "image classifier" if reads_images(config) else "text classifier"


HEAD = Head(
    task="classifier", cli="charseq.heads.classifier.cli", title="a classifier", monitor=MONITOR,
    train_commands={"classify-mnist": lazy("charseq.heads.classifier.run", "train_mnist"),
                    "train-classifier": lazy("charseq.heads.classifier.run", "train_classifier")},
    evaluate=evaluate, summary=summary,
    evaluate_options=("encoding", "errors", "text_column", "label_column", "skip_bad_rows", "precision"),
    export=lazy("charseq.heads.classifier.export", "build_export"),
    load_for_studio=lazy("charseq.heads.classifier.inspect", "load_for_studio"), studio="charseq.heads.classifier.studio",
    plot_panels=(("loss (nats/example)", ("train_loss", "val_loss")), ("accuracy", ("train_accuracy", "val_accuracy"))),
    kind=kind,
    config_keys={"input": (TEXT, True), "labels": ((list,), True), "data": ((dict,), True),
                 "init_from": (MAYBE_TEXT, False), "image_shape": ((list,), False)},
    data_keys={"images": {**IMAGES_RECORDED, **json_fields(ImageData)},
               "text": {**TEXT_RECORDED, **json_fields(TextData)}},
    sizing={"classify-mnist": size_image_classifier, "train-classifier": size_text_classifier},
    settings={"classify-mnist": (ModelConfig, ImageData), "train-classifier": (ModelConfig, TextData)},
)
