"""A classifier's SavedModel signatures: `classify` (texts, or images [batch, rows, cols] of pixel
values 0-255 -> label, probability, probabilities) and `labels` (the class names)."""

from __future__ import annotations

import tensorflow as tf

from charseq.export_ops import Chars, assert_not_empty, checked_shape, padded


def predictions(probs, names):
    """What `classify` answers: the best label, its probability, and every class's."""
    best = tf.argmax(probs, axis=-1, output_type=tf.int32)
    return {"label": tf.gather(names, best), "probability": tf.reduce_max(probs, axis=-1), "probabilities": probs}


class ClassifierExport(tf.Module):
    """What text and image classifiers export alike: `labels` (no input -> the class names, in the
    order of `probabilities`) beside their own `classify`."""

    def __init__(self, model, labels: list[str]):
        super().__init__()
        self.model = model
        self.label_names = tf.constant(labels, tf.string)

    @tf.function(input_signature=[])
    def labels(self):
        return {"labels": self.label_names}

    def signatures(self) -> dict:
        return {"classify": self.classify, "labels": self.labels}


class TextClassifierExport(ClassifierExport):
    """`classify`: texts [batch] -> label [batch], probability [batch], probabilities [batch, classes]."""

    def __init__(self, model, vocab, labels: list[str], max_len: int | None):
        super().__init__(model, labels)
        self.chars = Chars(vocab)
        self._max_len = max_len

    @tf.function(input_signature=[tf.TensorSpec(None, tf.string, name="text")])  # [n]: see checked_shape
    def classify(self, text):
        text = checked_shape(text, [None], "classify: text must be a batch of strings [n], not a tensor of shape")
        with tf.control_dependencies([assert_not_empty(text, "classify: a text is empty (or only spaces)")]):
            ids = padded(self.chars.encode(text), self._max_len)
        return predictions(tf.nn.softmax(self.model(ids, training=False)), self.label_names)


class ImageClassifierExport(ClassifierExport):
    """`classify`: images [batch, rows, cols] of pixel values 0-255 (as MNIST stores them, or scaled
    to [0, 1]) -> label, probability, probabilities."""

    def __init__(self, model, labels: list[str], shape: tuple[int, int]):
        super().__init__(model, labels)
        self.rows, self.cols = shape
        # images [n, rows, cols], declared of any shape so that the graph checks it (charseq.export_ops.checked_shape)
        self.classify = tf.function(self._classify, input_signature=[tf.TensorSpec(None, tf.float32, name="images")])

    def _classify(self, images):
        # Out of shape or range is an InvalidArgumentError naming the input, never a silent answer (NaN
        # probabilities, or a confident label for pixels the model never saw). The rows are checked too:
        # the model would read any number of them, one a step, but was trained on its images' own. The
        # size is read at any rank (0 for what is missing), so that the rank is the first thing said.
        pixels, size = tf.reshape(images, [-1]), tf.concat([[0, 0], tf.shape(images)], 0)[-2:]
        images = checked_shape(
            images, [None, self.rows, self.cols],
            "classify: images must be a batch [n, rows, columns], not a tensor of shape",
            (tf.reduce_all(tf.equal(size, [self.rows, self.cols])),
             [f"classify: images must be {self.rows}x{self.cols} pixels (rows x columns), as the model was "
              "trained on, not", size]),
            (tf.reduce_all((pixels >= 0.0) & (pixels <= 255.0)),
             ["classify: pixel values must be from 0 to 255 (as MNIST stores them), not NaN or others; the smallest "
              "and largest given:", tf.reduce_min(pixels), tf.reduce_max(pixels)]))
        # An image whose pixels all lie in [0, 1] was scaled as Keras' examples scale MNIST (x / 255):
        # read as such, as classify-mnist reads such a data set, one image at a time (a batch may mix them).
        scaled = tf.reduce_max(images, axis=[1, 2], keepdims=True) <= 1.0
        images = tf.where(scaled, images, images / 255.0)
        return predictions(tf.nn.softmax(self.model(images, training=False)), self.label_names)


def build_export(model_dir) -> tuple[tf.Module, dict]:
    """The exportable module of a classifier run, and what to record about it."""
    from charseq.heads.classifier.run import _image_shape, load_classifier

    model, vocab, config = load_classifier(model_dir, "float32")  # see charseq.export
    labels = [str(name) for name in config["labels"]]
    if vocab is None:
        shape = _image_shape(config)
        return (ImageClassifierExport(model, labels, shape),
                {"input": "images", "image_shape": list(shape), "labels": labels})
    return (TextClassifierExport(model, vocab, labels, config["model"].get("max_len")),
            {"input": "text", "labels": labels})
