"""The studio's fixtures: one live `charseq serve` of the shared runs for the tests that need a real
server, and one headless Chromium for every test that opens the studio's page."""

import pytest

from helpers import CHROMIUM, CHROMIUM_FLAGS, start_server, stop_server


@pytest.fixture(scope="module")
def server(studio_dir):
    """The base URL of `charseq serve` on the shared runs, a subprocess on loopback (one per test module)."""
    proc, url, _ = start_server(studio_dir)
    yield url
    stop_server(proc)


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium through Playwright, launched once per test run (per worker); each test opens
    its own context (cookies, storage and viewport of its own). The name evil.example resolves to this
    machine, as a DNS-rebinding attacker's name would."""
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (charseq[test])")
    flags = [*CHROMIUM_FLAGS, "--host-resolver-rules=MAP evil.example 127.0.0.1"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=flags)
        yield browser
        browser.close()
