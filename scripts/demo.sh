#!/usr/bin/env bash
# The main job: set up the environment if needed, then llama-alpaca's demo: BAdam, LoRA and full Adam
# fine-tune the small pretrained Llama (built and cached in .cache/small-llama on the first run, with
# a progress bar) on the Alpaca-GPT4 sample on CPU, writing the three loss curves to
# llama-alpaca/outputs/demo/loss.png and the memory/time table to summary.md (also printed). The
# quick version of scripts/reproduce_cpu.sh. Extra arguments override every run (e.g. --max_steps 40).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
PYTHON="${VENV:-$ROOT/.venv}/bin/python" exec bash "$ROOT/llama-alpaca/scripts/demo.sh" "$@"
