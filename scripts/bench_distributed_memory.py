"""Per-rank memory of BAdam on DDP, FSDP2 and DeepSpeed ZeRO-3, next to the paper's (2M + 16M/D)/N.

Launch one process per device; every engine trains the same bf16 Llama with BAdam (AdamW inside)
for a few steps, and each rank counts what it holds after a backward (badam.memory.held_bytes:
weights, gradients, fp32 masters and Adam states, sharded tensors by their local shard). Rank 0
prints the figures with the formula beside them: FSDP2 shards everything, so it should approach
(2M + 16M/D)/N (ours holds a bf16 gradient, 14 bytes per active parameter where the paper counts
16); ZeRO-3 shards everything too, and its gradient partitions are bf16 as well (DeepSpeed's
default with a bf16 model), so it holds the same; DDP replicates, so it stays at 2M + 16M/D on every rank.
ZeRO-3's communication buffers (one 2**20-element bucket here) are not counted.

    torchrun --nproc_per_node 2 scripts/bench_distributed_memory.py                # CPU, gloo
    torchrun --nproc_per_node 8 scripts/bench_distributed_memory.py --layers 32 --hidden 4096 --intermediate 11008
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from bench_core import llama_config, parse_dataclass_args
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel
from transformers import LlamaForCausalLM

from badam import BlockOptimizer
from badam.distributed import follow_block_switches, leave
from badam.memory import held_bytes, storage_bytes

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
    engines: str = "ddp,fsdp2,zero3"  # which engines to measure (zero3 needs DeepSpeed)
    out: str = ""  # optional JSON file for the figures (rank 0)


def build(args: Args, device: torch.device) -> LlamaForCausalLM:
    torch.manual_seed(0)
    with device:
        return LlamaForCausalLM(llama_config(args)).to(torch.bfloat16)


def zero3_held(engine) -> tuple[int, int]:
    """What a rank holds under ZeRO-3: its weight partitions, and DeepSpeed's optimizer side (the fp32
    master partitions of the active block, their Adam states and the fp32 gradient partitions)."""
    zero = engine.optimizer
    weights = storage_bytes([p.ds_tensor for p in engine.module.parameters()])
    return weights, storage_bytes(
        [zero.fp32_partitioned_groups_flat, zero.optimizer.state, zero.grad_partitions_flat_buffer]
    )


def zero3_engine(model: LlamaForCausalLM, optimizer: BlockOptimizer, args: Args):
    import deepspeed

    config = {
        "train_micro_batch_size_per_gpu": args.batch,
        "gradient_accumulation_steps": 1,
        "bf16": {"enabled": True},
        # Every weight partitioned (none kept whole as "persistent"), small communication buckets.
        "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0, "reduce_bucket_size": 2**20},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
    }
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    follow_block_switches(engine, optimizer)
    return engine


def measure(engine: str, args: Args, device: torch.device) -> dict[str, float]:
    model = build(args, device)
    n_params = sum(p.numel() for p in model.parameters())
    if engine == "fsdp2":
        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
    optimizer = BlockOptimizer(
        torch.optim.AdamW(model.parameters(), lr=1e-5),
        list(model.named_parameters()),
        switch_block_every=100,
        switch_mode="ascending",
        verbose=0,
        ds_zero3_enabled=engine == "zero3",
    )
    block = sum(p.numel() for p in optimizer.blocks[optimizer.active_block])
    forward = model
    if engine == "ddp":
        forward = DistributedDataParallel(model)
        follow_block_switches(forward, optimizer)
    elif engine == "zero3":
        forward = zero3_engine(model, optimizer, args)
    inputs = torch.randint(0, args.vocab, (args.batch, args.seq), device=device)
    for step in range(2):  # the second backward finds the Adam states of the first step in place
        loss = forward(input_ids=inputs, labels=inputs).loss
        if engine == "zero3":
            forward.backward(loss)
            if step == 1:
                weights, optimizer_held = zero3_held(forward)
            forward.step()
            continue
        loss.backward()
        if step == 1:
            held = held_bytes(optimizer, model)
            weights, optimizer_held = held.parameters, held.optimizer_held
        optimizer.step()
        optimizer.zero_grad()
    return {
        "engine": engine,
        "M": n_params,
        "D": optimizer.num_blocks,
        "active_block_params": block,
        "weights_mb": weights / MB,
        "optimizer_held_mb": optimizer_held / MB,
        "rank_total_mb": (weights + optimizer_held) / MB,
    }


def main() -> None:
    _, args = parse_dataclass_args(Args, None, __doc__.split("\n")[0])
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
        figures.append(
            {
                **mine,
                "max_rank_total_mb": max(f["rank_total_mb"] for f in every),
                "formula_replicated_mb": (2 * m + 16 * m / d) / MB,
                "formula_per_rank_mb": (2 * m + 16 * m / d) / world / MB,
            }
        )
    if rank == 0:
        print(f"{world} ranks; M = {figures[0]['M']:,} parameters, D = {figures[0]['D']} blocks; MB = 2**20 bytes")
        print(
            f"{'engine':<8}{'weights MB':>12}{'optimizer MB':>14}{'rank total MB':>15}{'(2M+16M/D)/N':>15}{'2M+16M/D':>11}"
        )
        for f in figures:
            print(
                f"{f['engine']:<8}{f['weights_mb']:>12.2f}{f['optimizer_held_mb']:>14.2f}{f['max_rank_total_mb']:>15.2f}"
                f"{f['formula_per_rank_mb']:>15.2f}{f['formula_replicated_mb']:>11.2f}"
            )
        if args.out:
            Path(args.out).write_text(json.dumps({"world": world, "args": asdict(args), "figures": figures}, indent=1))
    leave()


if __name__ == "__main__":
    main()
