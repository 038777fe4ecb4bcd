"""The studio's fixtures: one live `charseq serve` of the shared runs for the tests that need a real server."""

import pytest

from helpers import start_server, stop_server


@pytest.fixture(scope="module")
def server(studio_dir):
    """The base URL of `charseq serve` on the shared runs, a subprocess on loopback (one per test module)."""
    proc, url, _ = start_server(studio_dir)
    yield url
    stop_server(proc)
