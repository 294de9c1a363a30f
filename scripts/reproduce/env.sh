# Sourced by every scripts/reproduce/*.sh: paths, the preset, the small bases. Override by env:
#   PYTHON  interpreter (default: the repo's .venv)
#   PRESET  default (the report: about half an hour on 2 cores) or minimal (a few minutes in all: the tests)
#   OUT     report dir (default: outputs/reproduce_cpu, or outputs/reproduce_cpu-minimal)
#   BADAM_CACHE  where the small bases are cached (default: .cache/)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
PRESET="${PRESET:-default}"
case "$PRESET" in default) SUFFIX="" ;; minimal) SUFFIX="-minimal" ;; *) echo "error: PRESET must be default or minimal, got '$PRESET'" >&2; exit 2 ;; esac
OUT="${OUT:-$ROOT/outputs/reproduce_cpu$SUFFIX}"
export PYTHONPATH="$ROOT/llama-alpaca${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"  # the small models: more threads only spin
cd "$ROOT"  # the configs' paths are relative to the repository root
# The command that makes this part, as the report shows it next to the part's figures.
COMMAND="bash scripts/reproduce/$(basename "$0")"
if [ "$PRESET" != default ]; then COMMAND="PRESET=$PRESET $COMMAND"; fi
# The last line is the dir (an import may print a warning to stdout before it).
small_base() { "$PYTHON" scripts/small_base.py "$1" --preset "$PRESET" | tail -n 1; }
mkdir -p "$OUT/logs"
# logged NAME CMD...: run CMD with its output in $OUT/logs/NAME.log; on failure show the log's tail.
logged() {
  local log="$OUT/logs/$1.log"
  shift
  echo "[reproduce] $1 ... (log: $log)" >&2
  "$@" > "$log" 2>&1 || { tail -30 "$log" >&2; echo "error: failed, see $log" >&2; return 1; }
}
