"""The Python API's boundary: every public function checks its arguments' types before it does anything.

A wrong type is an :class:`~charseq.errors.ArgumentTypeError` (a ``TypeError`` and a CharseqError)
naming the parameter, the type it takes and what it got, never an ``AttributeError`` from deep
inside. The types are the functions' own annotations; a function's ``**options`` are checked
against the parameters of the function they go to (:data:`OPTIONS_OF`).

One rule for texts: where a function takes a list of texts (``classify``'s texts, ``translate``'s
sources), a single ``str`` is refused, with the fix in the message (``["1+2"]``), rather than read
as a list of its characters or guessed at.

>>> from charseq.errors import ArgumentTypeError
>>> def f(path: str, texts: list[str], n: int = 1): return len(texts) * n
>>> checked(f)("run", ["a", "b"], n=2)
4
>>> try:
...     checked(f)("run", "ab")
... except ArgumentTypeError as e:
...     print(e)
texts must be a list of str, not the str 'ab' (one text goes in a list: ['ab'])
"""

from __future__ import annotations

import collections.abc
import functools
import importlib
import inspect
import numbers
import os
import types
import typing

from charseq.errors import ArgumentTypeError

# Parameters without a usable annotation: the type they take, as "module:Class" (imported when checked).
UNANNOTATED = {
    ("generate", "model"): "charseq.heads.lm.model:LanguageModel",
    ("generate", "vocab"): "charseq.vocab:CharVocab|charseq.vocab:SentencePieceVocab",
}
# A function's **options: the function whose parameters they are.
OPTIONS_OF = {"generate": "charseq.heads.lm.sampling:Generator.__call__",
              "translate": "charseq.heads.seq2seq.run:Translator.__call__"}
# What the user passes as "any path": a string or an os.PathLike.
_PATH_TYPES = (str, os.PathLike)


def _resolve(spec: str):
    kinds = []
    for one in spec.split("|"):
        module, _, name = one.partition(":")
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
        kinds.append(obj)
    return kinds


def _name(kind) -> str:
    if kind is type(None):
        return "None"
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_name(k) for k in typing.get_args(kind))
    if origin is not None:
        args = typing.get_args(kind)
        base = {list: "a list", tuple: "a tuple", dict: "a dict", collections.abc.Callable: "a callable"}.get(
            origin, getattr(origin, "__name__", str(origin)))
        return f"{base} of {_name(args[0])}" if origin is list and args else base
    if isinstance(kind, list):
        return " or ".join(_name(k) for k in kind)
    return getattr(kind, "__name__", str(kind))


def _accepts(kind, value) -> bool:
    """Whether `value` is of the annotated type `kind` (the subset of typing charseq's API uses)."""
    if kind is typing.Any or kind is inspect.Parameter.empty:
        return True
    if isinstance(kind, list):  # from UNANNOTATED
        return isinstance(value, tuple(kind))
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(k, value) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if kind is os.PathLike or getattr(kind, "__name__", "") == "Path":
        return isinstance(value, _PATH_TYPES)
    if origin in (list, collections.abc.Sequence):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            return False
        args = typing.get_args(kind)
        return not args or all(_accepts(args[0], v) for v in value)
    if origin is tuple:
        return isinstance(value, (tuple, list))
    if origin is dict:
        return isinstance(value, dict)
    if origin is collections.abc.Callable or kind is collections.abc.Callable:
        return callable(value)
    if isinstance(kind, type):
        return isinstance(value, kind)
    return True  # an annotation this checker does not know: the function checks it


def _shown(value) -> str:
    text = repr(value)
    return f"the {type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def check_argument(name: str, kind, value) -> None:
    if _accepts(kind, value):
        return
    hint = ""
    if isinstance(value, str) and typing.get_origin(kind) in (list, collections.abc.Sequence) or (
            isinstance(value, str) and any(typing.get_origin(k) is list for k in typing.get_args(kind))):
        hint = f" (one text goes in a list: [{value[:40]!r}])"
    raise ArgumentTypeError(f"{name} must be {_name(kind)}, not {_shown(value)}{hint}")


def _hints(fn) -> dict:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # an annotation that does not resolve here: check none rather than guess
        return {}


def checked(fn):
    """`fn` with its arguments checked against its annotations before it runs."""
    signature = inspect.signature(fn)
    public = fn.__name__

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as e:  # a missing or unexpected argument: said as the function's own
            raise ArgumentTypeError(f"{public}(): {e}") from None
        hints = _hints(fn)
        for name, value in bound.arguments.items():
            parameter = signature.parameters[name]
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                _check_options(public, value)
            elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                continue
            elif (public, name) in UNANNOTATED:
                check_argument(name, _resolve(UNANNOTATED[(public, name)]), value)
            elif name in hints:
                check_argument(name, hints[name], value)
        return fn(*args, **kwargs)
    return wrapper


def _check_options(public: str, options: dict) -> None:
    """**options of a function that passes them on: checked against the parameters they go to. Settings
    of the train functions go to the config dataclasses, which check them (charseq.settings)."""
    if public not in OPTIONS_OF:
        return
    (target,) = _resolve(OPTIONS_OF[public])
    parameters, hints = inspect.signature(target).parameters, _hints(target)
    for name, value in options.items():
        if name not in parameters or name == "self":
            raise ArgumentTypeError(f"{public}() got an unexpected option {name!r} (options: "
                                    f"{', '.join(p for p in parameters if p not in ('self', 'prompt', 'sources'))})")
        if name in hints:
            check_argument(name, hints[name], value)
