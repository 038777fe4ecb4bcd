"""The encoder-decoder as a training task: teacher-forced batches of pairs of similar source length
(right-padded, padding masked), the masked sequence loss, and exact match by greedy decoding of a
fixed sample of the validation pairs. Batches are a pure function of (seed, step)."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from charseq.data.batching import bucketed_batches, pad_batch
from charseq.distribute import compile_train_step, feed, pad_rows, regularized
from charseq.errors import CharseqError
from charseq.heads.seq2seq import MONITOR
from charseq.heads.seq2seq.inference import Decoder, decode_all, score_outputs
from charseq.heads.seq2seq.model import Seq2Seq
from charseq.losses import sequence_loss
from charseq.vocab import BOS, EOS


class Seq2SeqTask:
    """The encoder-decoder as a training task. Batches are a pure function of (seed, step)."""

    monitor = MONITOR

    def __init__(self, model: Seq2Seq, target_vocab, train_pairs, val_pairs, val_targets: list[str],
                 batch_size: int, seed: int, max_output_len: int, eval_examples: int = 1000,
                 strategy: tf.distribute.Strategy | None = None):
        self.model, self.batch_size, self.seed, self.strategy = model, batch_size, seed, strategy
        self.x_train, self.y_train = train_pairs
        self.x_val, self.y_val = val_pairs
        self.validated = len(self.x_val) > 0  # no validation split: training figures only (charseq.train)
        # Exact match needs decoding, which costs a step per character: a fixed sample of the
        # validation pairs keeps evaluation short on big sets (evaluate scores them all).
        pick = np.random.default_rng(seed).permutation(len(self.x_val))[:eval_examples]
        self.eval_sources = [self.x_val[i] for i in pick]
        self.eval_targets = [val_targets[i] for i in pick]
        self.lengths = np.array([len(x) for x in self.x_train])
        self.steps_per_epoch = math.ceil(len(self.x_train) / batch_size)
        self.tokens_per_step = int(batch_size * (np.mean([len(y) for y in self.y_train]) + 1))
        self.decoder = Decoder(model, target_vocab)
        self.max_output_len = max_output_len
        self._epoch, self._batches, self._compiled, self._loss_fn = None, None, None, None

    @staticmethod
    def teacher_forcing(targets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(decoder input `<s> target`, expected output `target </s>`), right-padded with 0."""
        inputs = pad_batch([np.concatenate([[BOS], t]) for t in targets])
        outputs = pad_batch([np.concatenate([t, [EOS]]) for t in targets])
        return inputs, outputs

    def _batch(self, step: int):
        epoch = step // self.steps_per_epoch
        if epoch != self._epoch:
            self._batches = bucketed_batches(self.lengths, self.batch_size, np.random.default_rng([self.seed, epoch]))
            self._epoch = epoch
        idx = self._batches[step % self.steps_per_epoch]
        decoder_in, decoder_out = self.teacher_forcing([self.y_train[i] for i in idx])
        return pad_batch([self.x_train[i] for i in idx]), decoder_in, decoder_out

    def _compile(self, optimizer):
        model = self.model

        def replica_loss(source, decoder_in, decoder_out, *weighting):
            logits = model((source, decoder_in), training=True)
            mask = tf.cast(decoder_out != 0, tf.float32)
            if weighting:  # a replica's rows (padding weighted 0): their share of the global batch's mean
                weights, tokens = weighting
                loss = sequence_loss(decoder_out, logits, mask * weights[:, None])[1] / tokens
            else:
                loss, _, _ = sequence_loss(decoder_out, logits, mask)
            return regularized(loss, model), (loss,), None

        return compile_train_step(self.strategy, model, optimizer, replica_loss, reduce_retracing=True)

    def train_step(self, step: int, optimizer, learning_rate: float | None = None):
        if self._compiled is None:
            self._compiled = self._compile(optimizer)
        batch = self._batch(step)
        if self.strategy is None:
            (loss,), _ = self._compiled(learning_rate, *(tf.constant(a) for a in batch))
            return loss
        tokens = np.count_nonzero(batch[2])  # the global batch's target tokens, </s> included
        (loss,), _ = self._compiled(learning_rate, *(feed(self.strategy, a) for a in pad_rows(self.strategy, *batch)),
                                    tf.constant(tokens, tf.float32))
        return loss

    def val_loss(self) -> float:
        if self._loss_fn is None:
            self._loss_fn = tf.function(lambda s, i, o: sequence_loss(
                o, self.model((s, i), training=False), tf.cast(o != 0, tf.float32))[1:], reduce_retracing=True)
        total = count = 0.0
        order = np.argsort([len(x) for x in self.x_val], kind="stable")
        for start in range(0, len(order), 256):
            idx = order[start: start + 256]
            decoder_in, decoder_out = self.teacher_forcing([self.y_val[i] for i in idx])
            t, c = self._loss_fn(tf.constant(pad_batch([self.x_val[i] for i in idx])), tf.constant(decoder_in),
                                 tf.constant(decoder_out))
            total, count = total + float(t), count + float(c)
        return total / max(count, 1.0)

    def evaluate(self) -> dict:
        if not self.validated:
            return {}
        try:
            hyps = decode_all(self.decoder, self.eval_sources, max_len=self.max_output_len)
        except CharseqError:  # scores that are not numbers (weights diverging): nothing matches, val_loss says nan
            hyps = [[] for _ in self.eval_sources]
        scores = score_outputs([h[0][0] if h else "" for h in hyps], self.eval_targets)
        return {"val_loss": self.val_loss(), "val_exact_match": scores["exact_match"],
                "val_char_error_rate": scores["char_error_rate"]}

    def state(self) -> dict:
        return {}

    def restore(self, arrays: dict) -> None:
        pass
