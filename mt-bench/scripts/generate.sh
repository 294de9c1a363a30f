#!/usr/bin/env bash
# Answer the 80 MT-bench questions with one model (resumable: rerun to finish an interrupted run).
# Usage: generate.sh MODEL_PATH MODEL_ID [TEMPLATE] [more mt_bench.generate args, e.g. --batch_size 16]
#   MODEL_PATH  hub name, local model dir or LoRA adapter dir;  TEMPLATE  default (the paper's) if omitted
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
[ $# -ge 2 ] || { sed -n '2,4p' "${BASH_SOURCE[0]}"; exit 2; }
MODEL_PATH="$1"; MODEL_ID="$2"; TEMPLATE="${3:-default}"; shift $(( $# < 3 ? $# : 3 ))
exec "$PYTHON" -m mt_bench.generate --model_path "$MODEL_PATH" --model_id "$MODEL_ID" --template "$TEMPLATE" \
  "${DATA_ARGS[@]}" --out_dir "$OUT_DIR" "$@"
