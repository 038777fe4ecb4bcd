"""The encoder-decoder's commands: make-pairs, train-seq2seq and translate, thin over charseq.data.pairs
and charseq.heads.seq2seq.run; and what `charseq evaluate` takes for an encoder-decoder."""

from __future__ import annotations

import os

import click

from charseq.cli_errors import one_line
from charseq.files import input_name
from charseq.options import (LibraryOption, blank_argument, configure_output, given, inputs, json_line,
                             library_default, library_option, model_options, train_on_file, training_options,
                             validation_options)
from charseq.settings import ATTENTIONS, INFERENCE_PRECISIONS, PAIR_TASKS, SOURCE_UNKNOWN

MAKE_PAIRS = "charseq.data.pairs:make_pairs"
SEQ2SEQ_MODEL = "charseq.heads.seq2seq.config:ModelConfig"
TRAIN_SEQ2SEQ = "charseq.heads.seq2seq.config:DataConfig"  # owns train-seq2seq's data defaults
STDOUT = "-"  # make-pairs --out: the name that means standard output


@click.command("make-pairs")
@click.argument("task", type=click.Choice(PAIR_TASKS))
@click.option("--n", "n", type=int, default=20000, show_default=True, help="How many distinct pairs.")
@library_option("--digits", type=int, owner=f"{MAKE_PAIRS}.digits", help="addition: numbers of up to this many digits.")
@library_option("--min-length", type=int, owner=f"{MAKE_PAIRS}.length[0]", help="reverse/sort: shortest string.")
@library_option("--max-length", type=int, owner=f"{MAKE_PAIRS}.length[1]", help="reverse/sort: longest string.")
@library_option("--seed", type=int, owner=f"{MAKE_PAIRS}.seed", help="Random seed (same seed, same pairs).")
@click.option("--out", "-o", type=click.Path(), required=True,
              help="File to write: source<TAB>target lines, or source,target rows for a .csv; - writes "
                   "to standard output.")
@click.option("--force", is_flag=True, help="Replace an existing file.")
def make_pairs_command(task, n, digits, min_length, max_length, seed, out, force):
    """Write N synthetic source<TAB>target pairs of TASK: addition (12+345 -> 357), reverse,
    sort (the characters of a string) or dates (human formats -> ISO 8601)."""
    from charseq.data.pairs import check_task_settings, make_pairs, pairs_text
    from charseq.errors import CharseqError
    from charseq.files import write_bytes_atomic

    check_task_settings(task, {setting: option for setting, option, value in (
        ("digits", "--digits", digits), ("length", "--min-length", min_length), ("length", "--max-length", max_length))
        if value is not None})
    to_stdout = out == STDOUT  # as click's files take it: piped on, never a file named "-"
    if not to_stdout and os.path.isdir(out):  # --force would not help: it replaces files only
        raise CharseqError(f"--out {out} is a directory; give a file name such as pairs.tsv")
    if not to_stdout and os.path.exists(out) and not force:
        raise CharseqError(f"{out} already exists; use --force to replace it")
    length = None if min_length is None and max_length is None else (
        min_length if min_length is not None else library_default(f"{MAKE_PAIRS}.length[0]"),
        max_length if max_length is not None else library_default(f"{MAKE_PAIRS}.length[1]"))
    pairs = make_pairs(task, n, **given(seed=seed, digits=digits, length=length))
    text = pairs_text(pairs, out)
    if to_stdout:
        click.echo(text, nl=False)
    else:
        write_bytes_atomic(out, text.encode("utf-8"))
    # On standard error when the pairs are on standard output, so that they are all it holds.
    click.echo(f"wrote {len(pairs):,} {task} pairs to {'standard output' if to_stdout else out}"
               + (f" (only {len(pairs):,} distinct exist)" if len(pairs) < n else ""), err=to_stdout)


@click.command("train-seq2seq")
@click.argument("train_file", required=False, type=click.Path())
@validation_options(TRAIN_SEQ2SEQ, "pairs", "pairs held out for validation, shuffled by --seed, pairs with the same "
                    "source kept on one side")
@click.option("--shared-vocab", is_flag=True, help="One vocabulary for source and target.")
@click.option("--skip-bad-rows", is_flag=True,
              help="Skip (and count) lines without one tab (in a .csv, two fields) or with an empty side.")
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
    """Train an encoder-decoder on TRAIN_FILE: source<TAB>target, one pair per line (source,target
    in a .csv); a first line naming the columns (source<TAB>target) is a header, not a pair.

    Default: sized to the data, trained until validation stops improving; run directory
    runs/<file name>. Prints validation loss, exact match
    and character error rate (greedy decoding of up to 1,000 validation pairs) as it trains.
    """
    configure_output()
    from charseq.heads.seq2seq.run import train_seq2seq

    train_on_file(train_seq2seq, train_file, out, force, resume, settings)


TRANSLATOR = "charseq.heads.seq2seq.config:DecodeConfig"  # the defaults Translator applies


@click.command("translate")
@click.option("--model", "-m", "model_dir", required=True, type=click.Path(), help="Run directory of an encoder-decoder.")
@click.argument("sources", nargs=-1, metavar="[SOURCE]...")
@click.option("--input", "input_file", type=click.Path(),
              help="A file with one source per line; - reads standard input.")
@library_option("--beam", type=int, owner=f"{TRANSLATOR}.beam", help="Beam width (1: greedy).")
@library_option("--n-best", type=int, owner=f"{TRANSLATOR}.n_best", help="Print this many hypotheses per source.")
@library_option("--length-penalty", type=float, owner=f"{TRANSLATOR}.length_penalty",
                help="Rank by log-probability / length**this (0: raw log-probability).")
@click.option("--max-output-len", type=int, help="Stop a hypothesis after this many characters [default: the "
              "model's, from train-seq2seq --max-output-len or 2x its longest training target + 10].")
@library_option("--unknown", type=click.Choice(SOURCE_UNKNOWN), owner=f"{TRANSLATOR}.unknown",
                help="What to do with source characters the model does not know: refuse the source, or read "
                "them as the unknown symbol.")
@click.option("--precision", type=click.Choice(INFERENCE_PRECISIONS),
              help="How the decoder's recurrent products multiply. mixed_bfloat16: bfloat16 products with float32 "
              "sums (states and softmax float32), faster on a CPU with AVX512-BF16 (refused on others), but "
              "outputs may differ from float32's. [default: the precision the model was trained in]")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per source.")
def translate_command(model_dir, sources, input_file, beam, n_best, length_penalty, max_output_len, unknown, precision,
                      as_json):
    """Map each SOURCE (or each line of --input) to its output sequence.

    Prints one output per SOURCE; for --input, one line per line of the file: the output, a tab and
    its source (a blank line stays blank). With
    --n-best N, each source, then its N hypotheses (ranking score, log-probability, text); with
    --json, one JSON object per source."""
    configure_output()
    from charseq.errors import CharseqError
    from charseq.heads.seq2seq.inference import cut_off
    from charseq.heads.seq2seq.run import Translator
    from charseq.vocab import refuse_unknown

    if (beam if beam is not None else library_default(f"{TRANSLATOR}.beam")) == 1 and length_penalty is not None:
        raise CharseqError("--length-penalty ranks beam search's hypotheses, and greedy decoding (--beam 1) has "
                           "one; give --beam N to use it")
    sources, lines = inputs(sources, input_file)
    if not sources:
        raise CharseqError(f"nothing to translate: {input_name(input_file)} is empty" if input_file is not None
                           else "nothing to translate: give sources or --input FILE")
    blank = blank_argument(sources, lines)
    if blank:
        raise CharseqError(f"cannot translate an empty source (SOURCE argument {blank})")
    refuse = (unknown or library_default(f"{TRANSLATOR}.unknown")) == "error"
    tabbed = next((line for source, line in zip(sources, lines) if line and "\t" in source), None)
    if refuse and tabbed:  # no vocabulary has a tab, the character pairs are split at: a file of pairs
        raise CharseqError(f"{input_name(input_file)} line {tabbed} has a tab: --input takes one source per line; "
                           f"to score source<TAB>target pairs, run: charseq evaluate --model {model_dir} "
                           f"{input_file}")
    translator = Translator(model_dir, precision)
    if refuse:  # named by its line, in a long file
        for source, line in zip(sources, lines):
            where = f"{input_name(input_file)} line {line} ({source[:40]!r})" if line else f"the source {source[:40]!r}"
            refuse_unknown(translator.source_vocab, source, where,
                           "the model's source vocabulary", "--unknown unk")
    nonblank = [i for i, s in enumerate(sources) if s]  # a blank line gets a blank output line
    results = dict(zip(nonblank, translator(
        [sources[i] for i in nonblank], **given(beam=beam, n_best=n_best, max_len=max_output_len,
                                                 length_penalty=length_penalty, unknown=unknown)) if nonblank else []))
    n_best = n_best if n_best is not None else library_default(f"{TRANSLATOR}.n_best")
    limit = max_output_len if max_output_len is not None else translator.max_output_len
    cut = sum(cut_off(hyps[0][0], limit) for hyps in results.values() if hyps)
    if cut:  # on standard error: standard output holds the outputs only
        which = "the output" if len(results) == 1 else f"{cut:,} of the {len(results):,} outputs"
        click.echo(f"warning: {which} stopped at the decoding limit of {limit:,} characters before the model "
                   f"ended {'it' if cut == 1 else 'them'} (cut off); --max-output-len sets the limit", err=True)
    for i, (source, line) in enumerate(zip(sources, lines)):
        hyps = results.get(i, [])
        if as_json:
            click.echo(json_line({**({"line": line} if line else {}), "source": source, "hypotheses": [
                {"text": t, "log_prob": lp, "score": sc, **({"cut_off": True} if cut_off(t, limit) else {})}
                for t, lp, sc in hyps]}))
        elif n_best == 1:  # from --input: the output, a tab and the source it came from
            best = one_line(hyps[0][0]) if hyps else ""
            click.echo(f"{best}\t{one_line(source)}" if line and source else best)
        else:
            click.echo(source)  # then its hypotheses, best first: ranking score, log-probability, text
            for text, log_prob, score in hyps:
                click.echo(f"  {score:8.4f} {log_prob:9.4f}  {text}")


COMMANDS = (make_pairs_command, train_seq2seq_command, translate_command)
EVALUATE_OPTIONS = (
    LibraryOption(["--beam"], type=int, owner=f"{TRANSLATOR}.beam", help="Encoder-decoders: beam width (1: greedy)."),
)
EVALUATE_HELP = "Encoder-decoders: exact match and character error rate on a file of source<TAB>target pairs."
