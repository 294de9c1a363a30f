#!/usr/bin/env bash
# A SuperGLUE-style table at CPU scale: Adam, LoRA, BAdam and its ratio mode fine-tune the small
# pretrained RoBERTa (scripts/small_base.py roberta) on some SuperGLUE tasks, through roberta-superglue's
# own scripts (run_task.sh, table.sh) with its paper config and the paper's split of the validation set;
# the table and superglue.png in $OUT/superglue/. Env: TASKS (default "rte copa wic").
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
BASE="$(small_base roberta)"
# Scaled: one learning rate for all (the paper's rule; its 1e-5 barely moves a 2M-parameter model
# here), K a tenth of the steps so BAdam visits every layer about twice.
case "$PRESET" in
  minimal) TASKS="${TASKS:-rte}"; FLAGS=(--max_steps 2 --eval_steps 2 --switch_every 1 --max_eval_examples 16) ;;
  *) TASKS="${TASKS:-rte copa wic}"; FLAGS=(--max_steps 200 --eval_steps 50 --switch_every 20) ;;
esac
RUNS="$OUT/superglue/runs"
for TASK in $TASKS; do
  for OPTIMIZER in adam lora block sparse; do
    # --overwrite: a rerun of the report redoes the run (the preset may have changed its settings).
    OUT_DIR="$RUNS" logged "superglue-$TASK-$OPTIMIZER" bash roberta-superglue/scripts/run_task.sh "$TASK" "$OPTIMIZER" \
      --model_name "$BASE" --learning_rate 3e-4 --max_seq_length 128 --batch_size 16 "${FLAGS[@]}" --overwrite
  done
done
OUT_DIR="$RUNS" logged superglue-table bash roberta-superglue/scripts/table.sh --out_dir "$OUT/superglue"
"$PYTHON" scripts/reproduce/superglue_plot.py "$OUT/superglue" --command "$COMMAND"
echo "[reproduce] $OUT/superglue/section.md"
