"""The counter's model, task and run: lines -> run directory -> mean absolute error."""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from charseq.backbone import RecurrentBackbone
from charseq.data.batching import pad_batch
from charseq.files import read_text
from charseq.runs import RunDir, discard_unpublished
from charseq.settings import config_from_dict, flat
from charseq.start import Recipe, Start, resolved, start_run
from charseq.train import train
from charseq.vocab import CharVocab, count_characters, load_vocab

from extra_head import TASK
from extra_head.config import ModelConfig
from extra_head.sizing import size_count


class Counter(keras.Model):
    def __init__(self, vocab_size: int, backbone, **kwargs):
        super().__init__(**kwargs)
        self.backbone = RecurrentBackbone.of(backbone, vocab_size=vocab_size, masking=True, name="backbone")
        self.out = keras.layers.Dense(1, dtype="float32", name="count")

    def call(self, ids, training=False):
        _, states = self.backbone(ids, training=training)
        return self.out(states[-1][0])[:, 0]


def build_model(cfg: dict, vocab_size: int):
    c = config_from_dict(ModelConfig, cfg, "config.json model")
    model = Counter(vocab_size, c.backbone)
    model(tf.ones((1, 2), tf.int32))
    return model


def _examples(lines, vocab):
    x = pad_batch([vocab.encode(t) for t in lines])
    return x, np.array([t.count("a") for t in lines], np.float32)


class CountTask:
    monitor = ("val_loss", "min")

    def __init__(self, model, train, val, batch_size, seed):
        self.model, self.train, self.val, self.batch_size = model, train, val, batch_size
        self.rng = np.random.default_rng(seed)
        self.steps_per_epoch = max(1, len(train[1]) // batch_size)
        self.tokens_per_step = batch_size * train[0].shape[1]
        self._step = None

    def train_step(self, step, optimizer):
        if self._step is None:
            @tf.function
            def one(x, y):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(tf.square(self.model(x, training=True) - y))
                optimizer.apply(tape.gradient(loss, self.model.trainable_variables), self.model.trainable_variables)
                return loss
            self._step = one
        rows = self.rng.integers(0, len(self.train[1]), self.batch_size)
        return self._step(tf.constant(self.train[0][rows]), tf.constant(self.train[1][rows]))

    def evaluate(self):
        x, y = self.val
        return {"val_loss": float(np.mean((self.model(x).numpy() - y) ** 2))}

    def state(self):
        return {}

    def restore(self, arrays):
        pass


def _lines(path) -> list[str]:
    return [line for line in read_text(path).split("\n") if line]


class _Lines(Recipe):
    """The counter's run: lines of text, the first fifth held out for validation."""

    task, model_config, file_key = TASK, ModelConfig, "train"

    def read(self, start: Start) -> None:
        lines = _lines(self.data_file(start))
        self.vocab = load_vocab(start.run.path) if start.resume else CharVocab.build(count_characters(lines))
        split = max(1, len(lines) // 5)
        self.train, self.val = _examples(lines[split:], self.vocab), _examples(lines[:split], self.vocab)

    def sizing(self, start: Start):
        return size_count(len(self.train[1]), start.settings)

    def save(self, path: Path) -> None:
        self.vocab.save(path)

    def record(self, start: Start) -> dict:
        return {"data": {"train": resolved(self.file)}}

    def build(self, start: Start):
        return build_model(flat(start.model_cfg), self.vocab.size)

    def make_task(self, start: Start, model, strategy):
        return CountTask(model, self.train, self.val, start.train_cfg.batch_size, start.train_cfg.seed)


@discard_unpublished
def train_count(train_file, out, *, force=False, resume=False, log=print, progress_bar=None, **settings) -> RunDir:
    start = start_run(_Lines(train_file), out, settings, resume=resume, force=force, log=log)
    train(start.task, start.run, start.train_cfg, resume=resume, log=log, progress_bar=progress_bar)
    return start.run


def load_count(path):
    run = RunDir.open(path)
    config = run.require_task(TASK)
    vocab = load_vocab(run.path)
    model = build_model(config["model"], vocab.size)
    run.load_weights(model)
    return model, vocab, config


def evaluate_count(path, file, encoding: str = "utf-8", errors: str = "strict") -> dict:
    model, vocab, _ = load_count(path)
    x, y = _examples([line for line in read_text(file, encoding, errors).split("\n") if line], vocab)
    return {"mae": float(np.mean(np.abs(model(x).numpy() - y))), "examples": int(len(y))}


def load_for_studio(path):
    model, vocab, config = load_count(Path(path))
    return {"config": config, "model": model, "vocab": vocab}
