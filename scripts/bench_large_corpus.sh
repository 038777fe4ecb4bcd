#!/usr/bin/env bash
# Benchmark: train-lm's large-corpus tier (>= 3M training tokens) on a corpus every machine with
# Python has: the top-level modules of the standard library of the Python that runs charseq, one
# file after another in name order (Python 3.11.7: 168 files, 4.7M characters, 166 distinct; char-rnn
# trained on the Linux kernel's source the same way). Then as scripts/bench_tinyshakespeare.sh: train
# on the first 90% under a wall-clock budget (the weights chosen on its last 5%), score the last 10%,
# which chose nothing, in nats/char.
#   scripts/bench_large_corpus.sh [MINUTES] [extra train-lm options]     RUN=runs/NAME keeps runs apart
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
mkdir -p runs
CORPUS=runs/python-stdlib.txt
"$ROOT/.venv/bin/python" - "$CORPUS" <<'PY'
import pathlib, sys, sysconfig
files = sorted(pathlib.Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
text = "".join(f.read_text(encoding="utf-8", errors="replace") for f in files)
pathlib.Path(sys.argv[1]).write_text(text, encoding="utf-8")
print(f"corpus: {len(files)} modules of {sysconfig.get_paths()['stdlib']}, {len(text):,} characters")
PY
RUN="${RUN:-runs/bench-large-corpus}" TINYSHAKESPEARE="$CORPUS" exec "$ROOT/scripts/bench_tinyshakespeare.sh" "$@"
