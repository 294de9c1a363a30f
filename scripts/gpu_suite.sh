#!/usr/bin/env bash
# The GPU suite (scripts/gpu_suite.py): BAdam's peak memory on a Llama 2-7B shape and its step-time
# split against LoRA and AdamW, written to badam/docs/gpu.md. Under 8 minutes on one H100/H200.
#   bash scripts/gpu_suite.sh              # on the GPU
#   bash scripts/gpu_suite.sh --dry-run    # a tiny shape on CPU: checks the script (the tests run it)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
exec "${VENV:-$ROOT/.venv}/bin/python" scripts/gpu_suite.py "$@"
