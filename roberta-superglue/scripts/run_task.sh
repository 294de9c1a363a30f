#!/usr/bin/env bash
# Fine-tune on one task with one optimizer, the paper's protocol (resumable: rerun to continue).
# Usage: run_task.sh TASK OPTIMIZER [more superglue.train args, e.g. --seed 1 --bf16 true]
#   TASK  boolq|copa|multirc|rte|wic|wsc   OPTIMIZER  adam|lora|block|sparse
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
[ $# -ge 2 ] || { sed -n '2,4p' "${BASH_SOURCE[0]}"; exit 2; }
TASK="$1"; OPTIMIZER="$2"; shift 2
exec "$PYTHON" -m superglue.train --config "$CONFIG" --task "$TASK" --optimizer "$OPTIMIZER" \
  "${DATA_ARGS[@]}" --output_root "$OUT_DIR" "$@"
