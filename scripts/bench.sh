#!/usr/bin/env bash
# The speed benchmark against PyTorch: installs the [bench] extra (PyTorch, for the benchmark
# only) into .venv/, then runs scripts/bench.py. Arguments go to it, e.g.:
#   scripts/bench.sh --quick --out bench.json
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
"$ROOT/.venv/bin/python" -c "import torch" 2>/dev/null ||
    "$ROOT/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[bench]"
exec "$ROOT/.venv/bin/python" "$ROOT/scripts/bench.py" "$@"
