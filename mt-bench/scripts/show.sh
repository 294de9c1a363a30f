#!/usr/bin/env bash
# Print and save the results: per-model scores, Table 2 and the radar plot (in $OUT_DIR/results).
# Usage: show.sh [MODEL_ID...] [-- more mt_bench.show args, e.g. --wandb_project badam]
# Env: JUDGE_MODEL (gpt-4), TABLE2_CONFIG (mt-bench/configs/table2.yaml)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
MODELS=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do MODELS+=("$1"); shift; done
[ $# -gt 0 ] && shift
JUDGE_MODEL="${JUDGE_MODEL:-gpt-4}"
exec "$PYTHON" -m mt_bench.show --judgment_file "$OUT_DIR/model_judgment/${JUDGE_MODEL}_single.jsonl" \
  --judge_model "$JUDGE_MODEL" ${MODELS[@]+--model_list "${MODELS[@]}"} \
  --table2_config "${TABLE2_CONFIG:-$MT_BENCH/configs/table2.yaml}" --results_dir "$OUT_DIR/results" \
  "${DATA_ARGS[@]}" "$@"
