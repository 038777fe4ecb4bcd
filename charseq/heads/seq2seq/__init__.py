"""The encoder-decoder head: two shared backbones with attention between them, for source -> target pairs.

    model.py     Seq2Seq: encoder, decoder, Luong or Bahdanau attention, logits over the target
    task.py      Seq2SeqTask: teacher-forced batches, the masked loss, exact match while training
    inference.py Decoder: greedy and beam-search decoding, batched, state carried
    run.py       train_seq2seq, load_seq2seq, Translator, translate, evaluate_seq2seq
    inspect.py   explain_translation: the attention of each output character (the studio)
    export.py    the `translate` signature of a SavedModel (greedy)
    studio.py    the Translate tab and its route (page/: its HTML and JS)
"""

from charseq.heads import Head, lazy
from charseq.heads.seq2seq.sizing import size_seq2seq
from charseq.heads.seq2seq.config import RECORDED, DataConfig, ModelConfig
from charseq.settings import json_fields
from charseq.sizing import counted

MONITOR = ("val_exact_match", "max")


def summary(report: dict) -> str:
    """`charseq evaluate`'s line for an encoder-decoder's report."""
    skipped = f", {counted(report['skipped_rows'], 'bad row')} skipped" if report.get("skipped_rows") else ""
    unknown = report.get("unknown_sources")
    unknown = f"; {counted(unknown, 'source')} with characters the model never saw, read as unknown" if unknown else ""
    unreachable = report.get("unknown_targets")
    unknown += (f"; {counted(unreachable, 'target')} with characters the model never outputs, which no output "
                "can match" if unreachable else "")
    return (f"exact match {report['exact_match']:.4f}, character error rate {report['char_error_rate']:.4f} "
            f"on {counted(report['examples'], 'pair')} (beam {report['beam']}{skipped}{unknown})")


def evaluate(path, file, *, log=None, **options) -> dict:
    from charseq.heads.seq2seq.run import evaluate_seq2seq

    return evaluate_seq2seq(path, file, **options)


HEAD = Head(
    task="seq2seq", cli="charseq.heads.seq2seq.cli", title="an encoder-decoder", monitor=MONITOR,
    train_commands={"train-seq2seq": lazy("charseq.heads.seq2seq.run", "train_seq2seq")},
    evaluate=evaluate, evaluate_options=("encoding", "errors", "skip_bad_rows", "beam", "precision"), summary=summary,
    export=lazy("charseq.heads.seq2seq.export", "build_export"),
    load_for_studio=lazy("charseq.heads.seq2seq.inspect", "load_for_studio"), studio="charseq.heads.seq2seq.studio",
    plot_panels=(("loss (nats/token)", ("train_loss", "val_loss")), ("exact match", ("val_exact_match",))),
    config_keys={"data": ((dict,), True)},
    data_keys={None: {**json_fields(DataConfig), **RECORDED}},
    sizing={"train-seq2seq": size_seq2seq}, settings={"train-seq2seq": (ModelConfig, DataConfig)},
)
