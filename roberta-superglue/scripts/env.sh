# Sourced by the other scripts: paths and settings every run shares. Override by env:
#   PYTHON    interpreter (default: the repo's .venv)
#   DATA_DIR  SuperGLUE task dirs (default: ../shared/data/superglue next to the repo; without one,
#             the tasks are read from the hub)
#   OUT_DIR   runs and tables (default: roberta-superglue/outputs)
#   CONFIG    run settings and table layout (default: roberta-superglue/configs/paper.yaml)
SUPERGLUE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(cd "$SUPERGLUE/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
export PYTHONPATH="$SUPERGLUE${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${DATA_DIR:-}" ] && [ -f "$ROOT/../shared/data/superglue/RTE/val.jsonl" ]; then
  DATA_DIR="$ROOT/../shared/data/superglue"
fi
DATA_ARGS=()
if [ -n "${DATA_DIR:-}" ]; then DATA_ARGS=(--data_dir "$DATA_DIR"); fi
OUT_DIR="${OUT_DIR:-$SUPERGLUE/outputs}"
CONFIG="${CONFIG:-$SUPERGLUE/configs/paper.yaml}"
