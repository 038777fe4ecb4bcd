"""The Python API is typed at its boundary: every public function refuses an argument of the wrong
type with an ArgumentTypeError (a TypeError and a CharseqError) naming the parameter, the type it
takes and what it got, before doing any work; never a bare TypeError or AttributeError from inside.
A str where a list of texts goes is refused, with the fix in the message."""

import inspect
import os
import re
from pathlib import Path

import numpy as np
import pytest

import charseq
from charseq.errors import ArgumentTypeError, CharseqError
from charseq.settings import OPTIONS_OF, UNANNOTATED, accepts as _accepts, resolve as _resolve, type_hints as _hints


def test_the_reported_cases(finished, files, tmp_path):
    s2s, cls, lm = finished["train-seq2seq"], finished["train-classifier"], finished["train-lm"]
    model, vocab, _ = charseq.load_lm(lm)
    cases = [
        (lambda: charseq.translate(s2s, "1+2", beam=2), "sources", "list of str", "the str '1+2'", "['1+2']"),
        (lambda: charseq.classify(cls, "good stuff"), "texts", "list of str", "the str 'good stuff'", "['good stuff']"),
        (lambda: charseq.classify(cls, [1, 2]), "texts", "list of str", "[1, 2]"),
        (lambda: charseq.generate(model, vocab, prompt=5, length=5), "prompt", "str", "the int 5"),
        (lambda: charseq.generate(model, vocab, length="5"), "length", "int", "the str '5'"),
        (lambda: charseq.generate(vocab, model, length=5), "model", "LanguageModel", "CharVocab"),
        (lambda: charseq.train_lm(files / "corpus.txt", tmp_path / "run", units="16"), "units", "int", "'16'"),
        (lambda: charseq.serve([tmp_path], port="80"), "port", "int", "'80'"),
        # the classes' methods, as the functions
        (lambda: charseq.Translator(s2s)("1+2"), "sources", "list of str", "the str '1+2'", "['1+2']"),
        (lambda: charseq.Translator(s2s)(["1+2"], beam="3"), "beam", "int", "the str '3'"),
        (lambda: charseq.Generator(model, vocab)("T", length="5"), "length", "int", "the str '5'"),
        (lambda: charseq.Generator(model, vocab)(5), "prompt", "str", "the int 5"),
        (lambda: charseq.Generator(model, vocab)("T", lenght=5), "Generator()", "'lenght'"),
        (lambda: charseq.Generator(None, vocab), "model", "LanguageModel", "None"),
        # a single path where a list of them goes
        (lambda: charseq.plot_runs(lm, tmp_path / "c.png"), "runs", "list of", "PosixPath"),
        (lambda: charseq.plot_runs(str(lm), tmp_path / "c.png"), "runs", "list of", f"[{str(lm)[:40]!r}]"),
        (lambda: charseq.create_app(str(tmp_path)), "directories", "list of"),
        (lambda: charseq.run_grid("train-lm", tmp_path / "grid", {"lr": 1e-3}, files / "corpus.txt"),
         "axes", "a dict of str to list", "{'lr': 0.001}"),
    ]
    for call, *fragments in cases:
        with pytest.raises(ArgumentTypeError) as e:
            call()
        assert isinstance(e.value, TypeError) and isinstance(e.value, CharseqError)
        for fragment in fragments:
            assert fragment in str(e.value), (fragment, str(e.value))
    assert not (tmp_path / "run").exists() and not (tmp_path / "grid").exists()
    with pytest.raises(CharseqError, match="port must be between 0 and 65535"):
        charseq.serve([tmp_path], port=99999)


def test_a_file_setting_takes_a_path_as_the_training_file_does(files, tmp_path):
    """val= names a file, as train_file does: a pathlib.Path works for both, recorded absolute."""
    pairs, reviews = files / "pairs.tsv", files / "reviews.tsv"
    tiny = dict(units=8, embedding_dim=4, max_steps=1, log=lambda line: None, progress_bar=False)
    for train, data, out in ((charseq.train_seq2seq, pairs, "s2s"), (charseq.train_classifier, reviews, "texts")):
        run = train(data, tmp_path / out, val=data, **tiny)
        assert run.read_config()["data"]["val"] == str(data.resolve()), train.__name__


def public_functions() -> list[str]:
    return [n for n in charseq.__all__ if inspect.isfunction(getattr(charseq, n))]


def parameter_types(name: str) -> dict:
    """Each checked parameter of the public function `name` (and of its **options) and its type."""
    fn = inspect.unwrap(getattr(charseq, name))
    hints = _hints(fn)
    kinds = {p: hints[p] for p in inspect.signature(fn).parameters if p in hints and p != "return"}
    kinds.update({p: _resolve(spec) for (f, p), spec in UNANNOTATED.items() if f == name})
    if name.startswith("train_"):  # **settings: the config dataclasses' fields
        kinds.update({"units": int, "batch_size": int, "lr": float, "dropout": float, "cell": str})
    if name in OPTIONS_OF:
        (target,) = _resolve(OPTIONS_OF[name])
        kinds.update({p: k for p, k in _hints(target).items() if p not in ("self", "return", "prompt", "sources")})
    return kinds


def test_every_public_function_refuses_wrong_types(finished, files, tmp_path_factory):
    """Hypothesis: a public function called with valid arguments except one of a random wrong type
    raises ArgumentTypeError naming that parameter, and writes nothing."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    model, vocab, _ = charseq.load_lm(finished["train-lm"])
    run = {"train-lm": finished["train-lm"], "train-classifier": finished["train-classifier"],
           "train-seq2seq": finished["train-seq2seq"]}
    where = tmp_path_factory.mktemp("typed")
    valid = {  # arguments that work, by function (positional arguments by name)
        "classify": dict(path=run["train-classifier"], texts=["good film"]),
        "classify_images": dict(path=finished["classify-mnist"], images=np.zeros((1, 28, 28), np.uint8)),
        "translate": dict(path=run["train-seq2seq"], sources=["ab"]),
        "generate": dict(model=model, vocab=vocab, prompt="T", length=3, seed=1),
        "beam_search": dict(model=model, vocab=vocab, prompt="T", length=3, beam=2),
        "load_lm": dict(path=run["train-lm"]), "load_classifier": dict(path=run["train-classifier"]),
        "load_seq2seq": dict(path=run["train-seq2seq"]), "load_vocab": dict(directory=run["train-lm"]),
        "evaluate_lm": dict(path=run["train-lm"], file=files / "corpus.txt"),
        "evaluate_seq2seq": dict(path=run["train-seq2seq"], file=files / "pairs.tsv"),
        "evaluate_classifier": dict(path=run["train-classifier"], file=files / "reviews.tsv"),
        "make_pairs": dict(task="reverse", n=5), "read_pairs": dict(path=files / "pairs.tsv"),
        "export_saved_model": dict(model_dir=run["train-lm"], out=where / "export"),
        "train_lm": dict(corpus=files / "corpus.txt", out=where / "lm", max_steps=1),
        "train_classifier": dict(train_file=files / "reviews.tsv", out=where / "cls", max_steps=1),
        "train_seq2seq": dict(train_file=files / "pairs.tsv", out=where / "s2s", max_steps=1),
        "train_mnist": dict(out=where / "mnist", data=files / "mnist.npz", max_steps=1),
        "create_app": dict(directories=[where], max_generations=2),
        "serve": dict(directories=[where], port=0),
        "get_dataset": dict(name="tinyshakespeare", source=str(where / "absent.txt")),
        "dataset_path": dict(name="tinyshakespeare"), "list_datasets": dict(), "sample_on_one_op_thread": dict(),
        "plot_runs": dict(runs=[run["train-lm"]], out=where / "curves.png"),
    }
    assert set(public_functions()) - set(valid) <= {"run_grid"}  # trains a grid: the reported cases above
    cases = [(f, p) for f in sorted(valid) for p in parameter_types(f)]
    wrong = st.one_of(st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=5), st.none(), st.booleans(),
                      st.lists(st.integers(0, 3), max_size=3), st.dictionaries(st.text(max_size=2), st.integers()),
                      st.just(model), st.just(vocab), st.just(b"bytes"), st.just(Path("x")))

    @settings(max_examples=int(os.environ.get("CHARSEQ_PROPERTY_EXAMPLES", "150")), deadline=None,
              derandomize=True, suppress_health_check=list(HealthCheck))
    @given(case=st.sampled_from(cases), value=wrong)
    def check(case, value):
        name, parameter = case
        kind = parameter_types(name)[parameter]
        if _accepts(kind, value):
            return  # not a wrong type for this parameter
        before = sorted(p.name for p in where.iterdir())
        with pytest.raises(ArgumentTypeError) as e:
            getattr(charseq, name)(**{**valid[name], parameter: value})
        assert str(e.value).startswith(f"{parameter} must be "), str(e.value)
        assert sorted(p.name for p in where.iterdir()) == before  # refused before any work

    check()


@pytest.mark.parametrize("argument, value, said", [
    ("layers", 0, "layers must be a positive integer, not 0"), ("units", "8", "units must be a positive integer"),
    ("layers", True, "layers must be a positive integer, not True"), ("vocab_size", -3, "vocab_size must be"),
    ("dropout", 1.0, "dropout must be in [0, 1), not 1.0"), ("input_dropout", -0.1, "input_dropout"),
    ("l2", -1, "l2 must be in [0, inf), not -1"),
])
def test_the_backbone_layer_names_a_wrong_argument(argument, value, said):
    """The backbone, as a Keras layer of one's own model, refuses a wrong size or rate when it is made,
    by name, as Keras' layers do; it used to fail at its first call with a shape error, or not at all."""
    from charseq.backbone import RecurrentBackbone

    with pytest.raises(ValueError, match=re.escape(said)):
        RecurrentBackbone(**{"vocab_size": 10, argument: value})
    assert RecurrentBackbone(units=np.int64(8), layers=2, vocab_size=10, dropout=0.5).units == 8


@pytest.mark.parametrize("impl", ["auto", "keras"])
@pytest.mark.parametrize("vocab_size, inputs, said", [
    (10, np.array([4, 5, 6]), "expected ndim=2, found ndim=1"),            # one sequence, no batch axis
    (None, np.ones((3, 2), "float32"), "expected ndim=3, found ndim=2"),  # one image, no batch axis
])
def test_the_backbone_layer_names_inputs_of_the_wrong_rank(impl, vocab_size, inputs, said):
    """A backbone given one sequence without its batch axis says so as Keras' layers do, before it runs:
    the compiled kernels used to fail inside with "slice index 2 of dimension 0 out of bounds"."""
    from charseq.backbone import RecurrentBackbone

    with pytest.raises(ValueError, match=said):
        RecurrentBackbone(units=8, vocab_size=vocab_size, impl=impl)(inputs)
    assert tuple(RecurrentBackbone(units=8, vocab_size=vocab_size, impl=impl)(inputs[None])[0].shape) == \
        (1, inputs.shape[0], 8)
