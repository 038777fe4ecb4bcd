"""The studio's fixtures: one live `charseq serve` of the shared runs for the tests that need a real
server, and the browser tabs the tests load the studio's page in (in the suite's one headless
Chromium, tests/conftest.py)."""

import pytest

from helpers import start_server, stop_server


@pytest.fixture(scope="session")
def server(studio_dir):
    """The base URL of `charseq serve` on the shared runs, a subprocess on loopback (one per worker;
    the tests that count its generations compare before and after)."""
    proc, url, _ = start_server(studio_dir)
    yield url
    stop_server(proc)


@pytest.fixture(scope="session")
def tabs(chromium):
    """tabs(touch=False, clock=False): a browser tab kept open for the tests one after another (one
    per kind: a touch screen, a clock the test moves on). Each test loads the page afresh into it, but
    the tab's renderer keeps plotly.js compiled, where a new context would compile it again (about
    1.5 s per page). A test's tab starts on about:blank with no cookies and no routes."""
    kept = {}

    def tab(touch=False, clock=False):
        if (touch, clock) not in kept:
            page = chromium.new_context(has_touch=touch, accept_downloads=True).new_page()
            if clock:
                page.clock.install()  # timers still run in real time until the test moves the clock on
            page.problems = []
            page.on("pageerror", lambda e: page.problems.append(str(e)))
            page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
            kept[touch, clock] = page
        return kept[touch, clock]
    yield tab
    for page in kept.values():
        page.context.close()


@pytest.fixture
def open_page(tabs):
    """open_page(url, width=1280, height=900, dark=False, touch=False, clock=False): the studio's page at `url`,
    loaded and ready, in a clean tab; the page must log no error (checked at the end of the test).
    Opening another page in the same test reuses the tab, and its errors count too."""
    used = []

    def opener(url, width=1280, height=900, dark=False, touch=False, clock=False):
        page = tabs(touch, clock)
        page.goto("about:blank")
        if page not in used:  # a tab fresh for this test: what an earlier test left is gone
            page.unroute_all(behavior="ignoreErrors")
            page.context.clear_cookies()
            page.problems = []
            used.append(page)
        page.set_viewport_size({"width": width, "height": height})
        page.emulate_media(color_scheme="dark" if dark else "light")
        page.goto(url)
        page.wait_for_selector("body[data-ready]")
        return page
    yield opener
    for page in used:
        problems, page.problems = page.problems, []
        page.goto("about:blank")  # its polls stop with the test
        assert not problems, problems
