#!/usr/bin/env bash
# Benchmark: SST-2 sentiment from raw characters within a total budget: a classifier trained
# from scratch, and (PRETRAIN_MINUTES > 0) one started from a language model pretrained on the
# SST-2 training sentences (--init-from, the language model's default 2x256 shape).
#   scripts/bench_sst2.sh [PRETRAIN_MINUTES] [CLASSIFIER_MINUTES]      default: 12 and 8
#   scripts/bench_sst2.sh 0 19.5        # scratch only, 19.5 minutes of training (20 of wall clock)
#   SCRATCH=0 LM_OPTS="--cell lstm --layers 1" PRETRAINED_OPTS="--bidirectional" scripts/bench_sst2.sh 8 11.5
#                                       # pretrained only: options for the language model and for its classifier
# The classifiers keep their sized defaults (train-classifier: 1x256 GRU, max readout, char noise 0.1, batch 64 on
# SST-2's 67k phrases) plus SCRATCH_OPTS (default: --bidirectional) for the one from scratch. They
# validate on 10% of the training phrases held out (the default), so the dev set is only scored,
# never used to choose weights.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
# The folder of train.tsv and dev.tsv: $SST2, else charseq's cached copy (charseq data get sst2).
DATA="${SST2:-}"
[ -n "$DATA" ] || DATA="$(.venv/bin/charseq data path sst2)"
PRE="${1:-12}"; CLF="${2:-8}"
read -r -a SCRATCH_ARGS <<< "${SCRATCH_OPTS---bidirectional}"
read -r -a LM_ARGS <<< "${LM_OPTS-}"
read -r -a PRETRAINED_ARGS <<< "${PRETRAINED_OPTS-}"
mkdir -p runs
CLF_OPTS=(--time-budget "$CLF" --epochs 100)
runs=()
if [ "${SCRATCH:-1}" != 0 ]; then
    runs+=(scratch)
    echo "== from scratch ($CLF minutes) ${SCRATCH_ARGS[*]}"
    start=$(date +%s)
    .venv/bin/charseq train-classifier "$DATA/train.tsv" --out runs/bench-sst2-scratch --force "${CLF_OPTS[@]}" \
        "${SCRATCH_ARGS[@]}"
    echo "training wall clock: $(( $(date +%s) - start ))s"
fi
if python3 -c "import sys; sys.exit(float('$PRE') <= 0)"; then
    runs+=(pretrained)
    tail -n +2 "$DATA/train.tsv" | cut -f2 > runs/sst2-sentences.txt
    echo "== language model on the SST-2 training sentences ($PRE minutes) ${LM_ARGS[*]}, then the classifier" \
         "($CLF minutes) ${PRETRAINED_ARGS[*]}"
    start=$(date +%s)
    .venv/bin/charseq train-lm runs/sst2-sentences.txt --out runs/bench-sst2-lm --force --time-budget "$PRE" \
        --sample-length 0 --eval-every 500 "${LM_ARGS[@]}"
    .venv/bin/charseq train-classifier "$DATA/train.tsv" --out runs/bench-sst2-pretrained --force \
        --init-from runs/bench-sst2-lm "${CLF_OPTS[@]}" "${PRETRAINED_ARGS[@]}"
    echo "training wall clock, both: $(( $(date +%s) - start ))s"
fi
for run in "${runs[@]}"; do
    echo -n "$run: "
    .venv/bin/charseq evaluate --model "runs/bench-sst2-$run" "$DATA/dev.tsv" --json | python3 -c \
        "import json,sys; r=json.load(sys.stdin); print(f\"dev accuracy {r['accuracy']:.4f} ({r['examples']} examples)\")"
done
