#!/usr/bin/env bash
# Paper configuration: Llama 2-7B, Adam (AdamW, mixed precision): needs more than one 24 GB GPU for 7B/8B, as in the paper (configs/llama2_7b_adam.yaml).
# Extra arguments override the config, e.g. --report_to wandb or --resume_from_checkpoint last.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec "$PYTHON" -m alpaca_sft.train llama-alpaca/configs/llama2_7b_adam.yaml "$@"
