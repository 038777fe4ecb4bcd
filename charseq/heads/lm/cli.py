"""The language model's commands: train-lm and generate, thin over charseq.heads.lm.run and sampling;
and what `charseq evaluate` takes for a language model."""

from __future__ import annotations

import os

import click

from charseq.options import (SIZED, configure_output, echo_done, given, given_settings, json_line, library_default,
                             library_option, model_options, on_command_line, training_options)
from charseq.settings import DECODE_ERRORS, INFERENCE_PRECISIONS, PROMPT_UNKNOWN, TOKENIZERS, WINDOWS

CONFIG = "charseq.heads.lm.config"  # owns every default of the language model's commands
LM_MODEL, LM_DATA = f"{CONFIG}:ModelConfig", f"{CONFIG}:DataConfig"


@click.command("train-lm")
@click.argument("corpus", required=False, type=click.Path(dir_okay=True, path_type=str))
@click.option("--text", help="Train on this sample string instead of a corpus file.")
@click.option("--init-from", type=click.Path(),
              help="Fine-tune a train-lm run on CORPUS: start from its weights, with its vocabulary and shape.")
@library_option("--encoding", owner=f"{LM_DATA}.encoding", help="Text encoding of the corpus.")
@library_option("--errors", type=click.Choice(DECODE_ERRORS), owner=f"{LM_DATA}.errors",
                help="What to do with bytes that do not decode: refuse the corpus, replace them with U+FFFD, "
                "or drop them.")
@library_option("--tokenizer", type=click.Choice(TOKENIZERS), owner=f"{LM_DATA}.tokenizer",
                help="Characters, or SentencePiece subwords.")
@library_option("--vocab-size", type=int, owner=f"{LM_DATA}.vocab_size",
                help="SentencePiece vocabulary size (at most: a small corpus gets fewer).")
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
@library_option("--sample-length", type=int, owner=f"{CONFIG}:SAMPLE_LENGTH",
                help="Characters of sample text shown with an evaluation, at most every 30 s (0: none).")
def train_lm_command(corpus, text, init_from, out, force, resume, **settings):
    """Train a next-character language model on CORPUS (a text file, or a folder of .txt files).

    Stops at --max-steps, --epochs or --time-budget, whichever comes first; with none of them,
    when the validation loss has not improved for --patience evaluations. Below 3M training tokens a
    --time-budget alone keeps the cap on passes over the corpus that early stopping runs under.
    Settings not given are sized to the corpus (printed in one line at start, recorded in
    config.json). The best weights (by validation loss) are kept. The run directory defaults to
    runs/<corpus name>.
    """
    configure_output()
    from charseq.heads.lm.run import train_lm

    settings = given_settings(settings, resume, out)
    if out is None:
        out = os.path.join("runs", os.path.splitext(os.path.basename(corpus))[0] if corpus else "text")
    train_lm(corpus, out, text=text, init_from=init_from, force=force, resume=resume, log=click.echo, **settings)
    echo_done(out)


GENERATOR = f"{CONFIG}:GenerateConfig"  # the defaults Generator and BeamSearch apply
PRECISION_HELP = ("How the recurrent products multiply. mixed_bfloat16: bfloat16 products with float32 sums "
                  "(states and softmax float32), faster on a CPU with AVX512-BF16 (refused on others), "
                  "next-character probabilities within ~0.003 of float32's, but a seed's text differs. "
                  "[default: the precision the model was trained in]")


@click.command("generate")
@click.option("--model", "-m", "model_dir", required=True, type=click.Path(), help="Run directory of a trained model.")
@library_option("--prompt", "-p", owner=f"{GENERATOR}.prompt", help="Text to continue (empty: start of a line).")
@library_option("--length", "-n", type=int, owner=f"{GENERATOR}.length", help="Characters (tokens) to generate.")
@library_option("--temperature", "-t", type=float, owner=f"{GENERATOR}.temperature",
                help="Sharpen (<1) or flatten (>1) the distribution, from 0.01 to 100.")
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
@library_option("--n-best", type=int, owner=f"{GENERATOR}.n_best",
                help="With --beam: print this many continuations, best first, with their log-probabilities.")
@click.option("--precision", type=click.Choice(INFERENCE_PRECISIONS), help=PRECISION_HELP)
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per sample (prompt, text, the seed that reproduces it and the sample's number) "
              "or per beam hypothesis (prompt, text, log_prob), printed when it is complete.")
def generate_command(model_dir, prompt, num_samples, beam, n_best, precision, as_json, **options):
    """Generate text from a trained language model, printing it as it is produced."""
    configure_output()
    from charseq.heads.lm.run import load_lm
    from charseq.heads.lm.decoding import SAMPLING_SETTINGS, refuse_settings_the_decoding_ignores
    from charseq.heads.lm.inference import Generator, fresh_seed, sample_on_one_op_thread

    options = given(**options)
    prompt = prompt if prompt is not None else library_default(f"{GENERATOR}.prompt")
    num_samples = num_samples if num_samples is not None else library_default(f"{GENERATOR}.num_samples")
    if num_samples > 1:
        sample_on_one_op_thread()  # before the model loads: TensorFlow's thread pools start with it
    n_best = n_best if n_best is not None else library_default(f"{GENERATOR}.n_best")
    # Options that only sampling uses, as typed (--num-samples 1 asks for nothing more).
    asked = on_command_line(SAMPLING_SETTINGS) - ({"num_samples"} if num_samples == 1 else set())
    refuse_settings_the_decoding_ignores(asked, beam != 1 or n_best != 1, bool(options.get("greedy")))
    model, vocab, _ = load_lm(model_dir, "float32" if precision else None)  # products as asked, the rest float32
    generator = Generator(model, vocab, precision)
    generator.check_options(prompt, num_samples=num_samples, **options)  # a bad option or prompt: before printing anything
    unknown = options.get("unknown") or library_default(f"{GENERATOR}.unknown")
    from charseq.vocab import line_ends_as_read, quoted_characters

    missing = vocab.unknown(line_ends_as_read(vocab, prompt)) if unknown != "error" else []
    if missing:  # the model continues the prompt without them (skip) or reads the unknown symbol (unk): said once
        click.echo(f"warning: the prompt's characters {quoted_characters(missing)} are not in the model's vocabulary: "
                   + ("left out" if unknown == "skip" else "read as the unknown symbol"), err=True)
    if beam != 1 or n_best != 1:
        from charseq.heads.lm.beam import BeamSearch

        hyps = BeamSearch(model, vocab, precision)(prompt, beam=beam, n_best=n_best,
                                        **{k: v for k, v in options.items() if k in ("length", "unknown")})
        for text, log_prob in hyps:
            if as_json:
                click.echo(json_line({"prompt": prompt, "text": text, "log_prob": log_prob}))
            else:
                click.echo(prompt + text if n_best == 1 else f"--- log-probability {log_prob:.4f} ---\n{prompt}{text}")
        return
    if as_json:
        # The seed is drawn here when not given, so that each line can say it; greedy text is the
        # same whatever the seed, so its lines have none.
        seed = {} if options.get("greedy") else {"seed": options.setdefault("seed", fresh_seed())}
        for i, text in enumerate(generator(prompt, num_samples=num_samples, **options), 1):
            # The samples drawn together share the seed: the number says which of them a line is.
            click.echo(json_line({"prompt": prompt, "text": text, **seed, **({"sample": i} if seed else {})}))
        return
    if num_samples == 1:
        click.echo(prompt, nl=False)
        generator(prompt, on_text=lambda piece: click.echo(piece, nl=False), **options)
        click.echo()
        return
    for i, text in enumerate(generator(prompt, num_samples=num_samples, **options)):
        click.echo(f"--- sample {i + 1} ---")
        click.echo(prompt + text)


COMMANDS = (train_lm_command, generate_command)
EVALUATE_OPTIONS = (
    click.Option(["--full-context"], is_flag=True,
                 help="Language models: score FILE as one stream carrying the state through the whole file "
                 "(slower) instead of up to 32 parallel streams."),
)
EVALUATE_HELP = ("Language models: loss (nats/char), bits/char and perplexity on a text file, read as up to 32 "
                 "parallel streams that each start from a zero state with their first character unscored "
                 "(on a short file a little worse than one stream; --full-context scores it as one).")
