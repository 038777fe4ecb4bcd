#!/usr/bin/env bash
# Set up .venv/ if needed, train a character language model on corpora/poems.txt with the
# defaults (sized to the corpus, early stopping: about 2 minutes here), then generate from it and
# score it. Extra arguments go to train-lm; DEMO_MINUTES=N caps the training time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
CHARSEQ="$ROOT/.venv/bin/charseq"
RUN="runs/poems-demo"
HELD_OUT="runs/poems-demo-held-out.txt"  # beside the run, not in it: --force replaces only what charseq wrote
budget=()
[ -n "${DEMO_MINUTES:-}" ] && budget=(--time-budget "$DEMO_MINUTES")
echo "== charseq train-lm corpora/poems.txt --out $RUN --force ${budget[*]} $*"
# The model, batch, evaluation cadence and stopping rule are the defaults sized to poems.txt (the
# first line says which and why; see "Defaults and how they are sized" in docs/defaults.md).
"$CHARSEQ" train-lm corpora/poems.txt --out "$RUN" --force "${budget[@]}" "$@"
echo
echo "== charseq generate --model $RUN --prompt 春风 --length 120 --temperature 0.8 --seed 1"
"$CHARSEQ" generate --model "$RUN" --prompt "春风" --length 120 --temperature 0.8 --seed 1
echo
echo "== charseq generate --model $RUN --prompt 'The ' --length 120 --temperature 0.8 --seed 1"
"$CHARSEQ" generate --model "$RUN" --prompt "The " --length 120 --temperature 0.8 --seed 1
echo
echo "== charseq evaluate --model $RUN (the last 10% of poems.txt's characters, the validation split)"
"$ROOT/.venv/bin/python" - corpora/poems.txt "$HELD_OUT" <<'PY'  # .venv/'s: made with PYTHON=..., python3 may be absent
import sys
text = open(sys.argv[1], encoding="utf-8").read()
open(sys.argv[2], "w", encoding="utf-8").write(text[len(text) - round(len(text) * 0.1):])
PY
"$CHARSEQ" evaluate --model "$RUN" "$HELD_OUT"
