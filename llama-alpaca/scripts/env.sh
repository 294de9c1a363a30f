# Sourced by the other scripts: the interpreter and the import path. Override by env:
#   PYTHON  interpreter (default: the repo's .venv)
LLAMA_ALPACA="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(cd "$LLAMA_ALPACA/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
export PYTHONPATH="$LLAMA_ALPACA${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT"  # the configs' paths are relative to the repository root
