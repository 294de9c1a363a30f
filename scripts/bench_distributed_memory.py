"""Per-rank memory of BAdam on DDP and FSDP2, next to the paper's (2M + 16M/D)/N.

Launch one process per device; every engine trains the same bf16 Llama with BAdam (AdamW inside)
for a few steps, and each rank counts what it holds after a backward (badam.memory.held_bytes:
weights, gradients, fp32 masters and Adam states, sharded tensors by their local shard). Rank 0
prints the figures with the formula beside them: FSDP2 shards everything, so it should approach
(2M + 16M/D)/N (ours holds a bf16 gradient, 14 bytes per active parameter where the paper counts
16); DDP replicates, so it stays at 2M + 16M/D on every rank.

    torchrun --nproc_per_node 2 scripts/bench_distributed_memory.py                # CPU, gloo
    torchrun --nproc_per_node 8 scripts/bench_distributed_memory.py --layers 32 --hidden 4096 --intermediate 11008
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel
from transformers import LlamaConfig, LlamaForCausalLM

from badam import BlockOptimizer
from badam.distributed import follow_block_switches
from badam.memory import held_bytes

MB = 2**20


@dataclass
class Args:
    layers: int = 8  # decoder layers (= BAdam blocks D)
    hidden: int = 256  # hidden size
    intermediate: int = 688  # MLP size
    heads: int = 8  # attention heads
    vocab: int = 1024  # vocabulary
    batch: int = 2  # sequences per rank and step
    seq: int = 128  # tokens per sequence
    engines: str = "ddp,fsdp2"  # which engines to measure
    out: str = ""  # optional JSON file for the figures (rank 0)


def build(args: Args, device: torch.device) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
                         num_hidden_layers=args.layers, num_attention_heads=args.heads,
                         num_key_value_heads=args.heads, max_position_embeddings=args.seq)
    with device:
        return LlamaForCausalLM(config).to(torch.bfloat16)


def measure(engine: str, args: Args, device: torch.device) -> dict[str, float]:
    model = build(args, device)
    n_params = sum(p.numel() for p in model.parameters())
    if engine == "fsdp2":
        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
    optimizer = BlockOptimizer(torch.optim.AdamW(model.parameters(), lr=1e-5), list(model.named_parameters()),
                               switch_block_every=100, switch_mode="ascending", verbose=0)
    forward = model
    if engine == "ddp":
        forward = DistributedDataParallel(model)
        follow_block_switches(forward, optimizer)
    inputs = torch.randint(0, args.vocab, (args.batch, args.seq), device=device)
    for step in range(2):  # the second backward finds the Adam states of the first step in place
        forward(input_ids=inputs, labels=inputs).loss.backward()
        if step == 1:
            held = held_bytes(optimizer, model)
        optimizer.step()
        optimizer.zero_grad()
    block = sum(p.numel() for p in optimizer.blocks[optimizer.active_block])
    return {
        "engine": engine, "M": n_params, "D": optimizer.num_blocks, "active_block_params": block,
        "weights_mb": held.parameters / MB, "optimizer_held_mb": held.optimizer_held / MB,
        "rank_total_mb": (held.parameters + held.optimizer_held) / MB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in asdict(Args()).items():
        parser.add_argument(f"--{name}", type=type(default), default=default)
    args = Args(**vars(parser.parse_args()))
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", rank % torch.cuda.device_count()) if cuda else torch.device("cpu")
    figures = []
    for engine in args.engines.split(","):
        mine = measure(engine, args, device)
        every = [None] * world
        dist.all_gather_object(every, mine)
        m, d = mine["M"], mine["D"]
        figures.append({**mine, "max_rank_total_mb": max(f["rank_total_mb"] for f in every),
                        "formula_replicated_mb": (2 * m + 16 * m / d) / MB,
                        "formula_per_rank_mb": (2 * m + 16 * m / d) / world / MB})
    if rank == 0:
        print(f"{world} ranks; M = {figures[0]['M']:,} parameters, D = {figures[0]['D']} blocks; MB = 2**20 bytes")
        print(f"{'engine':<8}{'weights MB':>12}{'optimizer MB':>14}{'rank total MB':>15}{'(2M+16M/D)/N':>15}{'2M+16M/D':>11}")
        for f in figures:
            print(f"{f['engine']:<8}{f['weights_mb']:>12.2f}{f['optimizer_held_mb']:>14.2f}{f['max_rank_total_mb']:>15.2f}"
                  f"{f['formula_per_rank_mb']:>15.2f}{f['formula_replicated_mb']:>11.2f}")
        if args.out:
            Path(args.out).write_text(json.dumps({"world": world, "args": asdict(args), "figures": figures}, indent=1))
    dist.barrier()
    dist.destroy_process_group()
    # Figures are printed and written. Interpreter teardown can abort a gloo rank now and then
    # ("terminate called without an active exception"), which would fail the launch after the fact.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
