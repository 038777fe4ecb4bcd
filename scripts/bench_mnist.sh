#!/usr/bin/env bash
# Benchmark: full MNIST read row by row (28 steps of 28 pixels) under a wall-clock budget.
#   scripts/bench_mnist.sh [MINUTES] [extra classify-mnist options]
# Trains on all the training images with no validation split (--val-fraction 0) and reports the test
# accuracy of the FINAL weights, scored once at the end (test.json): nothing is chosen on the test
# set. Also the wall time. With no options it runs charseq's best configuration;
# the tutorial configurations on the benchmarks page (docs/benchmarks.md) are (RUN=runs/NAME keeps each run apart):
#   scripts/bench_mnist.sh 10 --layers 3 --units 256 --dropout 0.5 --lr 1e-3 --batch-size 100 --lr-decay none
#   scripts/bench_mnist.sh 10 --cell rnn --units 150 --batch-size 150 --lr 1e-3 --lr-decay none
#   scripts/bench_mnist.sh 10 --units 100 --batch-size 50 --lr 1e-4 --lr-decay none
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
# MNIST from charseq's cache (charseq data get mnist), or the folder or .npz in $MNIST.
DATA="${MNIST:-}"
[ -n "$DATA" ] || DATA="$(.venv/bin/charseq data path mnist)"
MINUTES="${1:-10}"; shift || true
RUN="${RUN:-runs/bench-mnist}"
start=$(date +%s)
if [ $# -eq 0 ]; then
    set -- --bidirectional --units 128 --augment-shift 2 --lr 3e-3
fi
.venv/bin/charseq classify-mnist --data "$DATA" --out "$RUN" --force --time-budget "$MINUTES" --epochs 1000 --val-fraction 0 "$@"
python3 - "$RUN" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
last = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")][-1]
test = json.load(open(sys.argv[1] + "/test.json"))
print(json.dumps({"final_test_accuracy": test["test_accuracy"], "test_images": test["test_examples"],
                  "steps": last["step"], "train_seconds": last["elapsed_s"], "wall_seconds": int(sys.argv[2])}))
PY
