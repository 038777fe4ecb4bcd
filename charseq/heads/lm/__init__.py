"""The language-model head: next-character prediction on the shared backbone.

    model.py     LanguageModel: backbone, then logits over the vocabulary at every step
    task.py      LMTask: training windows of the corpus, the sequence loss, the state carried
    run.py       train_lm, load_lm, evaluate_lm: corpus -> run directory -> model
    inference.py Generator: temperature / top-k / top-p / greedy generation, one compiled loop
    beam.py      BeamSearch: the most likely continuations (generate --beam)
    inspect.py   LMProbe: probabilities, units, what the model expects next (the studio)
    export.py    the `generate` signature of a SavedModel
    studio.py    the Generate and Look inside tabs and their routes (page/: their HTML and JS)
"""

from charseq.heads import Head, lazy
from charseq.heads.lm.config import DataConfig, ModelConfig
from charseq.heads.lm.sizing import size_lm
from charseq.settings import MAYBE_TEXT
from charseq.sizing import counted

MONITOR = ("val_loss", "min")


def summary(report: dict) -> str:
    """`charseq evaluate`'s line for a language model's report."""
    pieces = f"{counted(report['tokens'], 'piece')}, {report['loss_nats_per_token']:.4f} nats/piece" \
        if "tokens" in report else None
    notes = [note for note in (pieces, f"{report['unknown']:,} unknown" if report["unknown"] else None) if note]
    return (f"loss {report['loss_nats']:.4f} nats/char, {report['bits_per_char']:.4f} bits/char, "
            f"perplexity {report['perplexity']:.3f} over {counted(report['chars'], 'character')}"
            + (f" ({'; '.join(notes)})" if notes else "")
            + (", one stream with full context" if report.get("full_context") else
               ", read as parallel streams (--full-context: one stream)"))


def evaluate(path, file, *, log=None, **options) -> dict:
    from charseq.heads.lm.run import evaluate_lm

    return evaluate_lm(path, file, **options)


HEAD = Head(
    task="lm", cli="charseq.heads.lm.cli", title="a language model", monitor=MONITOR,
    train_commands={"train-lm": lazy("charseq.heads.lm.run", "train_lm")},
    evaluate=evaluate, evaluate_options=("encoding", "errors", "full_context", "precision"), summary=summary,
    export=lazy("charseq.heads.lm.export", "build_export"),
    load_for_studio=lazy("charseq.heads.lm.inspect", "load_for_studio"), studio="charseq.heads.lm.studio",
    plot_panels=(("loss (nats/token)", ("train_loss", "val_loss")),),
    config_keys={"data": ((dict,), True), "corpus": ((dict,), True), "vocab_size": ((int,), True),
                 "corpus_file": (MAYBE_TEXT, False), "text_sha256": (MAYBE_TEXT, False),
                 "init_from": (MAYBE_TEXT, False)},
    sizing={"train-lm": size_lm}, settings={"train-lm": (ModelConfig, DataConfig)},
)
