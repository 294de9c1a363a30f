#!/usr/bin/env bash
# Table 1 / the memory split at CPU scale: a few bf16 steps of Adam, BAdam, LoRA, LOMO, Adam-mini and
# GaLore on the small pretrained Llama (llama-alpaca/configs/cpu_memory.yaml), then the table (measured
# bytes, badam.memory's estimate, the paper's 7B figures) and memory.png in $OUT/table1_memory.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
BASE="$(small_base llama)"
logged table1_memory "$PYTHON" -m alpaca_sft.compare llama-alpaca/configs/cpu_memory.yaml \
  --output_dir "$OUT/table1_memory" --model_name_or_path "$BASE"
"$PYTHON" scripts/reproduce/memory_table.py "$OUT/table1_memory" "$BASE" --command "$COMMAND"
echo "[reproduce] $OUT/table1_memory/section.md"
