"""What the command line's commands share: options whose defaults (and the defaults --help shows)
are the library's, the backbone's and the training loop's options, the settings a command was
given, and reading texts from arguments or a file. Each head's commands (charseq/heads/*/cli.py)
are built from these."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
import shlex
import sys
import threading

import click

from charseq.settings import CELLS, LR_DECAYS, ON_NAN, OPTIMIZERS, PRECISIONS, STRATEGIES, defaults


_importing = threading.Lock()


def import_tensorflow():
    """Import TensorFlow with its native start-up log lines (CUDA probing, oneDNN notices)
    kept off the user's terminal; they bypass TF_CPP_MIN_LOG_LEVEL, so stderr is closed at
    the file-descriptor level for the import only. Python errors are raised after it is restored.
    Safe from several threads (the studio's requests): one imports, the others wait for it.

    Where matplotlib is installed, Keras imports matplotlib.pyplot as it loads, for image-gallery
    helpers no command calls: 0.45 s of TensorFlow's 3 s. The commands hold that import off while
    TensorFlow loads (Keras, finding no matplotlib, leaves those helpers out), so matplotlib loads
    only where a command plots (`charseq plot`)."""
    with _importing:
        if "tensorflow" not in sys.modules:
            hold_off = "matplotlib" not in sys.modules
            if hold_off:
                sys.modules["matplotlib"] = None  # an import of it raises ImportError, as if not installed
            try:
                quietly(importlib.import_module, "tensorflow")
            finally:
                if hold_off and sys.modules.get("matplotlib", False) is None:
                    del sys.modules["matplotlib"]


def quietly(function, *args):
    """`function(*args)` with file descriptor 2 (stderr) sent to /dev/null while it runs (except with
    CHARSEQ_DEBUG=1)."""
    if os.environ.get("CHARSEQ_DEBUG") == "1":
        return function(*args)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            return function(*args)
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def configure_output(tensorflow: bool = True):
    """Set up the terminal for a command; with `tensorflow`, import it now, quietly (a command that
    may never need it, like `serve`, passes False and imports it when it first does)."""
    if tensorflow:
        import_tensorflow()
    # Generated text (Chinese, emoji) must print even where the locale is not UTF-8.
    # Line buffering, so progress shows up in a piped log (`| tee train.log`) as it happens.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace", line_buffering=True)


# ----------------------------------------------------------------------------- shared options
def _options(*decorators):
    def apply(f):
        for decorator in reversed(decorators):
            f = decorator(f)
        return f
    return apply


SIZED = "[default: sized to the data]"  # the library's rule (charseq.sizing) picks these when not given


def library_default(owner: str):
    """The default the library applies, named by `owner`: "module:Class.field" (a config dataclass's
    field, a nested config's included), "module:function.parameter" (a parameter's default) or
    "module:NAME" (a constant); a trailing "[i]" picks an item of it. The modules named are
    TensorFlow-free (each head's config.py), so `charseq COMMAND --help` does not wait for TensorFlow."""
    where, _, index = owner.partition("[")
    module, _, path = where.partition(":")
    *parents, name = path.split(".")
    obj = importlib.import_module(module)
    for parent in parents:
        obj = getattr(obj, parent)
    if not parents:
        value = getattr(obj, name)
    elif dataclasses.is_dataclass(obj):
        value = defaults(obj)[name]
    else:
        value = inspect.signature(obj).parameters[name].default
    return value[int(index.rstrip("]"))] if index else value


class LibraryOption(click.Option):
    """An option whose default is the library's: the command passes None (so the library applies its
    own default) and --help shows that default, looked up in the library only when the help is shown,
    so that `charseq` starts without loading TensorFlow."""

    def __init__(self, *args, owner: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner

    def get_help_extra(self, ctx):
        extra = super().get_help_extra(ctx)
        try:
            value = library_default(self.owner)
        except ImportError as e:  # an optional extra (the studio's) is not installed: no default to show
            if (e.name or "").startswith("charseq"):
                raise  # a module moved: a bug, not a missing extra
            return extra
        if value is not None:
            extra["default"] = value if value != "" else '""'
        return extra


def library_option(*names, owner: str, **kwargs):
    """click.option with its default (and the default its help shows) owned by the library at `owner`."""
    return click.option(*names, cls=LibraryOption, owner=owner, **kwargs)


def validation_options(config: str, what: str, held_out: str):
    """--val and --val-fraction of a train command: a validation file of `what`, else a fraction of the
    training rows held out as `held_out` says; `config` owns the fraction's default."""
    return _options(
        click.option("--val", type=click.Path(), help=f"Validation {what} [default: hold out --val-fraction]."),
        library_option("--val-fraction", type=float, owner=f"{config}.val_fraction",
                       help=f"Without --val: the fraction of the {held_out}; 0: no validation, the last weights "
                       "are kept."),
    )


def model_options(config: str, embedding_note: str = ""):
    """The backbone's options; `config` is the head's model config ("module:Class"), which owns the
    defaults that are not sized to the data (see charseq.sizing). `embedding_note`: where the head's
    sizing rule embeds in another size than that default, said before the default --help shows."""
    return _options(
        click.option("--cell", type=click.Choice(CELLS), help=f"Recurrent cell. {SIZED}"),
        click.option("--layers", type=int, help=f"Stacked recurrent layers. {SIZED}"),
        click.option("--units", type=int, help=f"State size of each layer. {SIZED}"),
        library_option("--embedding-dim", type=int, owner=f"{config}.embedding_dim",
                       help="Size of the embedding (or input projection)." + embedding_note),
        click.option("--dropout", type=float, help=f"Dropout between layers and before the output, in [0, 1). {SIZED}"),
        library_option("--input-dropout", type=float, owner=f"{config}.input_dropout",
                       help="Dropout on the first layer's input (each step's embedding), in [0, 1)."),
        library_option("--precision", type=click.Choice(PRECISIONS), owner=f"{config}.precision",
                       help="auto: bfloat16 compute on CPUs with native bf16 (for a text classifier's LSTM or GRU only "
                       "above 256 units), else float32."),
    )


TRAIN_CONFIG = "charseq.settings:TrainConfig"


def training_options(config: str):
    """The training loop's options (optimizer, schedule, stopping, checkpoints), shared by every train
    command; `config` is the head's model config, which owns --l2. With no stopping option, training
    stops early."""
    return _options(
        click.option("--out", "-o", type=click.Path(), help="Run directory."),
        click.option("--force", is_flag=True, help="Replace an existing run directory."),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint."),
        click.option("--batch-size", type=int, help=f"Examples (or windows) per training step. {SIZED}"),
        click.option("--max-steps", type=int, help="Stop after this many steps."),
        click.option("--epochs", type=float, help="Stop after this many passes over the training data. "
                     "[default: a cap sized to the data, unless --max-steps or --time-budget is given (train-lm "
                     "keeps it under a budget, on corpora below 3M tokens); see --patience]"),
        click.option("--time-budget", type=float, help="Stop after this many minutes."),
        click.option("--patience", type=int, help="Stop after this many evaluations without improvement. "
                     "[default: with no --max-steps, --epochs or --time-budget: sized to the data, "
                     "under a cap of passes over the data]"),
        library_option("--optimizer", type=click.Choice(OPTIMIZERS), owner=f"{TRAIN_CONFIG}.optimizer",
                       help="The optimizer (Keras')."),
        click.option("--lr", type=float, help=f"Learning rate. {SIZED}"),
        library_option("--lr-decay", type=click.Choice(LR_DECAYS), owner=f"{TRAIN_CONFIG}.lr_decay",
                       help="cosine: anneal to the end of the run; exponential: see --decay-steps and --decay-rate."),
        library_option("--decay-steps", type=int, owner=f"{TRAIN_CONFIG}.decay_steps",
                       help="Exponential decay: multiply the learning rate by --decay-rate every this many steps."),
        library_option("--decay-rate", type=float, owner=f"{TRAIN_CONFIG}.decay_rate",
                       help="Exponential decay: the factor applied every --decay-steps."),
        click.option("--staircase", is_flag=True, help="Exponential decay in whole steps of --decay-steps."),
        library_option("--clip-norm", type=float, owner=f"{TRAIN_CONFIG}.clip_norm",
                       help="Clip the global gradient norm (0: off)."),
        library_option("--ema", type=float, owner=f"{TRAIN_CONFIG}.ema",
                       help="Evaluate, keep and predict with a moving average of the weights with this momentum "
                       "(e.g. 0.999; 0: off)."),
        library_option("--l2", type=float, owner=f"{config}.l2", help="L2 penalty on the weights."),
        library_option("--seed", type=int, owner=f"{TRAIN_CONFIG}.seed",
                       help="Random seed of the weights, the batches and any random hold-out split."),
        click.option("--eval-every", type=int, help="Evaluate and checkpoint every this many steps. "
                     f"{SIZED[:-1]}: about once per pass over the data]"),
        library_option("--keep", type=int, owner=f"{TRAIN_CONFIG}.keep",
                       help="Checkpoints to keep: the latest, plus older ones in RUN/checkpoints/."),
        library_option("--on-nan", type=click.Choice(ON_NAN), owner=f"{TRAIN_CONFIG}.on_nan",
                       help="A non-finite loss: stop, or go back to the last checkpoint and skip the batch."),
        library_option("--strategy", type=click.Choice(STRATEGIES), owner=f"{TRAIN_CONFIG}.strategy",
                       help="tf.distribute: mirrored = all local GPUs; multiworker = the machines in TF_CONFIG. "
                       "--batch-size is the global batch, split over the replicas; --lr is not scaled."),
    )


def given(**options) -> dict:
    """The options given (not None): the library applies its own defaults to the others."""
    return {k: v for k, v in options.items() if v is not None}


def on_command_line(names) -> set:
    ctx = click.get_current_context()
    return {k for k in names if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}


def given_settings(settings: dict, resume: bool, out) -> dict:
    """The settings given on the command line (every option defaults to None: the library owns the
    defaults). On --resume, exactly those typed on the command line: the library checks them against
    the run's config.json and refuses any that would change it (only the stopping rules may)."""
    from charseq.errors import CharseqError

    chosen = given(**settings)
    if resume:
        if out is None:
            raise CharseqError("--resume needs --out, the run directory to continue")
        return {k: v for k, v in chosen.items() if k in on_command_line(chosen)}
    return chosen


def train_on_file(train_fn, train_file, out, force, resume, settings: dict) -> None:
    """The body of a train command that reads one training file (its run named after it by default)."""
    settings = given_settings(settings, resume, out)
    if out is None:
        out = os.path.join("runs", os.path.splitext(os.path.basename(train_file or "run"))[0])
    train_fn(train_file, out, force=force, resume=resume, log=click.echo, **settings)
    echo_done(out)


def echo_done(out) -> None:
    """The last line of a train command: its run directory, quoted as a shell needs it (a path with
    a space or a quote in it pastes into the next command as it is)."""
    click.echo(f"done: run directory {shlex.quote(str(out))}")


def json_line(obj) -> str:
    """One JSON object on one line, even for readers that also break lines at U+0085, U+2028, U+2029."""
    text = json.dumps(obj, ensure_ascii=False)
    return text.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def inputs(args, input_file) -> tuple[list[str], list[int | None]]:
    """The texts of the command line, then one per line of `input_file` (split at \\n only, blank
    lines kept so that output line N answers input line N); and each one's line number (None for
    the command line's)."""
    from charseq.files import read_text

    texts, lines = list(args), [None] * len(args)
    if input_file is not None:
        content = read_text(input_file)
        rows = content.split("\n")
        if content.endswith("\n") or not content:  # an empty file has no lines, not one blank one
            rows.pop()
        texts += rows
        lines += range(1, len(rows) + 1)
    return texts, lines


def blank_argument(texts: list[str], lines: list[int | None], blank=lambda text: not text) -> int | None:
    """The position (from 1) of the first blank text given on the command line, to refuse: a blank
    line of a file gets a blank output line instead, so that output line N answers input line N."""
    return next((i + 1 for i, (text, line) in enumerate(zip(texts, lines)) if line is None and blank(text)), None)
