"""The studio is safe by default and live: what another site's page could send is refused (a foreign
Host, another Origin, a body that is not JSON, no token off loopback), no absolute path reaches the
browser, and the served folders are watched (runs appear and go, each with its status and progress).

In-process through Starlette's test client, and for real: `charseq serve` subprocesses, training
subprocesses stopped with SIGINT or killed, and Debian's Chromium (Playwright) on the studio's page
and on another origin's page at once."""

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import warnings
from pathlib import Path

import pytest

from helpers import CHARSEQ, REPO, assert_clean_error, run_cli_in_process, start_server, stop_server, tiny_flags

pytest.importorskip("starlette", reason="the studio's extra is not installed: pip install 'charseq[studio]'")
httpx = pytest.importorskip("httpx", reason="the studio's tests need httpx (pip install 'charseq[test]')")

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2 over httpx; both work
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from charseq.studio.app import create_app  # noqa: E402

OWN = "http://127.0.0.1:8000"  # the address the in-process studio is reached at
TOKEN = "a-test-token-0123"
GENERATE = {"run": "poems", "prompt": "The ", "length": 3, "seed": 1}


def client(app, **kwargs) -> TestClient:
    return TestClient(app, base_url=OWN, raise_server_exceptions=False, **kwargs)


@pytest.fixture(scope="module")
def studio(studio_dir):
    with client(create_app([studio_dir])) as c:
        yield c


def assert_refused(response, status, *fragments):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and len(body["error"].splitlines()) == 1
    for f in fragments:
        assert f.lower() in body["error"].lower(), body["error"]


def started(c) -> int:
    return c.get("/api/status").json()["started"]


# ------------------------------------------------------------------------------ Host (DNS rebinding)
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example:8000",
                                  "localhost.evil.example", "192.168.1.10:8000", "[::2]:8000"])
def test_a_foreign_host_is_refused(studio, host):
    for path in ["/api/runs", "/", "/api/runs/poems/metrics"]:
        assert_refused(studio.get(path, headers={"Host": host}), 403, "Host header", "--allow-host")
    before = started(studio)
    assert_refused(studio.post("/api/generate", json=GENERATE, headers={"Host": host}), 403, "Host header")
    assert started(studio) == before


@pytest.mark.parametrize("host", ["localhost", "localhost:1234", "127.0.0.1", "127.0.0.1:8000", "[::1]:8000",
                                  "LOCALHOST:9"])
def test_this_machine_by_any_loopback_name_is_served(studio, host):
    assert studio.get("/api/runs", headers={"Host": host}).status_code == 200


def test_the_names_accepted_for_each_address():
    from charseq.studio.app import allowed_hosts

    assert allowed_hosts("127.0.0.1") == ["localhost", "127.0.0.1", "[::1]"]
    assert allowed_hosts("::1", ["studio.lan", "::5"]) == ["localhost", "127.0.0.1", "[::1]", "studio.lan", "[::5]"]
    assert allowed_hosts("192.168.0.4")[-1] == "192.168.0.4"
    assert socket.gethostname().lower() in allowed_hosts("0.0.0.0")  # every interface: this machine's name too


def test_allowed_host_names_are_served(studio_dir):
    with client(create_app([studio_dir], hosts=["127.0.0.1", "studio.lan", "*.example.org"])) as c:
        for host in ["studio.lan:8000", "a.example.org"]:
            assert c.get("/api/runs", headers={"Host": host}).status_code == 200
        assert_refused(c.get("/api/runs", headers={"Host": "localhost.lan"}), 403, "Host header")


# ------------------------------------------------------------------------------ Origin (CSRF)
@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:8001", "https://127.0.0.1:8000x",
                                    "http://localhost:8000"])
def test_a_request_from_another_origin_is_refused(studio, origin):
    before = started(studio)
    assert_refused(studio.post("/api/generate", json=GENERATE, headers={"Origin": origin}), 403, "another origin")
    assert_refused(studio.post("/api/generate", content=json.dumps(GENERATE),
                               headers={"Origin": origin, "Content-Type": "text/plain"}), 403, "another origin")
    assert_refused(studio.get("/api/runs", headers={"Origin": origin}), 403, "another origin")
    assert started(studio) == before  # nothing was generated


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_a_cross_site_request_without_origin_is_refused(studio, site):
    assert_refused(studio.get("/api/runs", headers={"Sec-Fetch-Site": site}), 403, site)
    assert studio.get("/", headers={"Sec-Fetch-Site": site}).status_code == 200  # a link to the studio still opens


def test_the_studios_own_page_is_served(studio):
    """What the page's own fetch sends (Origin and Sec-Fetch-Site of the same origin) works, and so
    does a client that sends neither (curl)."""
    own = {"Origin": OWN, "Sec-Fetch-Site": "same-origin"}
    assert studio.get("/api/runs", headers=own).status_code == 200
    response = studio.post("/api/generate", json=GENERATE, headers=own)
    assert response.status_code == 200 and "event: done" in response.text
    assert studio.post("/api/generate", json=GENERATE).status_code == 200
    assert studio.get("/", headers={"Sec-Fetch-Site": "none"}).status_code == 200  # typed into the address bar


# ------------------------------------------------------------------------------ Content-Type
@pytest.mark.parametrize("kind", ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                                  "multipart/form-data; boundary=x", None])
def test_a_post_body_that_is_not_declared_json_is_refused(studio, kind):
    before = started(studio)
    headers = {"Content-Type": kind} if kind else {}
    assert_refused(studio.post("/api/generate", content=json.dumps(GENERATE).encode(), headers=headers),
                   415, "application/json")
    assert started(studio) == before
    response = studio.post("/api/generate", content=json.dumps(GENERATE).encode(),
                           headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 200


# ------------------------------------------------------------------------------ token
def test_a_token_is_required_and_taken_from_the_url_then_a_cookie_or_a_header(studio_dir):
    with client(create_app([studio_dir], token=TOKEN), follow_redirects=False) as c:
        for path in ["/", "/static/app.js", "/api/runs"]:
            assert_refused(c.get(path), 401, "token")
        assert_refused(c.post("/api/generate", json=GENERATE), 401, "token")
        assert_refused(c.get("/api/runs", headers={"Authorization": "Token wrong-token-000"}), 401, "token")
        assert_refused(c.get("/api/runs", headers={"X-Charseq-Token": TOKEN + "x"}), 401, "token")
        assert_refused(c.get(f"/?token={TOKEN[:-1]}"), 401, "token")

        assert c.get("/api/runs", headers={"Authorization": f"Token {TOKEN}"}).status_code == 200
        assert c.get("/api/runs", headers={"X-Charseq-Token": TOKEN}).status_code == 200
        assert c.post("/api/generate", json=GENERATE, headers={"X-Charseq-Token": TOKEN}).status_code == 200

        opened = c.get(f"/?token={TOKEN}")  # the URL printed at start
        assert opened.status_code == 303 and opened.headers["location"] == "/"  # the token leaves the address bar
        cookie = opened.headers["set-cookie"]
        assert TOKEN in cookie and "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert c.get("/").status_code == 200  # the cookie carries it from now on
        assert c.get("/api/runs").status_code == 200
        assert c.post("/api/generate", json=GENERATE).status_code == 200
        c.cookies.clear()
        assert_refused(c.get("/api/runs"), 401, "token")


def test_a_token_does_not_let_another_origin_in(studio_dir):
    with client(create_app([studio_dir], token=TOKEN)) as c:
        assert_refused(c.post("/api/generate", json=GENERATE, headers={"X-Charseq-Token": TOKEN,
                                                                       "Origin": "http://evil.example"}),
                       403, "another origin")


# ------------------------------------------------------------------------------ what the browser is shown
def test_no_absolute_path_reaches_the_browser(studio, studio_dir, corpus_file):
    text = studio.get("/api/runs").text
    runs = {r["name"]: r for r in json.loads(text)["runs"]}
    for path in {str(studio_dir), str(corpus_file.parent), str(studio_dir.parent), str(REPO)}:
        assert path not in text
    assert not re.search(r'": ?"/', text), "an absolute path in a value"
    assert runs["poems"]["data"] == corpus_file.name  # outside the served folder: the file's name
    assert runs["poems"]["config"]["corpus"]["source"] == corpus_file.name
    with client(create_app([studio_dir], show_paths=True)) as c:  # asked for
        shown = {r["name"]: r for r in c.get("/api/runs").json()["runs"]}
        assert shown["poems"]["data"] == str(corpus_file.resolve())


def test_paths_inside_the_served_folder_are_relative(studio_dir, tmp_path):
    served = tmp_path / "served"
    shutil.copytree(studio_dir / "sentiment", served / "sentiment")
    (served / "data").mkdir()
    config = json.loads((served / "sentiment" / "config.json").read_text())
    config["data"]["train"] = str(served / "data" / "reviews.tsv")
    (served / "sentiment" / "config.json").write_text(json.dumps(config))
    with client(create_app([served])) as c:
        run = c.get("/api/runs").json()["runs"][0]
        assert run["data"] == "data/reviews.tsv" and str(tmp_path) not in json.dumps(run)


def test_a_path_recorded_as_typed_shows_by_its_file_name(studio_dir, tmp_path):
    """A corpus or --init-from recorded as typed is relative to wherever training ran: a corpus outside
    the served folder shows by its file name, never by that relative path; one inside, relative to it."""
    served = tmp_path / "served"
    (served / "corpora").mkdir(parents=True)
    for name, source, corpus_file in [("outside", "../corpora/poems.txt", tmp_path / "corpora" / "poems.txt"),
                                      ("inside", "served/corpora/poems.txt", served / "corpora" / "poems.txt")]:
        shutil.copytree(studio_dir / "poems", served / name)
        config = json.loads((served / name / "config.json").read_text())
        config["corpus"]["source"], config["corpus_file"] = source, str(corpus_file)
        (served / name / "config.json").write_text(json.dumps(config))
    shutil.copytree(studio_dir / "sentiment", served / "sentiment")
    config = json.loads((served / "sentiment" / "config.json").read_text())
    config["init_from"] = "../runs/lm"
    (served / "sentiment" / "config.json").write_text(json.dumps(config))
    shutil.copytree(studio_dir / "digits", served / "digits")  # as if read from charseq's cached MNIST
    config = json.loads((served / "digits" / "config.json").read_text())
    config["data"]["path"], config["data"]["source"] = None, f"MNIST ({tmp_path}/cache/charseq/datasets/mnist)"
    (served / "digits" / "config.json").write_text(json.dumps(config))
    with client(create_app([served])) as c:
        text = c.get("/api/runs").text
    runs = {r["name"]: r for r in json.loads(text)["runs"]}
    assert runs["digits"]["data"] == runs["digits"]["config"]["data"]["source"] == "MNIST (mnist)"
    assert runs["outside"]["data"] == runs["outside"]["config"]["corpus"]["source"] == "poems.txt"
    assert runs["inside"]["data"] == "corpora/poems.txt" and runs["inside"]["config"]["corpus"]["source"] == "poems.txt"
    assert runs["sentiment"]["config"]["init_from"] == "lm"
    assert "../" not in text and str(tmp_path) not in text
    with client(create_app([served], show_paths=True)) as c:  # asked for: as recorded
        shown = {r["name"]: r for r in c.get("/api/runs").json()["runs"]}
    assert shown["outside"]["data"] == str(tmp_path / "corpora" / "poems.txt")
    assert shown["outside"]["config"]["corpus"]["source"] == "../corpora/poems.txt"


# ------------------------------------------------------------------------------ which heads are served
def test_the_heads_served_and_an_empty_run_name(studio, studio_dir):
    assert studio.get("/api/runs").json()["heads"] == ["classifier", "lm", "seq2seq"]
    assert_refused(studio.post("/api/generate", json={"run": ""}), 400, "no run is chosen")
    with client(create_app([studio_dir / "sentiment"])) as c:  # only a classifier
        assert c.get("/api/runs").json()["heads"] == ["classifier"]
        for path, body in [("/api/generate", {"run": ""}), ("/api/analyze", {"run": "", "text": "a"}),
                           ("/api/translate", {"run": "", "source": "ab"})]:
            assert_refused(c.post(path, json=body), 404, "none of the served runs is", "train one")
        assert_refused(c.post("/api/classify", json={"run": "", "text": "good"}), 400, "no run is chosen")


# ------------------------------------------------------------------------------ live: runs come and go
def train(out: Path, corpus: Path, *extra, **changes) -> subprocess.Popen:
    """`charseq train-lm` in a subprocess (tiny settings), evaluating often."""
    flags = tiny_flags(eval_every=5, **changes)
    return subprocess.Popen([*CHARSEQ, "train-lm", str(corpus), "--out", str(out), *flags, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)


def wait_for(check, timeout: float, what: str, step: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"not within {timeout} s: {what}")


def listed(c, name) -> dict | None:
    return {r["name"]: r for r in c.get("/api/runs").json()["runs"]}.get(name)


def test_runs_appear_with_their_status_and_go(tmp_path, corpus_file):
    """A run trained after start-up appears within seconds, running with its progress and ETA; then
    failed (its process killed), stopped (SIGINT), finished (resumed to its end); deleted, it goes
    and its model with it. The served folder does not exist when the studio starts."""
    from charseq.errors import Interrupted
    from charseq.heads.lm.run import train_lm

    served = tmp_path / "not-yet"
    with client(create_app([served])) as c:
        assert c.get("/api/runs").json() == {"runs": [], "heads": []}
        out = served / "live"
        proc = train(out, corpus_file, max_steps=20_000)  # `charseq train-lm` in a process of its own
        try:
            wait_for(out.exists, 120, "the run published")
            published = time.monotonic()
            run = wait_for(lambda: listed(c, "live"), 10, "the new run listed")
            print(f"listed {time.monotonic() - published:.1f} s after it was published")
            assert run["status"] == "running" and run["task"] == "lm"
            run = wait_for(lambda: (r := listed(c, "live")) and r["eta_seconds"] and r, 20, "an ETA")
            assert 0 < run["progress"] < 0.5 and run["eta_seconds"] > 10
            assert c.get("/api/runs").json()["heads"] == ["lm"]
            assert c.post("/api/generate", json={"run": "live", "length": 3}).status_code == 200
            assert "live" in c.app.state.studio.cache.names()
            proc.kill()
            proc.wait(timeout=30)
        finally:
            proc.kill()
        run = wait_for(lambda: (r := listed(c, "live"))["status"] != "running" and r, 10, "no longer running")
        assert run["status"] == "failed" and "killed" in run["status_message"] and run["progress"] < 1

        # Resumed here and stopped by SIGINT at its first evaluation (the command line's exit on
        # SIGINT is tested in tests/lm), then resumed to its end.
        def interrupt(line):
            if line.startswith("step ") and not sent:
                sent.append(line)
                os.kill(os.getpid(), signal.SIGINT)
        sent = []
        with pytest.raises(Interrupted, match="stopped by SIGINT"):
            train_lm(out=out, resume=True, log=interrupt, progress_bar=False)
        run = wait_for(lambda: (r := listed(c, "live"))["status"] != "failed" and r, 10, "no longer failed")
        assert run["status"] == "stopped" and 0 < run["progress"] < 1 and run["eta_seconds"] is None
        assert "--resume" in run["status_message"]
        steps = json.loads((out / "status.json").read_text())["step"]

        train_lm(out=out, resume=True, max_steps=steps + 10, log=lambda s: None, progress_bar=False)
        run = wait_for(lambda: (r := listed(c, "live"))["status"] == "finished" and r, 10, "finished")
        assert run["progress"] == 1.0 and run["steps"] == steps + 10

        shutil.rmtree(out)
        wait_for(lambda: listed(c, "live") is None, 10, "the deleted run gone")
        assert "live" not in c.app.state.studio.cache.names()  # its model was dropped
        assert c.get("/api/runs").json()["heads"] == []
        assert_refused(c.post("/api/generate", json={"run": "live"}), 404, "no run named 'live'")


def test_the_status_of_a_run_from_before_status_files(studio_dir, tmp_path):
    """A run trained before runs recorded their status: finished if its evaluations reached its
    --max-steps, stopped (with its progress) if they did not."""
    old = tmp_path / "old"
    shutil.copytree(studio_dir / "poems", old / "poems")
    (old / "poems" / "status.json").unlink()
    with client(create_app([old])) as c:
        run = listed(c, "poems")
        assert (run["status"], run["progress"], run["eta_seconds"]) == ("finished", 1.0, None)
        metrics = (old / "poems" / "metrics.jsonl").read_text().splitlines()
        assert json.loads(metrics[1])["step"] == 20  # of --max-steps 40
        (old / "poems" / "metrics.jsonl").write_text("\n".join(metrics[:2]) + "\n")
        run = listed(c, "poems")
        assert (run["status"], run["progress"]) == ("stopped", 0.5)


# ------------------------------------------------------------------------------ `charseq serve` for real
def test_serve_starts_on_an_empty_and_a_missing_folder_and_waits(tmp_path, studio_dir):
    empty, missing = tmp_path / "empty", tmp_path / "missing"
    empty.mkdir()
    proc, url, lines = start_server(empty, missing)
    try:
        lines.append(proc.stdout.readline())
        assert "0 runs" in lines[0] and "waiting" in lines[1] and "missing does not exist yet" in lines[1]
        assert httpx.get(url + "api/runs").json() == {"runs": [], "heads": []}
        shutil.copytree(studio_dir / "reverse", missing / "reverse")  # a run arrives
        wait_for(lambda: [r["name"] for r in httpx.get(url + "api/runs").json()["runs"]] == ["reverse"], 10,
                 "the new run listed")
        # The server's first model imports TensorFlow too, which can take longer than httpx's default 5 s.
        report = httpx.post(url + "api/translate", json={"run": "reverse", "source": "abc"}, timeout=60).json()
        assert report["hypotheses"][0]["text"]
    finally:
        stop_server(proc)


def test_serve_off_loopback_needs_the_token_it_prints(studio_dir):
    """--host 0.0.0.0 (every interface): a token is made and printed in the URL; without it every
    request gets 401; the URL's token becomes a cookie, and a header carries it too."""
    proc, url, lines = start_server(studio_dir / "poems", "--host", "0.0.0.0")
    try:
        token = re.search(r"\?token=([\w-]+)", url).group(1)
        assert len(token) >= 24
        port = re.search(r":(\d+)/", url).group(1)
        base = f"http://127.0.0.1:{port}/"
        assert httpx.get(base + "api/runs").status_code == 401
        assert httpx.get(base).status_code == 401
        with httpx.Client(follow_redirects=True) as browser:  # keeps cookies as a browser does
            opened = browser.get(f"{base}?token={token}")
            assert opened.status_code == 200 and "charseq" in opened.text.lower()  # after the redirect
            assert browser.get(base + "api/runs").json()["runs"][0]["name"] == "poems"
        assert httpx.get(base + "api/runs", headers={"Authorization": f"Token {token}"}).status_code == 200
        by_name = {"Host": f"{socket.gethostname()}:{port}", "X-Charseq-Token": token}  # this machine's name
        assert httpx.get(base + "api/runs", headers=by_name).status_code == 200
        foreign = {"Host": f"evil.example:{port}", "X-Charseq-Token": token}
        assert httpx.get(base + "api/runs", headers=foreign).status_code == 403
        assert httpx.post(base + "api/generate", json=GENERATE, headers={"X-Charseq-Token": token},
                          timeout=60).status_code == 200  # the first model: TensorFlow is imported now
    finally:
        err = stop_server(proc)
    assert "Warning: --host 0.0.0.0" in err


def test_serve_with_a_token_on_loopback_and_bad_options(studio_dir):
    proc, url, _ = start_server(studio_dir / "poems", "--token", TOKEN)
    try:
        assert url.endswith(f"/?token={TOKEN}")
        base = url.split("?")[0]
        assert httpx.get(base + "api/runs").status_code == 401
        assert httpx.get(base + "api/runs", headers={"X-Charseq-Token": TOKEN}).status_code == 200
    finally:
        stop_server(proc)
    assert_clean_error(run_cli_in_process("serve", studio_dir, "--token", "short"), "--token")
    assert_clean_error(run_cli_in_process("serve", studio_dir, "--allow-host", "a*b"), "--allow-host", "wildcard")


# ------------------------------------------------------------------------------ a real browser
class _Page(http.server.BaseHTTPRequestHandler):
    """Another origin's page: any path answers the same empty HTML page."""

    def do_GET(self):
        body = b"<!doctype html><title>elsewhere</title><p>another site"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ATTACK = """async (studio) => {
  const tries = {
    read_runs: () => fetch(studio + "api/runs"),
    json_post: () => fetch(studio + "api/generate", {method: "POST", headers: {"Content-Type": "application/json"},
                                                     body: JSON.stringify({run: "poems", length: 5})}),
    simple_post: () => fetch(studio + "api/generate", {method: "POST", mode: "no-cors",
                                                       headers: {"Content-Type": "text/plain"},
                                                       body: JSON.stringify({run: "poems", length: 5})}),
  };
  const out = {};
  for (const [name, attempt] of Object.entries(tries)) {
    try { const r = await attempt(); out[name] = r.type === "opaque" ? "opaque" : r.status; }
    catch (e) { out[name] = "blocked"; }
  }
  return out;
}"""


@pytest.fixture
def browser_context(chromium):
    """A context of the shared browser, in which evil.example resolves to this machine (see chromium)."""
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    yield context
    context.close()


def test_browser_the_page_works_while_other_origins_are_refused(browser_context, server):
    url = server
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    problems = []
    try:
        page = browser_context.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.goto(url)
        page.wait_for_selector("body[data-ready]")

        def generate(length):
            page.click("#nav-generate")
            page.select_option("#lm-run", "poems")
            page.fill("#lm-prompt", "The ")
            page.fill("#lm-length", str(length))
            page.click("#lm-go")
            page.wait_for_function(f"document.querySelectorAll('#lm-output .tok').length === {length}",
                                   timeout=60_000)
            page.wait_for_selector("#lm-status:has-text('done')", timeout=60_000)
        generate(5)
        before = httpx.get(url + "api/status").json()["started"]

        elsewhere = browser_context.new_page()  # another site, open in the same browser
        elsewhere.goto(f"http://127.0.0.1:{other.server_address[1]}/")
        got = elsewhere.evaluate(ATTACK, url)
        assert got == {"read_runs": "blocked", "json_post": "blocked", "simple_post": "opaque"}, got
        port = re.search(r":(\d+)/", url).group(1)
        rebound = elsewhere.goto(f"http://evil.example:{port}/api/runs")  # DNS rebinding: evil.example is us
        assert rebound.status == 403 and "Host header" in rebound.text()
        elsewhere.close()
        assert httpx.get(url + "api/status").json()["started"] == before  # nothing was generated for them

        generate(7)  # the studio's own page still works
        assert not problems, problems
    finally:
        other.shutdown()
