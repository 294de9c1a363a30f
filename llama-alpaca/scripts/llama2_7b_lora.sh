#!/usr/bin/env bash
# Paper configuration: Llama 2-7B, LoRA on all linear layers (configs/llama2_7b_lora.yaml).
# Extra arguments override the config, e.g. --report_to wandb or --resume_from_checkpoint last.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec "$PYTHON" -m alpaca_sft.train llama-alpaca/configs/llama2_7b_lora.yaml "$@"
