#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv/ and install charseq into it.
# Sourced by demo.sh and test.sh; safe to run again (it only installs what changed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
    "$PYTHON" -m venv "$ROOT/.venv"
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
