"""A head that lives outside charseq: it counts the letter "a" in a line of text (a regressor on the
shared backbone). tests/api/test_extra_head.py registers it with one entry in charseq.heads.HEADS and
sees it trained, evaluated and documented through charseq's own command line."""

from charseq.heads import Head, lazy
from charseq.settings import TEXT

from extra_head.sizing import size_count

TASK = "count"


def summary(report: dict) -> str:
    return f"mean absolute error {report['mae']:.3f} over {report['examples']:,} lines"


def evaluate(path, file, *, log=None, **options) -> dict:
    from extra_head.run import evaluate_count

    return evaluate_count(path, file, **options)


def _no_export(run):
    from charseq.errors import CharseqError

    raise CharseqError("a counter has no SavedModel signature")


HEAD = Head(
    task=TASK, title="a letter counter", monitor=("val_loss", "min"), cli="extra_head.cli",
    train_commands={"train-count": lazy("extra_head.run", "train_count")},
    evaluate=evaluate, evaluate_options=("encoding", "errors"), summary=summary,
    export=_no_export, load_for_studio=lazy("extra_head.run", "load_for_studio"),
    plot_panels=(("loss (squared error)", ("train_loss", "val_loss")),),
    config_keys={"data": ((dict,), True)}, data_keys={None: {"train": (TEXT, True)}},
    sizing={"train-count": size_count},
)
