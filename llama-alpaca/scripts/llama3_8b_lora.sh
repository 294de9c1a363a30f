#!/usr/bin/env bash
# Paper configuration: Llama 3-8B, LoRA on all linear layers (configs/llama3_8b_lora.yaml).
# Extra arguments override the config, e.g. --report_to wandb or --resume_from_checkpoint last.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec "$PYTHON" -m alpaca_sft.train llama-alpaca/configs/llama3_8b_lora.yaml "$@"
