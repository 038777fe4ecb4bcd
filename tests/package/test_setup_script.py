"""scripts/setup.sh, which demo.sh and test.sh run first: a .venv/ left without pip (a first run stopped
on Debian or Ubuntu before python3-venv was installed, or a tool that makes venvs without pip) is
mended on the next run instead of failing with "No module named pip" on every run after."""

import os
import shutil
import subprocess
import sys

import pytest

from helpers import REPO


@pytest.fixture
def clone(tmp_path):
    """A folder laid out as the repository for setup.sh, with a .venv/ that has no pip, marked as
    installed already so that the script installs nothing from a package index."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / ".venv"], check=True, timeout=120)
    (tmp_path / ".venv" / ".charseq-installed").touch()
    return tmp_path


def has_pip(venv) -> bool:
    return subprocess.run([venv / "bin" / "python", "-m", "pip", "--version"], capture_output=True,
                          timeout=120).returncode == 0


def test_a_venv_without_pip_gets_pip_on_the_next_run(clone):
    assert not has_pip(clone / ".venv")
    r = subprocess.run(["bash", clone / "scripts" / "setup.sh"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert has_pip(clone / ".venv")


def test_without_ensurepip_it_says_what_to_install_in_one_line(clone, tmp_path):
    shadow = tmp_path / "no-ensurepip"
    shadow.mkdir()
    (shadow / "ensurepip.py").write_text("raise SystemExit('No module named ensurepip')\n")  # as Debian's Python
    r = subprocess.run(["bash", clone / "scripts" / "setup.sh"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(shadow)})
    error = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and error.startswith(f"Error: {clone}/.venv has no pip"), r.stderr
    assert "python3-venv" in error and "delete .venv/" in error
