#!/usr/bin/env bash
# Set up .venv/ if needed, train a character language model on corpora/poems.txt for a couple
# of minutes, then generate from it and score it. Extra arguments go to train-lm.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
CHARSEQ="$ROOT/.venv/bin/charseq"
RUN="runs/poems-demo"
MINUTES="${DEMO_MINUTES:-2}"
echo "== training on corpora/poems.txt for $MINUTES minutes (run directory $RUN)"
# The model, batch and evaluation cadence are the defaults sized to poems.txt (printed in the first
# lines); only the time is the demo's. Without --time-budget, training stops early when validation
# stops improving (see the README's "Defaults" table).
"$CHARSEQ" train-lm corpora/poems.txt --out "$RUN" --force --time-budget "$MINUTES" "$@"
echo
echo "== charseq generate --model $RUN --prompt 春风 --length 120 --temperature 0.8 --seed 1"
"$CHARSEQ" generate --model "$RUN" --prompt "春风" --length 120 --temperature 0.8 --seed 1
echo
echo "== charseq generate --model $RUN --prompt 'The ' --length 120 --temperature 0.8 --seed 1"
"$CHARSEQ" generate --model "$RUN" --prompt "The " --length 120 --temperature 0.8 --seed 1
echo
echo "== charseq evaluate --model $RUN (the last 10% of poems.txt's characters, the validation split)"
python3 - corpora/poems.txt "$RUN/held-out.txt" <<'PY'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
open(sys.argv[2], "w", encoding="utf-8").write(text[len(text) - round(len(text) * 0.1):])
PY
"$CHARSEQ" evaluate --model "$RUN" "$RUN/held-out.txt"
