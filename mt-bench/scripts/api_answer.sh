#!/usr/bin/env bash
# Answer the 80 MT-bench questions with a model behind an API, e.g. the pairwise baseline (resumable).
# Usage: api_answer.sh [MODEL] [more mt_bench.api_answer args]   (MODEL: gpt-3.5-turbo if omitted)
# Env: API_BASE (https://api.openai.com/v1), OPENAI_API_KEY, PARALLEL (4)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
MODEL="${1:-gpt-3.5-turbo}"; shift $(( $# < 1 ? $# : 1 ))
exec "$PYTHON" -m mt_bench.api_answer --model "$MODEL" --api_base "${API_BASE:-https://api.openai.com/v1}" \
  --parallel "${PARALLEL:-4}" "${DATA_ARGS[@]}" --out_dir "$OUT_DIR" "$@"
