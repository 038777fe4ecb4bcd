"""A classifier as a training task: texts (bucketed by length, padding masked) or images (read row by
row). Batches are a pure function of (seed, step), so resuming replays exactly the batches an
uninterrupted run would see."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from charseq.data.batching import bucketed_batches, pad_batch
from charseq.distribute import compile_train_step, feed, pad_rows, regularized
from charseq.heads.classifier import MONITOR
from charseq.heads.classifier.inference import predict_probabilities
from charseq.vocab import SPECIALS


class ClassifierTask:
    """What texts and images share: the loss, accuracy, the training step and evaluation.
    Subclasses say how an epoch is cut into batches and how a batch's inputs are made."""

    monitor = MONITOR

    def __init__(self, model, x_train, y_train, x_val, y_val, batch_size: int, seed: int,
                 label_smoothing: float = 0.0, strategy: tf.distribute.Strategy | None = None):
        self.model, self.batch_size, self.seed, self.strategy = model, batch_size, seed, strategy
        self.label_smoothing = label_smoothing
        self.x_train, self.y_train, self.x_val, self.y_val = x_train, np.asarray(y_train), x_val, np.asarray(y_val)
        self.steps_per_epoch = math.ceil(len(self.y_train) / batch_size)
        self.validated = len(self.y_val) > 0  # no validation split: training figures only (charseq.train)
        self.tokens_per_step = int(batch_size * self.mean_length())
        self._epoch, self._batches, self._compiled = None, None, None
        self._correct, self._seen = 0.0, 0

    def mean_length(self) -> float:
        """Steps per example (for throughput figures)."""
        raise NotImplementedError

    def epoch_batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        """One epoch's batches of training indices."""
        raise NotImplementedError

    def random_inputs(self) -> bool:
        """Whether `inputs` draws at random (augmentation, noise); a task that does not say gets
        its generator at every step."""
        return True

    def inputs(self, indices, rng: np.random.Generator | None) -> np.ndarray:
        """The model's input for the training examples at `indices`; `rng` (None where
        random_inputs() is false) draws what is random in it."""
        raise NotImplementedError

    def _batch(self, step: int):
        epoch = step // self.steps_per_epoch
        if epoch != self._epoch:
            self._batches = self.epoch_batches(np.random.default_rng([self.seed, epoch]))
            self._epoch = epoch
        indices = self._batches[step % self.steps_per_epoch]
        # The step's own generator only where the inputs are drawn at random: making one costs more
        # than the rest of an MNIST-row batch.
        rng = np.random.default_rng([self.seed, step, 1]) if self.random_inputs() else None
        return self.inputs(indices, rng), self.y_train[indices]

    def _compile(self, optimizer):
        model, smoothing = self.model, self.label_smoothing

        def replica_loss(x, y, *weighting):
            logits = model(x, training=True)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            # Label smoothing: the target is 1 - s on the true class and s spread over all classes,
            # so the loss adds s times the mean of -log p over the classes to (1 - s) times the usual one.
            target = ce if not smoothing else (
                (1 - smoothing) * ce - smoothing * tf.reduce_mean(tf.nn.log_softmax(logits), -1))
            hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=y.dtype), y), tf.float32)
            if weighting:  # a replica's rows (padding weighted 0): their share of the global batch's mean
                weights, rows = weighting
                loss, trained, correct = (tf.reduce_sum(ce * weights) / rows, tf.reduce_sum(target * weights) / rows,
                                          tf.reduce_sum(hits * weights))
            else:
                loss, trained, correct = tf.reduce_mean(ce), tf.reduce_mean(target), tf.reduce_sum(hits)
            # The reported training loss stays the plain cross-entropy, comparable with val_loss.
            return regularized(trained, model), (loss, correct), None

        return compile_train_step(self.strategy, model, optimizer, replica_loss, reduce_retracing=True)

    def train_step(self, step: int, optimizer, learning_rate: float | None = None):
        if self._compiled is None:
            self._compiled = self._compile(optimizer)
        x, y = self._batch(step)
        if self.strategy is None:
            (loss, correct), _ = self._compiled(learning_rate, tf.constant(x), tf.constant(y))
        else:
            batch = pad_rows(self.strategy, x, y)
            (loss, correct), _ = self._compiled(learning_rate, *(feed(self.strategy, a) for a in batch),
                                                tf.constant(len(y), tf.float32))
        # Counted in Python: `+=` on the tensor is an eager op of its own at every step, several percent
        # of a short step such as the MNIST-row classifier's.
        self._correct += float(correct)
        self._seen += len(y)
        return loss

    def val_probabilities(self) -> np.ndarray:
        raise NotImplementedError

    def evaluate(self) -> dict:
        metrics = {}
        if self.validated:
            probs = self.val_probabilities()
            y = self.y_val
            loss = float(-np.mean(np.log(np.maximum(probs[np.arange(len(y)), y], 1e-12))))
            metrics = {"val_loss": loss, "val_accuracy": float(np.mean(probs.argmax(-1) == y))}
        if self._seen:
            metrics["train_accuracy"] = float(self._correct) / self._seen
        self._correct, self._seen = 0.0, 0
        return metrics

    def state(self) -> dict:
        # The training accuracy since the last evaluation: a run stopped between evaluations and
        # resumed reports the same train_accuracy as one that never stopped.
        return {"train_correct": np.float64(float(self._correct)), "train_seen": np.int64(self._seen)}

    def restore(self, arrays: dict) -> None:
        # A checkpoint written before these were kept: the count starts again from the resumed step.
        self._correct = float(arrays.get("train_correct", 0.0))
        self._seen = int(arrays.get("train_seen", 0))


class TextTask(ClassifierTask):
    """Texts as id arrays, batched with texts of similar length, right-padded (cut at `max_len`);
    with `char_noise`, each training text has that fraction of its characters deleted or replaced."""

    def __init__(self, model, x_train, y_train, x_val, y_val, batch_size: int, seed: int,
                 max_len: int | None = None, char_noise: float = 0.0, vocab_size: int | None = None,
                 label_smoothing: float = 0.0, strategy: tf.distribute.Strategy | None = None):
        if char_noise and vocab_size is None:
            raise ValueError("char_noise replaces characters by random ones of the vocabulary: give vocab_size")
        self.max_len, self.char_noise, self.vocab_size = max_len, char_noise, vocab_size
        self.lengths = np.array([len(x) for x in x_train])
        super().__init__(model, x_train, y_train, x_val, y_val, batch_size, seed, label_smoothing, strategy)

    def mean_length(self) -> float:
        return float(np.mean(np.minimum(self.lengths, self.max_len or 1 << 30)))

    def epoch_batches(self, rng):
        return bucketed_batches(self.lengths, self.batch_size, rng)

    def random_inputs(self) -> bool:
        return bool(self.char_noise)

    def inputs(self, indices, rng):
        texts = [self.x_train[i] for i in indices]
        if self.char_noise:
            texts = [add_char_noise(t, self.char_noise, self.vocab_size, rng) for t in texts]
        return pad_batch(texts, self.max_len)

    def val_probabilities(self) -> np.ndarray:
        return predict_probabilities(self.model, self.x_val, self.max_len)


def add_char_noise(ids: np.ndarray, rate: float, vocab_size: int, rng: np.random.Generator) -> np.ndarray:
    """`ids` with each character, at probability `rate`, deleted (half the time) or replaced by a
    random character of the vocabulary (never a reserved id); at least one character is kept.

    >>> add_char_noise(np.arange(4, 14), 0.0, 14, np.random.default_rng(0)).tolist()
    [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    """
    touched = rng.random(len(ids)) < rate
    replace = touched & (rng.random(len(ids)) < 0.5)
    out = np.where(replace, rng.integers(len(SPECIALS), max(len(SPECIALS) + 1, vocab_size), len(ids)), ids)
    keep = ~(touched & ~replace)
    return out[keep] if keep.any() else out[:1]


def shift_images(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by up to `max_shift` pixels in each direction (zeros fill the border)."""
    n, rows, cols = images.shape
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
    return np.stack([padded[i, dy[i]: dy[i] + rows, dx[i]: dx[i] + cols] for i in range(n)])


ELASTIC_GRID = 4  # control points per side of an elastic field: a wavelength of about 9 pixels on 28


def _hat_weights(points: int, size: int) -> np.ndarray:
    """[size, points]: linear interpolation from `points` evenly spaced over `size` pixels to each pixel."""
    spacing = (size - 1) / (points - 1)
    return np.maximum(0, 1 - np.abs(np.arange(size)[:, None] - np.arange(points)[None] * spacing) / spacing,
                      dtype=np.float32)


def distort_images(images: np.ndarray, max_shift: float, max_degrees: float, max_scale: float,
                   rng: np.random.Generator, elastic: float = 0.0) -> np.ndarray:
    """Each image turned by up to `max_degrees`, scaled by a factor within 1 ± `max_scale` and moved
    by up to `max_shift` pixels, about its centre, with bilinear interpolation (zeros outside): the
    small affine distortions that Simard et al. (2003) found to help on MNIST beyond shifts alone.
    With `elastic`, each pixel also moves by a smooth random field (Simard's elastic distortion):
    displacements of standard deviation `elastic` pixels at a 4x4 grid of control points,
    interpolated linearly in between (a cheap stand-in for his Gaussian-smoothed noise)."""
    n, rows, cols = images.shape
    angle = np.deg2rad(rng.uniform(-max_degrees, max_degrees, n)).astype(np.float32)
    scale = rng.uniform(1 - max_scale, 1 + max_scale, n).astype(np.float32)
    dy, dx = rng.uniform(-max_shift, max_shift, (2, n)).astype(np.float32)
    # Where each output pixel comes from: the inverse map, output -> input, about the centre.
    cy, cx = (rows - 1) / 2, (cols - 1) / 2
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    y, x = y[None] - np.float32(cy) - dy[:, None, None], x[None] - np.float32(cx) - dx[:, None, None]
    cos, sin = (np.cos(angle) / scale)[:, None, None], (np.sin(angle) / scale)[:, None, None]
    # Source coordinates in the image framed by zeros (one pixel before, two after, so that the four
    # neighbours of a clipped coordinate exist): a source outside the image reads 0.
    src_y, src_x = cos * y - sin * x + (cy + 1), sin * y + cos * x + (cx + 1)
    if elastic:  # drawn last, so that the affine draws of runs without it stay as they were
        field = rng.normal(0, elastic, (2, n, ELASTIC_GRID, ELASTIC_GRID)).astype(np.float32)
        down, across = _hat_weights(ELASTIC_GRID, rows), _hat_weights(ELASTIC_GRID, cols)
        src_y = src_y + down @ field[0] @ across.T
        src_x = src_x + down @ field[1] @ across.T
    src_y = np.clip(src_y, 0, rows + 1).astype(np.float32)
    src_x = np.clip(src_x, 0, cols + 1).astype(np.float32)
    y0, x0 = np.floor(src_y), np.floor(src_x)
    fy, fx = src_y - y0, src_x - x0
    width = cols + 3
    padded = np.pad(images.astype(np.float32), ((0, 0), (1, 2), (1, 2))).ravel()
    corner = (y0.astype(np.int64) * width + x0.astype(np.int64)
              + (np.arange(n) * (rows + 3) * width)[:, None, None])  # the top-left of the four neighbours
    top = (1 - fx) * padded[corner] + fx * padded[corner + 1]
    bottom = (1 - fx) * padded[corner + width] + fx * padded[corner + width + 1]
    return (1 - fy) * top + fy * bottom


class ImageTask(ClassifierTask):
    """Images [n, rows, cols] of pixel values 0-255, read row by row; shuffled into equal batches,
    each training image shifted by up to `augment_shift` pixels, and with `augment_rotate`,
    `augment_scale` or `augment_elastic` also turned, scaled or bent (see distort_images)."""

    def __init__(self, model, x_train, y_train, x_val, y_val, batch_size: int, seed: int,
                 augment_shift: int = 0, augment_rotate: float = 0.0, augment_scale: float = 0.0,
                 augment_elastic: float = 0.0, label_smoothing: float = 0.0,
                 strategy: tf.distribute.Strategy | None = None):
        self.augment_shift, self.augment_rotate, self.augment_scale = augment_shift, augment_rotate, augment_scale
        self.augment_elastic = augment_elastic
        super().__init__(model, x_train, y_train, x_val, y_val, batch_size, seed, label_smoothing, strategy)

    def mean_length(self) -> float:
        return self.x_train.shape[1]

    def epoch_batches(self, rng):
        return np.array_split(rng.permutation(len(self.y_train)), self.steps_per_epoch)

    def random_inputs(self) -> bool:
        return bool(self.augment_shift or self.augment_rotate or self.augment_scale or self.augment_elastic)

    def inputs(self, indices, rng):
        batch = self.x_train[indices]
        if self.augment_rotate or self.augment_scale or self.augment_elastic:
            batch = distort_images(batch, self.augment_shift, self.augment_rotate, self.augment_scale, rng,
                                   self.augment_elastic)
        elif self.augment_shift:  # whole pixels only: the runs measured before distort_images existed
            batch = shift_images(batch, self.augment_shift, rng)
        return batch.astype(np.float32) / 255.0

    def val_probabilities(self) -> np.ndarray:
        return predict_probabilities(self.model, self.x_val)
