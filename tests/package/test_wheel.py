"""The package as a user gets it: `python -m build` gives an sdist and a wheel that `twine check`
accepts; the wheel, installed into a fresh virtual environment outside the repository, runs
`charseq --version`, `train-lm` on the compiled kernel it builds from its own C++ sources,
`generate`, `evaluate` and `serve`.

The fresh environment reuses the heavy dependencies (TensorFlow and the rest) already installed for
the tests through a .pth file, and the wheel goes in with --no-deps: what is tested is the wheel, not
a second download of TensorFlow."""

import importlib.metadata
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import time
import urllib.request
import zipfile

import pytest
from click.testing import CliRunner

from charseq import __version__ as version
from charseq.cli import main
from helpers import REPO


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    r = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=900, **kwargs)
    assert r.returncode == 0, f"{' '.join(map(str, args))}\n{r.stdout}\n{r.stderr}"
    return r


def test_version_is_the_installed_package_s():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output == f"charseq, version {importlib.metadata.version('charseq')}\n"
    assert 'attr = "charseq.__version__"' in (REPO / "pyproject.toml").read_text()  # the one place it is written


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    pytest.importorskip("build", reason="python -m build needs the release extra: pip install 'charseq[release]'")
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, REPO)
    return out


@pytest.mark.slow
def test_build_gives_an_sdist_and_a_wheel_that_twine_accepts(dist):
    wheel, = dist.glob("charseq-*.whl")
    sdist, = dist.glob("charseq-*.tar.gz")
    assert wheel.name == f"charseq-{version}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("charseq/kernels/lstm.cc", "charseq/kernels/gru.cc", "charseq/kernels/common.h",
                    "charseq/studio/static/index.html", "charseq/heads/lm/page/generate.js",
                    "charseq/corpora/poems.txt", "charseq/corpora/zh-en.tsv",
                    f"charseq-{version}.dist-info/licenses/LICENSE"):
        assert shipped in names, shipped
    with tarfile.open(sdist) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    assert {"CHANGELOG.md", "LICENSE", "README.md", "charseq/kernels/lstm.cc", "charseq/corpora/poems.txt"} <= members
    pytest.importorskip("twine", reason="twine check needs the release extra: pip install 'charseq[release]'")
    checked = run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)
    assert checked.stdout.count("PASSED") == 2, checked.stdout


@pytest.mark.slow
def test_the_wheel_works_in_a_fresh_environment_outside_the_repository(dist, tmp_path):
    wheel, = dist.glob("charseq-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python, charseq = venv / "bin" / "python", venv / "bin" / "charseq"
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    with open(os.path.join(site, "installed-dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    # Nothing from the repository on the path (no PYTHONPATH, another working directory), where pip
    # would find the checkout's metadata and take charseq as installed already.
    work = tmp_path / "elsewhere"
    work.mkdir()
    cache = tmp_path / "cache"  # empty: the kernel is compiled here from the wheel's own sources
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(CHARSEQ_CACHE=str(cache), TF_CPP_MIN_LOG_LEVEL="3")
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check", wheel, cwd=work, env=env)

    def cli(*args):
        return run(charseq, *args, cwd=work, env=env)

    assert cli("--version").stdout.strip() == f"charseq, version {version}"
    where = run(python, "-c", "import charseq; print(charseq.__file__)", cwd=work, env=env).stdout.strip()
    assert where.startswith(str(venv)), where  # the installed wheel, not the repository
    poems = cli("data", "path", "poems").stdout.strip()  # the examples' corpus, without a clone
    assert poems.startswith(str(venv)) and poems.endswith("poems.txt"), poems

    (work / "corpus.txt").write_text("The river runs to the sea, and the sea runs to the sky.\n" * 150)
    cli("train-lm", "corpus.txt", "--out", "runs/tiny", "--cell", "lstm", "--units", "32", "--layers", "1",
        "--max-steps", "20", "--eval-every", "10", "--batch-size", "8", "--seq-len", "32", "--sample-length", "0",
        "--precision", "float32")
    built = list(cache.glob("kernels/*/recurrent.so"))
    assert len(built) == 1, list(cache.rglob("*"))
    # The library train-lm built is the one for the installed sources (their bytes are in the key), and
    # the backbone runs on it.
    probe = ("import tensorflow as tf; from charseq import backbone, kernels; "
             "print(kernels.load() is not None, kernels.HERE, kernels.build_dir(tf, kernels.compiler()), "
             "backbone.RecurrentBackbone('lstm', 8, 1, vocab_size=5, impl='auto').use_compiled)")
    loaded, here, directory, used = run(python, "-c", probe, cwd=work, env=env).stdout.split()
    assert loaded == "True" and used == "True"
    assert here.startswith(str(venv)) and directory == str(built[0].parent)

    text = cli("generate", "--model", "runs/tiny", "--prompt", "The ", "--length", "40").stdout
    assert text.startswith("The ") and len(text.strip()) >= 20
    scores = json.loads(cli("evaluate", "--model", "runs/tiny", "corpus.txt", "--json").stdout)
    assert 0 < scores["loss_nats"] < 4 and scores["chars"] > 7000

    server = subprocess.Popen([charseq, "serve", "runs", "--port", "0"], cwd=work, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()  # "charseq studio: 1 run on http://127.0.0.1:PORT/ ..."
        assert "http://127.0.0.1:" in line, line + server.stderr.read()
        url = line.split("http://", 1)[1].split()[0]
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"http://{url}api/runs", timeout=10) as response:
                    runs = json.load(response)["runs"]
                break
            except OSError:
                time.sleep(0.2)
        assert [r["name"] for r in runs] == ["tiny"]
        with urllib.request.urlopen(f"http://{url}", timeout=10) as response:
            assert b"<html" in response.read()  # the studio's page, from the wheel's static files
    finally:
        server.terminate()
        server.wait(timeout=30)
