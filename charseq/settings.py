"""Settings: keyword options split into each head's dataclasses of defaults, and checked.

Every train command takes one flat set of options (the CLI's, or `train_*(**settings)` in
Python); each head groups them into dataclasses (its model, maybe its data, and the shared
`TrainConfig`), which are what config.json stores. A head's model config nests the one
:class:`BackboneConfig`; config.json keeps each section flat (`"units": 256`, not
`"backbone": {"units": 256}`), so a nested config's fields are settings like the others.

>>> from dataclasses import dataclass, field
>>> @dataclass
... class HeadConfig:
...     backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(layers=2))
...     readout: str = "final"
...     def validate(self): self.backbone.validate()
>>> (model,) = split_settings({"units": 32, "readout": "max"}, HeadConfig)
>>> model.backbone.units, model.backbone.layers, model.readout
(32, 2, 'max')
>>> flat(model)["units"], "backbone" in flat(model)
(32, False)
>>> split_settings({"unit": 32}, HeadConfig)
Traceback (most recent call last):
...
charseq.errors.CharseqError: unknown settings: unit (did you mean units?)
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import functools
import importlib
import inspect
import json
import math
import numbers
import os
import re
import sys
import types
import typing
from dataclasses import asdict, dataclass, fields

from charseq.errors import OPTION, OPTION_AND_VALUE, ArgumentTypeError, CharseqError, flag

# The choice lists, one owner each (the library checks against them, the CLI offers them).
CELLS = ("rnn", "lstm", "gru")
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
INFERENCE_PRECISIONS = PRECISIONS[1:]  # --precision of the commands that use a trained model (generate, evaluate, ...)
OPTIMIZERS = ("adam", "rmsprop", "sgd", "adagrad")
LR_DECAYS = ("none", "exponential", "cosine")
ON_NAN = ("stop", "skip")
STRATEGIES = ("default", "mirrored", "multiworker")
TOKENIZERS = ("char", "sentencepiece")
WINDOWS = ("contiguous", "random")
DECODE_ERRORS = ("strict", "replace", "ignore")  # what to do with bytes that do not decode (as in bytes.decode)
READOUTS = ("final", "mean", "max", "attention", "concat")
ATTENTIONS = ("none", "luong", "bahdanau")
PROMPT_UNKNOWN = ("error", "skip", "unk")  # a prompt character the language model does not know
SOURCE_UNKNOWN = ("error", "unk")  # a source character the encoder-decoder does not know
PAIR_TASKS = ("addition", "reverse", "sort", "dates")  # make-pairs' synthetic tasks


def check_seed(seed: int) -> None:
    """A one-line error for a --seed numpy's and Keras' seeding would refuse with a traceback."""
    if not 0 <= seed < 2**32:
        raise CharseqError(f"--seed must be in [0, 2**32), not {seed}")


# The keywords of Keras' `fit` and optimizers that a train function names otherwise.
KERAS_KEYWORDS = {"learning_rate": "lr", "validation_split": "val_fraction", "validation_data": "val"}


def _meant(unknown: set, known: set) -> str:
    """What the caller of a train function may have meant by settings it does not have: a near name
    (`unit`: units), the setting a keyword of Keras' `fit` is here (`learning_rate`: lr), or for
    `verbose` and `callbacks`, what a train function does instead."""
    meant = []
    for name in sorted(unknown - {"verbose", "callbacks"}):
        close = [KERAS_KEYWORDS[name]] if KERAS_KEYWORDS.get(name) in known else \
            difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        if close:
            meant.append(f"did you mean {close[0]}?" if len(unknown) == 1 else f"{name}: did you mean {close[0]}?")
    if "verbose" in unknown:
        meant.append("a train function reports through log=; log=lambda line: None trains without a word")
    if "callbacks" in unknown:
        meant.append("a train function runs its own loop, with early stopping (patience=), checkpoints and "
                     "TensorBoard logs; for Keras callbacks, train the model with Keras' fit")
    return f" ({'; '.join(meant)})" if meant else ""


def split_settings(settings: dict, *groups) -> tuple:
    """One instance of each dataclass in `groups` from the settings named by its fields, each
    validated; a setting that no group has is an error naming it."""
    names = [set(setting_types(g)) for g in groups]
    unknown = set(settings) - set().union(*names)
    if unknown:
        raise CharseqError(f"unknown settings: {', '.join(sorted(unknown))}{_meant(unknown, set().union(*names))}")
    kinds = {k: v for g in groups for k, v in setting_types(g).items()}
    # A setting that names a file takes a pathlib.Path as well as a str, as the train file does.
    paths = {f.name for g in groups for f in fields(g) if f.metadata.get("path")}
    settings = {k: os.fspath(v) if k in paths and isinstance(v, os.PathLike) else v for k, v in settings.items()}
    for name, value in settings.items():
        if not accepts(kinds[name], value, from_json=True):  # units="16": named here, not as a TypeError deep inside
            raise ArgumentTypeError(f"{name} must be {getattr(kinds[name], '__name__', str(kinds[name]))}, "
                                    f"not the {type(value).__name__} {value!r}")
    configs = tuple(from_flat(g, {k: v for k, v in settings.items() if k in n}) for g, n in zip(groups, names))
    for config in configs:
        config.validate()
    return configs


# The JSON types of config.json's keys that are not dataclass fields (charseq.runs.COMMON_KEYS and each
# head's config_keys / data_keys).
NUMBER, TEXT, MAYBE_TEXT, MAYBE_INT = (int, float), (str,), (str, type(None)), (int, type(None))


# A config field that older runs' config.json lacks: field(..., metadata=ADDED_LATER). Loading such a run
# takes the field's default; a field without it is required (its absence means a damaged config.json).
ADDED_LATER = {"added_later": True}
# A config field that names a file: config.json records it absolute, and --resume compares it so.
PATH = {"path": True}


def json_fields(cls) -> dict:
    """The config dataclass `cls` as config.json holds it: {key: (accepted JSON types, required)}, the
    schema charseq.runs.check_config applies to a section that also records keys of its own."""
    hints, schema = setting_types(cls), {}
    required = {f.name: not f.metadata.get("added_later") for f in fields(cls)}
    for name, kind in hints.items():
        kinds = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else (kind,)
        json_types = tuple(t for k in kinds for t in ({float: NUMBER}.get(k) or (typing.get_origin(k) or k,)))
        schema[name] = (json_types, required.get(name, True))
    return schema


def config_from_dict(cls, data, where: str):
    """A `cls` dataclass from a section of a saved config.json, refusing what charseq never writes.

    config.json is read from directories users download and share: a key the dataclass does not
    have, or a value of the wrong type, is a one-line error naming it, never a crash deeper in
    (and never code run: the values are plain JSON scalars).
    """
    if not isinstance(data, dict):
        raise CharseqError(f"{where} must be a JSON object, not {type(data).__name__}")
    hints = setting_types(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise CharseqError(f"{where} has unexpected settings: {', '.join(map(str, unknown))}")
    for name, value in data.items():
        if not accepts(hints[name], value, from_json=True):
            kind = getattr(hints[name], "__name__", str(hints[name]))
            raise CharseqError(f"{where}: {name} = {json.dumps(value)} is not of type {kind}")
    config = from_flat(cls, data)
    config.validate()
    return config


def _nested(cls) -> dict[str, type]:
    """The fields of the dataclass `cls` that are config dataclasses themselves."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def setting_types(cls) -> dict[str, object]:
    """The flat settings of the config dataclass `cls` and their types: its own fields and, in their
    place, those of the configs nested in it."""
    nested, hints = _nested(cls), typing.get_type_hints(cls)
    types_ = {}
    for f in fields(cls):
        types_.update(setting_types(nested[f.name]) if f.name in nested else {f.name: hints[f.name]})
    return types_


def from_flat(cls, settings: dict):
    """A `cls` from flat settings (each a setting of `cls`); a nested config not given whole starts
    from `cls`'s default for it (a head's default backbone), then takes the settings given."""
    nested = _nested(cls)
    own = {k: v for k, v in settings.items() if k not in nested and k in {f.name for f in fields(cls)}}
    for f in fields(cls):
        if f.name not in nested:
            continue
        given = {k: v for k, v in settings.items() if k in setting_types(nested[f.name])}
        if f.default_factory is not dataclasses.MISSING:
            own[f.name] = dataclasses.replace(f.default_factory(), **given)
        else:
            own[f.name] = from_flat(nested[f.name], given)
    return cls(**own)


def defaults(cls) -> dict:
    """Every setting of the config dataclass `cls` with its default, flat (as config.json holds them):
    the one place a default is written, which the CLI's help shows.

    >>> defaults(BackboneConfig)["units"]
    256
    """
    return flat(cls())


def flat(config) -> dict:
    """A config dataclass as config.json stores it: one flat section, nested configs' fields in place."""
    out = {}
    for f in fields(config):
        value = getattr(config, f.name)
        out.update(flat(value) if dataclasses.is_dataclass(value) else {f.name: value})
    return out


IMPLS = ("auto", "keras", "compiled", "fused")  # how the backbone runs an LSTM (charseq.backbone)


@dataclass
class BackboneConfig:
    """The shared recurrent backbone's shape: every head's model config nests one, and
    :meth:`charseq.backbone.RecurrentBackbone.of` builds the backbone from it.

    Each field is the setting of that name: a train function's keyword (`units=128`) and the
    command line's option (`--units 128`), which the [command-line reference](cli.md) describes.
    """

    cell: str = "lstm"
    layers: int = 1
    units: int = 256
    embedding_dim: int = 64
    dropout: float = 0.0  # between layers and on the output
    input_dropout: float = 0.0  # on the first layer's input: the embedding (or input projection) of each step
    bidirectional: bool = False  # classifiers only: a language model and a decoder read one way
    l2: float = 0.0
    precision: str = "auto"  # auto: bfloat16 where the CPU has native bf16 (charseq.precision.resolve_precision)
    impl: str = "auto"  # auto, keras, compiled or fused (charseq.backbone.RecurrentBackbone)

    def shape(self) -> str:
        """As the logs say it: 2x256 lstm, 1x128 bidirectional gru."""
        return f"{self.layers}x{self.units} {'bidirectional ' if self.bidirectional else ''}{self.cell}"

    def validate(self) -> None:
        if self.cell not in CELLS:
            raise CharseqError(f"--cell must be rnn, lstm or gru, not {self.cell!r}")
        for name in ("layers", "units", "embedding_dim"):
            if getattr(self, name) < 1:
                raise CharseqError(f"{flag(name)} must be at least 1")
        from charseq.limits import check_model_memory, check_number

        for name in ("dropout", "input_dropout", "l2"):
            check_number(name, getattr(self, name))
        if self.impl not in IMPLS:
            raise CharseqError(f"impl must be one of {', '.join(IMPLS)}, not {self.impl!r}")

        check_model_memory(self)  # the backbone alone (heads add their vocabulary when they know it)


@dataclass
class TrainConfig:
    """How to train: the optimisation settings shared by every head (model settings live with the head).

    Each field is the setting of that name: a train function's keyword (`lr=1e-3`, `time_budget=5`) and
    the command line's option (`--lr 1e-3`, `--time-budget 5`), which the
    [command-line reference](cli.md) describes. A train function sizes the settings not given to its
    data ([defaults](../defaults.md)); the defaults here are the ones sizing leaves alone.
    """

    batch_size: int = 128
    max_steps: int | None = None
    epochs: float | None = None
    time_budget: float | None = None  # minutes of training (evaluation included)
    optimizer: str = "adam"
    lr: float = 3e-3
    lr_decay: str = "cosine"  # cosine anneals to lr * min_lr_ratio at the end of the run
    decay_steps: int = 1000
    decay_rate: float = 0.96
    staircase: bool = False
    min_lr_ratio: float = 0.02
    clip_norm: float = 1.0  # global gradient-norm clipping; 0 turns it off
    # An exponential moving average of the weights (Polyak averaging; Keras' optimizer keeps it) with
    # this momentum, 0 for none. Evaluations, the best weights and so every prediction use the average;
    # training goes on from the raw weights, which the checkpoints keep with the average beside them.
    ema: float = 0.0
    eval_every: int | None = 200  # None: once per epoch
    patience: int | None = None  # early stopping: stop after this many evaluations without improvement
    seed: int = 0
    keep: int = 1  # checkpoints kept: the latest, plus keep - 1 older ones in checkpoints/
    on_nan: str = "stop"  # a non-finite loss: stop, or go back to the last checkpoint and skip the batch
    strategy: str = "default"  # tf.distribute: default (none), mirrored or multiworker; see charseq.distribute

    def validate(self) -> None:
        from charseq.limits import check_number

        def positive(name, value, allow_none=False):
            if value is None and allow_none:
                return
            if value is None or not (value > 0 and math.isfinite(value)):
                raise CharseqError(f"{flag(name)} must be a positive number, not {value}")
        positive("batch_size", self.batch_size)
        positive("max_steps", self.max_steps, True)
        positive("decay_steps", self.decay_steps)
        for name in ("epochs", "time_budget", "lr", "decay_rate", "clip_norm", "ema", "min_lr_ratio"):
            if getattr(self, name) is not None or name not in ("epochs", "time_budget"):
                check_number(name, getattr(self, name))
        positive("eval_every", self.eval_every, True)
        positive("patience", self.patience, True)
        if self.optimizer not in OPTIMIZERS:
            raise CharseqError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.lr_decay not in LR_DECAYS:
            raise CharseqError(f"--lr-decay must be one of {', '.join(LR_DECAYS)}")
        positive("keep", self.keep)
        check_seed(self.seed)
        if self.on_nan not in ON_NAN:
            raise CharseqError(f"--on-nan must be one of {', '.join(ON_NAN)}")
        if self.strategy not in STRATEGIES:
            raise CharseqError(f"--strategy must be one of {', '.join(STRATEGIES)}")
        if self.strategy == "multiworker" and self.time_budget:
            # Workers' clocks disagree: each would stop (and anneal the learning rate) at its own step.
            raise CharseqError("--time-budget cannot be used with --strategy multiworker; give --max-steps or --epochs")

    @classmethod
    def from_dict(cls, data: dict, where: str = "config.json train") -> "TrainConfig":
        return config_from_dict(cls, data, where)

    def to_dict(self) -> dict:
        return asdict(self)



# ----------------------------------------------------------------------------- the Python API's boundary
# The Python API's boundary: every public function (charseq.X) checks its arguments' types before it
# does anything. A wrong type is an ArgumentTypeError (a TypeError and a CharseqError) naming the
# parameter, the type it takes and what it got. The types are the functions' own annotations; a
# function's **options are checked against the parameters of the function they go to (OPTIONS_OF).
# One rule for texts: where a list of texts goes (classify's texts, translate's sources), a single str
# is refused, with the fix in the message (["1+2"]), never read as a list of its characters.

# Parameters without a usable annotation: the type they take, as "module:Class" (imported when checked).
UNANNOTATED = {
    ("generate", "model"): "charseq.heads.lm.model:LanguageModel",
    ("generate", "vocab"): "charseq.vocab:CharVocab|charseq.vocab:SentencePieceVocab",
    ("Generator", "model"): "charseq.heads.lm.model:LanguageModel",
    ("Generator", "vocab"): "charseq.vocab:CharVocab|charseq.vocab:SentencePieceVocab",
    ("beam_search", "model"): "charseq.heads.lm.model:LanguageModel",
    ("beam_search", "vocab"): "charseq.vocab:CharVocab|charseq.vocab:SentencePieceVocab",
}
# A function's **options: the function whose parameters they are.
OPTIONS_OF = {"generate": "charseq.heads.lm.inference:Generator.__call__",
              "translate": "charseq.heads.seq2seq.run:Translator.__call__"}
# What the user passes as "any path": a string or an os.PathLike.
_PATH_TYPES = (str, os.PathLike)


def resolve(spec: str):
    kinds = []
    for one in spec.split("|"):
        module, _, name = one.partition(":")
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
        kinds.append(obj)
    return kinds


def _type_name(kind) -> str:
    if kind is type(None):
        return "None"
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(k) for k in typing.get_args(kind))
    if origin is not None:
        args = typing.get_args(kind)
        base = {list: "a list", tuple: "a tuple", dict: "a dict", collections.abc.Callable: "a callable"}.get(
            origin, getattr(origin, "__name__", str(origin)))
        if origin is dict and len(args) == 2:  # {"lr": [1e-3, 3e-3]}: "a dict of str to a list"
            return f"a dict of {_type_name(args[0])} to {_type_name(args[1])}"
        if origin is tuple and args and Ellipsis not in args:  # "a tuple (int, int)"
            return f"{base} ({', '.join(_type_name(a) for a in args)})"
        return f"{base} of {_type_name(args[0])}" if origin in (list, tuple) and args else base
    if isinstance(kind, list):
        return " or ".join(_type_name(k) for k in kind)
    return getattr(kind, "__name__", str(kind))


def accepts(kind, value, from_json: bool = False) -> bool:
    """Whether `value` is of the annotated type `kind` (the subset of typing charseq's API uses).

    `from_json`: a setting of a config dataclass, read from config.json or bound for it, where numbers
    are plain int and float (not numpy's) and a field of a richer type checks itself in validate()."""
    if kind is typing.Any or kind is inspect.Parameter.empty:
        return True
    if isinstance(kind, list):  # from UNANNOTATED
        return isinstance(value, tuple(kind))
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return any(accepts(k, value, from_json) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int if from_json else numbers.Integral) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float) if from_json else numbers.Real) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if from_json:
        return True
    if kind is os.PathLike or getattr(kind, "__name__", "") == "Path":
        return isinstance(value, _PATH_TYPES)
    if origin in (list, collections.abc.Sequence):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            return False
        args = typing.get_args(kind)
        return not args or all(accepts(args[0], v) for v in value)
    if origin is tuple:  # tuple[int, int]: that many items, each of its type (tuple[int, ...]: any number)
        args = typing.get_args(kind)
        if not isinstance(value, (tuple, list)):
            return False
        if not args or Ellipsis in args:
            return all(accepts(args[0], v) for v in value) if args else True
        return len(value) == len(args) and all(accepts(k, v) for k, v in zip(args, value))
    if origin is dict:
        args = typing.get_args(kind)
        return isinstance(value, dict) and (not args or all(
            accepts(args[0], k) and accepts(args[1], v) for k, v in value.items()))
    if origin is collections.abc.Callable or kind is collections.abc.Callable:
        return callable(value)
    if isinstance(kind, type):
        return isinstance(value, kind)
    return True  # an annotation this checker does not know: the function checks it


def _shown(value) -> str:
    text = repr(value)
    return f"the {type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def check_argument(name: str, kind, value) -> None:
    if accepts(kind, value):
        return
    hint = ""
    if isinstance(value, str) and typing.get_origin(kind) in (list, collections.abc.Sequence) or (
            isinstance(value, str) and any(typing.get_origin(k) is list for k in typing.get_args(kind))):
        hint = f" (one text goes in a list: [{value[:40]!r}])"
    raise ArgumentTypeError(f"{name} must be {_type_name(kind)}, not {_shown(value)}{hint}")


def type_hints(fn) -> dict:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # an annotation that does not resolve here: check none rather than guess
        return {}


def checked(fn, public: str | None = None):
    """`fn` with its arguments checked against its annotations before it runs. `public`: the name
    its errors and UNANNOTATED know it by (a class's, for its methods), default its own.

    >>> def f(path: str, texts: list[str], n: int = 1): return len(texts) * n
    >>> checked(f)("run", ["a", "b"], n=2)
    4
    >>> checked(f)("run", "ab")
    Traceback (most recent call last):
    ...
    charseq.errors.ArgumentTypeError: texts must be a list of str, not the str 'ab' (one text goes in a list: ['ab'])
    """
    signature = inspect.signature(fn)
    public = public or fn.__name__

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as e:  # a missing or unexpected argument: said as the function's own
            raise ArgumentTypeError(f"{public}(): {e}") from None
        hints = type_hints(fn)
        for name, value in bound.arguments.items():
            parameter = signature.parameters[name]
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                _check_options(public, value)
            elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                continue
            elif (public, name) in UNANNOTATED:
                check_argument(name, resolve(UNANNOTATED[(public, name)]), value)
            elif name in hints:
                check_argument(name, hints[name], value)
        try:
            return fn(*args, **kwargs)
        except CharseqError as e:
            # The library's messages name settings as the command line does; a caller from outside
            # charseq (the user's code, not the CLI, which calls the same methods) reads its keywords.
            if not sys._getframe(1).f_globals.get("__name__", "").startswith("charseq."):
                in_python_terms(e, keywords(public, fn))
            raise
    return wrapper


def checked_as(public: str):
    """A decorator: the method checked, as `checked` does, its errors naming `public` (its class)."""
    return functools.partial(checked, public=public)


# ----------------------------------------------------------------------------- errors in a caller's keywords
# An option whose keyword is not its name; words of a remedy's prose that are not an option's value.
_KEYWORD_OF = {"--from": "source", "--max-output-len": "max_len"}
_PROSE = {"to", "for", "with", "or", "and", "of", "in"}
# A data set's commands in a message, which a Python caller runs as charseq's functions.
_DATA_PATH = re.compile(r'"\$\(charseq data path ([\w-]+)\)(?:/([^"]+))?"')
_DATA_GET = re.compile(r"\bcharseq data get ([\w-]+)(?: --from (\S+))?")


def data_calls_in_python(text: str) -> str:
    """`text` with the commands of the data sets as the Python functions that do the same.

    >>> data_calls_in_python('give "$(charseq data path sst2)/train.tsv"; run: charseq data get sst2')
    'give charseq.dataset_path("sst2") / "train.tsv"; run: charseq.get_dataset("sst2")'
    >>> data_calls_in_python("run: charseq data get mnist --from PATH_OR_URL")
    'run: charseq.get_dataset("mnist", source=PATH_OR_URL)'
    """
    text = _DATA_PATH.sub(lambda m: f'charseq.dataset_path("{m[1]}")' + (f' / "{m[2]}"' if m[2] else ""), text)
    return _DATA_GET.sub(lambda m: f'charseq.get_dataset("{m[1]}"' + (f", source={m[2]})" if m[2] else ")"), text)


def keywords(public: str, fn) -> dict[str, object]:
    """The keywords `fn` takes, with their annotated types, as its errors may name them: its own
    parameters and those its **options go to (OPTIONS_OF), or its **settings: a train function's
    config dataclasses (its head's `settings`), every head's for run_grid."""
    from charseq.heads import all_heads

    hints = type_hints(fn)
    kinds = {name: hints.get(name, inspect.Parameter.empty) for name, p in inspect.signature(fn).parameters.items()
             if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    if public in OPTIONS_OF:
        kinds = {**keywords("", resolve(OPTIONS_OF[public])[0]), **kinds}
    for head in all_heads():
        for command, train in head.train_commands.items():
            if public in (train.__name__, "run_grid"):
                for config in (*head.settings.get(command, ()), TrainConfig):
                    kinds = {**setting_types(config), **kinds}
    return kinds


def _is_flag(kind) -> bool:
    return kind is bool or (typing.get_origin(kind) in (typing.Union, types.UnionType) and bool in typing.get_args(kind))


def in_python_terms(error: CharseqError, kinds: dict[str, object]) -> None:
    """`error` reworded for a Python caller of a function taking the keywords `kinds` (name -> type):
    `--top-p` reads `top_p`, `--units 64` `units=64`, a flag `--greedy` `greedy=True`, a remedy's
    `--unknown skip` `unknown="skip"`; a remedy that needs a keyword the function lacks is left out.

    >>> e = CharseqError("--top-p must be in (0, 1], not 2", "--greedy for the most likely one", "--beam 4")
    >>> in_python_terms(e, {"top_p": float, "greedy": bool}); str(e)
    'top_p must be in (0, 1], not 2 (use greedy=True for the most likely one)'
    >>> e = CharseqError("cannot decode a.txt", "--encoding to name its encoding", "--errors replace")
    >>> in_python_terms(e, {"encoding": str, "errors": str}); str(e)
    'cannot decode a.txt (use encoding to name its encoding or errors="replace")'
    """
    def keyword(option: str) -> str:  # its own name where the function has it (train_seq2seq's max_output_len)
        name = option[2:].replace("-", "_")
        return name if name in kinds else _KEYWORD_OF.get(option, name)

    def known(option: str) -> bool:
        return keyword(option) in kinds

    def number(text: str | None) -> bool:
        return bool(text) and re.fullmatch(r"-?[\d.]+(e-?\d+)?", text) is not None

    def in_message(match: re.Match) -> str:  # values in a message are the user's: only numbers become keywords
        option, value = match[1], match[2]
        if not known(option):
            return match[0]
        name, rest = keyword(option), f" {value}" if value else ""
        if number(value):
            return f"{name}={value}"
        return (f"{name}=True" if _is_flag(kinds[name]) else name) + rest

    def in_remedy(match: re.Match) -> str:
        name, value = keyword(match[1]), match[2]
        if value and value.lower() not in _PROSE:  # "--unknown skip", "--vocab-size 1098", "--from PATH_OR_URL"
            return f"{name}={value if number(value) or value.isupper() else json.dumps(value)}"
        return (f"{name}=True" if _is_flag(kinds[name]) else name) + (f" {value}" if value else "")

    if getattr(error, "in_python_terms", False):  # an inner public function did it already
        return
    error.message = OPTION_AND_VALUE.sub(in_message, data_calls_in_python(error.message))
    remedies = [data_calls_in_python(r) for r in error.remedies]
    error.remedies = tuple(OPTION_AND_VALUE.sub(in_remedy, r) for r in remedies
                           if all(known(o) for o in OPTION.findall(r)))
    error.args, error.in_python_terms = (error.message, *error.remedies), True


def _check_options(public: str, options: dict) -> None:
    """**options of a function that passes them on: checked against the parameters they go to. Settings
    of the train functions go to the config dataclasses, which check them (charseq.settings)."""
    if public not in OPTIONS_OF:
        return
    (target,) = resolve(OPTIONS_OF[public])
    parameters, hints = inspect.signature(target).parameters, type_hints(target)
    for name, value in options.items():
        if name not in parameters or name == "self":
            raise ArgumentTypeError(f"{public}() got an unexpected option {name!r} (options: "
                                    f"{', '.join(p for p in parameters if p not in ('self', 'prompt', 'sources'))})")
        if name in hints:
            check_argument(name, hints[name], value)
