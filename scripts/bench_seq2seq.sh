#!/usr/bin/env bash
# Benchmark: the encoder-decoder on synthetic tasks, each trained under a wall-clock budget,
# then scored on 5,000 held-out pairs it never saw (neither in training nor in validation),
# greedy and beam-5, with decoding speed (sequences/s, batched).
#   scripts/bench_seq2seq.sh [MINUTES] [TASK ...]        default: 10 minutes, addition and dates
# Environment: PAIRS (distinct pairs made per task, default 55000; the test set is always pairs
# 50,001-55,000, the same 5,000 whatever PAIRS is, and training gets all the others),
# TRAIN_OPTS (extra train-seq2seq options, e.g. "--reverse-source --dropout 0.1").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
MINUTES="${1:-10}"; shift || true
TASKS=("$@"); [ ${#TASKS[@]} -eq 0 ] && TASKS=(addition dates)
CHARSEQ=.venv/bin/charseq
PAIRS="${PAIRS:-55000}"
read -r -a TRAIN_OPTS <<< "${TRAIN_OPTS:-}"
mkdir -p runs
for task in "${TASKS[@]}"; do
    data="runs/bench-$task"
    # PAIRS distinct pairs (make-pairs draws them in a fixed order, so the first 55,000 are the
    # same for any PAIRS >= 55,000): pairs 50,001-55,000 are the test set, all the others are
    # trained on (10% of them held out for validation during training).
    $CHARSEQ make-pairs "$task" --digits 3 --n "$PAIRS" --seed 0 --out "$data.all.tsv" --force
    { head -n 50000 "$data.all.tsv"; tail -n +55001 "$data.all.tsv"; } > "$data.train.tsv"
    sed -n 50001,55000p "$data.all.tsv" > "$data.test.tsv"
    echo "== $task: train-seq2seq on $(wc -l < "$data.train.tsv") pairs for $MINUTES minutes ${TRAIN_OPTS[*]}"
    start=$(date +%s)
    $CHARSEQ train-seq2seq "$data.train.tsv" --out "$data" --force --time-budget "$MINUTES" --epochs 1000 \
        "${TRAIN_OPTS[@]}"
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
