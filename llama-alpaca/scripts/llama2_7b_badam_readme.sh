#!/usr/bin/env bash
# The official README's setting: Llama 2-7B, BAdam (configs/llama2_7b_badam_readme.yaml).
# Extra arguments override the config, e.g. --report_to wandb or --resume_from_checkpoint last.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec "$PYTHON" -m alpaca_sft.train llama-alpaca/configs/llama2_7b_badam_readme.yaml "$@"
