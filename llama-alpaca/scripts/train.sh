#!/usr/bin/env bash
# One training run from a config (flags after it override): train.sh CONFIG.yaml [--flag value ...]
#   e.g. train.sh llama-alpaca/configs/llama2_7b_badam_paper.yaml --report_to wandb
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
[ $# -ge 1 ] || { sed -n '2,3p' "${BASH_SOURCE[0]}"; exit 2; }
exec "$PYTHON" -m alpaca_sft.train "$@"
