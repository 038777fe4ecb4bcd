"""The classifier in the studio: the Classify tab and its routes.

    POST /api/classify    label, probabilities, occlusion saliency (text) or per-row probabilities (image)
    GET  /api/confusion   ?run=NAME: the confusion matrix, per-class recall and precision, and the
                          misclassified examples of the run's validation data (as `charseq evaluate` reports)

Examples and the confusion matrix come from the run's own validation data: the rows (or images)
its training held out, found again from its config.json as training split them.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from charseq import web
from charseq.heads.classifier.config import reads_images
from charseq.web import RUN, BadRequest, Field, Page, read_json

MAX_CLASSIFY_CHARS = 2_000  # occlusion saliency classifies the text once per character
MAX_MISCLASSIFIED = 48  # the misclassified validation examples shown, most confident first

TASK = "classifier"

PAGES = (Page("classify", "Classify", "classify.html", "classify.js"),)
CLASSIFY = {
    "run": RUN,
    "text": Field(str, None, low=1, high=MAX_CLASSIFY_CHARS),
    "image": Field(list, None, low=1, high=28),
}
FIELDS = {"/api/classify": CLASSIFY}


def data_files(run, config: dict) -> list:
    """What its validation data is read from: the images' .npz or IDX folder (charseq's cached
    MNIST when none was given, if it is there), or the training file and the --val file if any."""
    data = config["data"]
    if reads_images(config):
        from charseq.data.datasets import cached_path

        files = [data.get("path") or cached_path("mnist")]
    else:
        files = [data["train"], data.get("val")]
    return [f for f in files if f]


def validation(run, config: dict) -> tuple[list | object, list[int]]:
    """The run's validation inputs (texts, or images [n, 28, 28]) and their label ids, split again
    as its training split them (the same files, settings and seed)."""
    from charseq.data.batching import validation_rows
    from charseq.heads.classifier.run import SPLIT, _encode_labels, image_split, label_ids

    data, names, seed = config["data"], config["labels"], config["train"]["seed"]
    if reads_images(config):
        from charseq.data.datasets import dataset_path
        from charseq.data.mnist import load_mnist

        # A page request reads charseq's cached MNIST, and never downloads it: if the cache was
        # cleared since the run trained, the error says how to get it again.
        images = load_mnist(data.get("path") or dataset_path("mnist"), log=lambda s: None)
        y_all, split = image_split(images, names, data.get("val_fraction"), seed)
        return images.x_train[split.val], y_all[split.val].tolist()
    from charseq.data.labeled import read_labeled

    def read(path):
        rows = read_labeled(path, data["text_column"], data["label_column"], data["skip_bad_rows"], data["encoding"])
        return rows.texts, rows.renamed(data.get("label_names")).labels

    cut = config["model"].get("max_len")  # the split goes by the text as the model reads it, as in training
    texts, labels = validation_rows(data, seed, read, lambda texts, labels: (
        [t[:cut] if cut else t for t in texts], label_ids(labels)), grouped=data.get("split") == SPLIT,
        shown="its validation examples and confusion matrix")
    return texts, _encode_labels(labels, names, data.get("val") or data["train"]).tolist()


def shown(x, config: dict) -> dict:
    """One input as the page takes it: {"text": ...} or {"image": 28 rows of 0-255}."""
    return {"image": [list(map(int, row)) for row in x]} if reads_images(config) else {"text": x}


def examples(data, config: dict, n: int) -> list[dict]:
    """Up to `n` validation examples, one label after another (every class before any repeats)."""
    x, y = data
    by_label: dict[int, list[int]] = {}
    for i, label in enumerate(y):
        by_label.setdefault(label, []).append(i)
    order = [group[k] for k in range(max(map(len, by_label.values()), default=0))
             for _, group in sorted(by_label.items()) if k < len(group)]
    found, seen = [], set()
    for i in order:
        key = x[i] if isinstance(x[i], str) else None  # a text repeated in the data is offered once
        if key not in seen or key is None:
            seen.add(key)
            found.append({**shown(x[i], config), "label": config["labels"][y[i]]})
        if len(found) == n:
            break
    return found


def validation_report(loaded, data) -> dict:
    """`charseq evaluate`'s report (accuracy, per class, confusion matrix) on the validation data
    (`validation`'s), with the misclassified examples, the most confidently wrong first, each distinct
    one once with the number of `times` it is in the validation data."""
    import numpy as np

    from charseq.heads.classifier.inference import predict_probabilities
    from charseq.heads.classifier.run import _report

    model, vocab, config = loaded.parts["classifier"]
    x, y = data
    if not len(y):
        return {"examples": 0, "labels": config["labels"], "misclassified": []}
    inputs = x if vocab is None else [vocab.encode(t) for t in x]
    probs = predict_probabilities(model, inputs, config["model"].get("max_len"))
    report = _report(np.asarray(y), probs, config["labels"])
    wrong = [i for i in np.argsort(-probs.max(-1), kind="stable") if probs[i].argmax() != y[i]]
    # A text (or image) held out several times with its label is one mistake shown once, with how many times.
    distinct: dict[tuple, dict] = {}
    for i in wrong:
        key = (x[i] if vocab is not None else x[i].tobytes(), y[i])
        if key in distinct:
            distinct[key]["times"] += 1
        elif len(distinct) < MAX_MISCLASSIFIED:
            distinct[key] = {**shown(x[i], config), "label": config["labels"][y[i]],
                             "predicted": config["labels"][int(probs[i].argmax())],
                             "probability": round(float(probs[i].max()), 4), "times": 1}
    report["misclassified"] = list(distinct.values())
    report["misclassified_count"] = len(wrong)
    return report


def routes(studio) -> list[Route]:
    async def classify(request: Request):
        from charseq.heads.classifier import inspect

        p = web.fields(await read_json(request), CLASSIFY)
        if (p["text"] is None) == (p["image"] is None):
            raise BadRequest("give either text or image")
        loaded = await studio.loaded(p["run"], TASK)
        model, vocab, config = loaded.parts["classifier"]
        if p["text"] is not None:
            if vocab is None:
                raise BadRequest(f"run {p['run']!r} classifies images: send image, not text")
            return JSONResponse(await run_in_threadpool(inspect.explain_text, model, vocab, config, p["text"]))
        if vocab is not None:
            raise BadRequest(f"run {p['run']!r} classifies texts: send text, not image")
        image = p["image"]
        if not all(isinstance(row, list) and len(row) == 28 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in row) for row in image):
            raise BadRequest("image must be a list of up to 28 rows, each of 28 numbers (pixel values 0-255)")
        return JSONResponse(await run_in_threadpool(inspect.explain_image, model, config, image))

    async def confusion(request: Request):
        name = web.query(request, "run").get("run", "")
        loaded = await studio.loaded(name, TASK)
        validation = await studio.validation(await run_in_threadpool(studio.run, name))
        version, report = loaded.parts.get("validation_report", (None, None))  # once per weights and data
        if version != validation.version:
            report = await run_in_threadpool(validation_report, loaded, validation.data)
            loaded.parts["validation_report"] = (validation.version, report)
        return JSONResponse(report)

    return [Route("/api/classify", classify, methods=["POST"]), Route("/api/confusion", confusion)]
