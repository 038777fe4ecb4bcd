"""scripts/setup.sh, which demo.sh and test.sh run first, on a machine it meets for the first time: a
Python older than charseq needs is refused in one line before a .venv/ is made with it (or, in a
.venv/ made before, said with what to do), and a .venv/ left without pip (a first run stopped on
Debian or Ubuntu before python3-venv was installed, or a tool that makes venvs without pip) is
mended on the next run instead of failing with "No module named pip" on every run after. demo.sh then
runs on the Python of .venv/ alone."""

import os
import shutil
import subprocess
import sys

import pytest

from helpers import REPO


PYTHON_3_9 = "#!/bin/sh\nif [ \"$1\" = -V ]; then echo 'Python 3.9.18'; else exit 1; fi\n"  # what it says, what it runs


def laid_out(root):
    """`root` laid out as the repository, as far as setup.sh reads it."""
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup.sh", root / "scripts" / "setup.sh")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return root


def setup(root, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", root / "scripts" / "setup.sh"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


@pytest.fixture
def clone(tmp_path):
    """The repository's layout with a .venv/ that has no pip, marked as installed already so that the
    script installs nothing from a package index."""
    laid_out(tmp_path)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / ".venv"], check=True, timeout=120)
    (tmp_path / ".venv" / ".charseq-installed").touch()
    return tmp_path


def has_pip(venv) -> bool:
    return subprocess.run([venv / "bin" / "python", "-m", "pip", "--version"], capture_output=True,
                          timeout=120).returncode == 0


def test_a_venv_without_pip_gets_pip_on_the_next_run(clone):
    assert not has_pip(clone / ".venv")
    r = setup(clone)
    assert r.returncode == 0, r.stderr
    assert has_pip(clone / ".venv")


def test_without_ensurepip_it_says_what_to_install_in_one_line(clone, tmp_path):
    shadow = tmp_path / "no-ensurepip"
    shadow.mkdir()
    (shadow / "ensurepip.py").write_text("raise SystemExit('No module named ensurepip')\n")  # as Debian's Python
    r = setup(clone, PYTHONPATH=str(shadow))
    error = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and error.startswith(f"Error: {clone}/.venv has no pip"), r.stderr
    assert "python3-venv" in error and "delete .venv/" in error


def test_a_python_older_than_3_10_is_refused_before_a_venv_is_made(tmp_path):
    root = laid_out(tmp_path / "clone")
    old = tmp_path / "python3.9"
    old.write_text(PYTHON_3_9)
    old.chmod(0o755)
    r = setup(root, PYTHON=str(old))
    assert r.returncode == 1 and r.stderr == (
        f"Error: charseq needs Python 3.10 or later, and {old} is Python 3.9.18: run again with PYTHON naming "
        f"a newer one, e.g. PYTHON=python3.12 {root}/scripts/setup.sh\n"), r.stderr
    assert not (root / ".venv").exists()
    r = setup(root, PYTHON=str(tmp_path / "python3.99"))
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert f"{tmp_path / 'python3.99'} is not a Python that runs here" in r.stderr


def test_a_venv_made_before_with_an_older_python_is_said_with_what_to_do(tmp_path):
    root = laid_out(tmp_path)
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").write_text(PYTHON_3_9)
    (root / ".venv" / "bin" / "python").chmod(0o755)
    r = setup(root)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"Error: charseq needs Python 3.10 or later, and {root}/.venv has Python 3.9.18: "
                               "delete .venv/ and run again")


def test_demo_needs_no_python3_beside_the_python_of_its_venv(tmp_path):
    """With .venv/ made by PYTHON=python3.12 on a machine without a python3, the demo runs to its end:
    it splits off the held-out text with the Python of .venv/."""
    root = laid_out(tmp_path / "clone")
    shutil.copy(REPO / "scripts" / "demo.sh", root / "scripts" / "demo.sh")
    (root / "corpora").mkdir()
    (root / "corpora" / "poems.txt").write_text("春风又绿江南岸\n" * 50, encoding="utf-8")
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "charseq").write_text("#!/bin/sh\n/bin/mkdir -p runs\n")  # each command: the run folder, no more
    for script in ("python", "charseq"):
        (bin_dir / script).chmod(0o755)
    (root / ".venv" / ".charseq-installed").touch()
    path = tmp_path / "path"  # the tools the scripts use, and no python3
    path.mkdir()
    (path / "dirname").symlink_to(shutil.which("dirname"))
    r = subprocess.run([shutil.which("bash"), root / "scripts" / "demo.sh"], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PATH": str(path)})
    assert r.returncode == 0, r.stderr
    held_out = (root / "runs" / "poems-demo-held-out.txt").read_text(encoding="utf-8")
    assert held_out and (root / "corpora" / "poems.txt").read_text(encoding="utf-8").endswith(held_out)
