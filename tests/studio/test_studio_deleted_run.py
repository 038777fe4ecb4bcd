"""A run deleted while its page is open: the next request that names it is told the run is gone (a 404
naming it), at once, not only after the next rescan of the served folders, and never with an error
about a file of the run that cannot be read; and the page, once its poll finds the run gone, says so
beside the run menu instead of showing another run without a word."""

import shutil
import warnings

import pytest

pytest.importorskip("starlette", reason="the studio's extra is not installed: pip install 'charseq[studio]'")
pytest.importorskip("httpx", reason="Starlette's test client needs httpx")

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2 over httpx; both work
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from charseq.studio.app import create_app  # noqa: E402
from helpers import studio_in_this_process  # noqa: E402


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/api/generate", {"run": "gone", "prompt": "a", "length": 2}),
    ("POST", "/api/analyze", {"run": "gone", "text": "ab"}),
    ("GET", "/api/runs/gone/metrics", None),
    ("GET", "/api/runs/gone/examples", None),
])
def test_a_run_deleted_since_the_last_scan_is_a_404_naming_it(studio_dir, tmp_path, method, path, body):
    served = tmp_path / "served"
    shutil.copytree(studio_dir / "poems", served / "gone")
    app = create_app([served])
    with TestClient(app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False) as client:
        assert "gone" in app.state.studio.runs  # scanned: the table lists it until its next rescan
        shutil.rmtree(served / "gone")
        response = client.request(method, path, json=body)
        assert response.status_code == 404, response.text
        assert response.json() == {"error": "no run named 'gone' is served: its directory was deleted"}


def test_the_page_says_the_run_it_shows_was_deleted(studio_dir, tmp_path, open_page):
    served = tmp_path / "served"
    for name in ["kept", "gone"]:
        shutil.copytree(studio_dir / "poems", served / name)
    with studio_in_this_process(served) as url:
        page = open_page(url + "#generate?run=gone&prompt=The")
        assert page.input_value("#lm-run") == "gone"
        shutil.rmtree(served / "gone")
        note = page.locator("#page-generate .missing-run")
        note.wait_for(timeout=15_000)  # the next poll after the next scan
        assert note.inner_text() == 'run "gone" is no longer served (deleted or moved); showing "kept"'
        assert page.input_value("#lm-run") == "kept" and "run=kept" in page.evaluate("location.hash")
        assert page.input_value("#lm-prompt") == "The"  # the rest of the playground stays
