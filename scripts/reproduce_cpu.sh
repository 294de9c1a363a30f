#!/usr/bin/env bash
# Every table of the BAdam paper at CPU scale, on small pretrained bases built here, into one report:
# outputs/reproduce_cpu/report.md with its PNGs (the memory split, the backward-time table, the
# convergence figure, a SuperGLUE-style table, the MT-bench pipeline). 33 minutes on 2 shared cores;
# the first run also builds the small bases (a few minutes, with a progress bar).
# Usage: bash scripts/reproduce_cpu.sh [--minimal]   (--minimal: a 3-minute smoke run, what the test runs)
# Each part alone: bash scripts/reproduce/<part>.sh (env PRESET=minimal, OUT=DIR; see scripts/reproduce/env.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in
  "") ;;
  --minimal) export PRESET=minimal ;;
  *) sed -n '2,7p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac
[ -n "${PYTHON:-}" ] || bash "$ROOT/scripts/setup.sh"  # an interpreter given by PYTHON is used as it is
source "$ROOT/scripts/reproduce/env.sh"
for PART in table1_memory backward_time convergence superglue mt_bench; do
  bash "$ROOT/scripts/reproduce/$PART.sh"
done
"$PYTHON" scripts/reproduce/report.py "$OUT" --preset "$PRESET" --bases "$(small_base llama)" "$(small_base roberta)"
