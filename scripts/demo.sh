#!/usr/bin/env bash
# The main job: set up the environment if needed, then a short BAdam training of a tiny bf16 Llama
# on CPU that prints the loss falling and the optimizer's memory table. Extra arguments go to the
# demo (e.g. --steps 600).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
exec "${VENV:-$ROOT/.venv}/bin/python" "$ROOT/scripts/demo_tiny_llama.py" "$@"
