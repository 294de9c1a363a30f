#!/usr/bin/env bash
# Reproduce the paper's Table 2 end to end: answer with every run of the Table 2 config, judge with
# GPT-4, show. Runs whose local model dir does not exist yet (llama-alpaca not trained) are skipped.
# Usage: table2.sh [all|generate|judge|show]   (default: all; every stage resumes where it stopped)
# Env: TABLE2_CONFIG (mt-bench/configs/table2.yaml), GEN_ARGS (extra generate args, e.g. "--batch_size 16"),
#      and those of env.sh, judge.sh and show.sh (OPENAI_API_KEY for judging).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/env.sh"
STAGE="${1:-all}"
export TABLE2_CONFIG="${TABLE2_CONFIG:-$MT_BENCH/configs/table2.yaml}"
cd "$ROOT"  # config paths are relative to the repo root

RUNS="$("$PYTHON" -m mt_bench.table2 "$TABLE2_CONFIG")"  # model_id, path, template per line
IDS=()
while IFS=$'\t' read -r MODEL_ID MODEL_PATH TEMPLATE; do
  # A hub name is owner/name; anything else must be an existing local dir.
  if [ ! -e "$MODEL_PATH" ] && ! [[ "$MODEL_PATH" =~ ^[A-Za-z0-9][^/]*/[^/]+$ ]]; then
    echo "[table2] skipping $MODEL_ID: $MODEL_PATH does not exist (train it with llama-alpaca first)" >&2
    continue
  fi
  IDS+=("$MODEL_ID")
  if [ "$STAGE" = all ] || [ "$STAGE" = generate ]; then
    # shellcheck disable=SC2086  # GEN_ARGS is a list of words on purpose
    bash "$HERE/generate.sh" "$MODEL_PATH" "$MODEL_ID" "$TEMPLATE" ${GEN_ARGS:-} < /dev/null
  fi
done <<< "$RUNS"

[ ${#IDS[@]} -ge 1 ] || { echo "[table2] no run to evaluate" >&2; exit 1; }
if [ "$STAGE" = all ] || [ "$STAGE" = judge ]; then bash "$HERE/judge.sh" "${IDS[@]}"; fi
if [ "$STAGE" = all ] || [ "$STAGE" = show ]; then bash "$HERE/show.sh" "${IDS[@]}"; fi
