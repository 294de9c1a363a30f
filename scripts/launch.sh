#!/usr/bin/env bash
# BAdam on several GPUs or nodes: one command over torchrun, accelerate or deepspeed.
#
#   bash scripts/launch.sh ENGINE [arguments of the training program]
#
# ENGINE
#   ddp     llama-alpaca SFT through the HF Trainer (python -m alpaca_sft.train), DDP.
#           Arguments: an alpaca_sft config YAML and/or flags, e.g. llama-alpaca/configs/llama2_7b_badam_paper.yaml
#   zero3   the same, on DeepSpeed ZeRO-3 (adds --deepspeed scripts/configs/ds_z3_config.json)
#   fsdp2   the same, on FSDP2: accelerate launch with scripts/configs/accelerate_fsdp2.yaml (GPUs)
#   loop-ddp, loop-fsdp2, loop-zero3   scripts/train_distributed.py --engine ddp|fsdp2|zero3: the
#           plain PyTorch loop. Arguments: its flags (--help)
#
# Environment
#   LAUNCHER       torchrun (default), accelerate (scripts/configs/accelerate_multi_gpu.yaml) or
#                  deepspeed; fsdp2 always runs under accelerate, with its FSDP config
#   GPUS_PER_NODE  processes per node (default: the GPUs nvidia-smi lists; 2 CPU processes without GPUs)
#   NNODES NODE_RANK MASTER_ADDR MASTER_PORT   the rendezvous (default 1 0 127.0.0.1 29500): run the
#                  same command on every node, each with its NODE_RANK
#   HOSTFILE       LAUNCHER=deepspeed only: start every node of the hostfile from this one (over ssh)
#
# Examples
#   bash scripts/launch.sh zero3 llama-alpaca/configs/llama3_8b_badam_paper.yaml                   # one node, all GPUs
#   bash scripts/launch.sh fsdp2 llama-alpaca/configs/llama3_8b_badam_paper.yaml
#   NNODES=4 NODE_RANK=$RANK MASTER_ADDR=node0 bash scripts/launch.sh loop-fsdp2 --model meta-llama/Meta-Llama-3-70B \
#       --data alpaca_gpt4_en.json --switch_every 50 --steps 3000                          # the paper's 70B shape
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENGINE="${1:?usage: bash scripts/launch.sh ddp|zero3|fsdp2|loop-ddp|loop-fsdp2|loop-zero3 [arguments]}"
shift
REQUESTED_LAUNCHER="${LAUNCHER:-}"
LAUNCHER="${LAUNCHER:-torchrun}"
ACCELERATE_CONFIG=scripts/configs/accelerate_multi_gpu.yaml
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
if [ -z "${GPUS_PER_NODE:-}" ]; then
  GPUS_PER_NODE="$(nvidia-smi --list-gpus 2>/dev/null | wc -l || true)"
  [ "${GPUS_PER_NODE:-0}" -gt 0 ] || GPUS_PER_NODE=2
fi
NNODES="${NNODES:-1}" NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}" MASTER_PORT="${MASTER_PORT:-29500}"
export PYTHONPATH="$ROOT/llama-alpaca${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT"  # the configs' paths are relative to the repository root

case "$ENGINE" in
  ddp) PROGRAM=(--module alpaca_sft.train "$@") ;;
  zero3) PROGRAM=(--module alpaca_sft.train "$@" --deepspeed scripts/configs/ds_z3_config.json) ;;
  fsdp2) PROGRAM=(--module alpaca_sft.train "$@")
    if [ -n "$REQUESTED_LAUNCHER" ] && [ "$REQUESTED_LAUNCHER" != accelerate ]; then
      echo "launch.sh: fsdp2 runs under accelerate (its FSDP config), not LAUNCHER=$REQUESTED_LAUNCHER" >&2; exit 2
    fi
    LAUNCHER=accelerate ACCELERATE_CONFIG=scripts/configs/accelerate_fsdp2.yaml ;;
  loop-ddp) PROGRAM=(scripts/train_distributed.py --engine ddp "$@") ;;
  loop-fsdp2) PROGRAM=(scripts/train_distributed.py --engine fsdp2 "$@") ;;
  loop-zero3) PROGRAM=(scripts/train_distributed.py --engine zero3 "$@") ;;
  *) echo "launch.sh: unknown engine '$ENGINE' (ddp, zero3, fsdp2, loop-ddp, loop-fsdp2 or loop-zero3)" >&2; exit 2 ;;
esac

case "$LAUNCHER" in
  torchrun)
    exec "$PYTHON" -m torch.distributed.run --nnodes "$NNODES" --node_rank "$NODE_RANK" \
      --nproc_per_node "$GPUS_PER_NODE" --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" "${PROGRAM[@]}" ;;
  accelerate)
    exec "$PYTHON" -m accelerate.commands.launch --config_file "$ACCELERATE_CONFIG" \
      --num_machines "$NNODES" --machine_rank "$NODE_RANK" --num_processes "$((NNODES * GPUS_PER_NODE))" \
      --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT" "${PROGRAM[@]}" ;;
  deepspeed)
    NODES=(--num_nodes "$NNODES" --node_rank "$NODE_RANK" --num_gpus "$GPUS_PER_NODE")
    [ -n "${HOSTFILE:-}" ] && NODES=(--hostfile "$HOSTFILE")
    # Without a hostfile every node starts its own processes (--no_ssh), like torchrun.
    [ -z "${HOSTFILE:-}" ] && NODES+=(--no_ssh)
    exec "$PYTHON" -m deepspeed.launcher.runner "${NODES[@]}" --no_local_rank --master_addr "$MASTER_ADDR" \
      --master_port "$MASTER_PORT" "${PROGRAM[@]}" ;;
  *) echo "launch.sh: unknown LAUNCHER '$LAUNCHER' (torchrun, accelerate or deepspeed)" >&2; exit 2 ;;
esac
