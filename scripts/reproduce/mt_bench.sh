#!/usr/bin/env bash
# MT-bench's Table 2 pipeline end to end at CPU scale, through mt-bench's own scripts: answers of the
# small pretrained Llama and of its LoRA and BAdam fine-tunes from convergence.sh (generate.sh), judged
# by mt-bench's local fake judge (judge.sh against mt_bench.fake_judge), shown (show.sh): Table 2's
# shape and the radar plot in $OUT/mt_bench/. A pipeline check: the fake judge's scores are no quality
# figure, and neither would a real judge's be for 2M-parameter models.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
BASE="$(small_base llama)"
RUNS="$OUT/convergence"
for M in lora badam; do
  [ -f "$RUNS/$M/run_report.json" ] || { echo "error: $RUNS/$M not trained: run scripts/reproduce/convergence.sh first" >&2; exit 1; }
done
# minimal: the first 8 questions (every stage takes the same slice), 4 tokens per turn.
case "$PRESET" in minimal) NEW_TOKENS=4; SLICE=(--question_end 8) ;; *) NEW_TOKENS=64; SLICE=() ;; esac
export OUT_DIR="$OUT/mt_bench"
mkdir -p "$OUT_DIR"
cat > "$OUT_DIR/table2.yaml" <<YAML
# Table 2's layout for the small models (written by scripts/reproduce/mt_bench.sh).
runs:
  - {model_id: small-llama-base,  path: "$BASE",        template: default, row: Pretrained, column: small Llama (CPU), paper: null}
  - {model_id: small-llama-lora,  path: "$RUNS/lora",   template: default, row: LoRA,       column: small Llama (CPU), paper: null}
  - {model_id: small-llama-badam, path: "$RUNS/badam",  template: default, row: BAdam,      column: small Llama (CPU), paper: null}
YAML
IDS=(small-llama-base small-llama-lora small-llama-badam)
PATHS=("$BASE" "$RUNS/lora" "$RUNS/badam")
for i in 0 1 2; do
  logged "mt_bench-generate-${IDS[$i]}" bash mt-bench/scripts/generate.sh "${PATHS[$i]}" "${IDS[$i]}" default \
    --max_new_tokens "$NEW_TOKENS" --batch_size 16 --device cpu --dtype float32 "${SLICE[@]}"
done
# The local judge on a free port; its first line names the address.
JUDGE_LOG="$OUT/logs/mt_bench-fake_judge.log"
PYTHONPATH="$ROOT/mt-bench" "$PYTHON" -m mt_bench.fake_judge --port 0 > "$JUDGE_LOG" 2>&1 &
JUDGE_PID=$!
trap 'kill "$JUDGE_PID" 2>/dev/null || true' EXIT
for _ in $(seq 300); do grep -q "fake judge at" "$JUDGE_LOG" && break; sleep 0.2; done  # up to a minute
API_BASE="$(sed -n 's/^fake judge at \([^ ]*\).*/\1/p' "$JUDGE_LOG")"
[ -n "$API_BASE" ] || { cat "$JUDGE_LOG" >&2; echo "error: the fake judge did not start" >&2; exit 1; }
API_BASE="$API_BASE" OPENAI_API_KEY=sk-local-fake-judge logged mt_bench-judge bash mt-bench/scripts/judge.sh "${IDS[@]}" -- "${SLICE[@]}"
TABLE2_CONFIG="$OUT_DIR/table2.yaml" logged mt_bench-show bash mt-bench/scripts/show.sh "${IDS[@]}"
"$PYTHON" scripts/reproduce/mt_bench_section.py "$OUT_DIR" --command "$COMMAND"
echo "[reproduce] $OUT_DIR/section.md"
