"""Language-model runs: prepare a corpus, train, load back, evaluate.

This is the glue between the pieces (corpus → vocabulary → model → training loop → run
directory) that `charseq train-lm`, `generate` and `evaluate` call, and that Python users call
directly::

    run = train_lm(dataset_path("poems"), out="runs/poems", time_budget=2)   # charseq.dataset_path
    model, vocab, config = load_lm("runs/poems")
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from charseq.data.corpus import Corpus, corpus_files, prepare_corpus
from charseq.distribute import train_on_worker
from charseq.errors import CharseqError, flag
from charseq.files import check_readable_file, refuse_an_empty_name
from charseq.heads.lm.config import SAMPLE_LENGTH, DataConfig, ModelConfig
from charseq.heads.lm.model import LanguageModel
from charseq.heads.lm.task import LMTask, evaluate_ids
from charseq.limits import check_model_memory, check_sequence_memory
from charseq.precision import asked_precision, precision_of_run, resolve_precision
from charseq.runs import RunDir, discard_unpublished
from charseq.settings import TrainConfig, config_from_dict, flat, split_settings
from charseq.sizing import counted
from charseq.heads.lm.sizing import size_lm
from charseq.start import Recipe, Start, given_data, resolved, start_run, without_validation
from charseq.train import train
from charseq.vocab import load_vocab, refuse_the_other_tokenizers_options

TASK = "lm"
LM_SHAPE = ("cell", "layers", "units", "embedding_dim")  # what a run started from a language model takes of it


def refuse_another_shape(init_from, lm_config: dict, settings: dict, title: str) -> None:
    """A model started from the language model in `init_from` (--init-from) has its weights, so its
    shape too: a different one given is refused rather than quietly replaced."""
    clash = [f"{flag(key)} {settings[key]} (the language model's: {lm_config['model'][key]})"
             for key in LM_SHAPE if settings.get(key) is not None and settings[key] != lm_config["model"][key]]
    if clash:
        raise CharseqError(f"--init-from {init_from}: {title} has its shape, "
                           f"and these settings differ from it: {', '.join(clash)}; leave them out, or train "
                           "without --init-from")


def build_model(model_cfg: dict, vocab_size: int, precision: str | None = None) -> LanguageModel:
    """A language model from the `model` section of config.json, with its weights created."""
    cfg = config_from_dict(ModelConfig, model_cfg, "config.json model")
    b = cfg.backbone  # precision auto: bfloat16 on a CPU with native bf16 (charseq.precision)
    model = LanguageModel(vocab_size, replace(b, precision=precision or resolve_precision(b.precision, b.units, b.cell)))
    model(tf.zeros((1, 1), tf.int32))
    return model


def _check_windows(info, data: DataConfig) -> None:
    if info.train_tokens < data.seq_len + 1:
        raise CharseqError(
            f"{info.source} has {info.train_tokens:,} training tokens, fewer than one window of --seq-len "
            f"{data.seq_len} + 1; use a longer corpus or a smaller --seq-len")


def train_lm(corpus: str | Path | None = None, out: str | Path = "runs/lm", *, text: str | None = None,
             init_from: str | Path | None = None, force: bool = False, resume: bool = False,
             log: Callable[[str], None] = print, progress_bar: bool | None = None, sample_length: int = SAMPLE_LENGTH,
             **settings) -> RunDir:
    """Train a language model on the text file `corpus` (or a sample string given as `text`).

    `settings` are the fields of :class:`~charseq.heads.lm.config.ModelConfig`,
    :class:`~charseq.heads.lm.config.DataConfig` and :class:`~charseq.settings.TrainConfig`; those not
    given are sized to the corpus by :func:`charseq.heads.lm.sizing.size_lm` (with no stopping rule:
    early stopping). With `resume`, the run in `out` continues from its last checkpoint with its saved
    settings (only the stopping settings and the strategy may be changed). `text` is a sample string
    to train on instead of a file; at every evaluation `sample_length` characters are sampled from the
    model and logged (0: none). `init_from`: a language model's run to fine-tune on this corpus: the
    new run starts from its weights, with its vocabulary and shape (characters it lacks read as
    unknown); the training settings are sized to the new corpus. With `strategy="multiworker"`, only
    the chief writes `out` (see charseq.distribute).

    The run goes to `out`: an existing run there is replaced only with `force` (and only one charseq
    made), or continued with `resume`. Every line the command line would print goes to `log` (`print`;
    `lambda line: None` trains without a word), and `progress_bar` draws a bar (None: where standard
    error is a terminal). Returns the run, a :class:`~charseq.runs.RunDir`, which the load, evaluate
    and export functions take as its path.
    """
    return train_on_worker(out, resume, settings, lambda mine: _train_lm(
        corpus, mine, text=text, init_from=init_from, force=force, resume=resume, log=log, progress_bar=progress_bar,
        sample_length=sample_length, **settings))


def _recorded_corpus(config: dict) -> tuple[str | None, str | None]:
    """(the corpus file, the --text's SHA-256) a run was trained on, as far as its config says."""
    if "corpus_file" in config or "text_sha256" in config:
        return config.get("corpus_file"), config.get("text_sha256")
    source = config.get("corpus", {}).get("source") if isinstance(config.get("corpus"), dict) else None
    return (None, None) if source in (None, "<--text>") else (resolved(source), None)  # a run of an older charseq


def _given_corpus(config: dict, corpus, text) -> dict:
    """CORPUS or --text given on --resume, against what the run was trained on (for reopen_run)."""
    file, text_sha = _recorded_corpus(config)
    if corpus is not None:
        return {"CORPUS": (resolved(corpus), file if file else "--text")}
    if text is not None:
        given = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        if file:
            return {"--text": ("--text", file)}
        return {"--text": (given, text_sha)} if text_sha else {}
    return {}


class _Corpus(Recipe):
    """A language model's run: a corpus file (or --text) encoded into the run directory."""

    task, model_config, data_config, files_in_data = TASK, ModelConfig, DataConfig, False

    def __init__(self, corpus, text, init_from=None):
        self.corpus, self.text, self.init_from = corpus, text, init_from
        self.files: list[Path] = []  # a corpus folder's .txt files, once check() has found them

    def given(self, config: dict) -> dict:
        return {**_given_corpus(config, self.corpus, self.text),
                **given_data({"init_from": resolved(config.get("init_from"))},
                             init_from=("--init-from", resolved(self.init_from), None))}

    def data_files(self, config: dict) -> dict:
        file, _ = _recorded_corpus(config)
        return {"CORPUS": file} if file else {}

    def check(self, start: Start) -> None:
        if self.text is None:
            if self.corpus is None:
                raise CharseqError("give a corpus file or --text")
            refuse_an_empty_name(self.corpus, "corpus")  # else read as the current folder
            if Path(self.corpus).is_dir():
                self.files = corpus_files(self.corpus)  # a folder of .txt files; one without any is refused here
            else:
                check_readable_file(self.corpus, "corpus")
        elif self.corpus is not None:
            raise CharseqError(f"give a corpus file or --text, not both ({self.corpus} and --text)")
        elif not self.text:
            raise CharseqError("--text is empty")
        refuse_the_other_tokenizers_options(start.data_cfg, start.settings)
        if self.init_from is not None:  # a missing run, another head's, another shape: said before the data is read
            vocabulary = [flag(k) for k in ("tokenizer", "vocab_size", "max_vocab", "min_count")
                          if start.settings.get(k) is not None]
            if vocabulary:
                raise CharseqError(f"{vocabulary[0]}: a language model started from another (--init-from) reads "
                                   "that one's vocabulary")
            self.lm_config = RunDir.open(self.init_from).require_task(TASK)  # read here once, used by read()
            refuse_another_shape(self.init_from, self.lm_config, start.settings,
                                 "a language model fine-tuned from another")

    def read(self, start: Start) -> None:
        run, d = start.run, start.data_cfg
        if start.resume:
            self.vocab = load_vocab(run.path)
            if start.train_cfg.patience is not None and Corpus(run.path / "data").info.val_tokens <= 1:
                # a run of an older charseq validated on its training text
                start.train_cfg = without_validation(start.train_cfg, {}, start.log, "none held out")
            return
        inherited = None
        if self.init_from is not None:
            inherited = load_vocab(Path(self.init_from))
            for key in LM_SHAPE:
                start.settings[key] = self.lm_config["model"][key]
            start.model_cfg, start.data_cfg, start.train_cfg = split_settings(
                start.settings, ModelConfig, DataConfig, TrainConfig)
            d = start.data_cfg = replace(d, tokenizer=inherited.kind)
        self.vocab, self.info = prepare_corpus(
            self.corpus, self.text, run.path, d.val_fraction, tokenizer=d.tokenizer, vocab_size=d.vocab_size,
            max_vocab=d.max_vocab, min_count=d.min_count, encoding=d.encoding, errors=d.errors, vocab=inherited)
        info = self.info
        if inherited is not None:
            unknown = int(np.sum(Corpus(run.path / "data").ids == inherited.unk_id))
            start.log(f"starting from the language model in {self.init_from}: {start.model_cfg.backbone.shape()}, "
                      f"its vocabulary of {inherited.size:,}"
                      + (f"; {unknown:,} tokens of the corpus are not in it (read as unknown)" if unknown else ""))
        if info.val_tokens <= 1:  # --val-fraction 0, or a text too short to hold any out
            self.no_validation = ("--val-fraction 0" if not d.val_fraction
                                  else f"{info.val_tokens} of {info.tokens} tokens held out, too few to validate on")
        start.log(f"corpus: {counted(len(self.files), '.txt file') + ', ' if self.files else ''}"
                  f"{info.tokens:,} tokens ({info.train_tokens:,} train, {info.val_tokens:,} val), "
                  f"vocabulary {self.vocab.size:,} ({d.tokenizer}); run directory {run.shown}")

    def sizing(self, start: Start):
        return size_lm(self.info.train_tokens, self.vocab.size, start.settings,
                       inherited=LM_SHAPE if self.init_from is not None else ())

    def fit(self, start: Start) -> None:
        m, d, t = start.model_cfg, start.data_cfg, start.train_cfg
        _check_windows(self.info, d)
        check_model_memory(m.backbone, self.vocab.size)
        check_sequence_memory(f"--seq-len {d.seq_len:,}", "use a smaller --seq-len or --batch-size",
                              t.batch_size, d.seq_len, m.backbone.units, m.backbone.layers, m.backbone.cell)

    def record(self, start: Start) -> dict:
        text = self.text
        return {"data": asdict(start.data_cfg), "corpus": asdict(self.info), "vocab_size": self.vocab.size,
                "corpus_file": resolved(self.corpus) if text is None else None,
                "init_from": resolved(self.init_from),
                "text_sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() if text else None}

    def build(self, start: Start):
        model = build_model(flat(start.model_cfg), self.vocab.size, start.precision)
        if self.init_from is not None and not start.resume:  # a resumed run loads its own checkpoint
            RunDir.open(self.init_from).load_weights(model, log=start.log)
        return model

    def make_task(self, start: Start, model, strategy):
        return LMTask(model, Corpus(start.run.path / "data"), start.data_cfg, start.train_cfg.batch_size,
                      start.train_cfg.seed, strategy, vocab=self.vocab)


@discard_unpublished
def _train_lm(corpus, out, *, text, init_from, force, resume, log, progress_bar, sample_length, **settings) -> RunDir:
    from charseq.heads.lm.inference import Generator, check_length

    # Checked here: the first sample is drawn at the first evaluation, once the run is in place at --out.
    check_length(sample_length, "--sample-length", " (no samples)")
    recipe = _Corpus(corpus, text, init_from)
    start = start_run(recipe, out, settings, resume=resume, force=force, log=log)
    sample_fn = None
    if sample_length:
        sample_fn = functools.partial(_sample, Generator(start.model, recipe.vocab), sample_length)
    train(start.task, start.run, start.train_cfg, resume=resume, log=log, progress_bar=progress_bar, sample_fn=sample_fn)
    return start.run


def _sample(generator, length: int) -> str:
    """The sample shown with an evaluation. It only illustrates: weights that cannot be sampled
    from (diverged, with a loss still finite) are said, and training goes on as the loss allows."""
    try:
        text = generator("", length=length, temperature=0.8, seed=0)[0]
    except CharseqError as e:
        return f"  sample: none ({e})"
    return "  sample: " + text.replace("\n", "\n          ")


def load_lm(path: str | Path, precision: str | None = None):
    """(model, vocab, config) of the trained language-model run at `path`, built in `precision`
    (float32 or mixed_bfloat16, only on a CPU with native bfloat16; None: the one it was trained in)."""
    precision = asked_precision(precision)
    run = RunDir.open(path)
    config = run.require_task(TASK)
    vocab = load_vocab(run.path)
    model = build_model(config.get("model"), vocab.size, precision or precision_of_run(config))
    run.load_weights(model)
    return model, vocab, config


def evaluate_lm(path: str | Path, file: str | Path, encoding: str | None = None, errors: str = "strict",
                full_context: bool = False, precision: str | None = None) -> dict:
    """Loss (nats/char), bits/char and perplexity of a trained model on a held-out text file (for
    a SentencePiece model, also the pieces scored and the loss per piece: see evaluate_ids).
    `encoding`: the file's (None: the one the model's corpus was read in, train_lm's `encoding`).

    The file is scored as up to 32 parallel streams (each starts from a zero state, its first
    token unscored), which is fast; `full_context` scores it as one stream carrying the state
    through the whole file, every token but the first with all the text before it. `precision`:
    the one the model computes in (None: the one it was trained in; mixed_bfloat16 only on a CPU with
    native bfloat16). `path` is the run; `file` is read in `encoding`, and bytes that do not decode
    are refused, replaced or dropped as `errors` says ("strict", "replace", "ignore")."""
    from charseq.files import input_name, read_text

    if file is None:
        raise CharseqError("evaluate needs a FILE of held-out text for a language model (- reads standard input)")
    model, vocab, config = load_lm(path, precision)
    if encoding is None:  # held-out text is most often more of the corpus, in its encoding
        encoding = config.get("data", {}).get("encoding") or "utf-8"
    text = read_text(file, encoding, errors)
    if not text:
        raise CharseqError(f"{input_name(file)} is empty")
    ids, chars = vocab.encode_counted(text) if vocab.kind == "sentencepiece" else (vocab.encode(text), None)
    report = evaluate_ids(model, ids, streams=1 if full_context else 32, vocab=vocab, chars_of_ids=chars)
    if full_context:
        report["full_context"] = True
    report["unknown"] = int(np.sum(ids == vocab.unk_id))
    return report
