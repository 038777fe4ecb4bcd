"""The built documentation site as a reader sees it, in headless Chromium: at a desktop's and a
phone's width every page loads its images and does not scroll sideways, the Python reference's
signatures are read without scrolling either, and search puts the page that explains a term first."""

import os
import subprocess
import sys

import pytest

from helpers import REPO

WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--config-file", str(REPO / "mkdocs.yml"),
                        "--site-dir", str(site)], cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return site


def pages_of(site):
    return sorted(p for p in site.rglob("index.html") if "assets" not in p.relative_to(site).parts)


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_shows_its_images_and_fits_the_screen(site, chromium, width):
    w, h = WIDTHS[width]
    page = chromium.new_page(viewport={"width": w, "height": h})
    wrong = []
    for html in pages_of(site):
        page.goto(html.as_uri())
        found = page.evaluate("""() => ({
            broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src),
            sideways: document.documentElement.scrollWidth - document.documentElement.clientWidth,
        })""")
        where = html.parent.relative_to(site)
        wrong += [f"{where}: image {src} does not load" for src in found["broken"]]
        if found["sideways"] > 1:
            wrong.append(f"{where}: the page scrolls {found['sideways']} px sideways")
    page.close()
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_python_reference_s_signatures_need_no_sideways_scrolling(site, chromium, width):
    w, h = WIDTHS[width]
    page = chromium.new_page(viewport={"width": w, "height": h})
    page.goto((site / "reference" / "python" / "index.html").as_uri())
    cut = page.evaluate("""() => [...document.querySelectorAll('.doc-signature pre > code')]
        .filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.textContent.slice(0, 40))""")
    count = page.evaluate("document.querySelectorAll('.doc-signature').length")
    # The parameters of an entry: a table wider than a phone would hide its last columns off-screen.
    cut_parameters = page.evaluate("""() => [...document.querySelectorAll('.doc-contents .md-typeset__scrollwrap')]
        .filter(w => w.scrollWidth > w.clientWidth + 1).map(w => w.closest('.doc-contents').parentElement
            .querySelector('.doc-heading').id)""")
    page.close()
    assert count > 20, "no signatures found"
    assert not cut, f"signatures that scroll sideways at a {width}'s width: {cut}"
    assert not cut_parameters, f"parameters that scroll sideways at a {width}'s width: {cut_parameters}"


@pytest.fixture(scope="module")
def served_site(site):
    """The site over HTTP, as a reader opens it: its search reads the index with a request, which a
    page opened as a file may not make."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def search_results(page, url, query) -> list[str]:
    page.goto(url)
    page.click(".md-search__input")
    page.keyboard.type(query)
    page.wait_for_function("document.querySelectorAll('.md-search-result__item').length > 0", timeout=10_000)
    return page.eval_on_selector_all(".md-search-result__item > a h1", "titles => titles.map(t => t.innerText)")


def test_search_finds_the_page_that_explains_a_term_before_the_records_of_changes(served_site, chromium):
    """A reader searching for what a page explains gets that page first, and the changelog and the
    earlier benchmark runs, which mention everything, after the guides and the reference."""
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    wrong = []
    for query, first in [("beam search", "Language model"), ("early stopping", "Defaults and how they are sized"),
                         ("checkpoint", "The run directory and reliability")]:
        titles = search_results(page, served_site, query)
        if not titles or titles[0] != first:
            wrong.append(f"{query!r}: {titles[:3]}, not {first!r} first")
    for query in ("resume", "temperature", "sentencepiece", "learning rate"):
        records = {"Changelog", "Earlier runs and the changes behind them"} & set(search_results(page, served_site, query)[:3])
        if records:
            wrong.append(f"{query!r}: {sorted(records)} among the first three results")
    page.close()
    assert not wrong, "\n".join(wrong)
