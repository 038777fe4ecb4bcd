"""Encoder-decoder runs: train on source<TAB>target pairs, load back, translate, evaluate.

    train_seq2seq("add.tsv", out="runs/add", epochs=30)
    translate("runs/add", ["123+456"])                  # [[("579", log_prob, score)]]
    evaluate_seq2seq("runs/add", "test.tsv")            # exact match, character error rate

The pieces are the foundation's: vocabularies (with start and end symbols), two shared
backbones (charseq.heads.seq2seq.model), the shared training loop and run directory; decoding is
charseq.heads.seq2seq.inference. Batches hold pairs of similar source length, right-padded with the
padding masked; the decoder reads `<s> target` and learns to predict `target </s>`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from charseq.data.batching import check_split, pick, shared_texts, validation_split
from charseq.data.pairs import read_pairs
from charseq.heads.seq2seq.inference import Decoder, decode_all, score_outputs
from charseq.heads.seq2seq.task import Seq2SeqTask
from charseq.distribute import train_on_worker
from charseq.errors import CharseqError
from charseq.limits import check_model_memory, check_number, check_sequence_memory
from charseq.precision import asked_precision, precision_of_run
from charseq.runs import RunDir, discard_unpublished
from charseq.settings import SOURCE_UNKNOWN, checked_as, config_from_dict, flat
from charseq.sizing import counted
from charseq.heads.seq2seq.config import DECODE, RECORDED, ModelConfig, DataConfig
from charseq.heads.seq2seq.model import Seq2Seq
from charseq.heads.seq2seq.sizing import size_seq2seq
from charseq.start import Recipe, Start, resolved, start_run
from charseq.train import train
from charseq.vocab import CharVocab, count_characters, load_vocab, quoted_characters, refuse_unknown

TASK = "seq2seq"
TARGET_VOCAB_DIR = "target"  # the target vocabulary, unless it is shared with the source
SPLIT = "grouped"  # config.json data.split: held out by split_rows (the pairs of one source together)


def build_model(cfg: dict, source_size: int, target_size: int, precision: str | None = None) -> Seq2Seq:
    c = config_from_dict(ModelConfig, cfg, "config.json model")
    model = Seq2Seq(source_size, target_size, replace(c.backbone, precision=precision or c.backbone.precision),
                    attention=c.attention)
    model((tf.ones((1, 2), tf.int32), tf.ones((1, 2), tf.int32)))
    return model


def encode_sources(vocab, sources: list[str], reverse: bool) -> list[np.ndarray]:
    ids = [vocab.encode(s) for s in sources]
    return [x[::-1].copy() for x in ids] if reverse else ids


def encode_targets(vocab, targets: list[str]) -> list[np.ndarray]:
    return [vocab.encode(t) for t in targets]


def _load_vocabs(run: RunDir, shared: bool):
    source = load_vocab(run.path)
    return source, source if shared else load_vocab(run.path / TARGET_VOCAB_DIR)


def train_seq2seq(train_file: str | Path | None = None, out: str | Path = "runs/seq2seq", *, force: bool = False,
                  resume: bool = False, log: Callable[[str], None] = print, progress_bar: bool | None = None,
                  **settings) -> RunDir:
    """Train an encoder-decoder on `source<TAB>target` lines of `train_file` (`source,target` rows of
    a .csv), read by :func:`~charseq.data.pairs.read_pairs`.

    `settings` are the fields of :class:`~charseq.heads.seq2seq.config.ModelConfig`,
    :class:`~charseq.heads.seq2seq.config.DataConfig` and :class:`~charseq.settings.TrainConfig`.
    Without `val`, the last `val_fraction` of the pairs (after a seeded shuffle) is held out.
    With `strategy="multiworker"`, only the chief writes `out` (see charseq.distribute).

    `out`, `force`, `resume`, `log` and `progress_bar` are as :func:`~charseq.heads.lm.run.train_lm`
    takes them; it returns the run, a :class:`~charseq.runs.RunDir`.
    """
    return train_on_worker(out, resume, settings, lambda mine: _train_seq2seq(
        train_file, mine, force=force, resume=resume, log=log, progress_bar=progress_bar, **settings))


class _Pairs(Recipe):
    """An encoder-decoder's run: source<TAB>target pairs, a validation file or a grouped split of them."""

    task, model_config, data_config, recorded, file_key = TASK, ModelConfig, DataConfig, tuple(RECORDED), "train"

    def check(self, start: Start) -> None:
        d = start.data_cfg
        check_split(self.file, d.val, d.val_fraction, "of source<TAB>target lines", start.settings)

    def read(self, start: Start) -> None:
        d, log = start.data_cfg, start.log
        train_file = self.data_file(start)

        def read(path, header=None):
            pairs = read_pairs(path, d.skip_bad_rows, d.max_input_len, d.skip_long, d.encoding, header=header)
            if pairs.header:
                log(f"data: line 1 of {path}, {' and '.join(map(repr, pairs.header))}, names the columns: read as "
                    "a header, not a pair")
            if pairs.skipped:
                log(f"skipped {counted(pairs.skipped, 'bad line')} of {path}")
            if pairs.too_long:
                log(f"skipped {counted(pairs.too_long, 'line')} of {path} with sources over --max-input-len "
                    f"{d.max_input_len:,}")
            return pairs

        # A run resumed reads its first line as it first did (one made before headers were told apart: as a pair).
        pairs = read(train_file, start.config["data"].get("header", False) if start.resume else None)
        self.header = pairs.header is not None
        sources, targets = pairs.sources, pairs.targets
        copies = len(sources) - len(set(sources))
        self.no_validation = "--val-fraction 0"  # why there is no validation split, if there is none
        if d.val is not None:
            v = read(d.val)
            val_sources, val_targets = v.sources, v.targets
            if copies:
                log(f"data: {copies:,} of the {len(sources):,} pairs of {train_file} repeat an earlier pair's source")
            shared = shared_texts(sources, val_sources)
            if same_file(d.val, train_file):  # asked for (a phrasebook learns its pairs): said, not warned of
                log("data: --val is the training file itself: the validation figures say how well its pairs are "
                    "learnt, not how well other sources would be translated")
            elif shared:
                log(f"warning: {shared:,} of the {len(val_sources):,} pairs of {d.val} ({shared / len(val_sources):.1%}) "
                    f"have a source that also occurs in {train_file}; the validation figures are flattered by them")
        else:  # a run made before the grouped split is resumed on the pairs it was trained on
            grouped = not start.resume or start.config["data"].get("split") == SPLIT
            if grouped and d.val_fraction and len(set(sources)) < 2:
                self.no_validation = "every pair has the same source, so none can be held out without its copy in training"
            split = validation_split(sources, None, d.val_fraction, start.train_cfg.seed, grouped=grouped)
            if grouped and copies:
                log(f"data: {copies:,} of the {len(sources):,} pairs of {train_file} repeat an earlier pair's source"
                    + ("; the pairs of one source are kept on one side of the validation split" if d.val_fraction else ""))
            val_sources, val_targets = pick(sources, split.val), pick(targets, split.val)
            sources, targets = pick(sources, split.train), pick(targets, split.train)
        if val_sources:
            self.no_validation = None
        if start.resume:
            self.source_vocab, self.target_vocab = _load_vocabs(start.run, d.shared_vocab)
        elif d.shared_vocab:
            self.source_vocab = self.target_vocab = CharVocab.build(count_characters(sources + targets))
        else:
            self.source_vocab = CharVocab.build(count_characters(sources))
            self.target_vocab = CharVocab.build(count_characters(targets))
        self.train, self.val, self.val_targets = (sources, targets), (val_sources, val_targets), val_targets
        log(f"data: {len(sources):,} training and {len(val_sources):,} validation pairs; vocabularies: source "
            f"{self.source_vocab.size}, target {self.target_vocab.size}{' (shared)' if d.shared_vocab else ''}")
        _warn_of_unseen_characters(log, val_sources, val_targets, self.source_vocab, self.target_vocab)

    def sizing(self, start: Start):
        return size_seq2seq(len(self.train[0]), start.settings)

    def fit(self, start: Start) -> None:
        m, (sources, targets) = start.model_cfg, self.train
        if m.max_output_len is None:
            m.max_output_len = _max_output_len(targets)
        else:
            _warn_of_cut_targets(start.log, targets, m.max_output_len)
        longest_source, longest_target = max(map(len, sources)), max(map(len, targets))
        check_model_memory(m.backbone, max(self.source_vocab.size, self.target_vocab.size), copies=2)
        check_sequence_memory(
            f"the longest pair ({longest_source:,} source and {longest_target:,} target characters)",
            "give --max-input-len (with --skip-long to leave out longer pairs) or a smaller --batch-size",
            start.train_cfg.batch_size, longest_source + longest_target + 2, m.backbone.units, m.backbone.layers,
            m.backbone.cell, attention_length=longest_source if m.attention != "none" else 0)

    def save(self, path: Path) -> None:
        self.source_vocab.save(path)
        if self.target_vocab is not self.source_vocab:
            (path / TARGET_VOCAB_DIR).mkdir()
            self.target_vocab.save(path / TARGET_VOCAB_DIR)

    def record(self, start: Start) -> dict:
        d = start.data_cfg
        return {"data": {"train": resolved(self.file), **asdict(replace(d, val=resolved(d.val))), "split": SPLIT,
                         "header": self.header}}

    def build(self, start: Start):
        return build_model(flat(start.model_cfg), self.source_vocab.size, self.target_vocab.size, start.precision)

    def make_task(self, start: Start, model, strategy):
        m, t, rev = start.model_cfg, start.train_cfg, start.model_cfg.reverse_source
        (sources, targets), (val_sources, val_targets) = self.train, self.val
        return Seq2SeqTask(model, self.target_vocab,
                           (encode_sources(self.source_vocab, sources, rev), encode_targets(self.target_vocab, targets)),
                           (encode_sources(self.source_vocab, val_sources, rev),
                            encode_targets(self.target_vocab, val_targets)),
                           val_targets, t.batch_size, t.seed, m.max_output_len or _max_output_len(targets),
                           strategy=strategy)

    def describe(self, start: Start, model) -> str:
        return f"{start.model_cfg.backbone.shape()} encoder and decoder, attention {start.model_cfg.attention}"

    def precision(self, model) -> str:
        return model.decoder.dtype_policy.name


def _max_output_len(targets: list[str]) -> int:
    """The longest output decoding goes to unless --max-output-len says: twice the longest target, and some."""
    return 2 * max(len(t) for t in targets) + 10


def _warn_of_cut_targets(log, targets: list[str], limit: int) -> None:
    """A --max-output-len shorter than some training targets: their outputs are always cut off, so they
    never match, and exact match would not say why."""
    cut = sum(len(t) > limit for t in targets)
    if cut:
        log(f"warning: --max-output-len {limit:,} is shorter than {cut:,} of the {len(targets):,} training targets "
            f"(the longest has {max(map(len, targets)):,} characters): their outputs are cut off and can never "
            f"match; without it the limit is {_max_output_len(targets):,}")


def same_file(a, b) -> bool:
    """Whether the paths `a` and `b` name one file (standard input is no file)."""
    try:
        return "-" not in (str(a), str(b)) and os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def _warn_of_unseen_characters(log, val_sources: list[str], val_targets: list[str], source_vocab, target_vocab) -> None:
    """Validation pairs with characters the training pairs lack: such a source is read as the unknown
    symbol, and such a target can never be produced, so exact match cannot reach 1 and would not say why."""
    sides = []
    for side, texts, vocab, effect in (("sources", val_sources, source_vocab, "read as unknown"),
                                       ("targets", val_targets, target_vocab, "which no output can match")):
        unseen = [vocab.unknown(text) for text in texts]
        rows = [i for i, chars in enumerate(unseen) if chars]
        if rows:
            chars = list(dict.fromkeys(c for i in rows for c in unseen[i]))
            sides.append((set(rows), f"{len(rows):,} {side} ({quoted_characters(chars)}), {effect}"))
    if sides:
        pairs = len(set().union(*(rows for rows, _ in sides)))
        log(f"warning: {pairs:,} of the {len(val_sources):,} validation pairs have characters no training pair "
            f"has: {'; '.join(text for _, text in sides)}")


@discard_unpublished
def _train_seq2seq(train_file, out, *, force, resume, log, progress_bar, **settings) -> RunDir:
    start = start_run(_Pairs(train_file), out, settings, resume=resume, force=force, log=log)
    train(start.task, start.run, start.train_cfg, resume=resume, log=log, progress_bar=progress_bar)
    return start.run


def load_seq2seq(path: str | Path, precision: str | None = None):
    """(model, source vocab, target vocab, config) of the trained encoder-decoder run at `path`, built
    in `precision` (float32 or mixed_bfloat16, only on a CPU with native bfloat16; None: the one it
    was trained in)."""
    precision = asked_precision(precision)
    run = RunDir.open(path)
    config = run.require_task(TASK)
    try:
        source_vocab, target_vocab = _load_vocabs(run, config["data"]["shared_vocab"])
        model = build_model(config["model"], source_vocab.size, target_vocab.size,
                            precision or precision_of_run(config))
    except (TypeError, KeyError) as e:
        raise CharseqError(f"{run.path}/config.json does not describe an encoder-decoder ({e})") from None
    run.load_weights(model)
    return model, source_vocab, target_vocab, config


class Translator:
    """A loaded encoder-decoder, ready to decode many sources (load once, translate often).

    `precision` is how the decoder's recurrent products multiply: "float32", "mixed_bfloat16"
    (bfloat16 products, float32 sums, states and softmax; a CPU with AVX512-BF16 only), or None for
    the precision the model was trained in.
    """

    @checked_as("Translator")  # the public boundary: arguments checked, wrong types named
    def __init__(self, path: str | Path, precision: str | None = None):
        # `precision` (float32, mixed_bfloat16): how the decoder's recurrent products multiply, the rest
        # in float32; None: the model as trained (see charseq.compiled_step.recurrence_of).
        self.model, self.source_vocab, self.target_vocab, self.config = load_seq2seq(path, precision and "float32")
        self.decoder = Decoder(self.model, self.target_vocab, precision)

    @property
    def max_output_len(self) -> int:
        """The decoding limit when a call gives none: the run's (train-seq2seq --max-output-len)."""
        return self.config["model"]["max_output_len"]

    def encode(self, sources: list[str], unknown: str = "error") -> list[np.ndarray]:
        if unknown not in SOURCE_UNKNOWN:
            raise CharseqError("--unknown must be error or unk")
        for s in sources:
            if not s:
                raise CharseqError("cannot translate an empty source")
            if unknown == "error":
                refuse_unknown(self.source_vocab, s, f"the source {s[:40]!r}", "the model's source vocabulary",
                               "--unknown unk")
        return encode_sources(self.source_vocab, sources, self.config["model"]["reverse_source"])

    @checked_as("Translator")
    def __call__(self, sources: list[str], beam: int = DECODE.beam, n_best: int = DECODE.n_best,
                 max_len: int | None = None, length_penalty: float = DECODE.length_penalty,
                 unknown: str = DECODE.unknown) -> list[list[tuple[str, float, float]]]:
        """Decode each source, greedily or with beam search, in batches.

        Args:
            sources: the texts to translate, none empty.
            beam: hypotheses kept at every step (1: greedy).
            n_best: hypotheses returned per source, at most `beam`.
            max_len: the longest output, in characters; None: the run's (`train-seq2seq
                --max-output-len`). An output stopped there is cut off.
            length_penalty: hypotheses are ranked by log-probability / length ** `length_penalty`.
            unknown: a source character the model never saw: "error" refuses the source, "unk" reads
                it as the unknown symbol.

        Returns:
            Per source, its `n_best` hypotheses (text, log-probability, ranking score), best first.
        """
        length_penalty = check_number("length_penalty", length_penalty)
        ids = self.encode(sources, unknown)
        return decode_all(self.decoder, ids, beam, n_best,
                          self.max_output_len if max_len is None else max_len,
                          length_penalty)


def translate(path: str | Path, sources: list[str], precision: str | None = None,
              **options) -> list[list[tuple[str, float, float]]]:
    """Per source of `sources` (a list of str), its `n_best` hypotheses (text, log-probability,
    normalised score), best first, by the encoder-decoder run at `path`.

    The `options` are those of :meth:`Translator.__call__` (`beam`, `n_best`, `max_len`,
    `length_penalty`, `unknown`), `precision` that of :class:`Translator`; to translate often, load
    a :class:`Translator` once.
    """
    return Translator(path, precision)(sources, **options)


def evaluate_seq2seq(path: str | Path, file: str | Path, beam: int = DECODE.beam, skip_bad_rows: bool = False,
                     encoding: str | None = None, errors: str = "strict", precision: str | None = None) -> dict:
    """Exact match and character error rate of the best hypothesis of the run at `path` on `file`,
    `source<TAB>target` pairs, decoded greedily or with a `beam` of that many hypotheses.
    `precision`: how the decoder's recurrent products multiply, as for :class:`Translator`. A
    malformed line is an error naming it, or with `skip_bad_rows` skipped and counted; the file is
    read in `encoding` (None: the one its training pairs were read in, train_seq2seq's), with `errors`
    ("strict", "replace", "ignore") for bytes that do not decode."""
    import time

    translator = Translator(path, precision)
    if file is None:
        raise CharseqError("evaluate needs a FILE of source<TAB>target pairs for an encoder-decoder "
                           "(- reads standard input)")
    pairs = read_pairs(file, skip_bad_rows, encoding=encoding or translator.config["data"].get("encoding", "utf-8"),
                       errors=errors)
    # Read as the unknown symbol rather than refused, so one odd pair does not stop the score; counted,
    # so that a header line or a file of another task does not pass for a poor model.
    unknown = sum(bool(translator.source_vocab.unknown(s)) for s in pairs.sources)
    # A target with a character the model never outputs can never match: counted for the same reason.
    unreachable = sum(bool(translator.target_vocab.unknown(t)) for t in pairs.targets)
    start = time.perf_counter()
    hyps = translator(pairs.sources, beam=beam, unknown="unk")
    seconds = time.perf_counter() - start  # includes compiling the decoding step once
    return {**score_outputs([h[0][0] if h else "" for h in hyps], pairs.targets), "beam": beam,
            "decode_seconds": round(seconds, 3), "sequences_per_sec": round(len(hyps) / seconds, 1),
            **({"skipped_rows": pairs.skipped} if pairs.skipped else {}),
            **({"unknown_sources": unknown} if unknown else {}),
            **({"unknown_targets": unreachable} if unreachable else {})}
