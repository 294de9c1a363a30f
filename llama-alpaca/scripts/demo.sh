#!/usr/bin/env bash
# The demo: BAdam, LoRA and full Adam train a tiny Llama on the shipped instruction set, on CPU, in a
# few minutes; writes llama-alpaca/outputs/demo/loss.png (the three loss curves) and summary.md (the
# memory/time table, also printed). Extra arguments override every run, e.g. --max_steps 60.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec "$PYTHON" -m alpaca_sft.compare llama-alpaca/configs/demo.yaml "$@"
