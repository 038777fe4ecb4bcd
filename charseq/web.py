"""What the studio and each head's studio view share: request bodies read, parsed and bounded,
JSON errors, server-sent events, and the tab a view adds.

A head's view (``charseq/heads/<head>/studio.py``) builds on this module, never on
:mod:`charseq.studio`: the studio imports the heads, not the other way round. The bounds here
are the ones several views share; a bound of one head's request lives in that head's view.

A request that breaks a rule raises :class:`BadRequest`, which the studio answers with a 4xx JSON
error (``{"error": "..."}``) saying which field and which limit. A number field's range is the
option's in charseq.limits.OPTION_BOUNDS (the command line's); NaN and Infinity, which Python's
JSON reader would accept, are refused in every field, also inside a list (an image's pixels).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse

from charseq.errors import OPTION, OPTION_AND_VALUE, CharseqError
from charseq.limits import OPTION_BOUNDS

MAX_BODY_BYTES = 256 * 1024
MAX_BEAM = 16  # beam width of any view's beam search


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Page:
    """One tab of the studio: #`id` in the URL, `title` in the navigation, its fragment and script."""

    id: str
    title: str
    html: str  # a file in the head's page/ folder: the tab's content (inside <section id="page-ID">)
    script: str  # a JS module in the same folder; its default export is the view class: new View(state, task)


@dataclass(frozen=True)
class Field:
    kind: type | tuple
    default: object = None
    low: float | None = None
    high: float | None = None
    required: bool = False
    bound: str | None = None  # a float field's range: that setting's in OPTION_BOUNDS
    option: str | None = None  # the setting's parameter name where the field is named otherwise (samples: num_samples)


RUN = Field(str, required=True, high=1000)  # the served run a request names


def error(message: str, status: int, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def event(kind: str, data: dict) -> str:
    """One server-sent event."""
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def read_json(request: Request) -> dict:
    """The request body as a JSON object, read no further than the size limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest(f"the request body is larger than the limit of {MAX_BODY_BYTES} bytes", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(f"the request body is larger than the limit of {MAX_BODY_BYTES} bytes", 413)
    return parse_json(bytes(body))


def parse_json(body: bytes) -> dict:
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(f"the request body is larger than the limit of {MAX_BODY_BYTES} bytes", 413)
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BadRequest(f"the request body is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


# Read by the studio's token check on any request, so no route refuses it.
TOKEN_PARAMETER = "token"


def query(request: Request, *names: str) -> dict[str, str]:
    """A GET request's query parameters, which must be among `names`: a misspelt one (`?N=20`) or
    one given twice is an error naming it, as an unknown field of a body is, not quietly ignored."""
    given = [key for key, _ in request.query_params.multi_items() if key != TOKEN_PARAMETER]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(k[:50] for k in unknown)} "
                         f"(expected: {', '.join(names) if names else 'none'})")
    repeated = sorted({key for key in given if given.count(key) > 1})
    if repeated:
        raise BadRequest(f"query parameter {repeated[0]} is given more than once")
    return {key: request.query_params[key] for key in given}


def _finite(value) -> bool:
    """No NaN or ±Infinity anywhere in `value` (Python's JSON reader takes them, and 1e999 as infinity)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(map(_finite, value))
    return True


def fields(data: dict, spec: dict[str, Field]) -> dict:
    """`data` checked against `spec`: unknown keys, missing required keys, wrong types and
    values outside their bounds are errors; absent optional keys get their defaults."""
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)} (expected: {', '.join(spec)})")
    out = {}
    for name, f in spec.items():
        if name not in data or data[name] is None:
            if f.required:
                raise BadRequest(f"missing field: {name}")
            out[name] = f.default
            continue
        value = data[name]
        kinds = f.kind if isinstance(f.kind, tuple) else (f.kind,)
        if isinstance(value, bool) and bool not in kinds:  # JSON true is not the number 1
            raise BadRequest(f"{name} must be {_kind_name(kinds)}, not a boolean")
        if float in kinds and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kinds):
            raise BadRequest(f"{name} must be {_kind_name(kinds)}, not {_json_kind(value)}")
        if not _finite(value):
            raise BadRequest(f"{name} must be a finite number, not {value}" if isinstance(value, float)
                             else f"{name} must hold finite numbers only, not NaN or Infinity")
        if f.bound is not None and not OPTION_BOUNDS[f.bound].holds(value):
            raise BadRequest(f"{name} must be a finite number in {OPTION_BOUNDS[f.bound]}, not {value}")
        size = len(value) if isinstance(value, (str, list)) else value
        if isinstance(size, (int, float)) and not isinstance(value, bool):
            what = "longer than" if isinstance(value, (str, list)) else "more than"
            if f.high is not None and size > f.high:
                raise BadRequest(f"{name} is {what} the limit of {_number(f.high)}"
                                 + (" characters" if isinstance(value, str) else ""), 413 if isinstance(value, str) else 400)
            if f.low is not None and size < f.low:
                if isinstance(value, str) and f.low == 1:
                    raise BadRequest(f"{name} must not be empty")
                raise BadRequest(f"{name} must be at least {_number(f.low)}"
                                 + (" characters long" if isinstance(value, str) else ""))
        out[name] = value
    return out


def _number(bound: float) -> str:
    """A limit written out: 2147483647 and 0.5, not 2.14748e+09."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def in_request_terms(error: CharseqError, spec: dict[str, Field]) -> str:
    """A library error as this API spells it. The library names its settings as the command line
    does (`--top-p`, `use --unknown skip`); a request names them as fields, so `--top-p` reads
    `top_p`, a remedy reads `"unknown": "skip"` or `"greedy": true`, and a remedy that needs a
    setting the request has no field for is left out."""
    renamed = {f.option: name for name, f in spec.items() if f.option}

    def field(option: str) -> str:
        name = option[2:].replace("-", "_")
        return renamed.get(name, name)

    def as_field(match: re.Match) -> str:
        name, value = field(match[1]), match[2]
        if name not in spec:
            return match[0]
        if spec[name].kind is bool:  # a flag: what follows it is the remedy's prose, not its value
            return f'"{name}": true' + (f" {value}" if value else "")
        if not value:
            return name
        return f'"{name}": ' + (json.dumps(value) if spec[name].kind is str else value)

    usable = [r for r in error.remedies if all(field(o) in spec for o in OPTION.findall(r))]
    message = OPTION.sub(lambda m: field(m[0]) if field(m[0]) in spec else m[0], error.message)
    return message + (f" (use {' or '.join(OPTION_AND_VALUE.sub(as_field, r) for r in usable)})" if usable else "")


def _json_kind(value) -> str:
    """What a value sent is, in JSON's words: a number by its value (1.5), else its kind (a string)."""
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return {str: "a string", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _kind_name(kinds) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)
