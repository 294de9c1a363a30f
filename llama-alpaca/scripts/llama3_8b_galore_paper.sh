#!/usr/bin/env bash
# The paper's protocol: Llama 3-8B, galore (configs/llama3_8b_galore_paper.yaml).
# Extra arguments override the config, e.g. --report_to wandb or --resume_from_checkpoint last.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec "$PYTHON" -m alpaca_sft.train llama-alpaca/configs/llama3_8b_galore_paper.yaml "$@"
