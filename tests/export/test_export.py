"""SavedModel export: every kind of run exports, and plain TensorFlow (no charseq) gives charseq's answers."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from charseq.heads.classifier.inference import predict_probabilities
from charseq.heads.classifier.run import classify, load_classifier, train_classifier, train_mnist
from charseq.data.pairs import make_pairs
from charseq.errors import CharseqError
from charseq.export import export_saved_model
from charseq.heads import head
from charseq.heads.lm.run import load_lm
from charseq.heads.lm.inference import Generator
from charseq.heads.seq2seq.run import Translator, train_seq2seq
from charseq.runs import kept_evaluation
from charseq.vocab import SentencePieceVocab
from helpers import REPO, assert_clean_error, read_metrics, run_cli, run_cli_in_process, snapshot

QUIET = dict(log=lambda s: None, progress_bar=False)
SMALL = dict(units=16, embedding_dim=8, precision="float32", max_steps=6, batch_size=16)

# Runs in a fresh interpreter that cannot import charseq: `-I` ignores PYTHONPATH and the user's
# site, the repository is not on sys.path (cwd is elsewhere) and a meta-path hook refuses charseq
# even through the editable install's path hook.
NO_CHARSEQ = r"""
import json, os, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "charseq" or name.startswith("charseq."):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Refuse())
sys.path = [p for p in sys.path if os.path.realpath(p or ".") != sys.argv[1]]
try:
    import charseq
    print("charseq is importable"); sys.exit(3)
except ImportError:
    pass
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
"""
LOADER = NO_CHARSEQ + r"""
import numpy as np
import tensorflow as tf

requests = json.loads(sys.argv[2])
out = {}
if "lm" in requests:
    generate = tf.saved_model.load(requests["lm"]).signatures["generate"]
    out["generate"] = [generate(prompt=tf.constant(p), length=tf.constant(n), temperature=tf.constant(t),
                                seed=tf.constant(s))["text"].numpy().decode() for p, n, t, s in requests["prompts"]]
if "text" in requests:
    text = tf.saved_model.load(requests["text"])
    r = text.signatures["classify"](text=tf.constant(requests["texts"]))
    out["classify"] = {"label": [x.decode() for x in r["label"].numpy()],
                       "probabilities": r["probabilities"].numpy().tolist(),
                       "labels": [x.decode() for x in text.signatures["labels"]()["labels"].numpy()]}
if "images" in requests:
    images = tf.saved_model.load(requests["images"]).signatures["classify"]
    r = images(images=tf.constant(np.array(requests["pixels"], np.float32)))
    out["images"] = {"label": [x.decode() for x in r["label"].numpy()],
                     "probabilities": r["probabilities"].numpy().tolist()}
if "seq2seq" in requests:
    translate = tf.saved_model.load(requests["seq2seq"]).signatures["translate"]
    out["translate"] = [x.decode() for x in translate(source=tf.constant(requests["sources"]))["text"].numpy()]
print(json.dumps(out))
"""

PROMPTS = [("春", 40, 1.0, 7), ("The river", 30, 0.7, 3), ("", 25, 1.3, 1), ("春Ω", 20, 1.0, 5), ("白日", 15, 0.0, 0),
           ("春", 0, 1.0, 2)]
TEXTS = ["a good film, so", "bad and awful", "日本語 ✨", "truly wonderful, really"]
SOURCES = ["abc", "hello", "xy", "ab?c"]
PIXELS = np.random.default_rng(1).integers(0, 256, size=(5, 28, 28)).astype(np.uint8)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, trained_run):
    d = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(0)
    good, bad = ["a good film", "great fun", "truly wonderful"], ["a bad film", "awful mess", "truly boring"]
    rows = ["sentence\tlabel"] + [f"{rng.choice(good)}, so\tpos" if i % 2 else f"{rng.choice(bad)}, so\tneg"
                                  for i in range(120)]
    (d / "reviews.tsv").write_text("\n".join(rows) + "\n")
    train_classifier(d / "reviews.tsv", d / "text", **SMALL, **QUIET)
    x = rng.integers(0, 256, size=(80, 28, 28)).astype(np.uint8)
    y = rng.integers(0, 3, size=80).astype(np.uint8)
    np.savez(d / "images.npz", x_train=x[:64], y_train=y[:64], x_test=x[64:], y_test=y[64:])
    train_mnist(d / "images", d / "images.npz", **SMALL, **QUIET)
    pairs = make_pairs("reverse", 200, seed=0, length=(2, 5))
    (d / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    train_seq2seq(d / "pairs.tsv", d / "seq2seq", reverse_source=True, **SMALL, **QUIET)
    return {"lm": trained_run, "text": d / "text", "images": d / "images", "seq2seq": d / "seq2seq", "dir": d}


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory):
    d = tmp_path_factory.mktemp("saved")
    for kind in ("lm", "text", "images", "seq2seq"):
        info = export_saved_model(runs[kind], d / kind)
        metadata = json.loads((d / kind / "assets.extra" / "charseq.json").read_text())
        assert metadata["task"] == info["task"]
        # the step of the weights exported: the best evaluation's
        assert metadata["step"] == kept_evaluation(read_metrics(runs[kind]), *head(info["task"]).monitor)["step"]
        assert metadata["run"] == runs[kind].name and str(tmp_path_factory.getbasetemp()) not in json.dumps(metadata)
    return {kind: d / kind for kind in ("lm", "text", "images", "seq2seq")}


def in_plain_tensorflow(exports: dict, cwd) -> dict:
    """What the `exports` ({kind: path}) answer to PROMPTS, TEXTS, PIXELS and SOURCES, in a process
    that cannot import charseq."""
    requests = {**{k: str(v) for k, v in exports.items()}, "prompts": PROMPTS, "texts": TEXTS,
                "pixels": PIXELS.tolist(), "sources": SOURCES}
    repo = os.path.realpath(__import__("helpers").REPO)
    r = subprocess.run([sys.executable, "-I", "-c", LOADER, repo, json.dumps(requests)], capture_output=True,
                       text=True, cwd=cwd, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.splitlines()[-1])


# As TF Serving and `saved_model_cli run` load a SavedModel: TensorFlow's C++ loader, in a session
# (TensorFlow 1's API), which restores the variables by the checkpoint's own restore op.
SESSION_LOADER = NO_CHARSEQ + r"""
import numpy as np
import tensorflow as tf
tf.compat.v1.disable_eager_execution()

def run(path, signature, feeds):
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        found = tf.compat.v1.saved_model.loader.load(session, ["serve"], path).signature_def[signature]
        return session.run({k: v.name for k, v in found.outputs.items()},
                           {found.inputs[k].name: v for k, v in feeds.items()})

requests = json.loads(sys.argv[2])
prompt, length, temperature, seed = requests["prompt"]
text = run(requests["lm"], "generate", {"prompt": np.array(prompt.encode()), "length": np.int32(length),
                                        "temperature": np.float32(temperature), "seed": np.int32(seed)})["text"]
texts = run(requests["text"], "classify", {"text": np.array([t.encode() for t in requests["texts"]])})
images = run(requests["images"], "classify", {"images": np.array(requests["pixels"], np.float32)})
sources = run(requests["seq2seq"], "translate", {"source": np.array([s.encode() for s in requests["sources"]])})
print(json.dumps({"generate": text.decode(), "classify": texts["probabilities"].tolist(),
                  "images": images["probabilities"].tolist(), "translate": [t.decode() for t in sources["text"]]}))
"""


def test_exports_run_in_tensorflow_s_session_loader_as_tf_serving_loads_them(runs, exports, tmp_path):
    """TF Serving and `saved_model_cli run` restore the variables with the SavedModel's own restore
    op: Keras 3's weights, saved as Keras tracks them, were not restored there ("Could not find
    variable"), though tf.saved_model.load restored them."""
    requests = {**{k: str(v) for k, v in exports.items()}, "prompt": PROMPTS[1], "texts": TEXTS,
                "pixels": PIXELS.tolist(), "sources": SOURCES}
    r = subprocess.run([sys.executable, "-I", "-c", SESSION_LOADER, os.path.realpath(REPO), json.dumps(requests)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    got = json.loads(r.stdout.splitlines()[-1])
    assert got["generate"] == texts_of(*load_lm(runs["lm"])[:2])[1]
    ours = classify(runs["text"], TEXTS)
    np.testing.assert_allclose(got["classify"], [[o["probabilities"][n] for n in ("neg", "pos")] for o in ours],
                               atol=1e-6)
    model, _, _ = load_classifier(runs["images"])
    np.testing.assert_allclose(got["images"], predict_probabilities(model, PIXELS), atol=1e-6)
    assert got["translate"] == [h[0][0] for h in Translator(runs["seq2seq"])(SOURCES, unknown="unk")]
    sizes = {kind: sum(f.stat().st_size for f in (exports[kind] / "variables").iterdir()) for kind in exports}
    weights = {"lm": load_lm(runs["lm"])[0], "images": model}
    for kind, keras_model in weights.items():  # each weight saved once, not once more as Keras tracks it
        assert sizes[kind] < 1.5 * sum(w.numpy().nbytes for w in keras_model.weights), kind


def test_the_docs_python_runs_as_written_in_plain_tensorflow(runs, exports, tmp_path):
    """docs/export.md's Python block, verbatim, on an export of each kind (the names it uses linked
    to them) and a PNG of a digit, in a process that cannot import charseq."""
    import tensorflow as tf

    page = (Path(REPO) / "docs" / "export.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    (tmp_path / "exports").mkdir()
    for kind, name in (("lm", "poems"), ("text", "sent"), ("seq2seq", "add"), ("images", "mnist")):
        (tmp_path / "exports" / name).symlink_to(exports[kind])
    (tmp_path / "digit.png").write_bytes(tf.io.encode_png(PIXELS[0][:, :, None]).numpy())
    check = '\nprint(json.dumps([x.decode() for x in out["label"].numpy()]))\n'  # the last `out`: the digit's
    r = subprocess.run([sys.executable, "-I", "-c", NO_CHARSEQ + code + check, os.path.realpath(REPO)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    model, _, config = load_classifier(runs["images"])
    best = predict_probabilities(model, PIXELS[:1]).argmax()
    assert json.loads(r.stdout.splitlines()[-1]) == [config["labels"][best]]


def test_export_help_names_what_each_signature_takes():
    r = run_cli_in_process("export", "--help")
    assert "text, or images [n, rows, cols] of pixel values 0-255" in " ".join(r.stdout.split()), r.stdout


def texts_of(model, vocab) -> list[str]:
    generator = Generator(model, vocab)
    return [generator(p, length=n, seed=s, unknown="unk", **({"temperature": t} if t > 0 else {"greedy": True}))[0]
            for p, n, t, s in PROMPTS]


def test_exports_work_in_plain_tensorflow_and_match_charseq(runs, exports, tmp_path):
    pixels = PIXELS
    got = in_plain_tensorflow(exports, tmp_path)

    expected = texts_of(*load_lm(runs["lm"])[:2])
    assert got["generate"] == expected
    assert len(set(expected[:4])) == 4 and expected[-1] == ""

    ours = classify(runs["text"], TEXTS)
    assert got["classify"]["labels"] == ["neg", "pos"]
    assert got["classify"]["label"] == [o["label"] for o in ours]
    np.testing.assert_allclose(got["classify"]["probabilities"],
                               [[o["probabilities"][n] for n in ("neg", "pos")] for o in ours], atol=1e-6)

    model, _, config = load_classifier(runs["images"])
    probs = predict_probabilities(model, pixels)
    np.testing.assert_allclose(got["images"]["probabilities"], probs, atol=1e-6)
    assert got["images"]["label"] == [config["labels"][i] for i in probs.argmax(-1)]

    assert got["translate"] == [h[0][0] for h in Translator(runs["seq2seq"])(SOURCES, unknown="unk")]


def test_a_run_trained_in_bfloat16_exports_in_float32(runs, corpus_file, tmp_path):
    """A bfloat16 run (a language model's and MNIST's reader's default on a CPU with native bf16)
    exports in float32: its text is `generate --precision float32`'s, its probabilities those of its
    model loaded in float32."""
    from charseq.heads.lm.run import train_lm

    bf16 = {**SMALL, "precision": "mixed_bfloat16"}
    # trained past uniform guesses, so that bfloat16's products would move some of the draws
    lm = train_lm(corpus_file, tmp_path / "lm", layers=2, seq_len=32, sample_length=0,
                  **{**bf16, "units": 64, "max_steps": 60}, **QUIET).path
    images = train_mnist(tmp_path / "images", runs["dir"] / "images.npz", **bf16, **QUIET).path
    assert load_lm(lm)[0].precision == "mixed_bfloat16"
    exports = {"lm": tmp_path / "lm-export", "images": tmp_path / "images-export"}
    for kind, run in (("lm", lm), ("images", images)):
        assert export_saved_model(run, exports[kind])["precision"] == "float32"
    got = in_plain_tensorflow(exports, tmp_path)
    assert got["generate"] == texts_of(*load_lm(lm, "float32")[:2])
    model, _, _ = load_classifier(images, "float32")
    np.testing.assert_allclose(got["images"]["probabilities"], predict_probabilities(model, PIXELS), atol=1e-6)


def test_bad_exports_are_one_line_errors(runs, exports, tmp_path, corpus_file):
    with pytest.raises(CharseqError, match="not a charseq run directory"):
        export_saved_model(runs["dir"], tmp_path / "x")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(CharseqError, match="not a SavedModel; refusing"):
        export_saved_model(runs["text"], taken, force=True)
    r = run_cli_in_process("export", "--model", runs["lm"], "--out", taken)  # not "use --force", refused in turn
    assert_clean_error(r, "not a SavedModel", "notes.txt", "refusing")
    assert "--force" not in r.stderr
    assert (taken / "notes.txt").read_text() == "mine" and not (tmp_path / "x").exists()
    r = run_cli_in_process("export", "--model", runs["lm"], "--out", taken / "notes.txt" / "1")  # a file on the way
    assert_clean_error(r, "notes.txt is a file, not a directory")
    assert "free space" not in r.stderr and (taken / "notes.txt").read_text() == "mine"

    old = tmp_path / "old"
    shutil.copytree(exports["seq2seq"], old)
    r = run_cli_in_process("export", "--model", runs["text"], "--out", old)
    assert_clean_error(r, "already exists", "--force")
    r = run_cli_in_process("export", "--model", runs["text"], "--out", old, "--force")  # an old export is replaced
    assert r.returncode == 0 and "signatures classify, labels" in r.stdout, r.stderr
    metadata = json.loads((old / "assets.extra" / "charseq.json").read_text())
    assert metadata["task"] == "classifier"
    assert f"exported classifier model (its weights of step {metadata['step']}) to {old}:" in r.stdout
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind

    spm = tmp_path / "spm"
    shutil.copytree(runs["lm"], spm)  # the run, with a SentencePiece vocabulary instead of characters
    SentencePieceVocab.train(corpus_file, spm, 60).save(spm)
    with pytest.raises(CharseqError, match="only character vocabularies export"):
        export_saved_model(spm, tmp_path / "spm-export")


def test_an_export_that_cannot_be_written_is_one_line_naming_out(trained_run, tmp_path):
    """A full disk or a file-size limit while the SavedModel is saved: one line naming --out (not the
    hidden folder the export is built in), an old export untouched and nothing left beside it."""
    import resource

    old = tmp_path / "export"
    export_saved_model(trained_run, old)
    before = snapshot(old)

    def small_files():  # writes over 20 kB fail with EFBIG (Python ignores SIGXFSZ), like a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    r = run_cli("export", "--model", trained_run, "--out", old, "--force", preexec_fn=small_files)
    assert_clean_error(r, f"cannot write the export {old} (File too large)", "an old one there is untouched")
    assert snapshot(old) == before and [p.name for p in tmp_path.iterdir()] == ["export"]


def test_signatures_refuse_inputs_of_another_shape_or_range(exports):
    """A loaded signature runs whatever it is given: each checks its inputs in the graph, and one out
    of shape or range is an InvalidArgumentError naming it, never a silent answer."""
    tf = pytest.importorskip("tensorflow")
    classify_images = tf.saved_model.load(str(exports["images"])).signatures["classify"]
    classify_text = tf.saved_model.load(str(exports["text"])).signatures["classify"]
    translate = tf.saved_model.load(str(exports["seq2seq"])).signatures["translate"]
    good = np.full((2, 28, 28), 128.0, np.float32)
    assert classify_images(images=tf.constant(good))["label"].shape == (2,)
    bad = [(np.where(np.arange(28) == 3, np.nan, good), "pixel values must be from 0 to 255"),
           (good * 3, "pixel values must be from 0 to 255"), (-good, "pixel values must be from 0 to 255"),
           (good[:, :, :27], "images must be 28x28 pixels"), (good[0], "images must be a batch"),
           # the model reads any number of rows, one a step, but answers for 28 only what it was trained on
           (good[:, :20], "images must be 28x28 pixels"), (np.concatenate([good, good], 1), "must be 28x28"),
           (good[..., None], "images must be a batch"), (good[0, 0], "images must be a batch"),
           (good[0, 0, 0], "images must be a batch")]
    for images, message in bad:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            classify_images(images=tf.constant(images, tf.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="text must be a batch of strings"):
        classify_text(text=tf.constant("a good film"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="source must be a batch of strings"):
        translate(source=tf.constant("abc"))


def test_the_image_signature_reads_images_scaled_to_0_1_as_charseq_does(exports):
    """Images scaled to [0, 1] as Keras' examples scale MNIST (x / 255) get the answers of their 0-255
    pixels, image by image, as `classify_images` and `classify-mnist --data` read them."""
    tf = pytest.importorskip("tensorflow")
    classify_images = tf.saved_model.load(str(exports["images"])).signatures["classify"]
    as_stored = classify_images(images=tf.constant(PIXELS, tf.float32))["probabilities"].numpy()
    mixed = np.concatenate([PIXELS[:2] / 255.0, PIXELS[2:]]).astype(np.float32)
    np.testing.assert_allclose(classify_images(images=tf.constant(mixed))["probabilities"], as_stored, atol=1e-6)


def test_the_docs_tf_serving_requests_name_signatures_and_inputs_as_exported(exports):
    """docs/export.md's TF Serving requests, made into the tensors TF Serving makes of them (a row
    per instance; each named input as it is), run by the signatures they name."""
    tf = pytest.importorskip("tensorflow")
    page = (Path(REPO) / "docs" / "export.md").read_text(encoding="utf-8")
    assert "--out models/sent/1" in page  # TF Serving serves a model folder's numbered versions
    requests = re.findall(r"curl -d '(.*?)' \\\n\s*localhost:8501/v1/models/(\w+):predict", page)
    assert [model for _, model in requests] == ["sent", "poems"]
    exported = {"sent": exports["text"], "poems": exports["lm"]}
    for body, model in requests:
        request = json.loads(body)
        signature = tf.saved_model.load(str(exported[model])).signatures[request["signature_name"]]
        specs = signature.structured_input_signature[1]
        if "instances" in request:
            (name, spec), = specs.items()
            feeds = {name: tf.constant(request["instances"], spec.dtype)}
        else:
            assert set(request["inputs"]) == set(specs)
            feeds = {name: tf.constant(value, specs[name].dtype) for name, value in request["inputs"].items()}
        outputs = signature(**feeds)
        if "instances" in request:
            assert all(v.shape[0] == len(request["instances"]) for v in outputs.values())
        else:
            assert outputs["text"].shape == () and outputs["text"].numpy().decode()
