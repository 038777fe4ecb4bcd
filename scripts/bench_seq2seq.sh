#!/usr/bin/env bash
# Benchmark: the encoder-decoder on synthetic tasks, each trained under a wall-clock budget,
# then scored on 5,000 held-out pairs it never saw (neither in training nor in validation),
# greedy and beam-5, with decoding speed (sequences/s, batched).
#   scripts/bench_seq2seq.sh [MINUTES] [TASK ...]        default: 10 minutes, addition and dates
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
MINUTES="${1:-10}"; shift || true
TASKS=("$@"); [ ${#TASKS[@]} -eq 0 ] && TASKS=(addition dates)
CHARSEQ=.venv/bin/charseq
mkdir -p runs
for task in "${TASKS[@]}"; do
    data="runs/bench-$task"
    # 55,000 distinct pairs: the first 50,000 to train on (10% of them held out for validation
    # during training), the last 5,000 as the test set.
    $CHARSEQ make-pairs "$task" --digits 3 --n 55000 --seed 0 --out "$data.all.tsv" --force
    head -n 50000 "$data.all.tsv" > "$data.train.tsv"
    tail -n 5000 "$data.all.tsv" > "$data.test.tsv"
    echo "== $task: train-seq2seq for $MINUTES minutes"
    start=$(date +%s)
    $CHARSEQ train-seq2seq "$data.train.tsv" --out "$data" --force --time-budget "$MINUTES" --epochs 1000
    echo "training wall clock: $(( $(date +%s) - start ))s"
    for beam in 1 5; do
        $CHARSEQ evaluate --model "$data" "$data.test.tsv" --beam "$beam" --json > "$data.beam$beam.json"
        python3 - "$data.beam$beam.json" "$task" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]} beam {r['beam']}: exact match {r['exact_match']:.4f}, character error rate "
      f"{r['char_error_rate']:.4f} on {r['examples']} held-out pairs; decoding {r['sequences_per_sec']:,.0f} "
      f"sequences/s ({r['decode_seconds']:.1f}s, batched)")
PY
    done
done
