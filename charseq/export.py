"""Export a trained run as a TensorFlow SavedModel that plain TensorFlow (or TF Serving) can use.

    export_saved_model("runs/poems", "exports/poems")

    import tensorflow as tf                      # no charseq needed from here on
    generate = tf.saved_model.load("exports/poems").signatures["generate"]
    generate(prompt=tf.constant("春风"), length=tf.constant(100),
             temperature=tf.constant(0.8), seed=tf.constant(1))["text"]

Everything a request needs is inside the graph: the character vocabulary as lookup tables, the
weights, and the decoding loop. Language models export `generate`, which runs the very
function `charseq generate` compiles (:meth:`charseq.sampling.Generator.sample_fn`), so the same
prompt, temperature and seed give the same text. Text classifiers export `classify` and
`labels`, image classifiers `classify` over images, encoder-decoders `translate` (greedy).

Characters outside the vocabulary read as the unknown id, as `--unknown unk` does. Only
character vocabularies export: SentencePiece's tokenizer is not an op of plain TensorFlow.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from charseq import __version__
from charseq.backbone import portable_graph
from charseq.errors import CharseqError
from charseq.files import write_json_atomic
from charseq.runs import RunDir, _exchange
from charseq.sampling import MAX_LENGTH, MAX_TEMPERATURE, MIN_TEMPERATURE
from charseq.vocab import BOS, EOS, PAD, SPECIALS, UNK, CharVocab, load_vocab

SIGNATURES = {"lm": ["generate"], "classifier": ["classify", "labels"], "seq2seq": ["translate"]}
METADATA = "assets.extra/charseq.json"  # TF Serving's place for files that are not part of the graph


class _Chars(tf.Module):
    """A character vocabulary as two in-graph tables: text to ids, ids to text."""

    def __init__(self, vocab):
        super().__init__()
        self.check(vocab)
        ids = tf.range(len(SPECIALS), vocab.size, dtype=tf.int32)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(vocab.chars, tf.string), ids), default_value=UNK)
        # What CharVocab.decode writes for each id: nothing for padding and start/end, U+FFFD for unknown.
        self.tokens = tf.constant(["", "\ufffd", "", ""] + vocab.chars, tf.string)

    @staticmethod
    def check(vocab) -> None:
        if not isinstance(vocab, CharVocab):
            raise CharseqError("only character vocabularies export: this run uses SentencePiece, whose "
                               "tokenizer is not an op of plain TensorFlow")

    def encode(self, texts):
        """Ids of the characters of each text: a [batch, None] ragged tensor (or [None] for a scalar)."""
        chars = tf.strings.unicode_split(texts, "UTF-8", errors="replace")
        if isinstance(chars, tf.RaggedTensor):
            return tf.ragged.map_flat_values(self.table.lookup, chars)
        return self.table.lookup(chars)

    def decode(self, ids):
        """The text of each row of ids [batch, time]."""
        return tf.strings.reduce_join(tf.gather(self.tokens, ids), axis=-1)


def _padded(ids: tf.RaggedTensor, max_len: int | None = None):
    """Right-padded with 0 (as charseq's batches are), with at least one column."""
    if max_len:
        ids = ids[:, :max_len]
    dense = ids.to_tensor(default_value=0)
    return tf.cond(tf.shape(dense)[1] > 0, lambda: dense, lambda: tf.zeros([tf.shape(dense)[0], 1], tf.int32))


class LanguageModelExport(tf.Module):
    """`generate`: prompt, length, temperature, seed -> text (the continuation, prompt not included).

    Temperature 0 takes the most likely character each step, as `--greedy` does; otherwise it must
    be in [0.01, 100] (as `charseq generate --temperature`). `length` is 0 to 1,000,000. An empty
    prompt starts from the start of a line, as `charseq generate` does. Inputs out of range fail
    with an InvalidArgumentError that names them.
    """

    def __init__(self, model, vocab):
        super().__init__()
        from charseq.sampling import Generator

        self.chars = _Chars(vocab)
        self.model = model
        self._generator = Generator(model, vocab)
        self._start_ids = tf.constant(self._generator.prompt_ids(""), tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="prompt"),
                                  tf.TensorSpec([], tf.int32, name="length"),
                                  tf.TensorSpec([], tf.float32, name="temperature"),
                                  tf.TensorSpec([], tf.int32, name="seed")])
    def generate(self, prompt, length, temperature, seed):
        # Out of range is an InvalidArgumentError naming the input, never a silent greedy decode or
        # an unbounded loop.
        checks = [
            tf.debugging.assert_non_negative(length, message="generate: length must be 0 or more"),
            tf.debugging.assert_less_equal(length, MAX_LENGTH, message=f"generate: length must be at most {MAX_LENGTH}"),
            tf.debugging.Assert(tf.math.is_finite(temperature) & (
                tf.equal(temperature, 0.0) | ((temperature >= MIN_TEMPERATURE) & (temperature <= MAX_TEMPERATURE))),
                [f"generate: temperature must be 0 (greedy) or between {MIN_TEMPERATURE} and {MAX_TEMPERATURE}, not",
                 temperature])]
        with tf.control_dependencies(checks):
            ids = self.chars.encode(prompt)
        ids = tf.cond(tf.size(ids) > 0, lambda: ids, lambda: self._start_ids)[None]
        length = tf.maximum(length, 0)
        steps = tf.maximum(length, 1)  # the loop emits at least one token; a length of 0 cuts it off

        def sample(greedy):
            t = tf.constant(1.0) if greedy else temperature
            return lambda: self._generator.sample_fn(ids, steps, t, None, None, seed, greedy)[0]
        tokens = tf.cond(temperature > 0, sample(False), sample(True))
        return {"text": self.chars.decode(tokens[0, :length])}

    def signatures(self) -> dict:
        return {"generate": self.generate}


class TextClassifierExport(tf.Module):
    """`classify`: texts [batch] -> label [batch], probability [batch], probabilities [batch, classes];
    `labels`: no input -> the class names, in the order of `probabilities`."""

    def __init__(self, model, vocab, labels: list[str], max_len: int | None):
        super().__init__()
        self.chars = _Chars(vocab)
        self.model = model
        self.label_names = tf.constant(labels, tf.string)
        self._max_len = max_len

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def classify(self, text):
        with tf.control_dependencies([_assert_not_empty(text, "classify: a text is empty (or only spaces)")]):
            ids = _padded(self.chars.encode(text), self._max_len)
        return _predictions(tf.nn.softmax(self.model(ids, training=False)), self.label_names)

    @tf.function(input_signature=[])
    def labels(self):
        return {"labels": self.label_names}

    def signatures(self) -> dict:
        return {"classify": self.classify, "labels": self.labels}


class ImageClassifierExport(tf.Module):
    """`classify`: images [batch, rows, cols] of pixel values 0-255 (as MNIST stores them) ->
    label, probability, probabilities; `labels`: the class names."""

    def __init__(self, model, labels: list[str], cols: int):
        super().__init__()
        self.model = model
        self.label_names = tf.constant(labels, tf.string)
        self.classify = tf.function(
            lambda images: _predictions(tf.nn.softmax(self.model(images / 255.0, training=False)),
                                        self.label_names),
            input_signature=[tf.TensorSpec([None, None, cols], tf.float32, name="images")])

    @tf.function(input_signature=[])
    def labels(self):
        return {"labels": self.label_names}

    def signatures(self) -> dict:
        return {"classify": self.classify, "labels": self.labels}


def _assert_not_empty(texts, message: str, strip: bool = True):
    """An op that fails with `message` if any of `texts` is empty (as charseq's CLI refuses them)."""
    lengths = tf.strings.length(tf.strings.strip(texts) if strip else texts)
    return tf.debugging.Assert(tf.reduce_all(lengths > 0), [message])


def _predictions(probs, names):
    best = tf.argmax(probs, axis=-1, output_type=tf.int32)
    return {"label": tf.gather(names, best), "probability": tf.reduce_max(probs, axis=-1), "probabilities": probs}


class Seq2SeqExport(tf.Module):
    """`translate`: sources [batch] -> text [batch], by greedy decoding (charseq's --beam 1)."""

    def __init__(self, model, source_vocab, target_vocab, reverse_source: bool, max_output_len: int):
        super().__init__()
        self.source_chars, self.target_chars = _Chars(source_vocab), _Chars(target_vocab)
        self.model = model
        self._reverse, self._max_len = reverse_source, max_output_len
        banned = np.zeros(target_vocab.size, np.float32)
        banned[[i for i in range(len(SPECIALS)) if i != EOS]] = -np.inf  # as charseq.decoding does
        self._banned = tf.constant(banned)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="source")])
    def translate(self, source):
        with tf.control_dependencies([_assert_not_empty(source, "translate: a source is empty", strip=False)]):
            ids = self.source_chars.encode(source)
        if self._reverse:  # each row backwards: flat index k of a row [start, limit) reads start + limit - 1 - k
            flip = tf.repeat(ids.row_starts() + ids.row_limits() - 1, ids.row_lengths()) - tf.range(
                tf.size(ids.flat_values, out_type=tf.int64))
            ids = ids.with_flat_values(tf.gather(ids.flat_values, flip))
        memory, mask, states = self.model.encode(_padded(ids), training=False)
        batch = tf.shape(memory)[0]

        def step(t, token, states, finished, out):
            logits, states = self.model.decode_step(token, states, memory, mask)
            token = tf.argmax(tf.nn.log_softmax(logits, axis=-1) + self._banned, axis=-1, output_type=tf.int32)
            token = tf.where(finished, PAD, token)  # a finished output continues with padding only
            return t + 1, token, states, finished | (token == EOS), out.write(t, token)

        _, _, _, _, out = tf.while_loop(
            lambda t, token, states, finished, out: (t < self._max_len) & ~tf.reduce_all(finished), step,
            (tf.constant(0), tf.fill([batch], BOS), states, tf.zeros([batch], tf.bool),
             tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None])))
        tokens = tf.cond(out.size() > 0, lambda: tf.transpose(out.stack()), lambda: tf.zeros([batch, 0], tf.int32))
        return {"text": self.target_chars.decode(tokens)}

    def signatures(self) -> dict:
        return {"translate": self.translate}


def build_export(model_dir: str | Path) -> tuple[tf.Module, dict]:
    """The exportable module of a run, and what to record about it."""
    config = RunDir.open(model_dir).read_config()
    task = config["task"]
    if task == "lm":
        from charseq.lm_run import load_lm

        _Chars.check(load_vocab(model_dir))  # before the model is built for a vocabulary it cannot export
        model, vocab, _ = load_lm(model_dir)
        return LanguageModelExport(model, vocab), {}
    if task == "classifier":
        from charseq.classifier_run import load_classifier

        model, vocab, config = load_classifier(model_dir)
        labels = [str(name) for name in config["labels"]]
        if vocab is None:
            cols = int(model.backbone.input_layer.kernel.shape[0])
            return ImageClassifierExport(model, labels, cols), {"input": "images", "labels": labels}
        return (TextClassifierExport(model, vocab, labels, config["model"].get("max_len")),
                {"input": "text", "labels": labels})
    if task == "seq2seq":
        from charseq.seq2seq_run import load_seq2seq

        model, source_vocab, target_vocab, config = load_seq2seq(model_dir)
        max_len = int(config["model"]["max_output_len"])
        return (Seq2SeqExport(model, source_vocab, target_vocab, bool(config["model"]["reverse_source"]), max_len),
                {"max_output_len": max_len})
    raise CharseqError(f"{model_dir} holds a {task!r} model, which this version cannot export")


SAVED_MODEL_ENTRIES = {"saved_model.pb", "variables", "assets", "assets.extra", "fingerprint.pb"}


def _check_out(out: Path, force: bool) -> Path:
    """Where the export goes (a link to a directory is followed), or a one-line error."""
    if not out.name:
        raise CharseqError("--out must name a directory for the SavedModel, not the current directory")
    if out.is_symlink():
        if not out.exists():
            raise CharseqError(f"--out {out} is a symbolic link to {os.readlink(out)}, which does not exist")
        out = Path(os.path.realpath(out))
    if out.exists() and not out.is_dir():
        raise CharseqError(f"--out {out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise CharseqError(f"{out} already exists; use --force to replace it")
        others = sorted(p.name for p in out.iterdir() if p.name not in SAVED_MODEL_ENTRIES)
        if not (out / "saved_model.pb").exists() or others:
            held = f" (it holds {', '.join(others[:5])})" if others else ""
            raise CharseqError(f"{out} is not a SavedModel; refusing to replace it{held}")
    return out


def export_saved_model(model_dir: str | Path, out: str | Path, force: bool = False) -> dict:
    """Write the run in `model_dir` as a SavedModel in `out`; returns what was exported.

    The SavedModel is written next to `out` first and moved into place when complete, so a
    failed export leaves no half-written directory (and with `force`, the old export intact).
    """
    shown = out
    out = _check_out(Path(out), force)
    with portable_graph():  # plain TensorFlow ops only: charseq's compiled kernel is not in TF Serving
        module, info = build_export(model_dir)
    task = RunDir.open(model_dir).read_config()["task"]
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.export-"))
    try:
        with portable_graph():
            tf.saved_model.save(module, str(staging), signatures=module.signatures())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(staging, 0o777 & ~mask)  # mkdtemp's directory is private; an export is meant to be shared
        info = {"task": task, "signatures": sorted(module.signatures()), **info,
                "run": str(Path(model_dir).resolve()), "charseq_version": __version__}
        (staging / METADATA).parent.mkdir(exist_ok=True)
        write_json_atomic(staging / METADATA, info)
        _check_out(out, force)  # once more: the directory may have appeared while the model was saved
        if out.is_dir() and _exchange(staging, out):  # one atomic swap; `staging` now holds the old export
            pass
        else:
            if out.exists():
                shutil.rmtree(out)
            staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return {**info, "out": str(shown)}
