"""The `charseq` command line: thin click commands over the library.

Each command parses its options and calls one library function. Problems the user can fix
are one line on stderr and exit status 1 (2 for usage errors, as click does); a bug shows a
one-line summary, and the full traceback only with `charseq --debug ...` or CHARSEQ_DEBUG=1.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import sys
import traceback

import click

from charseq import settings as library_settings
from charseq.heads import train_commands
from charseq.settings import (ATTENTIONS, CELLS, DECODE_ERRORS, LR_DECAYS, ON_NAN, OPTIMIZERS, PAIR_TASKS,
                              PRECISIONS, PROMPT_UNKNOWN, READOUTS, SOURCE_UNKNOWN, STRATEGIES, TOKENIZERS, WINDOWS)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter is not for users
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"  # everything str.splitlines() breaks at


def _one_line(message: str) -> str:
    """An error message kept to one line even when it quotes a file name or text with line breaks."""
    return "".join(c.encode("unicode_escape").decode() if c in LINE_BREAKS else c for c in message.strip())


COMMANDS_RUN = "charseq.commands"  # ctx.meta key: the commands this invocation runs (grid adds its COMMAND)


def _command_options(ctx) -> set[str]:
    """Every option name (--out, -o, ...) of the commands this invocation runs: an error's advice may
    name only these."""
    return {name for command in ctx.meta.get(COMMANDS_RUN, []) for p in command.params
            if isinstance(p, click.Option) for name in p.opts + p.secondary_opts}


class CharseqGroup(click.Group):
    """Turns library errors into one-line messages instead of tracebacks."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        # Click shows a usage error as four lines (usage, hint, blank, error); charseq keeps
        # every error to one line, with the hint folded in.
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except getattr(click.exceptions, "NoArgsIsHelpError", ()) as e:  # bare `charseq`: the help
            e.show()
            sys.exit(e.exit_code)
        except click.exceptions.ClickException as e:
            ctx = getattr(e, "ctx", None)  # usage errors know their command: point at its --help
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            click.echo(_one_line(f"Error: {e.format_message()}{hint}"), err=True)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("Error: aborted", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

    def parse_args(self, ctx, args):
        # --debug is charseq's own option, but users add it where the error happened: after the
        # command (`charseq train-lm ... --debug`). It is moved before it (not past a `--`).
        end = args.index("--") if "--" in args else len(args)
        if "--debug" in args[1:end]:
            args = ["--debug", *(a for i, a in enumerate(args) if not (a == "--debug" and i < end))]
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta.setdefault(COMMANDS_RUN, []).append(command)  # for the options its errors may advise
        return name, command, rest

    def invoke(self, ctx):
        from charseq.errors import CharseqError

        debug = ctx.params.get("debug") or os.environ.get("CHARSEQ_DEBUG") == "1"
        try:
            return super().invoke(ctx)
        except CharseqError as e:
            if debug:
                traceback.print_exc()
            error = click.ClickException(e.shown(_command_options(ctx).__contains__))
            error.exit_code = e.exit_code
            raise error from None
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except OSError as e:
            if debug:
                traceback.print_exc()
            where = f": {e.filename}" if getattr(e, "filename", None) else ""
            raise click.ClickException(f"{e.strerror or e}{where}") from None
        except Exception as e:  # a bug: say so in one line, keep the traceback for --debug
            if isinstance(e, ValueError) and "null byte" in str(e):  # the OS refuses such paths
                raise click.ClickException("a file name contains a NUL byte") from None
            if isinstance(e, UnicodeEncodeError):  # e.g. a lone surrogate in a file name
                raise click.ClickException(
                    f"{e.object[e.start:e.end]!r} in {e.object[:60]!r} is not valid Unicode ({e.reason})") from None
            if debug:
                traceback.print_exc()
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise click.ClickException(
                f"internal error ({type(e).__name__}: {first}); rerun with --debug for details") from None


@click.group(cls=CharseqGroup, context_settings={"help_option_names": ["-h", "--help"],
                                                  "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.version_option(package_name="charseq", prog_name="charseq")
def main(debug):
    """Character-level sequence models on one shared recurrent backbone.

    \b
    charseq train-lm corpora/poems.txt --out runs/poems
    charseq generate --model runs/poems --prompt 春风 --length 200
    charseq classify-mnist --out runs/mnist
    charseq train-seq2seq corpora/zh-en.tsv --out runs/zh-en
    charseq translate --model runs/zh-en --beam 5 我英语不好
    charseq evaluate --model runs/poems held-out.txt --json
    charseq export --model runs/poems --out exports/poems
    charseq serve runs/
    """


def _import_tensorflow():
    """Import TensorFlow with its native start-up log lines (CUDA probing, oneDNN notices)
    kept off the user's terminal; they bypass TF_CPP_MIN_LOG_LEVEL, so stderr is closed at
    the file-descriptor level for the import only. Python errors are raised after it is restored."""
    if "tensorflow" not in sys.modules:
        _quietly(importlib.import_module, "tensorflow")


def _quietly(function, *args):
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


def _configure_output():
    _import_tensorflow()
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
    """The default the library applies, named by `owner`: "module:Class.field" (a dataclass field)
    or "module:function.parameter" (a parameter's default); a trailing "[i]" picks an item of it."""
    import dataclasses
    import inspect

    where, _, index = owner.partition("[")
    module, _, path = where.partition(":")
    *parents, name = path.split(".")
    value = _default_in_source(module, path)
    if value is not _NOT_LITERAL:
        return value[int(index.rstrip("]"))] if index else value
    # Most owners import TensorFlow: without its native start-up lines on the terminal.
    obj = sys.modules.get(module) or _quietly(importlib.import_module, module)
    for parent in parents:
        obj = getattr(obj, parent)
    if dataclasses.is_dataclass(obj):
        from charseq.settings import defaults

        value = defaults(obj)[name]  # a nested config's fields (the backbone's) are settings too
    else:
        value = inspect.signature(obj).parameters[name].default
    return value[int(index.rstrip("]"))] if index else value


_NOT_LITERAL = object()


def _default_in_source(module: str, path: str):
    """The default at `path` ("Class.field", "function.parameter", "Class.method.parameter") read from
    `module`'s source when it is written there as a literal, or _NOT_LITERAL. Most owners import
    TensorFlow (3-4 s), and `charseq train-lm --help` should not wait for it; tests/test_cli_help.py
    checks every default shown this way against the value the imported library applies. A setting a
    config takes from a nested config (the backbone's) is read from that config's call or class."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return _NOT_LITERAL
    with open(spec.origin, encoding="utf-8") as f:
        node = ast.parse(f.read())
    *parents, name = path.split(".")
    for parent in parents:
        node = next((n for n in node.body if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name == parent), None)
        if node is None:
            return _NOT_LITERAL
    if isinstance(node, ast.FunctionDef):
        args = node.args
        positional = args.posonlyargs + args.args
        pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
        pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
        default = next((d for a, d in pairs if a.arg == name), None)
        return _literal(default)
    fields = {n.target.id: n.value for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    if name in fields:
        return _literal(fields[name])
    for value in fields.values():  # a nested config: `field(default_factory=lambda: BackboneConfig(units=128))`
        factory = next((k.value for k in getattr(value, "keywords", ()) if k.arg == "default_factory"), None)
        call = factory.body if isinstance(factory, ast.Lambda) else factory
        if isinstance(call, ast.Call):
            given = {k.arg: k.value for k in call.keywords}
            if name in given:
                return _literal(given[name])
            call = call.func
        if isinstance(call, ast.Name) and hasattr(library_settings, call.id):  # nested configs live in charseq.settings
            return _default_in_source(library_settings.__name__, f"{call.id}.{name}")
    return _NOT_LITERAL


def _literal(node):
    if node is None:
        return _NOT_LITERAL
    try:
        return ast.literal_eval(node)
    except ValueError:
        return _NOT_LITERAL


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


def model_options(config: str):
    """The backbone's options; `config` is the head's model config ("module:Class"), which owns the
    defaults that are not sized to the data (see charseq.sizing)."""
    return _options(
        click.option("--cell", type=click.Choice(CELLS), help=f"Recurrent cell. {SIZED}"),
        click.option("--layers", type=int, help=f"Stacked recurrent layers. {SIZED}"),
        click.option("--units", type=int, help=f"State size of each layer. {SIZED}"),
        library_option("--embedding-dim", type=int, owner=f"{config}.embedding_dim",
                       help="Size of the embedding (or input projection)."),
        click.option("--dropout", type=float, help=f"Dropout between layers and before the output, in [0, 1). {SIZED}"),
        library_option("--input-dropout", type=float, owner=f"{config}.input_dropout",
                       help="Dropout on the first layer's input (each step's embedding), in [0, 1)."),
        library_option("--precision", type=click.Choice(PRECISIONS), owner=f"{config}.precision",
                       help="auto: bfloat16 compute on CPUs with native bf16 (for a language model's LSTM or GRU only "
                       "above 256 units), else float32."),
    )


TRAIN_CONFIG = "charseq.train:TrainConfig"


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
                     "[default: with no --max-steps or --time-budget: a cap sized to the data, see --patience]"),
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


def _given(**options) -> dict:
    """The options given (not None): the library applies its own defaults to the others."""
    return {k: v for k, v in options.items() if v is not None}


def _on_command_line(names) -> set:
    ctx = click.get_current_context()
    return {k for k in names if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}


def _given_settings(settings: dict, resume: bool, out) -> dict:
    """The settings given on the command line (every option defaults to None: the library owns the
    defaults). On --resume, exactly those typed on the command line: the library checks them against
    the run's config.json and refuses any that would change it (only the stopping rules may)."""
    from charseq.errors import CharseqError

    given = _given(**settings)
    if resume:
        if out is None:
            raise CharseqError("--resume needs --out, the run directory to continue")
        return {k: v for k, v in given.items() if k in _on_command_line(given)}
    return given


def _train_on_file(train_fn, train_file, out, force, resume, settings: dict) -> None:
    """The body of a train command that reads one training file (its run named after it by default)."""
    settings = _given_settings(settings, resume, out)
    if out is None:
        out = os.path.join("runs", os.path.splitext(os.path.basename(train_file or "run"))[0])
    train_fn(train_file, out, force=force, resume=resume, log=click.echo, **settings)
    click.echo(f"done: run directory {out}")


# ----------------------------------------------------------------------------- train-lm
LM_MODEL, LM_DATA = "charseq.heads.lm.config:ModelConfig", "charseq.heads.lm.config:DataConfig"  # owners of train-lm's defaults


@main.command("train-lm")
@click.argument("corpus", required=False, type=click.Path(dir_okay=True, path_type=str))
@click.option("--text", help="Train on this sample string instead of a corpus file.")
@library_option("--encoding", owner=f"{LM_DATA}.encoding", help="Text encoding of the corpus.")
@library_option("--errors", type=click.Choice(DECODE_ERRORS), owner=f"{LM_DATA}.errors",
                help="What to do with bytes that do not decode: refuse the corpus, replace them with U+FFFD, "
                "or drop them.")
@library_option("--tokenizer", type=click.Choice(TOKENIZERS), owner=f"{LM_DATA}.tokenizer",
                help="Characters, or SentencePiece subwords.")
@library_option("--vocab-size", type=int, owner=f"{LM_DATA}.vocab_size", help="SentencePiece vocabulary size.")
@click.option("--max-vocab", type=int, help="Keep at most this many characters (rest map to unknown) [default: all].")
@library_option("--min-count", type=int, owner=f"{LM_DATA}.min_count",
                help="Characters seen fewer times map to unknown.")
@model_options(LM_MODEL)
@click.option("--seq-len", type=int, help=f"Characters per training window. {SIZED}")
@library_option("--windows", type=click.Choice(WINDOWS), owner=f"{LM_DATA}.windows",
                help="contiguous: carry the state across windows; random: independent random windows.")
@library_option("--val-fraction", type=float, owner=f"{LM_DATA}.val_fraction",
                help="Fraction of the corpus, taken from its end, held out for validation; 0: no validation, "
                "the last weights are kept.")
@training_options(LM_MODEL)
@library_option("--sample-length", type=int, owner="charseq.heads.lm.run:train_lm.sample_length",
                help="Characters of sample text shown at each evaluation (0: none).")
def train_lm_command(corpus, text, out, force, resume, **settings):
    """Train a next-character language model on CORPUS (a text file).

    Stops at --max-steps, --epochs or --time-budget, whichever comes first; with none of them,
    when the validation loss has not improved for --patience evaluations. Settings not given are
    sized to the corpus (printed in one line at start, recorded in config.json). The best weights
    (by validation loss) are kept. The run directory defaults to runs/<corpus name>.
    """
    _configure_output()
    from charseq.heads.lm.run import train_lm

    settings = _given_settings(settings, resume, out)
    if out is None:
        out = os.path.join("runs", os.path.splitext(os.path.basename(corpus))[0] if corpus else "text")
    train_lm(corpus, out, text=text, force=force, resume=resume, log=click.echo, **settings)
    click.echo(f"done: run directory {out}")


# ----------------------------------------------------------------------------- classifiers
CLASSIFIER_MODEL = "charseq.heads.classifier.config:ClassifierConfig"
TRAIN_CLASSIFIER = "charseq.heads.classifier.config:TextData"  # owns train-classifier's data defaults
label_smoothing_option = library_option(  # both classifiers'
    "--label-smoothing", type=float, owner=f"{CLASSIFIER_MODEL}.label_smoothing",
    help="Train towards 1 - this on the true class and this spread over all classes (0: off).")


@main.command("classify-mnist")
@click.option("--data", type=click.Path(), help="An MNIST-format set: Keras-style .npz, or a directory of the four "
              "IDX files (.gz or raw). Default: MNIST from charseq's cache, fetched once (charseq data get mnist).")
@click.option("--val-fraction", type=float, help="The fraction of the training images (stratified by class, "
              "shuffled by --seed) held out for validation; 0: none, the last weights are kept. [default: 5,000 of "
              "60,000; of a smaller set the same share but at least 1,000 images, at most a fifth]")
@model_options(CLASSIFIER_MODEL)
@click.option("--bidirectional/--no-bidirectional", default=None,
              help=f"Also read the rows bottom to top, or not. {SIZED}")
@click.option("--augment-shift", type=int, help=f"Shift training images by up to this many pixels (augmentation; "
              f"0: off). {SIZED}")
@click.option("--augment-rotate", type=float, help="Also turn training images by up to this many degrees (bilinear; "
              f"augmentation; 0: off). {SIZED}")
@click.option("--augment-scale", type=float, help="Also scale training images by a factor within 1 ± this "
              f"(bilinear; augmentation; 0: off). {SIZED}")
@library_option("--augment-elastic", type=float, owner=f"{CLASSIFIER_MODEL}.augment_elastic",
                help="Also bend training images by a smooth random field of this many pixels (standard deviation; "
                "Simard's elastic distortion; augmentation).")
@library_option("--readout", type=click.Choice(READOUTS), owner=f"{CLASSIFIER_MODEL}.readout",
                help="What the classifier reads: the final state, the mean or max of the outputs over the rows, "
                "an attention-weighted mean, or final+mean+max.")
@label_smoothing_option
@training_options(CLASSIFIER_MODEL)
def classify_mnist_command(data, out, force, resume, **settings):
    """Classify MNIST digits read row by row: 28 steps of 28 pixels.

    Holds a validation split out of the training images and prints train and validation accuracy
    after every epoch (default: until validation stops improving, at most 20 epochs, reading the
    rows both ways from training images shifted, turned and scaled a little). At the end the test
    images are scored once, with the weights validation chose: one "test:" line, recorded in
    RUN/test.json. The run directory defaults to runs/mnist.
    """
    _configure_output()
    from charseq.heads.classifier.run import train_mnist

    settings = _given_settings(settings, resume, out)
    out = out or os.path.join("runs", "mnist")
    train_mnist(out, data, force=force, resume=resume, log=click.echo, **settings)
    click.echo(f"done: run directory {out}")


@main.command("train-classifier")
@click.argument("train_file", required=False, type=click.Path())
@click.option("--val", type=click.Path(), help="Validation file (same format) [default: hold out --val-fraction].")
@library_option("--val-fraction", type=float, owner=f"{TRAIN_CLASSIFIER}.val_fraction",
                help="Without --val: the fraction of the rows held out for validation, stratified by label and "
                "shuffled by --seed, copies of a text kept on one side; 0: no validation, the last weights are kept.")
@click.option("--text-column", help="Column with the texts [default: text, sentence, content or review].")
@click.option("--label-column", help="Column with the labels [default: label].")
@click.option("--skip-bad-rows", is_flag=True, help="Skip (and count) rows with the wrong number of fields or no text.")
@library_option("--tokenizer", type=click.Choice(TOKENIZERS), owner=f"{TRAIN_CLASSIFIER}.tokenizer",
                help="Read the texts as characters, or as SentencePiece pieces learned from the training texts.")
@library_option("--vocab-size", type=int, owner=f"{TRAIN_CLASSIFIER}.vocab_size",
                help="SentencePiece vocabulary size.")
@click.option("--max-len", type=int, help="Cut texts to this many characters (or pieces) [default: no limit].")
@click.option("--max-vocab", type=int, help="Keep at most this many characters (rest map to unknown) [default: all].")
@library_option("--min-count", type=int, owner=f"{TRAIN_CLASSIFIER}.min_count",
                help="Characters seen fewer times map to unknown.")
@click.option("--init-from", type=click.Path(), help="Start from the backbone and vocabulary of a train-lm run.")
@library_option("--encoding", owner=f"{TRAIN_CLASSIFIER}.encoding", help="Text encoding of the files.")
@model_options(CLASSIFIER_MODEL)
@click.option("--bidirectional", is_flag=True, help="Also read each text backwards.")
@click.option("--readout", type=click.Choice(READOUTS),
              help="What the classifier reads: the final state, the mean or max of the outputs over the text, "
              f"an attention-weighted mean, or final+mean+max. {SIZED}")
@click.option("--char-noise", type=float,
              help="Augmentation: delete or replace this fraction of each training text's characters (or pieces) "
              f"at random. {SIZED}")
@label_smoothing_option
@training_options(CLASSIFIER_MODEL)
def train_classifier_command(train_file, out, force, resume, **settings):
    """Train a text classifier on TRAIN_FILE: a TSV or CSV with a header, one text and label per row.

    Any number of classes; label names are kept. Default: sized to the data, trained until validation
    stops improving; run directory runs/<file name>.
    """
    _configure_output()
    from charseq.heads.classifier.run import train_classifier

    _train_on_file(train_classifier, train_file, out, force, resume, settings)


@main.command("classify")
@click.option("--model", "-m", "model_dir", required=True, type=click.Path(), help="Run directory of a text classifier.")
@click.argument("texts", nargs=-1, metavar="[TEXT]...")
@click.option("--input", "input_file", type=click.Path(), help="A file with one text per line.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per text.")
def classify_command(model_dir, texts, input_file, as_json):
    """Print the label and its probability for each TEXT (or each line of --input)."""
    _configure_output()
    from charseq.heads.classifier.run import classify
    from charseq.errors import CharseqError

    texts, lines = _inputs(texts, input_file)
    if not texts:
        raise CharseqError("nothing to classify: give texts or --input FILE")
    blank = [i for i, (t, line) in enumerate(zip(texts, lines)) if line is None and not t.strip()]
    if blank:  # an empty TEXT argument (a blank line of --input gets a blank output line instead)
        raise CharseqError(f"cannot classify an empty text (TEXT argument {blank[0] + 1})")
    given = [i for i, t in enumerate(texts) if t.strip()]  # a blank line gets a blank output line
    results = dict(zip(given, classify(model_dir, [texts[i] for i in given]) if given else []))
    for i, (text, line) in enumerate(zip(texts, lines)):
        result = results.get(i, {"text": text, "label": None})
        if as_json:
            click.echo(_json_line({**({"line": line} if line else {}), **result}))
        elif i in results:
            click.echo(f"{result['label']}\t{result['probability']:.3f}\t{_one_line(result['text'])}")
        else:
            click.echo("")


def _json_line(obj) -> str:
    """One JSON object on one line, even for readers that also break lines at U+0085, U+2028, U+2029."""
    text = json.dumps(obj, ensure_ascii=False)
    return text.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _inputs(args, input_file) -> tuple[list[str], list[int | None]]:
    """The texts of the command line, then one per line of `input_file` (split at \\n only, blank
    lines kept so that output line N answers input line N); and each one's line number (None for
    the command line's)."""
    from charseq.files import read_text

    texts, lines = list(args), [None] * len(args)
    if input_file is not None:
        content = read_text(input_file)
        rows = content.split("\n")
        if content.endswith("\n"):
            rows.pop()
        texts += rows
        lines += range(1, len(rows) + 1)
    return texts, lines


# ----------------------------------------------------------------------------- encoder-decoder
MAKE_PAIRS = "charseq.data.pairs:make_pairs"
SEQ2SEQ_MODEL = "charseq.heads.seq2seq.config:Seq2SeqConfig"
TRAIN_SEQ2SEQ = "charseq.heads.seq2seq.config:Seq2SeqData"  # owns train-seq2seq's data defaults


@main.command("make-pairs")
@click.argument("task", type=click.Choice(PAIR_TASKS))
@click.option("--n", "n", type=int, default=20000, show_default=True, help="How many distinct pairs.")
@library_option("--digits", type=int, owner=f"{MAKE_PAIRS}.digits", help="addition: numbers of up to this many digits.")
@library_option("--min-length", type=int, owner=f"{MAKE_PAIRS}.length[0]", help="reverse/sort: shortest string.")
@library_option("--max-length", type=int, owner=f"{MAKE_PAIRS}.length[1]", help="reverse/sort: longest string.")
@library_option("--seed", type=int, owner=f"{MAKE_PAIRS}.seed", help="Random seed (same seed, same pairs).")
@click.option("--out", "-o", type=click.Path(), required=True, help="TSV file to write (source<TAB>target).")
@click.option("--force", is_flag=True, help="Replace an existing file.")
def make_pairs_command(task, n, digits, min_length, max_length, seed, out, force):
    """Write N synthetic source<TAB>target pairs of TASK: addition (12+345 -> 357), reverse,
    sort (the characters of a string) or dates (human formats -> ISO 8601)."""
    from charseq.data.pairs import make_pairs
    from charseq.errors import CharseqError
    from charseq.files import write_bytes_atomic

    if os.path.exists(out) and not force:
        raise CharseqError(f"{out} already exists; use --force to replace it")
    length = None if min_length is None and max_length is None else (
        min_length if min_length is not None else library_default(f"{MAKE_PAIRS}.length[0]"),
        max_length if max_length is not None else library_default(f"{MAKE_PAIRS}.length[1]"))
    pairs = make_pairs(task, n, **_given(seed=seed, digits=digits, length=length))
    write_bytes_atomic(out, "".join(f"{s}\t{t}\n" for s, t in pairs).encode("utf-8"))
    click.echo(f"wrote {len(pairs):,} {task} pairs to {out}" + (f" (only {len(pairs):,} distinct exist)"
                                                                 if len(pairs) < n else ""))


@main.command("train-seq2seq")
@click.argument("train_file", required=False, type=click.Path())
@click.option("--val", type=click.Path(), help="Validation pairs [default: hold out --val-fraction].")
@library_option("--val-fraction", type=float, owner=f"{TRAIN_SEQ2SEQ}.val_fraction",
                help="Without --val: the fraction of the pairs held out for validation, shuffled by --seed, pairs "
                "with the same source kept on one side; 0: no validation, the last weights are kept.")
@click.option("--shared-vocab", is_flag=True, help="One vocabulary for source and target.")
@click.option("--skip-bad-rows", is_flag=True, help="Skip (and count) lines without one tab or with an empty side.")
@click.option("--max-input-len", type=int, help="Longest source accepted (longer: an error, or --skip-long).")
@click.option("--skip-long", is_flag=True, help="Skip (and count) sources over --max-input-len.")
@library_option("--encoding", owner=f"{TRAIN_SEQ2SEQ}.encoding", help="Text encoding of the files.")
@model_options(SEQ2SEQ_MODEL)
@library_option("--attention", type=click.Choice(ATTENTIONS), owner=f"{SEQ2SEQ_MODEL}.attention",
                help="How each decoder step looks at the encoder outputs.")
@click.option("--reverse-source", is_flag=True, help="Read the source backwards (the classic LSTM seq2seq trick).")
@click.option("--max-output-len", type=int, help="Decoding limit [default: 2x the longest training target + 10].")
@training_options(SEQ2SEQ_MODEL)
def train_seq2seq_command(train_file, out, force, resume, **settings):
    """Train an encoder-decoder on TRAIN_FILE: source<TAB>target, one pair per line.

    Default: sized to the data, trained until validation stops improving; run directory
    runs/<file name>. Prints validation loss, exact match
    and character error rate (greedy decoding of up to 1,000 validation pairs) as it trains.
    """
    _configure_output()
    from charseq.heads.seq2seq.run import train_seq2seq

    _train_on_file(train_seq2seq, train_file, out, force, resume, settings)


TRANSLATOR = "charseq.heads.seq2seq.run:Translator.__call__"


@main.command("translate")
@click.option("--model", "-m", "model_dir", required=True, type=click.Path(), help="Run directory of an encoder-decoder.")
@click.argument("sources", nargs=-1, metavar="[SOURCE]...")
@click.option("--input", "input_file", type=click.Path(), help="A file with one source per line.")
@library_option("--beam", type=int, owner=f"{TRANSLATOR}.beam", help="Beam width (1: greedy).")
@library_option("--n-best", type=int, owner=f"{TRANSLATOR}.n_best", help="Print this many hypotheses per source.")
@library_option("--length-penalty", type=float, owner=f"{TRANSLATOR}.length_penalty",
                help="Rank by log-probability / length**this (0: raw log-probability).")
@click.option("--max-output-len", type=int, help="Stop a hypothesis after this many characters [default: the "
              "model's, from train-seq2seq --max-output-len or 2x its longest training target + 10].")
@library_option("--unknown", type=click.Choice(SOURCE_UNKNOWN), owner=f"{TRANSLATOR}.unknown",
                help="What to do with source characters the model does not know: refuse the source, or read "
                "them as the unknown symbol.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per source.")
def translate_command(model_dir, sources, input_file, beam, n_best, length_penalty, max_output_len, unknown, as_json):
    """Map each SOURCE (or each line of --input) to its output sequence."""
    _configure_output()
    from charseq.errors import CharseqError
    from charseq.heads.seq2seq.run import Translator

    sources, lines = _inputs(sources, input_file)
    if not sources:
        raise CharseqError("nothing to translate: give sources or --input FILE")
    given = [i for i, s in enumerate(sources) if s]  # a blank line gets a blank output line
    results = dict(zip(given, Translator(model_dir)(
        [sources[i] for i in given], **_given(beam=beam, n_best=n_best, max_len=max_output_len,
                                              length_penalty=length_penalty, unknown=unknown)) if given else []))
    n_best = n_best if n_best is not None else library_default(f"{TRANSLATOR}.n_best")
    for i, (source, line) in enumerate(zip(sources, lines)):
        hyps = results.get(i, [])
        if as_json:
            click.echo(_json_line({**({"line": line} if line else {}), "source": source, "hypotheses": [
                {"text": t, "log_prob": lp, "score": sc} for t, lp, sc in hyps]}))
        elif n_best == 1:  # from --input: the output, a tab and the source it came from
            best = _one_line(hyps[0][0]) if hyps else ""
            click.echo(f"{best}\t{_one_line(source)}" if line and source else best)
        else:
            click.echo(source)  # then its hypotheses, best first: ranking score, log-probability, text
            for text, log_prob, score in hyps:
                click.echo(f"  {score:8.4f} {log_prob:9.4f}  {text}")


# ----------------------------------------------------------------------------- generate
GENERATOR = "charseq.heads.lm.sampling:Generator.__call__"


@main.command("generate")
@click.option("--model", "-m", "model_dir", required=True, type=click.Path(), help="Run directory of a trained model.")
@library_option("--prompt", "-p", owner=f"{GENERATOR}.prompt", help="Text to continue (empty: start of a line).")
@library_option("--length", "-n", type=int, owner=f"{GENERATOR}.length", help="Characters (tokens) to generate.")
@library_option("--temperature", "-t", type=float, owner=f"{GENERATOR}.temperature",
                help="Sharpen (<1) or flatten (>1) the distribution; must be > 0.")
@library_option("--top-k", type=int, owner=f"{GENERATOR}.top_k", help="Sample only from the k most likely (0: off).")
@library_option("--top-p", type=float, owner=f"{GENERATOR}.top_p", help="Nucleus sampling threshold in (0, 1].")
@click.option("--greedy", is_flag=True, help="Always take the most likely character.")
@click.option("--seed", type=int, help="Random seed (same seed, same text) [default: a fresh one each time].")
@library_option("--num-samples", type=int, owner=f"{GENERATOR}.num_samples",
                help="Independent continuations of the prompt, printed one after another.")
@library_option("--unknown", type=click.Choice(PROMPT_UNKNOWN), owner=f"{GENERATOR}.unknown",
                help="What to do with prompt characters the model does not know: refuse the prompt, leave "
                "them out, or read them as the unknown symbol.")
@click.option("--beam", type=int, default=1, show_default=True,
              help="Beam search with this many hypotheses: the most likely continuations (1: sample).")
@library_option("--n-best", type=int, owner="charseq.heads.lm.beam:BeamSearch.__call__.n_best",
                help="With --beam: print this many continuations, best first, with their log-probabilities.")
def generate_command(model_dir, prompt, num_samples, beam, n_best, **options):
    """Generate text from a trained language model, printing it as it is produced."""
    _configure_output()
    from charseq.heads.lm.run import load_lm
    from charseq.heads.lm.sampling import Generator

    options = _given(**options)
    prompt = prompt if prompt is not None else library_default(f"{GENERATOR}.prompt")
    num_samples = num_samples if num_samples is not None else library_default(f"{GENERATOR}.num_samples")
    n_best = n_best if n_best is not None else library_default("charseq.heads.lm.beam:BeamSearch.__call__.n_best")
    model, vocab, _ = load_lm(model_dir)
    generator = Generator(model, vocab)
    generator.check_options(prompt, num_samples=num_samples, **options)  # a bad option or prompt: before printing anything
    if beam != 1 or n_best != 1:
        from charseq.heads.lm.beam import BeamSearch

        hyps = BeamSearch(model, vocab)(prompt, beam=beam, n_best=n_best,
                                        **{k: v for k, v in options.items() if k in ("length", "unknown")})
        for text, log_prob in hyps:
            click.echo(prompt + text if n_best == 1 else f"--- log-probability {log_prob:.4f} ---\n{prompt}{text}")
        return
    if num_samples == 1:
        click.echo(prompt, nl=False)
        generator(prompt, on_text=lambda piece: click.echo(piece, nl=False), **options)
        click.echo()
        return
    for i, text in enumerate(generator(prompt, num_samples=num_samples, **options)):
        click.echo(f"--- sample {i + 1} ---")
        click.echo(prompt + text)


# ----------------------------------------------------------------------------- evaluate
@main.command("evaluate")
@click.option("--model", "-m", "model_dir", required=True, type=click.Path(), help="Run directory of a trained model.")
@click.argument("file", required=False, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@library_option("--encoding", owner="charseq.heads.lm.run:evaluate_lm.encoding", help="Text encoding of FILE.")
@library_option("--errors", type=click.Choice(DECODE_ERRORS), owner="charseq.heads.lm.run:evaluate_lm.errors",
                help="What to do with bytes of FILE that do not decode: refuse the file, replace them with "
                "U+FFFD, or drop them.")
@click.option("--text-column", help="Text classifiers: the column with the texts [default: the training file's].")
@click.option("--label-column", help="Text classifiers: the column with the labels [default: the training file's].")
@click.option("--skip-bad-rows", is_flag=True,
              help="Text classifiers and encoder-decoders: skip (and count) malformed rows instead of refusing FILE.")
@library_option("--beam", type=int, owner="charseq.heads.seq2seq.run:evaluate_seq2seq.beam",
                help="Encoder-decoders: beam width (1: greedy).")
@click.option("--full-context", is_flag=True,
              help="Language models: score FILE as one stream carrying the state through the whole file "
              "(slower) instead of up to 32 parallel streams.")
def evaluate_command(model_dir, file, as_json, encoding, errors, text_column, label_column, skip_bad_rows, beam,
                     full_context):
    """Score a trained model on held-out data in FILE.

    \b
    Language models: loss (nats/char), bits/char and perplexity on a text file, read as up to 32
    parallel streams that each start from a zero state with their first character unscored
    (on a short file a little worse than one stream; --full-context scores it as one).
    Text classifiers: accuracy and per-class recall on a TSV/CSV file.
    Image classifiers: accuracy and confusion matrix on the test split of FILE (.npz or IDX
    directory), or of the data the model was trained on.
    Encoder-decoders: exact match and character error rate on a file of source<TAB>target pairs.
    """
    _configure_output()
    from charseq.errors import CharseqError
    from charseq.heads import head_of

    head = head_of(model_dir)
    given = _given(encoding=encoding, errors=errors, text_column=text_column, label_column=label_column,
                   skip_bad_rows=skip_bad_rows or None, beam=beam, full_context=full_context or None)
    unused = [name for name in given if name not in head.evaluate_options]
    if unused:  # an option that would do nothing for this head is refused, not silently ignored
        raise CharseqError(f"--{unused[0].replace('_', '-')} does not apply to {model_dir}: it holds {head.title}")
    report = head.evaluate(model_dir, file, log=click.echo, **given)
    click.echo(json.dumps(report) if as_json else head.summary(report))


# ----------------------------------------------------------------------------- plot and grid
@main.command("plot")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(), help="Image to write (.png, .svg or .pdf).")
@click.option("--metric", "metrics", multiple=True,
              help="Draw this metric of metrics.jsonl (repeatable) [default: losses, then accuracy or exact match].")
@click.option("--force", is_flag=True, help="Replace an existing image.")
def plot_command(runs, out, metrics, force):
    """Draw the training curves of one or several RUNS (run or grid directories) against the step.

    Needs matplotlib: pip install 'charseq[plot]'. For live curves, point TensorBoard at the
    runs: tensorboard --logdir runs/
    """
    from charseq.plot import plot_runs

    click.echo(f"wrote {plot_runs(runs, out, metrics, force=force)}")


GRID_COMMANDS = tuple(train_commands())  # every head's train commands (charseq.heads)


@main.command("grid", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("command", type=click.Choice(GRID_COMMANDS))
@click.option("--out", "-o", required=True, type=click.Path(), help="Grid directory: one run directory per "
              "combination, and results.json / results.tsv.")
@click.option("--force", is_flag=True, help="Replace an existing grid directory instead of "
              "resuming it (kept until the new grid's first run has its first checkpoint).")
@click.pass_context
def grid_command(ctx, command, out, force):
    """Train COMMAND once for every combination of comma-separated option values.

    \b
    charseq grid train-lm corpus.txt --lr 1e-3,3e-3 --batch-size 32,64 --units 128,256 \\
        --out runs/grid --time-budget 5

    Every option of COMMAND works; a numeric or choice option given comma-separated values is an
    axis of the grid. Runs go one after another into --out/NAME (e.g. lr=0.001,batch_size=32);
    the results, best first by validation metric (val_loss for language models, val_accuracy for
    classifiers, val_exact_match for encoder-decoders), are printed and written to results.json
    and results.tsv. Run the same command again to resume an interrupted grid: finished runs are
    skipped, unfinished ones continue from their checkpoint.
    """
    from charseq.errors import CharseqError
    from charseq.grid import combinations, format_table, search, split_axes

    train_command = main.get_command(ctx, command)
    ctx.meta.setdefault(COMMANDS_RUN, []).append(train_command)
    params = {p.name: p for p in train_command.params if isinstance(p, click.Option)}
    options = {opt: (p.name, not p.is_flag and not p.count,
                     isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType, click.Choice)))
               for p in params.values() for opt in p.opts + p.secondary_opts}
    fixed, given = split_axes(ctx.args, options)
    axes = {}
    for name, (opt, values) in given.items():
        try:
            axes[name] = [params[name].type.convert(v, params[name], ctx) for v in values]
        except click.BadParameter as e:
            raise CharseqError(f"{opt}: {e.format_message()}") from None

    def argv(combo, path, resume=False, replace=False):
        return [*fixed, *(x for name, value in combo.items() for x in (given[name][0], str(value))),
                "--out", str(path), *(["--resume"] if resume else []), *(["--force"] if replace else [])]

    for combo in combinations(axes) or [{}]:  # every combination parses before anything trains
        try:
            train_command.make_context(command, argv(combo, out), parent=ctx)
        except click.ClickException as e:
            raise CharseqError(f"{command}: {e.format_message()}") from None

    def run_one(combo, path, resume, replace):
        _configure_output()  # TensorFlow loads only once the grid and its --out are known to be good
        with train_command.make_context(command, argv(combo, path, resume, replace), parent=ctx) as sub:
            train_command.invoke(sub)

    rows = search(out, axes, run_one, {"command": command, "fixed": fixed}, force=force, log=click.echo)
    click.echo(format_table(rows))
    click.echo(f"results: {os.path.join(out, 'results.tsv')}")



# ----------------------------------------------------------------------------- export
@main.command("export")
@click.option("--model", "-m", "model_dir", required=True, type=click.Path(), help="Run directory of a trained model.")
@click.option("--out", "-o", required=True, type=click.Path(), help="Directory to write the SavedModel in.")
@click.option("--force", is_flag=True, help="Replace an existing SavedModel in --out.")
def export_command(model_dir, out, force):
    """Write a trained model as a TensorFlow SavedModel, usable without charseq.

    Signatures: generate (language models: prompt, length, temperature, seed -> text),
    classify (classifiers: text -> label, probability, probabilities; plus labels), translate
    (encoder-decoders: source -> text, greedy). Character vocabularies only.
    """
    _configure_output()
    from charseq.export import export_saved_model

    info = export_saved_model(model_dir, out, force=force)
    click.echo(f"exported {info['task']} model to {out}: signatures {', '.join(info['signatures'])}")


# ----------------------------------------------------------------------------- serve
SERVE = "charseq.studio.app:serve"


def _port(value):
    if value is not None and not 0 <= value <= 65535:
        raise click.BadParameter(f"{value} is not a port number (0 to 65535; 0: any free port)")
    return value


@main.command("serve")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@library_option("--host", owner=f"{SERVE}.host",
                help="Address to listen on. Anything but loopback exposes the studio to the network, "
                     "behind a token.")
@library_option("--port", type=int, owner=f"{SERVE}.port", callback=lambda ctx, param, value: _port(value),
                help="Port (0: any free port).")
@library_option("--max-generations", type=int, owner=f"{SERVE}.max_generations",
                help="Generations running at once; more get HTTP 503.")
@library_option("--max-models", type=int, owner=f"{SERVE}.max_models",
                help="Models kept loaded (least recently used go).")
@click.option("--token", help="The token every request must carry (in the URL once, then a cookie; or an "
                              "'Authorization: Token ...' header). Default: none on loopback, a random one "
                              "on any other --host.")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Also accept requests addressed to NAME (the Host header), e.g. a name this machine has "
                   "on the network; '*.example.org' for its subdomains, '*' for any. Repeatable.")
@click.option("--show-paths", is_flag=True, default=None,
              help="Show the runs' absolute paths (corpus files) in the browser; by default paths are shown "
                   "relative to the served folder, or as a file name.")
def serve_command(runs, host, port, max_generations, max_models, token, allow_hosts, show_paths):
    """Open the studio on RUNS (run or grid directories, or folders of runs, which may be empty or not
    exist yet): a local web UI to compare training curves, generate, look inside a language model,
    classify and translate. New runs appear as they are trained."""
    try:
        from charseq.studio.app import is_loopback, serve
    except ImportError as e:
        from charseq.errors import CharseqError
        raise CharseqError(f"the studio needs its extra: pip install 'charseq[studio]' ({e.name} is missing)") from None
    _configure_output()
    if host is not None and not is_loopback(host):
        click.echo(f"Warning: --host {host} makes the studio reachable from other machines; anyone with the "
                   "token in the URL below can use the served models", err=True)
    serve(runs, echo=click.echo, allow_hosts=allow_hosts,
          **_given(host=host, port=port, max_generations=max_generations, max_models=max_models, token=token,
                   show_paths=show_paths))


# ----------------------------------------------------------------------------- data
DATASET_NAMES = ("tinyshakespeare", "sst2", "mnist")  # charseq.data.datasets.DATASETS (tests/test_datasets.py checks)


@main.group("data")
def data_group():
    """Public data sets in charseq's cache: download once, verify the SHA-256, use offline.

    \b
    charseq data get tinyshakespeare
    charseq data get mnist --from ~/Downloads/mnist      # a local copy or a mirror URL
    charseq train-lm "$(charseq data path tinyshakespeare)" --out runs/shakespeare
    charseq data list

    The cache is $CHARSEQ_CACHE, else $XDG_CACHE_HOME/charseq, else ~/.cache/charseq.
    """


@data_group.command("get")
@click.argument("name", metavar="NAME", type=click.Choice(DATASET_NAMES))
@click.option("--from", "source", metavar="PATH_OR_URL",
              help="A local copy (file, folder or zip) or a mirror (http://, https://, file:// URL) to take the data "
              "from instead of its canonical URL; verified by the same checksum.")
def data_get_command(name, source):
    """Download data set NAME (once), verify its SHA-256 and cache it; prints its path."""
    from charseq.data.datasets import get_dataset

    click.echo(get_dataset(name, source, log=lambda line: click.echo(line, err=True)))


@data_group.command("path")
@click.argument("name", metavar="NAME", type=click.Choice(DATASET_NAMES))
def data_path_command(name):
    """Print where data set NAME is cached (its file, or its folder), for scripts; an error if it is not."""
    from charseq.data.datasets import dataset_path

    click.echo(dataset_path(name))


@data_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per data set.")
def data_list_command(as_json):
    """List the data sets charseq can fetch: name, whether cached, size, source."""
    from charseq.data.datasets import datasets_dir, format_size, list_datasets

    rows = list_datasets()
    if as_json:
        for row in rows:
            click.echo(_json_line(row))
        return
    click.echo(f"cache: {datasets_dir()}")
    for row in rows:
        size = format_size(row["size"]) if row["cached"] else "-"
        click.echo(f"{row['name']:<16} {'cached' if row['cached'] else 'not cached':<11} {size:>9}  {row['source']}")


if __name__ == "__main__":
    main()
