#!/usr/bin/env bash
# Benchmark: train-lm with its defaults on tiny-shakespeare (first 90% train, last 10% val)
# under a 15-minute wall-clock budget, then report the loss on the whole val split (nats/char).
#   scripts/bench_tinyshakespeare.sh [MINUTES] [extra train-lm options]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
# The corpus: $TINYSHAKESPEARE, else charseq's cached copy (charseq data get tinyshakespeare).
DATA="${TINYSHAKESPEARE:-}"
[ -n "$DATA" ] || DATA="$(.venv/bin/charseq data path tinyshakespeare)"
MINUTES="${1:-15}"; shift || true
RUN="${RUN:-runs/bench-tinyshakespeare}"
# The budget covers training and its evaluations; start-up and the final scoring come on top,
# so 14.5 minutes of training keeps the whole command inside 15 minutes of wall clock.
BUDGET=$(python3 -c "print(float('$MINUTES') - 0.5)")
start=$(date +%s)
.venv/bin/charseq train-lm "$DATA" --out "$RUN" --force --time-budget "$BUDGET" --sample-length 0 "$@"
# The val split is the last 10% of the characters (what train-lm held out): score it on its own.
python3 - "$DATA" "$RUN/val.txt" <<'PY'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
open(sys.argv[2], "w", encoding="utf-8").write(text[len(text) - round(len(text) * 0.1):])
PY
.venv/bin/charseq evaluate --model "$RUN" "$RUN/val.txt" --json | tee "$RUN/bench.json"
echo "wall clock: $(( $(date +%s) - start ))s on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
