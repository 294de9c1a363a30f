#!/usr/bin/env bash
# Judge the answers of some models with GPT-4 (FastChat's single-answer grading, or -- --mode
# pairwise-baseline / pairwise-all; resumable).
# Usage: judge.sh MODEL_ID... [-- more mt_bench.judge args]
# Env: JUDGE_MODEL (gpt-4), API_BASE (https://api.openai.com/v1), OPENAI_API_KEY, PARALLEL (4)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
MODELS=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do MODELS+=("$1"); shift; done
[ $# -gt 0 ] && shift
[ ${#MODELS[@]} -ge 1 ] || { sed -n '2,5p' "${BASH_SOURCE[0]}"; exit 2; }
exec "$PYTHON" -m mt_bench.judge --model_list "${MODELS[@]}" --judge_model "${JUDGE_MODEL:-gpt-4}" \
  --api_base "${API_BASE:-https://api.openai.com/v1}" --parallel "${PARALLEL:-4}" \
  "${DATA_ARGS[@]}" --out_dir "$OUT_DIR" "$@"
