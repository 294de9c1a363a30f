#!/usr/bin/env bash
# The demo: BAdam, LoRA and full Adam fine-tune the small pretrained Llama on the Alpaca-GPT4 sample,
# on CPU, in a few minutes; writes llama-alpaca/outputs/demo/loss.png (the three loss curves) and
# summary.md (the memory/time table, also printed). The first run builds the base
# (scripts/small_base.py, cached in .cache/small-llama: a few minutes, with a progress bar).
# Extra arguments override every run, e.g. --max_steps 40. Env: PRESET=minimal (a barely trained
# base, for tests), BADAM_CACHE (where bases are cached).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
BASE="$("$PYTHON" scripts/small_base.py llama --preset "${PRESET:-default}" | tail -n 1)"  # after any import warning
exec "$PYTHON" -m alpaca_sft.compare llama-alpaca/configs/demo.yaml --model_name_or_path "$BASE" "$@"
