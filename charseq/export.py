"""Export a trained run as a TensorFlow SavedModel that plain TensorFlow (or TF Serving) can use.

    export_saved_model("runs/poems", "exports/poems")

    import tensorflow as tf                      # no charseq needed from here on
    generate = tf.saved_model.load("exports/poems").signatures["generate"]
    generate(prompt=tf.constant("春风"), length=tf.constant(100),
             temperature=tf.constant(0.8), seed=tf.constant(1))["text"]

Everything a request needs is inside the graph: the character vocabulary as lookup tables, the
weights, and the decoding loop. Language models export `generate`, which runs the very
function `charseq generate` compiles (:meth:`charseq.heads.lm.inference.Generator.sample_fn`), so the same
prompt, temperature and seed give the same text. Text classifiers export `classify` and
`labels`, image classifiers `classify` over images, encoder-decoders `translate` (greedy).

An export computes in float32, whatever precision the run trained in: its weights are float32 (a
bfloat16 run keeps float32 master weights), float32 is fast on any CPU or GPU that serves it, and
Keras' layers in bfloat16 would not compute what charseq's bfloat16 step ops compute (float32 sums
and gate arithmetic). So a run trained in bfloat16 exports what `generate --precision float32` and
`translate --precision float32` give, and what its model loaded in float32 classifies.

Characters outside the vocabulary read as the unknown id, as `--unknown unk` does. Only
character vocabularies export: SentencePiece's tokenizer is not an op of plain TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import keras
import tensorflow as tf

from charseq import __version__
from charseq.backbone import portable_graph
from charseq.errors import NO_ROOM, NOT_WRITABLE, CharseqError, write_remedy
from charseq.files import write_json_atomic
from charseq.heads import head
from charseq.runs import RunDir
from charseq.transaction import Replacement, destination

METADATA = "assets.extra/charseq.json"  # TF Serving's place for files that are not part of the graph


SAVED_MODEL_ENTRIES = {"saved_model.pb", "variables", "assets", "assets.extra", "fingerprint.pb"}


# What TensorFlow and charseq write inside a SavedModel's folders: --force replaces nothing that holds more.
SAVED_MODEL_FOLDERS = {"variables": re.compile(r"variables\.(index|data-\d+-of-\d+)"), "assets": re.compile(r"(?!)"),
                       "assets.extra": re.compile(re.escape(METADATA.split("/")[-1]))}


def _foreign_inside(out: Path) -> list[str]:
    """Paths inside the SavedModel's folders that neither TensorFlow nor charseq writes (a user's file)."""
    found = []
    for folder, own in SAVED_MODEL_FOLDERS.items():
        path = out / folder
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            found.append(folder)
        elif path.is_dir():
            found += [f"{folder}/{p.name}" for p in sorted(path.iterdir())
                      if p.is_symlink() or not p.is_file() or not own.fullmatch(p.name)]
    return found


def _not_at_the_top(path: Path) -> str | None:
    """The first entry at the top of `path` that a SavedModel does not have. An export being built
    is checked only there: TensorFlow's temporary files inside a save cut short are its own."""
    return next(iter(sorted(p.name for p in path.iterdir() if p.name not in SAVED_MODEL_ENTRIES)), None)


def _not_a_saved_model(path: Path) -> str | None:
    """The first path anywhere in `path` that is not part of a SavedModel (None: it holds nothing else)."""
    return _not_at_the_top(path) or next(iter(_foreign_inside(path)), None)


# A write that failed for want of room or permission, in the system's words: TensorFlow's file system
# reports it inside a message of its own, which names the hidden folder the export is built in.
WRITE_FAILURES = [os.strerror(code) for code in NO_ROOM + NOT_WRITABLE]


@contextlib.contextmanager
def _writing(shown):
    """A failed write of the export (a full disk, a read-only folder) as one line naming `shown`, the
    user's --out, and what is left: nothing of the new export, and an old one untouched."""
    try:
        yield
    except (OSError, tf.errors.OpError) as e:
        reason = getattr(e, "strerror", None) or next((w for w in WRITE_FAILURES if w in str(e)), None)
        if reason is None:
            raise
        raise CharseqError(f"cannot write the export {shown} ({reason}); nothing of the new export was kept "
                           f"(an old one there is untouched); {write_remedy(e, 'the folder')} and export again"
                           ) from None


def _check_out(out: Path, force: bool) -> Path:
    """Where the export goes (a link to a directory is followed), or a one-line error."""
    if not out.name:
        raise CharseqError("--out must name a directory for the SavedModel, not the current directory")
    out = destination(out)
    if out.is_dir() and any(out.iterdir()):
        # Checked first: --force would refuse a directory that is not a SavedModel.
        other = _not_a_saved_model(out)
        if not (out / "saved_model.pb").exists() or other:
            held = f" (it holds {other})" if other else ""
            raise CharseqError(f"{out} is not a SavedModel; refusing to replace it{held}")
        if not force:
            raise CharseqError(f"{out} already exists; use --force to replace it")
    return out


def _traced_for_saving(module: tf.Module) -> dict:
    """`module`'s signatures, traced, with `module` made to save the TensorFlow variables they read
    in place of its Keras models.

    Keras 3 tracks a model's weights as its own variable objects, which tf.saved_model.load restores
    but the SavedModel loader of TensorFlow's C++ runtime (TF Serving, saved_model_cli run) does
    not: every signature failed there with "Could not find variable". The variables themselves it
    restores. The models are no longer tracked once traced, so that the weights are saved once."""
    signatures = {name: function.get_concrete_function() for name, function in module.signatures().items()}
    read = {}
    for function in signatures.values():
        for variable in function.variables:
            read.setdefault(id(variable), variable)
    for name, value in list(vars(module).items()):
        if isinstance(value, keras.layers.Layer):
            module._delete_tracking(name)  # still there to trace with, no longer saved
    module.variables_read = list(read.values())
    return signatures


def export_saved_model(model_dir: str | Path, out: str | Path, force: bool = False) -> dict:
    """Write the run in `model_dir` as a SavedModel in `out`; returns what was exported.

    The SavedModel is written next to `out` first and moved into place when complete, so a
    failed export leaves no half-written directory (and with `force`, the old export intact).
    """
    shown = out
    out = _check_out(Path(out), force)
    task = RunDir.open(model_dir).read_config()["task"]
    with portable_graph():  # plain TensorFlow ops only: charseq's compiled kernel is not in TF Serving
        module, info = head(task).export(model_dir)
    with _writing(shown):
        build = Replacement.begin(out, check=lambda out: _check_out(out, force), foreign=_not_at_the_top)
    try:
        with _writing(shown):
            with portable_graph():
                tf.saved_model.save(module, str(build.path), signatures=_traced_for_saving(module))
            info = {"task": task, "signatures": sorted(module.signatures()), **info, "precision": "float32",
                    # the run's name, not its path: an export is shipped to other machines
                    "run": Path(model_dir).resolve().name, "step": RunDir(model_dir).weights_step(),
                    "charseq_version": __version__}
            (build.path / METADATA).parent.mkdir(exist_ok=True)
            write_json_atomic(build.path / METADATA, info)
            build.commit()  # `out` is checked once more: it may have appeared while the model was saved
    except BaseException:
        build.rollback()
        raise
    return {**info, "out": str(shown)}
