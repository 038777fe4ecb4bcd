#!/usr/bin/env bash
# Set up .venv/ if needed, then run the test suite. Extra arguments go to pytest:
#   scripts/test.sh                 the default suite (slow checks skipped)
#   scripts/test.sh -m slow         only the slow checks
#   scripts/test.sh -m "slow or not slow"   everything
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
