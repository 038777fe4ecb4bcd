"""The `charseq` command line: thin click commands over the library.

Each command parses its options and calls one library function. The commands that serve every head
(evaluate, plot, grid, export, serve, data) are here; each head's own commands (train-lm, generate,
...) live in its folder (charseq/heads/NAME/cli.py) and are found through the registry of heads, so
a new head adds its commands without a change here. Errors: charseq.cli_errors.
"""

from __future__ import annotations

import importlib
import json
import os

import click

from charseq.cli_errors import COMMANDS_RUN, CharseqGroup
from charseq.heads import all_heads, train_commands
from charseq.options import LibraryOption, configure_output, given, json_line, library_option
from charseq.settings import DECODE_ERRORS, INFERENCE_PRECISIONS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter is not for users
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def head_commands() -> dict[str, click.Command]:
    """Every head's commands (their modules import no TensorFlow), by name."""
    return {command.name: command for h in all_heads() if h.cli
            for command in importlib.import_module(h.cli).COMMANDS}


class Main(CharseqGroup):
    """charseq's commands: its own, then each registered head's (looked up when asked for, so that a
    head registered at run time is listed too), and `evaluate` with every head's options."""

    @property
    def commands(self) -> dict[str, click.Command]:
        return {**self.own_commands, "evaluate": evaluate_command(), **head_commands()}

    @commands.setter
    def commands(self, value: dict) -> None:
        self.own_commands = dict(value)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        self.own_commands[name or cmd.name] = cmd


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.version_option(package_name="charseq", prog_name="charseq")
def main(debug):
    """Character-level sequence models on one shared recurrent backbone.

    \b
    charseq train-lm "$(charseq data path poems)" --out runs/poems
    charseq generate --model runs/poems --prompt 春风 --length 200
    charseq classify-mnist --out runs/mnist
    charseq train-seq2seq "$(charseq data path zh-en)" --out runs/zh-en
    charseq translate --model runs/zh-en --beam 5 我英语不好
    charseq evaluate --model runs/poems held-out.txt --json
    charseq export --model runs/poems --out exports/poems
    charseq serve runs/
    """


# ----------------------------------------------------------------------------- evaluate
READ_TEXT = "charseq.files:read_text"  # owns the defaults of reading a held-out file


def evaluate_command() -> click.Command:
    """`charseq evaluate`: its own options, then those of every head (charseq.heads.Head.cli)."""
    heads = [importlib.import_module(h.cli) for h in all_heads() if h.cli]
    params = [
        click.Option(["--model", "-m", "model_dir"], required=True, type=click.Path(),
                     help="Run directory of a trained model."),
        click.Argument(["file"], required=False, type=click.Path()),
        click.Option(["--json", "as_json"], is_flag=True, help="Print one JSON object."),
        click.Option(["--encoding"], help="Text encoding of FILE [default: the encoding the model's training data "
                     "was read in (--encoding of its training command)]."),
        LibraryOption(["--errors"], type=click.Choice(DECODE_ERRORS), owner=f"{READ_TEXT}.errors",
                      help="What to do with bytes of FILE that do not decode: refuse the file, replace them with "
                      "U+FFFD, or drop them."),
        click.Option(["--skip-bad-rows"], is_flag=True,
                     help="Files of rows (labeled texts, pairs): skip (and count) malformed rows instead of "
                     "refusing FILE."),
        click.Option(["--precision"], type=click.Choice(INFERENCE_PRECISIONS),
                     help="What the model computes in: float32, or mixed_bfloat16 (bfloat16 products with float32 "
                     "sums; needs a CPU with AVX512-BF16). Encoder-decoders: its decoder's recurrent products. "
                     "[default: the precision the model was trained in]"),
    ]
    names = {p.name for p in params}
    for cli in heads:
        params += [p for p in cli.EVALUATE_OPTIONS if p.name not in names]
        names |= {p.name for p in cli.EVALUATE_OPTIONS}
    held_out = "Score a trained model on held-out data in FILE (-: standard input, for texts and pairs)."
    help_text = "\n\n".join([held_out, *(cli.EVALUATE_HELP for cli in heads)])
    return click.Command("evaluate", params=params, callback=evaluate, help=help_text)


def evaluate(model_dir, file, as_json, **options):
    configure_output()
    from charseq.errors import CharseqError, flag
    from charseq.runs import head_of

    head = head_of(model_dir)
    chosen = {name: value for name, value in options.items() if value is not None and value is not False}
    unused = [name for name in chosen if name not in head.evaluate_options]
    if unused:  # an option that would do nothing for this head is refused, not silently ignored
        raise CharseqError(f"{flag(unused[0])} does not apply to {model_dir}: it holds {head.title}")
    # What it says on the way (an image set fetched again) goes to stderr, as `data get`'s does: stdout is the report.
    report = head.evaluate(model_dir, file, log=lambda line: click.echo(line, err=True), **chosen)
    click.echo(json.dumps(report) if as_json else head.summary(report))


# ----------------------------------------------------------------------------- plot and grid
@main.command("plot")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(),
              help="Image to write: .png, .svg or .pdf (or another format matplotlib writes, such as .jpg).")
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


class TrainCommands(click.Choice):
    """Every registered head's train commands (charseq.heads), looked up when the grid is used, so that a
    head registered after this module was imported is one too."""

    def __init__(self):
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(train_commands())

    @choices.setter
    def choices(self, value) -> None:
        pass


class GridCommand(click.Command):
    """The grid command, whose help names the train commands registered when it is shown (TRAIN_COMMANDS)."""

    @property
    def help(self) -> str | None:
        return self._help and self._help.replace("TRAIN_COMMANDS", ", ".join(train_commands()))

    @help.setter
    def help(self, value) -> None:
        self._help = value

    def collect_usage_pieces(self, ctx) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[ARGS]..."]  # the train command's own, as a group's usage says


@main.command("grid", cls=GridCommand,
              context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("command", metavar="COMMAND", type=TrainCommands())  # not a list of every choice, in usage and errors
@click.option("--out", "-o", required=True, type=click.Path(), help="Grid directory: one run directory per "
              "combination, and results.json / results.tsv.")
@click.option("--force", is_flag=True, help="Replace an existing grid directory instead of resuming it (the new "
              "grid is built beside it and takes its place once every run is done).")
@click.pass_context
def grid_command(ctx, command, out, force):
    """Train COMMAND once for every combination of comma-separated option values.

    \b
    charseq grid train-lm corpus.txt --lr 1e-3,3e-3 --batch-size 32,64 --units 128,256 \\
        --out runs/grid --time-budget 5

    COMMAND is a train command (TRAIN_COMMANDS), followed by
    its arguments. Every option of COMMAND works; a numeric or choice option given comma-separated
    values is an axis of the grid. Runs go one after another into --out/NAME (e.g. lr=0.001,batch_size=32);
    the results, best first by validation metric (val_loss for language models, val_accuracy for
    classifiers, val_exact_match for encoder-decoders), are printed and written to results.json
    and results.tsv. Run the same command again to resume an interrupted grid: finished runs are
    skipped, unfinished ones continue from their checkpoint.
    """
    from charseq.grid import command_grid, format_table

    train_command = main.get_command(ctx, command)
    ctx.meta.setdefault(COMMANDS_RUN, []).append(train_command)
    # TensorFlow loads only once the grid and its --out are known to be good
    rows = command_grid(train_command, ctx, out, force, log=click.echo, before_each=configure_output)
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
    classify (classifiers: text, or images [n, rows, cols] of pixel values 0-255 -> label,
    probability, probabilities; plus labels), translate (encoder-decoders: source -> text,
    greedy). Texts: character vocabularies only.
    """
    configure_output()
    from charseq.export import export_saved_model

    info = export_saved_model(model_dir, out, force=force)
    step = f" (its weights of step {info['step']:,})" if info.get("step") is not None else ""
    click.echo(f"exported {info['task']} model{step} to {out}: signatures {', '.join(info['signatures'])}")


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
    configure_output(tensorflow=False)  # the URL shows at once; the first model or data read imports it
    if host is not None and not is_loopback(host):
        click.echo(f"Warning: --host {host} makes the studio reachable from other machines; anyone with the "
                   "token in the URL below can use the served models", err=True)
    serve(runs, echo=click.echo, allow_hosts=allow_hosts,
          **given(host=host, port=port, max_generations=max_generations, max_models=max_models, token=token,
                   show_paths=show_paths))


# ----------------------------------------------------------------------------- data
# charseq.data.datasets.DATASETS, then charseq.data.shipped.SHIPPED (tests/test_datasets.py checks)
DATASET_NAMES = ("tinyshakespeare", "sst2", "mnist", "poems", "zh-en")


@main.group("data")
def data_group():
    """Public data sets in charseq's cache: download once, verify the SHA-256, use offline.

    \b
    charseq data get tinyshakespeare
    charseq data get mnist --from ~/Downloads/mnist      # a local copy or a mirror URL
    charseq train-lm "$(charseq data path tinyshakespeare)" --out runs/shakespeare
    charseq train-lm "$(charseq data path poems)" --out runs/poems   # ships with charseq
    charseq data list

    The cache is $CHARSEQ_CACHE, else $XDG_CACHE_HOME/charseq, else ~/.cache/charseq.
    The corpora poems and zh-en ship with charseq and are read where it is installed.
    """


@data_group.command("get")
@click.argument("name", metavar="NAME", type=click.Choice(DATASET_NAMES))
@click.option("--from", "source", metavar="PATH_OR_URL",
              help="A local copy (file, folder or zip; for mnist also Keras' mnist.npz) or a mirror (http://, "
              "https://, file:// URL) to take the data from instead of its canonical URL; verified by the same "
              "checksum.")
def data_get_command(name, source):
    """Download data set NAME (once), verify its SHA-256 and cache it; prints its path.

    NAME is tinyshakespeare, sst2 or mnist; poems and zh-en ship with charseq (nothing to download).
    charseq data list shows which are cached, and where each comes from.
    """
    from charseq.data.datasets import get_dataset

    click.echo(get_dataset(name, source, log=lambda line: click.echo(line, err=True)))


@data_group.command("path")
@click.argument("name", metavar="NAME", type=click.Choice(DATASET_NAMES))
def data_path_command(name):
    """Print where data set NAME is cached (its file, or its folder), for scripts; an error if it is not.

    NAME is tinyshakespeare, sst2 or mnist (after charseq data get NAME), or poems or zh-en, which
    ship with charseq: their file where it is installed.
    """
    from charseq.data.datasets import dataset_path

    click.echo(dataset_path(name))


@data_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per data set.")
def data_list_command(as_json):
    """List the data sets charseq can fetch: name, whether cached, size, source."""
    from charseq.cache import cache_root, cache_root_origin
    from charseq.data.datasets import datasets_dir, format_size, list_datasets

    rows = list_datasets()
    if as_json:
        for row in rows:
            click.echo(json_line(row))
        return
    # The root, not datasets/: the folder to copy, and to point CHARSEQ_CACHE at on another machine.
    click.echo(f"cache: {cache_root()} ({cache_root_origin()}); data sets in {datasets_dir()}")
    for row in rows:
        size = format_size(row["size"]) if row["cached"] else "-"
        state = ("shipped" if row.get("shipped") else "changed" if row["changed"] else "cached" if row["cached"]
                 else "not cached")
        click.echo(f"{row['name']:<16} {state:<11} {size:>9}  {row['source']}")
    if any(row["changed"] for row in rows):
        click.echo("changed: no longer matches its SHA-256; charseq data get NAME fetches it again")


if __name__ == "__main__":
    main()
