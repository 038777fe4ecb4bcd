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
from charseq.heads.classifier.augment import distort, draw_distortions, draw_shifts
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
        """Whether `batch_arrays` draws at random (augmentation, noise); a task that does not say gets
        its generator at every step."""
        return True

    def batch_arrays(self, indices, rng: np.random.Generator | None) -> tuple[np.ndarray, ...]:
        """What the compiled step is fed for the training examples at `indices` (arrays of one row
        per example); `rng` (None where random_inputs() is false) draws what is random in it."""
        raise NotImplementedError

    def step_inputs(self, arrays: tuple) -> tuple:
        """Inside the compiled step: the model's input and the labels, from what `batch_arrays` gave."""
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
        return self.batch_arrays(indices, rng)

    def _compile(self, optimizer):
        model, smoothing = self.model, self.label_smoothing

        def replica_loss(arrays, *weighting):
            x, y = self.step_inputs(arrays)
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
        arrays = self._batch(step)
        rows = len(arrays[0])
        if self.strategy is None:
            (loss, correct), _ = self._compiled(learning_rate, tuple(tf.constant(a) for a in arrays))
        else:
            *arrays, weights = pad_rows(self.strategy, *arrays)
            (loss, correct), _ = self._compiled(learning_rate, tuple(feed(self.strategy, a) for a in arrays),
                                                feed(self.strategy, weights), tf.constant(rows, tf.float32))
        # Counted in Python: `+=` on the tensor is an eager op of its own at every step, several percent
        # of a short step such as the MNIST-row classifier's.
        self._correct += float(correct)
        self._seen += rows
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

    def batch_arrays(self, indices, rng):
        texts = [self.x_train[i] for i in indices]
        if self.char_noise:
            texts = [add_char_noise(t, self.char_noise, self.vocab_size, rng) for t in texts]
        return pad_batch(texts, self.max_len), self.y_train[indices]

    def step_inputs(self, arrays):
        return arrays  # the padded texts and their labels

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


class ImageTask(ClassifierTask):
    """Images [n, rows, cols] of pixel values 0-255, read row by row; shuffled into equal batches,
    each training image shifted by up to `augment_shift` pixels, and with `augment_rotate`,
    `augment_scale` or `augment_elastic` also turned, scaled or bent (see augment.py)."""

    def __init__(self, model, x_train, y_train, x_val, y_val, batch_size: int, seed: int,
                 augment_shift: int = 0, augment_rotate: float = 0.0, augment_scale: float = 0.0,
                 augment_elastic: float = 0.0, label_smoothing: float = 0.0,
                 strategy: tf.distribute.Strategy | None = None):
        self.augment_shift, self.augment_rotate, self.augment_scale = augment_shift, augment_rotate, augment_scale
        self.augment_elastic = augment_elastic
        self._resident = None  # the training images and labels as tensors, made with the compiled step
        super().__init__(model, x_train, y_train, x_val, y_val, batch_size, seed, label_smoothing, strategy)

    token_name = "rows"  # of pixels: a step of the reader (the log line's rows/s)

    def mean_length(self) -> float:
        return self.x_train.shape[1]

    def epoch_batches(self, rng):
        return np.array_split(rng.permutation(len(self.y_train)), self.steps_per_epoch)

    def warped(self) -> bool:
        """Whether training images are turned, scaled or bent, not only shifted by whole pixels."""
        return bool(self.augment_rotate or self.augment_scale or self.augment_elastic)

    def random_inputs(self) -> bool:
        return self.warped() or bool(self.augment_shift)

    def batch_arrays(self, indices, rng):
        # The images' indices and their distortions: the images themselves are read inside the step,
        # from the training set held as one tensor (a batch made in numpy and fed as a tensor of its
        # own costs a few percent of the MNIST-row step).
        if self.warped():
            distortions, field = draw_distortions(len(indices), self.augment_shift, self.augment_rotate,
                                                  self.augment_scale, rng, self.augment_elastic)
            return (indices, distortions) if field is None else (indices, distortions, field)
        if self.augment_shift:  # whole pixels only: the runs measured before the other distortions existed
            return indices, draw_shifts(len(indices), self.augment_shift, rng)
        return (indices,)

    def _compile(self, optimizer):
        self._resident = tf.constant(self.x_train), tf.constant(self.y_train)  # eager: read, not copied, by the step
        return super()._compile(optimizer)

    def step_inputs(self, arrays):
        images, labels = self._resident
        indices, *distortion = arrays
        batch = tf.gather(images, indices)
        pixels = distort(batch, *distortion) if distortion else tf.cast(batch, tf.float32)
        return pixels / 255.0, tf.gather(labels, indices)

    def val_probabilities(self) -> np.ndarray:
        return predict_probabilities(self.model, self.x_val)
