#!/usr/bin/env bash
# Print and save the results: per-model scores, Table 2 and the radar plot (in $OUT_DIR/results).
# Usage: show.sh [MODEL_ID...] [-- more mt_bench.show args, e.g. --wandb_project badam, --mode pairwise-all]
# Env: JUDGE_MODEL (gpt-4), TABLE2_CONFIG (mt-bench/configs/table2.yaml)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
MODELS=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do MODELS+=("$1"); shift; done
[ $# -gt 0 ] && shift
exec "$PYTHON" -m mt_bench.show --out_dir "$OUT_DIR" --judge_model "${JUDGE_MODEL:-gpt-4}" \
  ${MODELS[@]+--model_list "${MODELS[@]}"} --table2_config "${TABLE2_CONFIG:-$MT_BENCH/configs/table2.yaml}" \
  "${DATA_ARGS[@]}" "$@"
