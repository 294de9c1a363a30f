#!/usr/bin/env bash
# The convergence figure at CPU scale: BAdam, LoRA, LOMO, Adam and GaLore fine-tune the small
# pretrained Llama on the Alpaca-GPT4 sample with the paper's protocol scaled down
# (llama-alpaca/configs/cpu_paper.yaml); loss against iteration and time in $OUT/convergence/.
# The tuned models stay there (mt_bench.sh answers with them).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
BASE="$(small_base llama)"
case "$PRESET" in
  minimal) FLAGS=(--max_steps 2 --eval_steps 2 --logging_steps 1) ;;
  *) FLAGS=() ;;
esac
logged convergence "$PYTHON" -m alpaca_sft.compare llama-alpaca/configs/cpu_paper.yaml \
  --output_dir "$OUT/convergence" --model_name_or_path "$BASE" --disable_tqdm true "${FLAGS[@]}"
"$PYTHON" scripts/reproduce/convergence_plot.py "$OUT/convergence" --command "$COMMAND"
echo "[reproduce] $OUT/convergence/section.md"
