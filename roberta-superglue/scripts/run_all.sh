#!/usr/bin/env bash
# The paper's whole table: every task with every optimizer, then the table (Markdown + CSV).
# Usage: run_all.sh [more superglue.train args for every run]
# Env: TASKS (boolq copa wsc rte multirc wic), OPTIMIZERS (adam lora block; add sparse for the ratio
#      variant), and those of env.sh. Finished runs are skipped and unfinished ones resume, so rerun
#      after an interruption. A failed run does not stop the others; the exit status reports it. A run
#      stopped by SIGTERM or Ctrl-C (it checkpoints and exits 128 + the signal) stops the whole table.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/env.sh"
FAILED=()
for TASK in ${TASKS:-boolq copa wsc rte multirc wic}; do
  for OPTIMIZER in ${OPTIMIZERS:-adam lora block}; do
    echo "[run_all] $TASK $OPTIMIZER" >&2
    bash "$HERE/run_task.sh" "$TASK" "$OPTIMIZER" "$@" < /dev/null
    STATUS=$?
    # The run handled the signal and exited normally, so bash would go on to the next run: stop here.
    if [ "$STATUS" -ge 128 ]; then
      echo "[run_all] stopped during $TASK/$OPTIMIZER: rerun to resume" >&2
      exit "$STATUS"
    fi
    [ "$STATUS" -eq 0 ] || FAILED+=("$TASK/$OPTIMIZER")
  done
done
bash "$HERE/table.sh" || FAILED+=("table")
if [ ${#FAILED[@]} -gt 0 ]; then echo "[run_all] failed: ${FAILED[*]}" >&2; exit 1; fi
