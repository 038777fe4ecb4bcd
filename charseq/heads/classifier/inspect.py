"""Why a classifier decided: per-character saliency for texts, per-row evidence for images.

    explain_text(model, vocab, config, "a gorgeous, witty movie")
    # {"label", "probabilities", "tokens": [...], "saliency": [...], "method": "occlusion"}
    explain_image(model, config, image)         # image: 28 rows of 28 pixel values, 0-255
    # {"label", "probabilities", "rows": [[p per class] after 1 row, after 2 rows, ...]}

Text saliency is by **occlusion**: each character in turn is replaced by the unknown symbol
and the text classified again; a character's saliency is how much the predicted label's
probability drops without it (negative: the label gets likelier without it). It needs one
forward pass per character (batched), no gradients, and works for every cell and for
bidirectional models alike. An image is read row by row, so the probabilities after the first
r rows (r = 1..28) show how the prediction forms as the model reads.
"""

from __future__ import annotations

import numpy as np

from charseq.errors import CharseqError
from charseq.heads.classifier.inference import predict_probabilities
from charseq.heads.lm.inspect import piece

SALIENCY_METHOD = "occlusion"


def _named(names: list[str], probs: np.ndarray) -> dict:
    return {n: round(float(p), 5) for n, p in zip(names, probs)}


def explain_text(model, vocab, config: dict, text: str) -> dict:
    """Label, class probabilities and per-token occlusion saliency of one text."""
    if not text.strip():
        raise CharseqError("cannot classify an empty text")
    ids = vocab.encode(text).astype(np.int32)
    max_len = config["model"].get("max_len")
    read = len(ids) if max_len is None else min(len(ids), max_len)  # longer texts are cut when read
    variants = [ids]
    for t in range(read):
        occluded = ids.copy()
        occluded[t] = vocab.unk_id
        variants.append(occluded)
    probs = predict_probabilities(model, variants, max_len)
    names = config["labels"]
    label = int(probs[0].argmax())
    saliency = np.zeros(len(ids))
    saliency[:read] = probs[0, label] - probs[1:, label]
    return {"label": names[label], "probability": round(float(probs[0, label]), 5),
            "probabilities": _named(names, probs[0]), "method": SALIENCY_METHOD,
            "tokens": [piece(vocab, i) for i in ids], "saliency": np.round(saliency, 5).tolist(),
            "read": read}  # the tokens past the first `read` (the run's --max-len) are not read at all


def explain_image(model, config: dict, image) -> dict:
    """Label and class probabilities of one image (rows x 28 pixel values, 0-255, as MNIST
    stores them), and the class probabilities after reading each prefix of its rows."""
    x = np.asarray(image, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != 28 or not 1 <= x.shape[0] <= 28:
        raise CharseqError(f"an image must be up to 28 rows of 28 pixel values, not shape {list(x.shape)}")
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 255:
        raise CharseqError("pixel values must be between 0 and 255")
    rows = [predict_probabilities(model, x[None, :r])[0] for r in range(1, x.shape[0] + 1)]
    names = config["labels"]
    final = rows[-1]
    label = int(final.argmax())
    return {"label": names[label], "probability": round(float(final[label]), 5),
            "probabilities": _named(names, final), "labels": names,
            "rows": [[round(float(p), 5) for p in r] for r in rows]}


def load_for_studio(path) -> dict:
    """What the studio's classify view needs of a classifier run: its config and (model, vocab or None, config)."""
    from charseq.heads.classifier.run import load_classifier

    classifier = load_classifier(path)
    return {"config": classifier[2], "classifier": classifier}
