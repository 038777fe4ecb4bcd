"""The folders `charseq serve` is given: a run is served once, however often the folders given reach
it (a folder given twice, or a run given beside the folder it is in); two different runs that would
have the same name are both served."""

import shutil
import warnings

import pytest

pytest.importorskip("starlette", reason="the studio's extra is not installed: pip install 'charseq[studio]'")
pytest.importorskip("httpx", reason="Starlette's test client needs httpx")

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2 over httpx; both work
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from charseq.studio.app import create_app  # noqa: E402

SERVED = ["digits", "grid/lr=0.003", "grid/lr=0.01", "poems", "reverse", "sentiment"]


def served(*directories) -> list[str]:
    with TestClient(create_app(list(directories)), base_url="http://127.0.0.1:8000") as client:
        return [r["name"] for r in client.get("/api/runs").json()["runs"]]


def test_a_folder_given_twice_serves_each_run_once(studio_dir):
    assert served(studio_dir, studio_dir) == SERVED
    assert served(studio_dir, studio_dir / "poems") == SERVED  # the run beside its folder: once, by its name there
    assert served(studio_dir / "poems", studio_dir) == SERVED


def test_two_runs_of_the_same_name_are_both_served(studio_dir, tmp_path):
    shutil.copytree(studio_dir / "poems", tmp_path / "other" / "poems")
    names = served(studio_dir, tmp_path / "other")
    assert len(names) == len(SERVED) + 1 and "poems" in names and "other/poems" in names
