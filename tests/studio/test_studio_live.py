"""`charseq serve` for real: a live server subprocess on loopback, a bounded load test, a client that
disconnects, and Debian's Chromium (headless, driven by Playwright) using the page as a person would.

Screenshots go to a temporary directory, or to CHARSEQ_STUDIO_SCREENSHOTS (the docs' come from
`CHARSEQ_STUDIO_SCREENSHOTS=docs scripts/test.sh tests/studio/test_studio_live.py`)."""

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from helpers import assert_clean_error, run_cli_in_process, start_server, stop_server

httpx = pytest.importorskip("httpx", reason="the studio's tests need httpx (pip install 'charseq[test]')")
pytest.importorskip("uvicorn", reason="the studio's extra is not installed: pip install 'charseq[studio]'")


def stream_generation(url, body, on_chunk=None, timeout=120.0) -> list[tuple[str, dict]]:
    events = []
    with httpx.stream("POST", url + "api/generate", json=body, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        kind = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
                if on_chunk is not None and on_chunk(events):
                    break
    return events


def tensorflow_loaded(proc) -> bool:
    """Whether process `proc` has TensorFlow's native library mapped (Linux's /proc/PID/maps)."""
    return "libtensorflow_framework" in Path(f"/proc/{proc.pid}/maps").read_text()


def test_serve_bad_input_and_loopback_addresses(tmp_path, studio_dir):
    (tmp_path / "file.txt").write_text("not runs")
    assert_clean_error(run_cli_in_process("serve", tmp_path / "file.txt"), "not a directory")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_clean_error(run_cli_in_process("serve", studio_dir, "--port", port), "cannot listen", str(port))
    proc, url, _ = start_server(studio_dir / "poems", "--host", "127.0.0.2")  # still loopback, but not the default
    try:
        assert url.startswith("http://127.0.0.2:")
        assert httpx.get(url + "api/runs").json()["runs"][0]["name"] == "poems"  # a run directory served alone
        # Listing runs needs no TensorFlow, so the server starts without it; the first generation imports it.
        assert not tensorflow_loaded(proc)
        events = stream_generation(url, {"run": "poems", "prompt": "The ", "length": 20, "seed": 1})
        assert events[-1][0] == "done" and events[-1][1]["tokens"] == 20
        assert tensorflow_loaded(proc)
    finally:
        err = stop_server(proc)
    assert "Warning" not in err  # loopback: no token, no warning
    assert "oneDNN" not in err and "cuda" not in err.lower(), err  # TensorFlow's start-up lines stay off the terminal


def test_ctrl_c_stops_the_studio_as_its_banner_says_not_as_an_error(studio_dir):
    proc, url, lines = start_server(studio_dir / "poems")
    assert "(Ctrl-C stops)" in lines[0]
    try:
        assert httpx.get(url + "api/runs").status_code == 200  # serving: its signal handlers are in place
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "stopped" in proc.stdout.read()
    err = proc.stderr.read()
    assert "Error" not in err and "Traceback" not in err, err


def test_sixteen_concurrent_generations_then_the_server_still_answers(server):
    results, errors = [None] * 16, []

    def one(i):
        try:
            results[i] = stream_generation(server, {"run": "poems" if i % 2 else "grid/lr=0.01", "prompt": "The ",
                                                    "length": 150, "seed": i})
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))
    start = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not errors and not any(t.is_alive() for t in threads), errors
    for events in results:
        assert events[-1][0] == "done" and events[-1][1]["tokens"] == 150
        assert sum(len(d["tokens"]) for k, d in events if k == "chunk") == 150
    print(f"16 concurrent streams of 150 characters: {time.monotonic() - start:.1f} s")
    assert httpx.get(server + "api/runs", timeout=10).status_code == 200
    status = httpx.get(server + "api/status", timeout=10).json()
    assert status["running"] == 0 and status["finished"] >= 16


def test_a_client_that_disconnects_stops_its_generation(server):
    before = httpx.get(server + "api/status").json()
    events = stream_generation(server, {"run": "poems", "length": 10_000, "seed": 1},
                               on_chunk=lambda events: len(events) >= 2)  # two chunks, then hang up
    assert len(events) == 2
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = httpx.get(server + "api/status").json()
        if status["running"] == 0:
            break
        time.sleep(0.1)
    assert status["running"] == 0
    assert status["stopped"] == before["stopped"] + 1 and status["finished"] == before["finished"]


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = os.environ.get("CHARSEQ_STUDIO_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_browser_runs_generate_and_attention(server, open_page, shots):
    page = open_page(server, height=860)  # a test that provokes an error takes its own out of page.problems
    assert page.locator("#runs-table tbody tr").count() == 6
    page.wait_for_function("document.querySelectorAll('#runs-table input:checked').length === 2")  # the grid
    page.wait_for_timeout(300)
    page.screenshot(path=shots / "studio-runs.png")

    page.click("#nav-generate")
    page.select_option("#lm-run", "poems")
    page.fill("#lm-prompt", "The ☃")  # a character the model has never seen: the error names the control
    page.click("#lm-go")
    page.wait_for_selector("#lm-status:has-text('vocabulary')")
    assert "set unknown to skip" in page.inner_text("#lm-status") and page.locator("#lm-output > .tok").count() == 0
    assert page.problems == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]
    page.problems.clear()
    page.select_option("#lm-unknown", "skip")
    page.fill("#lm-length", "5")
    page.click("#lm-go")
    page.wait_for_selector("#lm-status:has-text('done')", timeout=60_000)
    assert page.locator("#lm-output > .tok").count() == 5
    page.select_option("#lm-unknown", "error")
    page.fill("#lm-prompt", "The ")
    page.fill("#lm-length", "300")
    page.fill("#lm-seed", "4")
    page.click("#lm-go")
    page.wait_for_selector("#lm-output .tok")  # text appears while it streams ...
    page.wait_for_selector("#lm-status:has-text('done')", timeout=60_000)  # ... until the end
    assert page.locator("#lm-output > .tok").count() == 300
    page.hover("#lm-output .tok >> nth=12")
    assert "top 5" in page.inner_text("#tooltip")
    page.screenshot(path=shots / "studio-generate.png")

    page.click("#nav-translate")
    page.select_option("#tr-run", "reverse")
    page.fill("#tr-source", "abcde")
    page.click("#tr-go")
    page.wait_for_selector("table.heatmap td")
    hypothesis = page.inner_text("#tr-hyps tr.chosen td.out")
    assert page.locator("table.heatmap td").count() == (len(hypothesis) + 1) * 5
    page.screenshot(path=shots / "studio-attention.png")


def test_browser_look_inside_and_draw_a_digit(server, open_page, shots):
    page = open_page(server + "#inside", height=860)
    page.select_option("#in-run", "poems")
    page.click("#in-go")
    page.wait_for_selector("#in-units li button")
    page.click("#in-units li button >> nth=0")  # an automatically found unit, shown over the text
    assert page.input_value("#in-mode") == "unit"
    page.screenshot(path=shots / "studio-inside.png")

    page.click("#nav-classify")
    page.select_option("#cl-run", "digits")
    box = page.locator("#cl-canvas").bounding_box()
    y = box["y"] + box["height"] * 15 / 28  # a bright band across rows 14-17: class 2 of the striped images
    page.mouse.move(box["x"] + 40, y)
    page.mouse.down()
    for x in range(40, 240, 10):
        page.mouse.move(box["x"] + x, y, steps=2)
    page.mouse.up()
    page.wait_for_selector("#cl-img-status:has-text('%')")
    assert page.inner_text("#cl-probs .bar.chosen .label") == "2"
    page.screenshot(path=shots / "studio-classify.png")
