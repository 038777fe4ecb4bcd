"""The studio's JSON API, in-process (Starlette's test client) on real tiny runs of all three heads:
every endpoint, and every kind of bad request answered with a 4xx JSON error, never a traceback."""

import json
import warnings

import pytest

pytest.importorskip("starlette", reason="the studio's extra is not installed: pip install 'charseq[studio]'")
pytest.importorskip("httpx", reason="Starlette's test client needs httpx")

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2 over httpx; both work
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from charseq import web  # noqa: E402
from charseq.studio.app import create_app  # noqa: E402
from helpers import read_metrics  # noqa: E402

RUNS = {"poems": "lm", "grid/lr=0.003": "lm", "grid/lr=0.01": "lm", "sentiment": "classifier",
        "digits": "classifier", "reverse": "seq2seq"}


@pytest.fixture(scope="module")
def client(studio_dir):
    # The studio answers only requests addressed to this machine (the test client's default is "testserver").
    with TestClient(create_app([studio_dir]), base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as c:
        yield c


def events(response) -> list[tuple[str, dict]]:
    """A text/event-stream body as (event, data) pairs."""
    assert response.headers["content-type"].startswith("text/event-stream")
    out = []
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def assert_error(response, status, *fragments):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and "Traceback" not in body["error"]
    for f in fragments:
        assert f.lower() in body["error"].lower(), body["error"]


def test_runs_and_metrics(client, studio_dir):
    runs = {r["name"]: r for r in client.get("/api/runs").json()["runs"]}
    assert {n: r["task"] for n, r in runs.items()} == RUNS
    assert runs["poems"]["best"]["metric"] == "val_loss" and runs["poems"]["layers"] == 2
    assert runs["digits"]["kind"] == "image classifier" and runs["sentiment"]["kind"] == "text classifier"
    assert runs["reverse"]["best"]["metric"] == "val_exact_match"
    for name in ["poems", "grid/lr=0.01"]:
        metrics = client.get(f"/api/runs/{name}/metrics").json()["metrics"]
        on_disk = read_metrics(studio_dir / name)
        assert metrics == on_disk and metrics[-1]["step"] == runs[name]["steps"]
    assert client.get("/api/runs/grid%2Flr=0.003/metrics").status_code == 200  # an encoded slash works too
    for name in ["poems", "grid/lr=0.01", "reverse"]:  # one run, as the list gives it
        one = client.get(f"/api/runs/{name}").json()
        assert {k: v for k, v in one.items() if k != "updated_s_ago"} == {
            k: v for k, v in runs[name].items() if k != "updated_s_ago"}


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and 'src="/static/app.js"' in page.text
    for name in ["app.js", "api.js", "runs.js", "style.css", "heads/lm/generate.js", "heads/lm/inside.js",
                 "heads/classifier/classify.js", "heads/seq2seq/translate.js"]:
        assert client.get(f"/static/{name}").status_code == 200, name
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")


def test_generate_streams_chunks_then_done(client, studio_dir):
    from charseq.heads.lm.run import load_lm
    from charseq.heads.lm.inference import Generator

    response = client.post("/api/generate", json={"run": "poems", "prompt": "The ", "length": 60,
                                                  "temperature": 0.8, "top_k": 10, "seed": 5})
    assert response.status_code == 200
    got = events(response)
    kinds = [k for k, _ in got]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"chunk"} and len(kinds) > 3
    tokens = [t for k, d in got if k == "chunk" for t in d["tokens"]]
    done = got[-1][1]
    assert len(tokens) == done["tokens"] == 60 and done["seed"] == 5
    expected = Generator(*load_lm(studio_dir / "poems")[:2])("The ", length=60, temperature=0.8, top_k=10, seed=5)[0]
    assert done["text"] == "".join(t["text"] for t in tokens) == expected  # same text as `charseq generate`
    assert all(0 < t["p"] <= 1 and len(t["top"]) == 5 for t in tokens)

    beam = events(client.post("/api/generate", json={"run": "poems", "prompt": "The ", "length": 20,
                                                     "beam": 4, "n_best": 3}))
    hyps = beam[-1][1]["hypotheses"]
    assert len(hyps) == 3 and [h["log_prob"] for h in hyps] == sorted((h["log_prob"] for h in hyps), reverse=True)
    assert beam[-1][1]["text"] == hyps[0]["text"] and len(beam[0][1]["tokens"]) == 20


def test_generate_length_0_gives_the_prompt_alone(client, studio_dir):
    """As `charseq generate --length 0` and the exported signature: nothing generated, the options and
    the prompt still checked."""
    for body in [{}, {"samples": 3}]:
        got = events(client.post("/api/generate", json={"run": "poems", "prompt": "The ", "length": 0, **body}))
        assert [k for k, _ in got] == ["done"]
        assert got[0][1]["text"] == "" and got[0][1]["tokens"] == 0
    assert_error(client.post("/api/generate", json={"run": "poems", "prompt": "☃", "length": 0}), 400, "vocabulary")


def test_generate_several_samples_at_once(client, studio_dir):
    """samples: one prompt's continuations drawn in one batch, each chunk one list of tokens per
    sample, the texts those of `charseq generate --num-samples`."""
    from charseq.heads.lm.run import load_lm
    from charseq.heads.lm.inference import Generator

    options = {"prompt": "The ", "length": 40, "temperature": 0.9, "seed": 2}
    got = events(client.post("/api/generate", json={"run": "poems", "samples": 3, **options}))
    chunks = [d["samples"] for k, d in got if k == "chunk"]
    assert len(chunks) > 2 and all(len(c) == 3 for c in chunks)
    texts = ["".join(t["text"] for c in chunks for t in c[i]) for i in range(3)]
    expected = Generator(*load_lm(studio_dir / "poems")[:2])(num_samples=3, **options)
    done = got[-1][1]
    assert done["texts"] == texts == expected and done["text"] == texts[0] and done["tokens"] == 40
    assert len(set(texts)) > 1
    refused = client.post("/api/generate", json={"run": "poems", "samples": 2, "beam": 3})
    assert refused.status_code == 400 and "beam search" in refused.json()["error"]
    # Sent with the values that ask for nothing, they are taken as leaving them out is (as without the option).
    beam = client.post("/api/generate", json={"run": "poems", "length": 3, "beam": 2, "greedy": False, "samples": 1})
    greedy = client.post("/api/generate", json={"run": "poems", "length": 3, "greedy": True, "samples": 1})
    assert events(beam)[-1][0] == events(greedy)[-1][0] == "done"
    assert "seed" not in events(greedy)[-1][1]  # greedy decoding draws nothing: no seed to report
    assert client.post("/api/generate", json={"run": "poems", "samples": 9}).status_code == 400


def test_analyze(client):
    text = 'One "two" (three).\nfour'
    report = client.post("/api/analyze", json={"run": "poems", "text": text, "layer": 1}).json()
    assert "".join(t["text"] for t in report["tokens"]) == text
    assert report["layer"] == 1 and len(report["activations"]) == report["units"] == 32
    assert {u["property"] for u in report["found_units"]} >= {"inside_quotes", "inside_brackets", "after_newline"}


def test_classify_text_and_image(client):
    from helpers import striped_images

    report = client.post("/api/classify", json={"run": "sentiment", "text": "truly boring, so"}).json()
    assert report["label"] in ("pos", "neg") and report["method"] == "occlusion"
    assert len(report["saliency"]) == len(report["tokens"]) == len("truly boring, so")
    images, labels = striped_images(4, 11)
    right = 0
    for image, label in zip(images, labels):
        report = client.post("/api/classify", json={"run": "digits", "image": image.tolist()}).json()
        assert len(report["rows"]) == 28 and report["labels"] == ["0", "1", "2", "3"]
        right += report["label"] == str(label)
    assert right >= 3  # the stripes are learnt


def test_translate(client):
    report = client.post("/api/translate", json={"run": "reverse", "source": "abcd", "beam": 3, "n_best": 3}).json()
    assert len(report["hypotheses"]) == 3 and report["source_tokens"] == list("abcd")
    assert len(report["attention"]) == len(report["output_tokens"]) == len(report["hypotheses"][0]["text"]) + 1
    second = client.post("/api/translate", json={"run": "reverse", "source": "abcd", "beam": 3, "n_best": 3,
                                                 "choose": 1}).json()
    assert second["chosen"] == 1 and len(second["attention"]) == len(second["hypotheses"][1]["text"]) + 1
    unknown = client.post("/api/translate", json={"run": "reverse", "source": "ab☃", "unknown": "unk"})
    assert unknown.status_code == 200 and len(unknown.json()["source_tokens"]) == 3  # as translate --unknown unk
    assert unknown.json()["unknown_at"] == [2] and report["unknown_at"] == []  # which characters, for the page to mark


def test_models_load_once_per_run(client):
    studio = client.app.state.studio
    requests = [("/api/analyze", {"run": "poems", "text": "abc"}), ("/api/translate", {"run": "reverse", "source": "ab"})]
    for path, body in requests:  # loaded now, or already by an earlier request
        assert client.post(path, json=body).status_code == 200
    before = studio.cache.loads
    for _ in range(3):
        for path, body in requests:
            assert client.post(path, json=body).status_code == 200
    assert studio.cache.loads == before and {"poems", "reverse"} <= set(studio.cache.names())  # stayed cached


@pytest.mark.parametrize("method, path, body, status, fragments", [
    ("get", "/%2e%2e/%2e%2e/etc/passwd", None, 404, ["not found"]),
    ("get", "/static/../../../etc/passwd", None, 404, ["not found"]),
    ("get", "/api/runs/%2e%2e%2f%2e%2e%2fetc%2fpasswd/metrics", None, 404, ["no run named"]),
    ("get", "/api/runs/nope/metrics", None, 404, ["no run named 'nope'"]),
    ("get", "/api/runs/nope", None, 404, ["no run named 'nope'"]),
    ("get", "/api/runs/grid", None, 404, ["no run named 'grid'"]),
    ("get", "/api/generate", None, 405, ["POST"]),
    ("post", "/api/generate", {"run": "../../x"}, 404, ["no run named '../../x'"]),
    ("post", "/api/analyze", {"run": "/etc/passwd", "text": "a"}, 404, ["no run named"]),
    ("post", "/api/generate", b"{not json", 400, ["not valid json"]),
    ("post", "/api/generate", b"\xff\xfe", 400, ["not valid json"]),
    ("post", "/api/generate", [1, 2], 400, ["json object"]),
    ("post", "/api/generate", {"run": "poems", "prompt": "a" * 10_001}, 413, ["prompt", "10000"]),
    ("post", "/api/generate", {"run": "poems", "length": 10_001}, 400, ["length", "10000"]),
    ("post", "/api/generate", {"run": "poems", "length": -1}, 400, ["length", "at least 0"]),
    ("post", "/api/generate", {"run": "poems", "beam": 2, "length": 0}, 400, ["length", "at least 1", "beam"]),
    ("post", "/api/generate", {"run": "poems", "length": "ten"}, 400, ["length", "integer"]),
    ("post", "/api/generate", {"run": "poems", "top_k": 1.5}, 400, ["top_k must be an integer, not 1.5"]),
    ("post", "/api/generate", {"run": ["poems"]}, 400, ["run must be a string, not a list"]),
    ("post", "/api/classify", {"run": "sentiment", "text": {"a": 1}}, 400, ["text must be a string, not an object"]),
    ("post", "/api/generate", {"run": "poems", "greedy": 1}, 400, ["greedy", "true or false"]),
    ("post", "/api/generate", {"run": "poems", "temperature": 0}, 400, ["temperature must be", '"greedy": true']),
    ("post", "/api/generate", {"run": "poems", "top_p": 1.5}, 400, ["top_p must be"]),
    ("post", "/api/generate", {"run": "poems", "unknown": "drop"}, 400, ["unknown must be one of"]),
    ("post", "/api/generate", {"run": "poems", "beam": 17}, 400, ["beam", "16"]),
    ("post", "/api/generate", {"run": "poems", "beam": 2, "n_best": 3}, 400, ["n_best"]),
    ("post", "/api/generate", {"run": "poems", "beam": 2, "length": 5000}, 400, ["1000", "beam"]),
    ("post", "/api/generate", {"run": "poems", "beam": 2, "temperature": 0.5}, 400,
     ["temperature does not apply to beam search", '"n_best": N']),
    ("post", "/api/generate", {"run": "poems", "beam": 2, "seed": 1, "top_k": 3}, 400, ["seed and top_k do not apply"]),
    ("post", "/api/generate", {"run": "poems", "greedy": True, "samples": 3}, 400, ["samples does not apply with greedy"]),
    ("post", "/api/generate", {"run": "poems", "greedy": True, "top_p": 0.9}, 400, ["top_p does not apply with greedy"]),
    ("post", "/api/generate", {"run": "poems", "prompt": "☃"}, 400, ["vocabulary", '"unknown": "skip"']),
    ("post", "/api/generate", {"run": "poems", "lenght": 5}, 400, ["unknown field", "lenght"]),
    ("post", "/api/generate", {"prompt": "a"}, 400, ["missing field: run"]),
    ("post", "/api/generate", {"run": "reverse"}, 400, ["encoder-decoder, not a language model"]),
    ("post", "/api/analyze", {"run": "poems", "text": "a" * 2001}, 413, ["text", "2000"]),
    ("post", "/api/analyze", {"run": "poems", "text": ""}, 400, ["text must not be empty"]),
    ("post", "/api/generate", {"run": "poems", "seed": 2**31}, 400, ["seed", "2147483647"]),
    ("post", "/api/analyze", {"run": "poems", "text": "ab", "layer": 2}, 400, ["layer"]),
    ("post", "/api/analyze", {"run": "sentiment", "text": "ab"}, 400, ["classifier, not a language model"]),
    ("post", "/api/classify", {"run": "sentiment"}, 400, ["either text or image"]),
    ("post", "/api/classify", {"run": "sentiment", "text": "a", "image": [[0] * 28]}, 400, ["either"]),
    ("post", "/api/classify", {"run": "sentiment", "image": [[0] * 28] * 28}, 400, ["send text"]),
    ("post", "/api/classify", {"run": "digits", "text": "abc"}, 400, ["send image"]),
    ("post", "/api/classify", {"run": "digits", "image": [[0] * 27] * 28}, 400, ["28 numbers"]),
    ("post", "/api/classify", {"run": "digits", "image": [[0] * 28] * 29}, 400, ["image", "28"]),
    ("post", "/api/classify", {"run": "digits", "image": [["x"] * 28] * 28}, 400, ["numbers"]),
    ("post", "/api/classify", {"run": "digits", "image": [[999] * 28] * 28}, 400, ["255"]),
    ("post", "/api/classify", {"run": "sentiment", "text": "a" * 2001}, 413, ["2000"]),
    ("post", "/api/classify", {"run": "sentiment", "text": "   "}, 400, ["empty"]),
    ("post", "/api/translate", {"run": "reverse", "source": "a" * 1001}, 413, ["source", "1000"]),
    ("post", "/api/translate", {"run": "reverse", "source": "ab", "beam": 2, "n_best": 3}, 400, ["n_best"]),
    ("post", "/api/translate", {"run": "reverse", "source": "ab☃"}, 400, ["vocabulary", '"unknown": "unk"']),
    ("post", "/api/translate", {"run": "reverse", "source": "ab", "unknown": "skip"}, 400, ["unknown must be"]),
    ("post", "/api/translate", {"run": "poems", "source": "ab"}, 400, ["language model, not an encoder-decoder"]),
    # "between 0 and 0" told nothing: choose picks one of the n_best hypotheses, and n_best gives more.
    ("post", "/api/translate", {"run": "reverse", "source": "ab", "choose": 2}, 400,
     ["choose must be 0, the only hypothesis (n_best is 1), not 2"]),
    ("post", "/api/translate", {"run": "reverse", "source": "ab", "beam": 3, "n_best": 2, "choose": 2}, 400,
     ["choose must be the index of one of the 2 hypotheses, 0 to 1 (raise n_best for more), not 2"]),
    # A misspelt query parameter, or one given twice, is named, as an unknown field of a body is.
    ("get", "/api/runs/poems/examples?count=20", None, 400, ["unknown query parameter(s): count", "(expected: n)"]),
    ("get", "/api/runs/poems/examples?n=5&n=6", None, 400, ["n is given more than once"]),
    ("get", "/api/confusion?run=sentiment&runs=digits", None, 400,
     ["unknown query parameter(s): runs", "(expected: run)"]),
    ("get", "/api/runs?task=lm", None, 400, ["unknown query parameter(s): task", "(expected: none)"]),
    ("get", "/api/runs/poems?x=1", None, 400, ["unknown query parameter(s): x"]),
    ("get", "/api/runs/poems/metrics?since=10", None, 400, ["unknown query parameter(s): since"]),
    ("get", "/api/status?verbose=1", None, 400, ["unknown query parameter(s): verbose"]),
])
def test_bad_requests_get_json_errors(client, method, path, body, status, fragments):
    """Each bad request gets a 4xx JSON error that says what is wrong in the request's own terms:
    its fields, not the command line's options."""
    if body is None:
        response = getattr(client, method)(path)
    elif isinstance(body, bytes):
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    else:
        response = client.post(path, json=body)
    assert_error(response, status, *fragments)
    assert "--" not in response.json()["error"], "the API has no command-line options to advise"


def test_a_browser_at_a_wrong_address_gets_a_page_that_leads_back(client):
    """A mistyped address in the address bar shows a page with a link to the studio; API clients,
    and any address under /api/, still get JSON."""
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    page = client.get("/runs", headers=browser)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "<title>Not found" in page.text and '<a href="/">' in page.text
    assert client.get("/static/style.css").status_code == 200  # what the page uses is served
    assert_error(client.get("/runs"), 404, "not found")
    assert_error(client.get("/api/nope", headers=browser), 404, "not found")


@pytest.mark.parametrize("method, path, allowed", [
    ("DELETE", "/api/runs", "GET or HEAD"),
    ("PUT", "/api/generate", "POST"),
    ("GET", "/api/translate", "POST"),
    ("POST", "/", "GET or HEAD"),
])
def test_a_method_a_route_does_not_take_is_a_405_naming_those_it_does(client, method, path, allowed):
    response = client.request(method, path, json={} if method in ("POST", "PUT") else None)
    assert_error(response, 405, f"{path} takes {allowed}", f"not {method}")
    assert set(response.headers["allow"].split(", ")) == set(allowed.split(" or "))  # as HTTP asks of a 405


@pytest.mark.parametrize("path, allowed", [("/api/runs", "GET or HEAD"), ("/api/runs/poems/examples", "GET or HEAD"),
                                           ("/", "GET or HEAD")])
def test_a_post_without_a_json_body_to_a_route_that_takes_no_post_is_a_405(client, path, allowed):
    """`curl -X POST .../api/runs` was told to send a JSON body (415), which would then be refused (405)."""
    for headers in ({}, {"Content-Type": "text/plain"}):
        assert_error(client.post(path, content=b"x", headers=headers), 405, f"{path} takes {allowed}", "not POST")
    assert_error(client.post("/api/generate", content=b"x"), 415, "application/json")  # a route that takes POST


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_any_method_at_an_address_that_is_nowhere_is_a_404(client, method):
    """Not a 405 saying the address takes GET or HEAD, as if something were there to GET."""
    for path in ("/api/nope", "/api/generat", "/nope.html"):
        assert_error(client.request(method, path, json={}), 404, "not found")
        assert_error(client.request(method, path, content=b"x"), 404, "not found")


def test_oversized_body_is_refused_before_parsing(client):
    body = b'{"run": "poems", "prompt": "' + b"a" * (web.MAX_BODY_BYTES + 10) + b'"}'
    assert_error(client.post("/api/generate", content=body, headers={"Content-Type": "application/json"}), 413,
                 str(web.MAX_BODY_BYTES))


def test_internal_error_shows_no_traceback(client, monkeypatch):
    import charseq.heads.classifier.inspect

    def broken(*args):
        raise RuntimeError("secret detail /home/user/runs")
    monkeypatch.setattr(charseq.heads.classifier.inspect, "explain_text", broken)
    response = client.post("/api/classify", json={"run": "sentiment", "text": "good"})
    assert_error(response, 500, "internal error")
    assert "secret" not in response.text


def test_generations_are_bounded(client):
    studio = client.app.state.studio
    for _ in range(studio.max_generations):  # every slot taken, as by 16 running generations
        assert studio.slots.acquire(blocking=False)
    try:
        assert_error(client.post("/api/generate", json={"run": "poems", "length": 5}), 503, "busy", "16")
    finally:
        for _ in range(studio.max_generations):
            studio.slots.release()
    assert client.post("/api/generate", json={"run": "poems", "length": 5}).status_code == 200


def test_a_run_that_cannot_be_read_is_listed_among_the_others(studio_dir, tmp_path):
    import shutil

    shutil.copytree(studio_dir / "grid", tmp_path / "grid")
    (tmp_path / "grid" / "lr=0.01" / "config.json").write_text("{", encoding="utf-8")  # damaged
    with TestClient(create_app([tmp_path]), base_url="http://127.0.0.1:8000") as client:
        runs = {r["name"]: r for r in client.get("/api/runs").json()["runs"]}
    assert runs["grid/lr=0.01"]["task"] == "unreadable" and "config.json" in runs["grid/lr=0.01"]["error"]
    assert runs["grid/lr=0.01"]["grid"] is True and runs["grid/lr=0.003"]["grid"] is True  # both are the grid's
    # Not "finished": the page would show a run nothing can be done with as one that ended well.
    assert runs["grid/lr=0.01"]["status"] == "unreadable" and runs["grid/lr=0.01"]["progress"] is None
    assert runs["grid/lr=0.01"]["status_message"] == runs["grid/lr=0.01"]["error"]
    assert runs["grid/lr=0.01"]["steps"] == 20 and runs["grid/lr=0.01"]["updated_s_ago"] is not None


def test_a_run_killed_before_its_first_evaluation_shows_the_steps_it_trained(studio_dir, tmp_path):
    """Its status record says how far it got and when; the runs page said 0 steps, updated "—"."""
    import shutil
    import time

    shutil.copytree(studio_dir / "poems", tmp_path / "killed")
    (tmp_path / "killed" / "metrics.jsonl").unlink()
    (tmp_path / "killed" / "status.json").write_text(json.dumps(
        {"status": "running", "step": 467, "end_step": 1000, "elapsed_s": 9.0, "updated": time.time() - 60}))
    with TestClient(create_app([tmp_path]), base_url="http://127.0.0.1:8000") as client:
        run, = client.get("/api/runs").json()["runs"]
    assert run["status"] == "failed" and run["evaluations"] == 0 and run["best"] is None
    assert run["steps"] == 467 and 59 <= run["updated_s_ago"] < 120


def test_a_runs_best_is_the_evaluation_whose_weights_it_kept(studio_dir, tmp_path):
    """Of evaluations tied on exact match, training keeps the weights of the lower val_loss (best.npz),
    as a grid ranks them; the runs page named the first of the tie, whose weights were not kept."""
    import shutil

    shutil.copytree(studio_dir / "reverse", tmp_path / "reverse")
    records = [(10, 0.5, 1.0), (20, 0.9, 0.5), (30, 0.9, 0.3), (40, 0.8, 0.2)]
    (tmp_path / "reverse" / "metrics.jsonl").write_text("".join(
        json.dumps({"step": step, "val_exact_match": match, "val_loss": loss}) + "\n" for step, match, loss in records))
    with TestClient(create_app([tmp_path]), base_url="http://127.0.0.1:8000") as client:
        run, = client.get("/api/runs").json()["runs"]
    assert run["best"] == {"metric": "val_exact_match", "value": 0.9, "step": 30, "mode": "max"}


def test_the_token_in_a_query_is_not_an_unknown_parameter(studio_dir):
    token = "a-token-of-its-own"
    with TestClient(create_app([studio_dir], token=token), base_url="http://127.0.0.1:8000") as client:
        assert client.get(f"/api/runs?token={token}").status_code == 200
        response = client.get(f"/api/runs/sentiment/examples?n=2&token={token}")
        assert response.status_code == 200 and len(response.json()["examples"]) == 2
