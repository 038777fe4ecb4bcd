"""Each head's view in the studio: its routes come from its folder, its examples from the run's own
validation data, and a classifier's confusion matrix is `charseq evaluate`'s on that data."""

import ast
import json
import re
import subprocess
import sys
import warnings

import pytest

pytest.importorskip("starlette", reason="the studio's extra is not installed: pip install 'charseq[studio]'")
pytest.importorskip("httpx", reason="Starlette's test client needs httpx")

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2 over httpx; both work
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from helpers import REPO, read_metrics  # noqa: E402

from charseq.studio.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def client(studio_dir):
    with TestClient(create_app([studio_dir]), base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as c:
        yield c


def examples(client, run, **params):
    response = client.get(f"/api/runs/{run}/examples", params=params)
    assert response.status_code == 200, response.text
    return response.json()["examples"]


def test_the_studio_names_no_head():
    named = [f"{p.relative_to(REPO)}:{i}" for p in (REPO / "charseq" / "studio").rglob("*")
             if p.suffix in (".py", ".js", ".html") for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r'"(lm|classifier|seq2seq)"', line)]
    assert not named, named


def test_the_heads_views_never_import_the_studio():
    """The studio imports the heads; a head's view builds on charseq.web, never on charseq.studio."""
    reaching = []
    for path in [*(REPO / "charseq" / "heads").rglob("*.py"), REPO / "charseq" / "web.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module, *(f"{node.module}.{a.name}" for a in node.names)] if isinstance(node, ast.ImportFrom) else []
            if any(n and (n == "charseq.studio" or n.startswith("charseq.studio.")) for n in names):
                reaching.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not reaching, reaching
    # Importing every head's view (as the studio does, through the registry) loads no part of the studio.
    code = ("import sys, importlib\nfrom charseq.heads import all_heads\n"
            "views = [importlib.import_module(h.studio) for h in all_heads() if h.studio]\n"
            "print(len(views), sorted(m for m in sys.modules if m.split('.')[:2] == ['charseq', 'studio']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    from charseq.heads import all_heads

    assert out.split(" ", 1) == [str(sum(1 for h in all_heads() if h.studio)), "[]\n"], out


def test_the_page_has_each_heads_tabs(client):
    page = client.get("/").text
    listing = json.loads(re.search(r'<script type="application/json" id="head-pages">(.*?)</script>', page).group(1))
    assert [(p["page"], p["task"]) for p in listing] == [
        ("generate", "lm"), ("inside", "lm"), ("classify", "classifier"), ("translate", "seq2seq")]
    for p in listing:
        assert f'id="page-{p["page"]}"' in page and f'id="nav-{p["page"]}"' in page
        assert client.get(p["script"]).status_code == 200


def test_lm_examples_are_passages_of_the_held_out_text(client, studio_dir):
    from charseq.data.corpus import Corpus
    from charseq.vocab import load_vocab

    run = studio_dir / "poems"
    held_out = load_vocab(run).decode(Corpus(run / "data").val.tolist())
    found = examples(client, "poems", n=4)
    assert 1 <= len(found) <= 4
    for e in found:
        assert e["text"] in held_out and e["text"].startswith(e["prompt"]) and e["prompt"].strip()


def test_translate_examples_are_validation_pairs(client, studio_dir):
    pairs = {tuple(line.split("\t")) for line in (studio_dir.parent / "data" / "reverse.tsv").read_text().splitlines()}
    found = examples(client, "reverse")
    assert len(found) == 8 and all((e["source"], e["target"]) in pairs for e in found)


def test_classifier_examples_are_labelled_validation_rows(client, studio_dir):
    texts = examples(client, "sentiment", n=4)
    assert {e["label"] for e in texts[:2]} == {"neg", "pos"}  # every class before any repeats
    rows = (studio_dir.parent / "data" / "reviews.tsv").read_text().splitlines()
    assert all(f"{e['text']}\t{e['label']}" in rows for e in texts), texts
    images = examples(client, "digits", n=4)
    assert sorted(e["label"] for e in images) == ["0", "1", "2", "3"]
    assert all(len(e["image"]) == 28 and all(len(r) == 28 and 0 <= min(r) and max(r) <= 255 for r in e["image"])
               for e in images)


@pytest.mark.parametrize("run", ["sentiment", "digits"])
def test_confusion_matrix_is_the_runs_validation_score(client, studio_dir, run):
    report = client.get("/api/confusion", params={"run": run}).json()
    matrix = report["confusion_matrix"]
    total, right = sum(map(sum, matrix)), sum(matrix[i][i] for i in range(len(matrix)))
    assert total == report["examples"] and report["misclassified_count"] == total - right
    assert report["accuracy"] == pytest.approx(right / total)
    # The same rows training validated on: the accuracy of the weights kept is the best one it recorded.
    best = max(r["val_accuracy"] for r in read_metrics(studio_dir / run) if "val_accuracy" in r)
    assert report["accuracy"] == pytest.approx(best, abs=1e-6)
    for e in report["misclassified"]:
        assert e["label"] != e["predicted"] and 0 < e["probability"] <= 1
    probabilities = [e["probability"] for e in report["misclassified"]]
    assert probabilities == sorted(probabilities, reverse=True)


def test_a_mistake_held_out_several_times_is_shown_once_with_its_count(studio_dir):
    """Validation data may hold one text several times (SST-2's phrases do): the mistakes list it
    once, saying how many times, while the count and the matrix count every one."""
    from types import SimpleNamespace

    from charseq.heads.classifier.inspect import load_for_studio
    from charseq.heads.classifier.run import classify
    from charseq.heads.classifier.studio import validation_report

    loaded = SimpleNamespace(parts=load_for_studio(studio_dir / "sentiment"))
    names = loaded.parts["config"]["labels"]
    texts = ["a good film", "a bad film"]
    wrong = [names.index(next(n for n in names if n != r["label"])) for r in classify(studio_dir / "sentiment", texts)]
    report = validation_report(loaded, ([texts[0]] * 3 + [texts[1]], [wrong[0]] * 3 + [wrong[1]]))
    assert report["misclassified_count"] == report["examples"] == 4
    assert sorted((e["text"], e["times"]) for e in report["misclassified"]) == [(texts[1], 1), (texts[0], 3)]


@pytest.mark.parametrize("url, status, fragment", [
    ("/api/confusion?run=poems", 400, "not a classifier"),
    ("/api/confusion?run=nope", 404, "no run named"),
    ("/api/confusion", 400, "no run is chosen"),
    ("/api/runs/poems/examples?n=0", 400, "n must be"),
    ("/api/runs/poems/examples?n=x", 400, "n must be"),
    ("/api/runs/nope/examples", 404, "no run named"),
])
def test_bad_requests_get_a_json_error(client, url, status, fragment):
    response = client.get(url)
    assert response.status_code == status and fragment in response.json()["error"], response.text


def test_a_runs_validation_data_is_read_once_and_again_when_the_run_changes(studio_dir, tmp_path, monkeypatch):
    import os
    import shutil

    import charseq.data.labeled
    import charseq.data.mnist

    reads = []  # every read of a run's data file, by the reader that did it
    for module, name in [(charseq.data.labeled, "read_labeled"), (charseq.data.mnist, "load_mnist")]:
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, _name=name, **k: reads.append(_name) or _real(*a, **k))
    served, data = tmp_path / "served", tmp_path / "reviews.tsv"
    shutil.copytree(studio_dir / "sentiment", served / "run")
    shutil.copy(studio_dir.parent / "data" / "reviews.tsv", data)
    config_file = served / "run" / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "data": {**config["data"], "train": str(data)}}))

    with TestClient(create_app([served]), base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as c:
        first = examples(c, "run", n=4)
        assert examples(c, "run", n=4) == first and examples(c, "run", n=2) == first[:2]
        assert c.get("/api/confusion", params={"run": "run"}).status_code == 200  # the same data, not read again
        assert reads == ["read_labeled"]

        stat = data.stat()  # the data file written again
        os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        assert examples(c, "run", n=4) == first and reads == ["read_labeled"] * 2
        config_file.write_text(config_file.read_text() + "\n")  # config.json written again, as --resume does
        assert examples(c, "run", n=4) == first and reads == ["read_labeled"] * 3

        # The run replaced by another (as --force does: a new directory swapped in under its name).
        shutil.copytree(studio_dir / "digits", served / "new")
        (served / "run").rename(served / "old")
        (served / "new").rename(served / "run")
        shutil.rmtree(served / "old")
        images = examples(c, "run", n=4)
        assert sorted(e["label"] for e in images) == ["0", "1", "2", "3"] and all("image" in e for e in images)
        report = c.get("/api/confusion", params={"run": "run"}).json()
        assert report["labels"] == json.loads((served / "run" / "config.json").read_text())["labels"], report
        assert reads == ["read_labeled"] * 3 + ["load_mnist"]


def test_a_text_classifier_whose_training_file_is_gone_says_so(studio_dir, tmp_path):
    """A text classifier's validation rows are read again from its training file: moved or deleted
    since, the examples and the confusion matrix say that file is gone and what to do, naming it
    without its folder, while classifying a text still works."""
    import shutil

    served, data = tmp_path / "served", tmp_path / "private" / "reviews.tsv"
    shutil.copytree(studio_dir / "sentiment", served / "run")
    data.parent.mkdir()
    shutil.copy(studio_dir.parent / "data" / "reviews.tsv", data)
    config_file = served / "run" / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "data": {**config["data"], "train": str(data)}}))
    data.unlink()

    with TestClient(create_app([served]), base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as c:
        for response in (c.get("/api/confusion", params={"run": "run"}),
                         c.get("/api/runs/run/examples", params={"n": 4})):
            error = response.json()["error"]
            assert response.status_code == 400 and error.startswith("reviews.tsv, the file this run trained on, is "
                                                                    "no longer there"), error
            assert "put it back" in error and str(tmp_path) not in error
        assert c.post("/api/classify", json={"run": "run", "text": "a good film"}).status_code == 200


def test_an_encoder_decoder_whose_pairs_file_is_gone_says_so_as_a_classifier_does(studio_dir, tmp_path):
    """An encoder-decoder's examples are its validation pairs, read again from its training file:
    moved since, they say it is the file the run trained on and what to do, as a classifier's do,
    while translating still works."""
    import shutil

    served = tmp_path / "served"
    shutil.copytree(studio_dir / "reverse", served / "run")
    config_file = served / "run" / "config.json"
    config = json.loads(config_file.read_text())
    gone = tmp_path / "private" / "reverse.tsv"
    config_file.write_text(json.dumps({**config, "data": {**config["data"], "train": str(gone)}}))

    with TestClient(create_app([served]), base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as c:
        response = c.get("/api/runs/run/examples", params={"n": 4})
        error = response.json()["error"]
        assert response.status_code == 400 and error.startswith("reverse.tsv, the file this run trained on, is "
                                                                "no longer there"), error
        assert "put it back" in error and str(tmp_path) not in error
        assert c.post("/api/translate", json={"run": "run", "source": "abc"}).status_code == 200


def test_the_validation_cache_keeps_the_most_recently_used_runs(studio_dir):
    from charseq.studio.runs import ServedRun, ValidationCache

    cache = ValidationCache(capacity=1)
    sentiment, reverse = (ServedRun(name, studio_dir / name) for name in ("sentiment", "reverse"))
    first = cache.get(sentiment)
    assert cache.get(sentiment) is first and cache.loads == 1
    cache.get(reverse)
    assert cache.names() == ["reverse"] and cache.get(sentiment) is not first and cache.loads == 3


def test_a_page_never_downloads_the_data_a_run_trained_on(studio_dir, tmp_path, monkeypatch):
    """An MNIST run trained on charseq's cached MNIST, served after the cache was cleared: its examples
    and confusion matrix answer with one error saying how to get MNIST again, and nothing is fetched."""
    import shutil

    import charseq.data.datasets
    from charseq.cache import ENV

    fetched = []
    monkeypatch.setattr(charseq.data.datasets, "get_dataset", lambda *a, **k: fetched.append(a) or 1 / 0)
    monkeypatch.setenv(ENV, str(tmp_path / "empty-cache"))
    served = tmp_path / "served"
    shutil.copytree(studio_dir / "digits", served / "run")
    config_file = served / "run" / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "data": {**config["data"], "path": None}}))

    with TestClient(create_app([served]), base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as c:
        for response in (c.get("/api/runs/run/examples"), c.get("/api/confusion", params={"run": "run"})):
            assert response.status_code == 400, response.text
            assert "mnist is not in the cache" in response.json()["error"]
            assert "charseq data get mnist" in response.json()["error"]
    assert fetched == []
