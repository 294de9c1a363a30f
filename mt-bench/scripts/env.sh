# Sourced by the other scripts: paths and settings every MT-bench stage shares. Override by env:
#   PYTHON     interpreter (default: the repo's .venv)
#   DATA_DIR   MT-bench data (default: ../shared/data/mt_bench next to the repo, else FastChat's)
#   OUT_DIR    answers, judgments and results (default: mt-bench/outputs)
MT_BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(cd "$MT_BENCH/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
export PYTHONPATH="$MT_BENCH${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${DATA_DIR:-}" ] && [ -f "$ROOT/../shared/data/mt_bench/question.jsonl" ]; then
  DATA_DIR="$ROOT/../shared/data/mt_bench"
fi
DATA_ARGS=()
if [ -n "${DATA_DIR:-}" ]; then DATA_ARGS=(--data_dir "$DATA_DIR"); fi
OUT_DIR="${OUT_DIR:-$MT_BENCH/outputs}"
