#!/usr/bin/env bash
# Benchmark: SST-2 sentiment from raw characters, with and without a language model
# pretrained on the SST-2 training sentences (--init-from), within a total budget. Both
# classifiers have the language model's default shape (2x256 LSTM), so only pretraining differs.
#   scripts/bench_sst2.sh [PRETRAIN_MINUTES] [CLASSIFIER_MINUTES]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
DATA="${SST2:-$ROOT/../shared/data/sst2}"
PRE="${1:-12}"; CLF="${2:-8}"
mkdir -p runs
tail -n +2 "$DATA/train.tsv" | cut -f2 > runs/sst2-sentences.txt
CLF_OPTS=(--val "$DATA/dev.tsv" --time-budget "$CLF" --epochs 100 --batch-size 64 --dropout 0.3)
echo "== without pretraining ($CLF minutes)"
.venv/bin/charseq train-classifier "$DATA/train.tsv" --out runs/bench-sst2-scratch --force \
    --units 256 --layers 2 "${CLF_OPTS[@]}"
echo "== language model on the SST-2 training sentences ($PRE minutes), then the classifier ($CLF minutes)"
.venv/bin/charseq train-lm runs/sst2-sentences.txt --out runs/bench-sst2-lm --force --time-budget "$PRE" \
    --sample-length 0 --eval-every 500
.venv/bin/charseq train-classifier "$DATA/train.tsv" --out runs/bench-sst2-pretrained --force \
    --init-from runs/bench-sst2-lm "${CLF_OPTS[@]}"
for run in scratch pretrained; do
    echo -n "$run: "
    .venv/bin/charseq evaluate --model "runs/bench-sst2-$run" "$DATA/dev.tsv" --json | python3 -c \
        "import json,sys; r=json.load(sys.stdin); print(f\"dev accuracy {r['accuracy']:.4f} ({r['examples']} examples)\")"
done
