"""`charseq COMMAND --help` is enough to use a command: every option and argument is explained,
and every default it shows is the one the library applies (the CLI keeps no copy of its own)."""

import dataclasses
import inspect
import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from charseq.cli import LibraryOption, main
from helpers import REPO

COMMANDS = sorted(main.commands)
SIZED = "sized to the data"
# Defaults the command line itself owns: no library function has them.
CLI_DEFAULTS = {("make-pairs", "n"), ("generate", "beam")}  # how many pairs to write; --beam 1 means sampling


def _fields(config) -> dict:
    """A config dataclass's defaults by setting, a nested config's (the backbone's) fields in its place."""
    config = config() if isinstance(config, type) else config
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out.update(_fields(value) if dataclasses.is_dataclass(value) else {f.name: value})
    return out


def _parameters(function) -> dict:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def library_defaults() -> dict[str, tuple[dict, set]]:
    """For each command: the defaults of the library code it calls (named by setting), and the
    settings the library sizes to the data. Looked up here from the library itself, independently of
    how cli.py names its owners."""
    from charseq.data.pairs import make_pairs
    from charseq.heads.classifier.config import ImageData, ModelConfig as ClassifierModel, TextData
    from charseq.heads.classifier.run import evaluate_classifier
    from charseq.heads.classifier.sizing import size_image_classifier, size_text_classifier
    from charseq.heads.lm.beam import BeamSearch
    from charseq.heads.lm.config import DataConfig as LMData, ModelConfig as LMModel
    from charseq.heads.lm.run import evaluate_lm, train_lm
    from charseq.heads.lm.sizing import size_lm
    from charseq.heads.lm.inference import Generator
    from charseq.heads.seq2seq.config import DataConfig as Seq2SeqData, ModelConfig as Seq2SeqModel
    from charseq.heads.seq2seq.run import Translator, evaluate_seq2seq
    from charseq.heads.seq2seq.sizing import size_seq2seq
    from charseq.studio.app import serve
    from charseq.train import TrainConfig

    train = _fields(TrainConfig)
    low, high = inspect.signature(make_pairs).parameters["length"].default
    return {
        "train-lm": ({**train, **_fields(LMModel), **_fields(LMData), **_parameters(train_lm)},
                     set(size_lm(10_000, 50, {}).settings)),
        "classify-mnist": ({**train, **_fields(ClassifierModel), **_fields(ImageData)},
                           set(size_image_classifier(1000, {}).settings)),
        "train-classifier": ({**train, **_fields(ClassifierModel), **_fields(TextData)},
                             set(size_text_classifier(1000, 50, {}).settings)),
        "train-seq2seq": ({**train, **_fields(Seq2SeqModel), **_fields(Seq2SeqData)},
                          set(size_seq2seq(1000, {}).settings)),
        "generate": ({**_parameters(BeamSearch.__call__), **_parameters(Generator.__call__)}, set()),
        "translate": ({**_parameters(Translator.__call__), "max_output_len": None}, set()),
        "evaluate": ({**_parameters(evaluate_classifier), **_parameters(evaluate_seq2seq), **_parameters(evaluate_lm)},
                     set()),
        "make-pairs": ({**_parameters(make_pairs), "min_length": low, "max_length": high}, set()),
        "serve": (_parameters(serve), set()),
    }


def _help_and_default(command: click.Command, param: click.Option) -> tuple[str, object]:
    with click.Context(command, info_name=command.name) as ctx:
        return param.get_help_record(ctx)[1], param.to_info_dict()["default"]  # None when it has none


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_and_argument_is_explained(name):
    command = main.commands[name]
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help and param.help.strip(), f"charseq {name} {param.opts[0]} has no help text"
            assert param.opts[0] in result.output
        else:  # click arguments have no help of their own: the command's description names each one
            shown = [n.strip() for n in (param.metavar or "").strip("[].").split("|")]  # TEXT | IMAGE_FILE: both
            assert (param.metavar and all(n in (command.help or "") for n in shown)) or \
                param.name.upper() in (command.help or ""), f"charseq {name}: {param.name} ({shown}) not described"


@pytest.mark.parametrize("name", COMMANDS)
def test_shown_defaults_are_the_library_s(name):
    """Every option defaults to None (the library applies its default) unless it is a flag or one of
    the few the CLI owns; the default its help shows is the library's value, or "sized to the data"
    exactly for the settings the sizing rule picks."""
    command = main.commands[name]
    defaults, sized = library_defaults().get(name, ({}, set()))
    for param in command.params:
        if not isinstance(param, click.Option) or param.is_flag or param.name in ("help",):
            continue
        option, (help_text, default) = param.opts[0], _help_and_default(command, param)
        shown = re.findall(r"\[default: ([^\]]*)\]", help_text)
        if (name, param.name) in CLI_DEFAULTS:
            assert default is not None and param.show_default, option
            continue
        assert default is None, f"charseq {name} {option} has a default of its own: {default!r}"
        if param.name in sized:
            assert shown and SIZED in shown[-1], f"charseq {name} {option} is sized to the data: {help_text!r}"
            assert not isinstance(param, LibraryOption), option
        elif isinstance(param, LibraryOption):
            assert param.name in defaults, f"charseq {name} {option}: no library default"
            expected = defaults[param.name]
            assert shown and shown[-1] == (str(expected) if expected != "" else '""'), \
                f"charseq {name} {option} shows {shown}, the library's default is {expected!r}"
        elif param.name != "out":  # a train command names its run after the training file (its help says so)
            assert SIZED not in help_text, f"charseq {name} {option} says {SIZED!r}, but the library does not size it"
            assert defaults.get(param.name) is None, \
                f"charseq {name} {option} does not show the library's default {defaults.get(param.name)!r}"


def test_the_command_line_starts_without_tensorflow():
    """The choice lists come from charseq.settings (no TensorFlow), so `charseq --help` is instant."""
    code = "import sys, charseq.cli; assert 'tensorflow' not in sys.modules, 'charseq.cli imported TensorFlow'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_help_shows_without_tensorflow():
    """`charseq COMMAND --help` reads the library's defaults from the TensorFlow-free config modules (test
    above: the same values as the imported library), so no command's help waits 3-4 s for TensorFlow."""
    code = ("import sys\nfrom charseq.cli import main\n"
            f"for name in {COMMANDS!r}:\n"
            "    try:\n        main([name, '--help'], prog_name='charseq')\n"
            "    except SystemExit as e:\n        assert e.code == 0, (name, e.code)\n"
            "    loaded = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
            "    assert not loaded, f'charseq {name} --help imported {loaded}'\n")
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)


def test_python_dash_m_charseq_is_the_command(tmp_path):
    """`python -m charseq`, as pip, pytest and black allow, where the charseq script is not on PATH."""
    from charseq import __version__

    version = subprocess.run([sys.executable, "-m", "charseq", "--version"], capture_output=True, text=True,
                             cwd=REPO, timeout=120)
    assert (version.returncode, version.stdout) == (0, f"charseq, version {__version__}\n"), version.stderr
    usage = subprocess.run([sys.executable, "-m", "charseq", "data", "path", "nope"], capture_output=True, text=True,
                           cwd=REPO, timeout=120)
    assert usage.returncode == 2 and usage.stderr.startswith("Error: Invalid value for 'NAME'"), usage.stderr
    assert "(see 'python -m charseq data path --help')" in usage.stderr


def test_help_names_the_embedding_size_of_pieces():
    """A text classifier over SentencePiece pieces embeds them in another size than --help's default
    (which is the one for characters): the help says which."""
    from charseq.heads.classifier.sizing import size_text_classifier

    pieces = size_text_classifier(1000, 50, {}, pieces=True).settings["embedding_dim"]
    command = main.commands["train-classifier"]
    option = next(p for p in command.params if p.name == "embedding_dim")
    help_text, _ = _help_and_default(command, option)
    assert f"--tokenizer sentencepiece: {pieces}" in help_text, help_text


def test_help_examples_run_where_charseq_is_installed():
    """An installed charseq has no corpora/ folder (a clone has): --help names the corpora that ship
    with it as "$(charseq data path NAME)", which works wherever it is installed."""
    for name in ["", *COMMANDS, "data get", "data path", "data list"]:
        shown = CliRunner().invoke(main, [*name.split(), "--help"], prog_name="charseq").output
        assert "corpora/" not in shown, f"charseq {name} --help:\n{shown}"
    assert '"$(charseq data path poems)"' in CliRunner().invoke(main, ["--help"]).output


@pytest.mark.parametrize("command", ["get", "path"])
def test_data_help_names_the_data_sets(command):
    """A wrong or missing NAME is told to see `charseq data get --help`: the help names them all."""
    from charseq.cli import DATASET_NAMES

    shown = CliRunner().invoke(main, ["data", command, "--help"]).output
    missing = [name for name in DATASET_NAMES if not re.search(rf"\b{re.escape(name)}\b", shown.split("Options:")[0])]
    assert not missing, shown
