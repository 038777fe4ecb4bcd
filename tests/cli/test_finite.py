"""Every float option, on every surface (command line, Python API, studio, exported SavedModel),
refuses NaN, ±inf and values out of its range with a message naming it; the ranges are one table
(charseq.limits.OPTION_BOUNDS), and the studio never answers 500 to a request it can refuse."""

import json
import math
import warnings

import click
import pytest

from charseq.cli import main
from charseq.errors import ArgumentValueError, CharseqError
from charseq.limits import OPTION_BOUNDS
from helpers import assert_clean_error, run_cli_in_process
from helpers import LM_FLAGS, SMALL

BAD = ["nan", "inf", "-inf", "NaN", "-Infinity"]


def float_options() -> list[tuple[str, str, str]]:
    """(command, option, setting) for every float option of the command line."""
    return [(name, p.opts[0], p.name) for name, cmd in sorted(main.commands.items()) for p in cmd.params
            if isinstance(p, click.Option) and isinstance(p.type, click.types.FloatParamType)]


def bound_of(command: str, setting: str):
    return OPTION_BOUNDS[setting]


def test_the_table_bounds_every_float_option_of_the_command_line():
    missing = [(c, o) for c, o, s in float_options() if s not in OPTION_BOUNDS]
    assert missing == [] and len(float_options()) > 40
    for bound in OPTION_BOUNDS.values():  # no range admits a non-finite value
        assert not any(bound.holds(v) for v in (math.nan, math.inf, -math.inf))


def base(command: str, files, finished, tmp_path) -> list:
    out = tmp_path / "run"
    return {"train-lm": ["train-lm", files / "corpus.txt", "--out", out, "--max-steps", "2", *LM_FLAGS],
            "train-classifier": ["train-classifier", files / "reviews.tsv", "--out", out, "--max-steps", "2", *SMALL],
            "classify-mnist": ["classify-mnist", "--data", files / "mnist.npz", "--out", out, "--max-steps", "2", *SMALL],
            "train-seq2seq": ["train-seq2seq", files / "pairs.tsv", "--out", out, "--max-steps", "2", *SMALL],
            "translate": ["translate", "--model", finished["train-seq2seq"], "--n-best", "2", "--beam", "2", "ab"],
            "generate": ["generate", "--model", finished["train-lm"], "--length", "5"]}[command]


@pytest.mark.parametrize("command,option,setting", float_options())
def test_every_float_option_refuses_nan_inf_and_out_of_range(tmp_path, files, finished, command, option, setting):
    bound = bound_of(command, setting)
    outside = [bound.low - 1] + ([] if math.isinf(bound.high) else [bound.high + 1])
    for value in [*BAD, *map(str, outside)]:
        r = run_cli_in_process(*base(command, files, finished, tmp_path), option, value)
        assert_clean_error(r, option)
        assert not (tmp_path / "run").exists()  # refused before anything was written


def test_translate_length_penalty_inf_is_refused_not_ranked(finished):
    """--length-penalty inf printed scores of -0.0000, a ranking without meaning."""
    r = run_cli_in_process("translate", "--model", finished["train-seq2seq"], "--length-penalty", "inf",
                           "--n-best", "2", "--beam", "2", "ab")
    assert_clean_error(r, "--length-penalty", "finite")


def test_the_python_api_refuses_non_finite_settings(tmp_path, files, finished):
    from charseq import Generator, load_lm, train_lm, translate

    for name in ("lr", "dropout", "epochs", "clip_norm", "ema", "l2", "val_fraction", "time_budget"):
        for value in (math.nan, math.inf, -math.inf):
            with pytest.raises(ArgumentValueError, match=f"^{name} must be a finite number"):
                train_lm(files / "corpus.txt", tmp_path / "run", max_steps=2, **{name: value})
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="^length_penalty"):
        translate(finished["train-seq2seq"], ["ab"], beam=3, length_penalty=math.nan)
    generator = Generator(*load_lm(finished["train-lm"])[:2])
    for option in ("temperature", "top_p"):
        with pytest.raises(CharseqError, match=f"^{option} "):
            generator("a", length=3, **{option: math.inf})


# ----------------------------------------------------------------------------- the studio
@pytest.fixture(scope="module")
def client(finished):
    pytest.importorskip("httpx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    from charseq.studio.app import create_app

    with TestClient(create_app([finished["train-lm"].parent]), base_url="http://127.0.0.1:8000",
                    raise_server_exceptions=False) as c:
        yield c


STUDIO_CASES = [
    ("/api/translate", '{"run": "train-seq2seq", "source": "ab", "length_penalty": NaN}', "length_penalty"),
    ("/api/translate", '{"run": "train-seq2seq", "source": "ab", "length_penalty": NaN, "beam": 3}', "length_penalty"),
    ("/api/translate", '{"run": "train-seq2seq", "source": "ab", "length_penalty": 1e999, "beam": 2}', "length_penalty"),
    ("/api/translate", '{"run": "train-seq2seq", "source": "ab", "length_penalty": -Infinity}', "length_penalty"),
    ("/api/translate", '{"run": "train-seq2seq", "source": "ab", "length_penalty": 11}', "length_penalty"),
    ("/api/generate", '{"run": "train-lm", "temperature": NaN}', "temperature"),
    ("/api/generate", '{"run": "train-lm", "temperature": Infinity, "greedy": true}', "temperature"),
    ("/api/generate", '{"run": "train-lm", "top_p": -Infinity}', "top_p"),
    ("/api/generate", '{"run": "train-lm", "top_p": NaN, "beam": 2}', "top_p"),
    ("/api/classify", '{"run": "classify-mnist", "image": [[NaN' + ', 0' * 27 + ']]}', "image"),
]


@pytest.mark.parametrize("path,body,field", STUDIO_CASES)
def test_the_studio_refuses_non_finite_numbers_with_a_4xx(client, path, body, field):
    response = client.post(path, content=body.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"} and field in response.json()["error"]


def test_every_float_field_of_the_studio_refuses_nan(client):
    from charseq import web
    from charseq.studio.views import request_fields

    REQUEST_FIELDS = request_fields()  # every head's POST routes and their fields

    runs = {"/api/generate": "train-lm", "/api/analyze": "train-lm", "/api/classify": "train-classifier",
            "/api/translate": "train-seq2seq"}
    floats = [(path, name) for path, spec in REQUEST_FIELDS.items() for name, f in spec.items() if f.kind is float]
    assert floats  # temperature, top_p, length_penalty
    for path, name in floats:
        body = f'{{"run": "{runs[path]}", "source": "ab", "{name}": NaN}}' if path == "/api/translate" else \
            f'{{"run": "{runs[path]}", "{name}": NaN}}'
        response = client.post(path, content=body.encode(), headers={"content-type": "application/json"})
        assert response.status_code == 400 and name in response.json()["error"], (path, name, response.text)
        assert web.fields({"run": "x", **({"source": "a"} if path == "/api/translate" else {}), name: 0.5},
                             REQUEST_FIELDS[path])  # a finite value in range passes the field check


# ----------------------------------------------------------------------------- the exported SavedModel
def test_the_exported_generate_refuses_non_finite_temperature(tmp_path, finished):
    tf = pytest.importorskip("tensorflow")
    from charseq.export import export_saved_model

    export_saved_model(finished["train-lm"], tmp_path / "export")
    generate = tf.saved_model.load(str(tmp_path / "export")).signatures["generate"]
    for t in (math.nan, math.inf, -math.inf, 1000.0):
        with pytest.raises(tf.errors.InvalidArgumentError, match="temperature"):
            generate(prompt=tf.constant("a"), length=tf.constant(3), temperature=tf.constant(t), seed=tf.constant(1))
    assert json.loads(json.dumps(float(OPTION_BOUNDS["temperature"].high))) == 100.0
