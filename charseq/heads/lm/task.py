"""The language model as a training task: windows of the corpus, the sequence loss, the state carried
from one window to the next; and the evaluation of a token array with the state carried."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from charseq.data.corpus import Corpus, WindowSampler, stream_batches
from charseq.distribute import check_batch, compile_train_step, feed, gather, num_replicas, per_replica, regularized
from charseq.errors import CharseqError
from charseq.heads.lm import MONITOR
from charseq.heads.lm.config import DataConfig
from charseq.heads.lm.model import LanguageModel
from charseq.losses import loss_report, sequence_loss
from charseq.vocab import Vocab


class LMTask:
    """The language model as a training task: windows of the corpus, loss, state carried."""

    monitor = MONITOR

    def __init__(self, model: LanguageModel, corpus: Corpus, data: DataConfig, batch_size: int, seed: int,
                 strategy: tf.distribute.Strategy | None = None, vocab: Vocab | None = None):
        check_batch(strategy, batch_size)
        self.model, self.strategy, self.vocab = model, strategy, vocab
        self.sampler = WindowSampler(corpus.train, data.seq_len, batch_size, data.windows, seed)
        # Too short a validation split (or --val-fraction 0) is no validation: training figures only.
        self.val = corpus.val if corpus.info.val_tokens > 1 else None
        self.validated = self.val is not None
        self.tokens_per_step = batch_size * data.seq_len
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.batch_size = batch_size
        self.carried = None
        self._compiled = None

    @property
    def token_name(self) -> str:  # what the log line's speed counts
        return "pieces" if self.vocab is not None and self.vocab.kind != "char" else "chars"

    def _compile(self, optimizer):
        model, replicas = self.model, num_replicas(self.strategy)

        def replica_loss(x, y, state):
            logits, new_state = model(x, initial_state=state, training=True)
            loss, _, _ = sequence_loss(y, logits)
            if replicas > 1:  # each replica's share of the global-batch mean; the shares are summed
                loss = loss / replicas
            return regularized(loss, model), (loss,), new_state

        return compile_train_step(self.strategy, model, optimizer, replica_loss)

    def _zero_state(self):
        if self.strategy is None:
            return self.model.zero_state(self.batch_size)
        rows = self.batch_size // num_replicas(self.strategy)
        return per_replica(self.strategy, lambda i: self.model.zero_state(rows))

    def train_step(self, step: int, optimizer, learning_rate: float | None = None):
        if self._compiled is None:
            self._compiled = self._compile(optimizer)
        x, y = self.sampler.batch(step)
        if self.carried is None or self.sampler.starts_new_pass(step):
            self.carried = self._zero_state()
        (loss,), self.carried = self._compiled(learning_rate, feed(self.strategy, x), feed(self.strategy, y), self.carried)
        return loss

    def evaluate(self) -> dict:
        if self.val is None:
            return {}
        report = evaluate_ids(self.model, self.val, vocab=self.vocab)
        # The loss stays per token, the one training minimises; bits are per character of the text.
        return {"val_loss": report.get("loss_nats_per_token", report["loss_nats"]),
                "val_bits_per_char": report["bits_per_char"]}

    def state(self) -> dict:
        if self.carried is None:
            return {}
        whole = (lambda s: s) if self.strategy is None else (lambda s: gather(self.strategy, s))
        return {f"state_{i}_{j}": np.asarray(tf.cast(whole(s), tf.float32))
                for i, layer in enumerate(self.carried) for j, s in enumerate(layer)}

    def restore(self, arrays: dict) -> None:
        if not arrays:
            return
        dtype = self.model.backbone.compute_dtype
        shape = [len(layer) for layer in self.model.zero_state(1)]
        if self.strategy is None:
            self.carried = [[tf.cast(arrays[f"state_{i}_{j}"], dtype) for j in range(n)] for i, n in enumerate(shape)]
            return
        rows = self.batch_size // num_replicas(self.strategy)  # the checkpoint holds the global batch's rows
        self.carried = per_replica(self.strategy, lambda r: [
            [tf.cast(arrays[f"state_{i}_{j}"][r * rows:(r + 1) * rows], dtype) for j in range(n)]
            for i, n in enumerate(shape)])


def evaluate_ids(model: LanguageModel, ids: np.ndarray, streams: int = 32, chunk: int = 256,
                 vocab: Vocab | None = None, chars_of_ids: np.ndarray | None = None) -> dict:
    """Loss of `model` on a token array read as `streams` parallel streams, state carried
    across chunks, so every token is scored with all of its stream's earlier context. Each stream
    starts from a zero state with its first token unscored: with `streams=1` the whole array is
    one context (slower, and a little lower a loss on a short text).

    The loss is per character of the text the scored tokens stand for (`chars`). Where `vocab`'s
    tokens are not single characters (SentencePiece), the report also has the number of `tokens`
    and the loss per token, `loss_nats_per_token`; without `vocab`, every token is one character.
    `chars_of_ids` (one per id, as SentencePieceVocab.encode_counted gives them) counts the characters
    of each token where the vocabulary alone cannot (an unknown piece)."""
    lengths = vocab.char_lengths() if vocab is not None else None
    counted = stream_batches(chars_of_ids, streams, chunk) if chars_of_ids is not None else None
    total, count, chars, state = 0.0, 0.0, 0.0, None
    for x, y, w in stream_batches(ids, streams, chunk):
        if state is None:
            state = model.zero_state(x.shape[0])
        t, c, state = model.scored(tf.constant(x), tf.constant(y), tf.constant(w), state)
        total, count = total + float(t), count + float(c)
        if counted is not None:  # the same windows of the counts as of the ids
            chars += float(np.sum(w * next(counted)[1]))
        else:
            chars += float(c) if lengths is None else float(np.sum(w * lengths[y]))
    if count == 0:
        raise CharseqError("there is nothing to evaluate: the text has fewer than 2 tokens")
    report = {**loss_report(total / chars), "chars": int(chars)}
    if vocab is not None and vocab.kind != "char":
        report.update(tokens=int(count), loss_nats_per_token=total / count)
    return report
