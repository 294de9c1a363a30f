#!/usr/bin/env bash
# Set up the environment if needed, then run the whole default test suite (slow tests excluded).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` or `bash scripts/test.sh -k resume`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
TEST_DIRS=()
for d in badam/tests llama-alpaca/tests roberta-superglue/tests mt-bench/tests; do
  [ -d "$d" ] && TEST_DIRS+=("$d")
done
exec "${VENV:-$ROOT/.venv}/bin/python" -m pytest "${TEST_DIRS[@]}" "$@"
