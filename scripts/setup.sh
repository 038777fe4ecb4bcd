#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv/ and install charseq into it.
# Sourced by demo.sh and test.sh; safe to run again (it only installs what changed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
# charseq needs Python 3.10 or later: an older one is refused before it makes a .venv/ that pip
# would refuse to install charseq into, on this run and on every run after.
too_old() {
    ! "$1" -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1
}
version() {
    "$1" -V 2>/dev/null || echo "not a Python that runs here"
}
if [ ! -x "$ROOT/.venv/bin/python" ]; then
    if too_old "$PYTHON"; then
        echo "Error: charseq needs Python 3.10 or later, and $PYTHON is $(version "$PYTHON"): run again with" \
             "PYTHON naming a newer one, e.g. PYTHON=python3.12 $0" >&2
        exit 1
    fi
    "$PYTHON" -m venv "$ROOT/.venv"
elif too_old "$ROOT/.venv/bin/python"; then
    echo "Error: charseq needs Python 3.10 or later, and $ROOT/.venv has $(version "$ROOT/.venv/bin/python"):" \
         "delete .venv/ and run again (with PYTHON naming a newer Python if python3 is older, e.g." \
         "PYTHON=python3.12 $0)" >&2
    exit 1
elif ! "$ROOT/.venv/bin/python" -m pip --version >/dev/null 2>&1; then
    # A .venv/ without pip: made by a tool that leaves pip out, or left half made by a first run (on Debian
    # and Ubuntu, before python3-venv was installed). pip is added to it, rather than failing on each run.
    "$ROOT/.venv/bin/python" -m ensurepip --upgrade --default-pip >/dev/null || {
        echo "Error: $ROOT/.venv has no pip, and ensurepip could not add it: install Python's venv module" \
             "(python3-venv on Debian and Ubuntu), or delete .venv/, then run this again" >&2
        exit 1
    }
fi
stamp="$ROOT/.venv/.charseq-installed"
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    "$ROOT/.venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$ROOT/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[test]"
    touch "$stamp"
fi
