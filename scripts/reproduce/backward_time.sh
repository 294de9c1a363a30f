#!/usr/bin/env bash
# The backward-time table at CPU scale: forward / backward / update per step of BAdam, LoRA and Adam on
# the small pretrained Llama, the methods alternating step by step in one run; the ratios against the
# paper's 5.54 h / 9.45 h (BAdam / LoRA backward per epoch). Writes $OUT/backward_time/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
BASE="$(small_base llama)"
case "$PRESET" in minimal) FLAGS=(--block_epochs 1 --switch_every 1 --batch_size 2 --seq_len 64) ;; *) FLAGS=() ;; esac
logged backward_time "$PYTHON" scripts/reproduce/backward_time.py "$BASE" "$OUT/backward_time" --command "$COMMAND" "${FLAGS[@]}"
echo "[reproduce] $OUT/backward_time/section.md"
