#!/usr/bin/env bash
# Paper configuration: Llama 3-8B, GaLore AdamW (galore-torch) on the attention and MLP linear layers (configs/llama3_8b_galore.yaml).
# Extra arguments override the config, e.g. --report_to wandb or --resume_from_checkpoint last.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec "$PYTHON" -m alpaca_sft.train llama-alpaca/configs/llama3_8b_galore.yaml "$@"
