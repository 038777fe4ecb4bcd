#!/usr/bin/env bash
# Benchmark: train-lm with its defaults on tiny-shakespeare under a wall-clock budget, then the loss on
# the standard validation split (the last 10% of the characters, nats/char), which chose nothing:
# train-lm reads only the first 90%, trains on all of it but its first 5% and keeps the weights
# (best.npz) by the loss on that 5% (the selection split). The selection split comes from the start:
# the play the scored split continues (The Taming of the Shrew) begins in the 5% before it, which
# training needs. train-lm holds out the end of its corpus (--val-fraction), so the file it reads is
# the first 90% with its first 5% moved to the end.
#   scripts/bench_tinyshakespeare.sh [MINUTES] [extra train-lm options]    RUN=runs/NAME keeps runs apart
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
# The corpus: $TINYSHAKESPEARE, else charseq's cached copy (charseq data get tinyshakespeare).
DATA="${TINYSHAKESPEARE:-}"
[ -n "$DATA" ] || DATA="$(.venv/bin/charseq data path tinyshakespeare)"
MINUTES="${1:-15}"; shift || true
RUN="${RUN:-runs/bench-tinyshakespeare}"
SPLIT="${SPLIT:-$RUN-split}"  # where the two parts of the corpus are written
# The budget covers training and its evaluations; start-up and the final scoring come on top,
# so 14.5 minutes of training keeps the whole command inside 15 minutes of wall clock.
BUDGET=$(python3 -c "print(float('$MINUTES') - 0.5)")
mkdir -p "$SPLIT"
python3 - "$DATA" "$SPLIT" <<'PY'
import pathlib, sys
text = pathlib.Path(sys.argv[1]).read_text(encoding="utf-8")
cut = len(text) - round(len(text) * 0.1)
select = round(cut * 0.05)
pathlib.Path(sys.argv[2], "train.txt").write_text(text[select:cut] + text[:select], encoding="utf-8")
pathlib.Path(sys.argv[2], "val.txt").write_text(text[cut:], encoding="utf-8")
PY
start=$(date +%s)
.venv/bin/charseq train-lm "$SPLIT/train.txt" --out "$RUN" --force --time-budget "$BUDGET" --sample-length 0 \
    --val-fraction 0.05 "$@"
.venv/bin/charseq evaluate --model "$RUN" "$SPLIT/val.txt" --json | tee "$RUN/bench.json"
echo "wall clock: $(( $(date +%s) - start ))s on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
