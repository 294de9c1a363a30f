#!/usr/bin/env bash
# The paper's table from every results.json under $OUT_DIR: table.md, table.csv, runs.csv there.
# Usage: table.sh [more superglue.aggregate args, e.g. --out_dir DIR]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec "$PYTHON" -m superglue.aggregate --results_dir "$OUT_DIR" --config "$CONFIG" "$@"
