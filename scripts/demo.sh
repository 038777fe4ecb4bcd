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
# poems.txt is small (41k characters): batches of 32 x 64 give 322 updates in 2 minutes, several times
# more than the default 128 x 100 (held-out loss measured: 2.94 against 3.56 nats/char).
"$CHARSEQ" train-lm corpora/poems.txt --out "$RUN" --force --time-budget "$MINUTES" --eval-every 100 \
    --batch-size 32 --seq-len 64 "$@"
echo
echo "== charseq generate --model $RUN --prompt 春风 --length 120 --temperature 0.8 --seed 1"
"$CHARSEQ" generate --model "$RUN" --prompt "春风" --length 120 --temperature 0.8 --seed 1
echo
echo "== charseq generate --model $RUN --prompt 'The ' --length 120 --temperature 0.8 --seed 1"
"$CHARSEQ" generate --model "$RUN" --prompt "The " --length 120 --temperature 0.8 --seed 1
echo
echo "== charseq evaluate --model $RUN (the last 10% of poems.txt, the validation split)"
tail -n 100 corpora/poems.txt > "$RUN/held-out.txt"
"$CHARSEQ" evaluate --model "$RUN" "$RUN/held-out.txt"
