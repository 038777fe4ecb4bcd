"""The Python API: everything the CLI does is importable from `charseq`, documented, and the
README's "From Python" example runs."""

import inspect
import re
import shutil

import charseq
from helpers import REPO, TINY_SETTINGS

# The library function behind each CLI command (a new command needs its entry here, and in _API).
COMMAND_API = {"train-lm": ["train_lm"], "generate": ["load_lm", "generate", "Generator"],
               "evaluate": ["evaluate_lm", "evaluate_classifier", "evaluate_seq2seq"],
               "classify-mnist": ["train_mnist"], "train-classifier": ["train_classifier"],
               "classify": ["classify", "classify_images", "load_classifier"], "make-pairs": ["make_pairs"],
               "train-seq2seq": ["train_seq2seq"], "translate": ["translate", "Translator", "load_seq2seq"],
               "plot": ["plot_runs"], "grid": ["run_grid"], "export": ["export_saved_model"],
               "serve": ["serve", "create_app"], "data": ["get_dataset", "dataset_path", "list_datasets"]}


def test_every_command_has_a_documented_python_function():
    from charseq.cli import main

    missing = sorted(set(main.commands) - set(COMMAND_API))
    assert not missing, f"commands without a Python function listed here: {missing}"
    for command in main.commands:
        for name in COMMAND_API[command]:
            assert name in charseq._API, f"{name} ({command}) is not importable from charseq"
    for name in charseq.__all__:
        obj = getattr(charseq, name)
        doc = inspect.getdoc(obj)
        assert doc and len(doc) > 20, f"charseq.{name} has no docstring"
        assert obj.__name__ == name  # the function itself, not a module that shares its name


def test_the_readme_python_example_trains_and_samples(tmp_path, monkeypatch, capsys):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## From Python"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    # The README trains for 2 minutes; the test trains a tiny model for 5 steps, the rest as written.
    assert code.count("time_budget=2") == 1
    tiny = ", ".join(f"{k}={v!r}" for k, v in TINY_SETTINGS.items())
    code = code.replace("time_budget=2", f"max_steps=5, {tiny}")
    (tmp_path / "corpora").mkdir()
    shutil.copy(REPO / "corpora" / "poems.txt", tmp_path / "corpora" / "poems.txt")
    (tmp_path / "held-out.txt").write_text("春风吹绿江南岸，明月照我还。\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md (From Python)", "exec"), {})
    out = capsys.readouterr().out
    assert (tmp_path / "runs" / "poems" / "best.npz").exists()
    sample = [line for line in out.splitlines() if not line.startswith(("corpus:", "model:", "step "))]
    assert any(len(line) > 10 for line in sample), out  # the generated text
    assert "'bits_per_char':" in out  # the evaluation


def test_python_and_the_cli_make_the_same_run(tmp_path, corpus_file):
    """The library owns every default: a train function called from Python with nothing but the data
    (and a stop, to keep it short) writes the same config.json as its command with no other flags."""
    import json

    import numpy as np

    from helpers import run_cli_in_process

    rng = np.random.default_rng(0)
    reviews = tmp_path / "reviews.tsv"
    reviews.write_text("text\tlabel\n" + "".join(f"{w} film {i}\t{int(w == 'good')}\n"
                                                 for i, w in enumerate(rng.choice(["good", "bad"], 60))), encoding="utf-8")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{s}\t{s[::-1]}\n" for s in ("abc", "bca", "cab", "acb", "bac", "cba")), encoding="utf-8")
    for command, train, data in (("train-lm", charseq.train_lm, corpus_file),
                                 ("train-classifier", charseq.train_classifier, reviews),
                                 ("train-seq2seq", charseq.train_seq2seq, pairs)):
        r = run_cli_in_process(command, data, "--out", tmp_path / f"{command}-cli", "--max-steps", "1")
        assert r.returncode == 0, r.stderr
        train(data, tmp_path / f"{command}-py", max_steps=1, log=lambda s: None, progress_bar=False)
        cli, py = (json.loads((tmp_path / f"{command}-{how}" / "config.json").read_text()) for how in ("cli", "py"))
        assert cli == py, command


def test_the_backbone_saves_and_loads_in_a_keras_model_of_ones_own(tmp_path):
    """RecurrentBackbone is a registered Keras layer: a model built with it saves to .keras and loads back
    with the same outputs, without custom_objects, and without a warning."""
    import warnings

    import keras
    import numpy as np

    from charseq.backbone import RecurrentBackbone

    inputs = keras.Input((None,), dtype="int32")
    outputs, *_states = RecurrentBackbone(cell="gru", units=8, layers=2, vocab_size=10, embedding_dim=4)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(outputs))
    model.save(tmp_path / "mine.keras")
    with warnings.catch_warnings():  # Keras warned that the layer "does not have a `build()` method"
        warnings.filterwarnings("error", message=".*build")
        again = keras.saving.load_model(tmp_path / "mine.keras")
    ids = np.array([[1, 2, 3, 4]])
    np.testing.assert_allclose(again.predict(ids, verbose=0), model.predict(ids, verbose=0), rtol=1e-6)


def test_the_backbone_passes_its_padding_mask_on_as_keras_recurrent_layers_do():
    """With masking=True a layer after the backbone (here a mean over time) leaves the padding out, as
    after keras.layers.GRU: a padded sequence gives what the sequence alone gives."""
    import keras
    import numpy as np

    from charseq.backbone import RecurrentBackbone

    inputs = keras.Input((None,), dtype="int32")
    outputs, _states = RecurrentBackbone(cell="gru", units=8, vocab_size=20, masking=True)(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(outputs))
    padded, alone = (model.predict(np.array([ids]), verbose=0) for ids in ([5, 6, 7, 0, 0], [5, 6, 7]))
    np.testing.assert_allclose(padded, alone, rtol=1e-5, atol=1e-6)
