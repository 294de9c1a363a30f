#!/usr/bin/env bash
# The paper's protocol: Llama 2-7B, lora (configs/llama2_7b_lora_paper.yaml).
# Extra arguments override the config, e.g. --report_to wandb or --resume_from_checkpoint last.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec "$PYTHON" -m alpaca_sft.train llama-alpaca/configs/llama2_7b_lora_paper.yaml "$@"
