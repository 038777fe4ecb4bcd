"""Export a trained run as a TensorFlow SavedModel that plain TensorFlow (or TF Serving) can use.

    export_saved_model("runs/poems", "exports/poems")

    import tensorflow as tf                      # no charseq needed from here on
    generate = tf.saved_model.load("exports/poems").signatures["generate"]
    generate(prompt=tf.constant("春风"), length=tf.constant(100),
             temperature=tf.constant(0.8), seed=tf.constant(1))["text"]

Everything a request needs is inside the graph: the character vocabulary as lookup tables, the
weights, and the decoding loop. Language models export `generate`, which runs the very
function `charseq generate` compiles (:meth:`charseq.heads.lm.sampling.Generator.sample_fn`), so the same
prompt, temperature and seed give the same text. Text classifiers export `classify` and
`labels`, image classifiers `classify` over images, encoder-decoders `translate` (greedy).

Characters outside the vocabulary read as the unknown id, as `--unknown unk` does. Only
character vocabularies export: SentencePiece's tokenizer is not an op of plain TensorFlow.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from charseq import __version__
from charseq.backbone import portable_graph
from charseq.errors import CharseqError
from charseq.files import write_json_atomic
from charseq.heads import head
from charseq.runs import RunDir, _exchange

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


def _check_out(out: Path, force: bool) -> Path:
    """Where the export goes (a link to a directory is followed), or a one-line error."""
    if not out.name:
        raise CharseqError("--out must name a directory for the SavedModel, not the current directory")
    if out.is_symlink():
        if not out.exists():
            raise CharseqError(f"--out {out} is a symbolic link to {os.readlink(out)}, which does not exist")
        out = Path(os.path.realpath(out))
    if out.exists() and not out.is_dir():
        raise CharseqError(f"--out {out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise CharseqError(f"{out} already exists; use --force to replace it")
        others = sorted(p.name for p in out.iterdir() if p.name not in SAVED_MODEL_ENTRIES)
        others += [p for p in _foreign_inside(out) if p not in others]
        if not (out / "saved_model.pb").exists() or others:
            held = f" (it holds {', '.join(others[:5])})" if others else ""
            raise CharseqError(f"{out} is not a SavedModel; refusing to replace it{held}")
    return out


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
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.export-"))
    try:
        with portable_graph():
            tf.saved_model.save(module, str(staging), signatures=module.signatures())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(staging, 0o777 & ~mask)  # mkdtemp's directory is private; an export is meant to be shared
        info = {"task": task, "signatures": sorted(module.signatures()), **info,
                "run": str(Path(model_dir).resolve()), "charseq_version": __version__}
        (staging / METADATA).parent.mkdir(exist_ok=True)
        write_json_atomic(staging / METADATA, info)
        _check_out(out, force)  # once more: the directory may have appeared while the model was saved
        if out.is_dir() and _exchange(staging, out):  # one atomic swap; `staging` now holds the old export
            pass
        else:
            if out.exists():
                shutil.rmtree(out)
            staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return {**info, "out": str(shown)}
