"""Peak GPU memory and step-time split of BAdam on a Llama 2-7B-shaped model (the paper's 21.8 GB).

The paper's setting: random weights built from the Llama 2-7B config in bf16, batch 8 x 728 tokens,
gradient checkpointing, one block (decoder layer) active. Prints peak allocated memory next to the
paper's figure and badam.memory's estimate, and the forward / backward / update medians. Run on a GPU:

    .venv/bin/python scripts/bench_gpu_memory.py                     # Llama 2-7B shape, cuda
    .venv/bin/python scripts/bench_gpu_memory.py --model llama3-8b --batch 2 --seq 1024
    .venv/bin/python scripts/bench_gpu_memory.py --device cpu --layers 2 --hidden 64 --seq 32 --batch 2   # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from badam import BlockOptimizer, truncate_backward
from badam.memory import BUILTIN_MODELS, GB, estimate, held_bytes, track_peak

PAPER_PEAK_GB = {"llama2-7b": 21.8}


@dataclass
class Args:
    model: str = "llama2-7b"  # a built-in shape of badam.memory
    layers: int = 0  # override the number of layers (0: the model's)
    hidden: int = 0  # override hidden size (0: the model's; intermediate scales along)
    batch: int = 8  # sequences per step
    seq: int = 728  # tokens per sequence
    switch_every: int = 4  # K; steps are timed over one block switch
    steps: int = 6  # timed steps after one warm-up step
    device: str = "cuda"  # cuda or cpu (cpu: a smoke test of the script)
    out: str = ""  # optional JSON file for the figures


def build(args: Args) -> LlamaForCausalLM:
    shape = dict(BUILTIN_MODELS[args.model].config)
    if args.layers:
        shape["num_hidden_layers"] = args.layers
    if args.hidden:
        scale = args.hidden / shape["hidden_size"]
        shape.update(
            hidden_size=args.hidden,
            intermediate_size=int(shape["intermediate_size"] * scale),
            num_attention_heads=max(1, shape["num_attention_heads"] * args.hidden // shape["hidden_size"]),
            num_key_value_heads=max(1, shape["num_key_value_heads"] * args.hidden // shape["hidden_size"]),
        )
    config = LlamaConfig(**shape, max_position_embeddings=max(args.seq, 4096))
    torch.manual_seed(0)
    with torch.device(args.device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.train()
    model.activation_checkpointing_enable()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in asdict(Args()).items():
        parser.add_argument(f"--{name}", type=type(default), default=default)
    args = Args(**vars(parser.parse_args()))
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    model = build(args)
    base = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    optimizer = BlockOptimizer(
        base, list(model.named_parameters()), switch_block_every=args.switch_every, switch_mode="random", verbose=0
    )
    truncate_backward(model, optimizer)
    inputs = torch.randint(0, model.config.vocab_size, (args.batch, args.seq), device=device)

    timings: dict[str, list[float]] = {"forward": [], "backward": [], "update": []}
    held = held_bytes(optimizer, model)
    # Everything alive when tracking starts: the allocator's count on CUDA, the tensors we hold on CPU.
    baseline = torch.cuda.memory_allocated(device) if device.type == "cuda" else held.parameters + held.master_copies
    with track_peak(device) as peak:
        for step in range(args.steps + 1):
            sync()
            t0 = time.perf_counter()
            loss = model(input_ids=inputs, labels=inputs).loss
            sync()
            t1 = time.perf_counter()
            loss.backward()
            sync()
            t2 = time.perf_counter()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sync()
            t3 = time.perf_counter()
            if step:  # the first step builds kernels and caches
                for key, value in zip(timings, (t1 - t0, t2 - t1, t3 - t2)):
                    timings[key].append(value)
    peak_bytes = baseline + peak.peak_delta_bytes
    estimated = estimate("badam", model).ours
    figures = {
        "model": args.model,
        "device": str(torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"),
        "batch": args.batch,
        "seq": args.seq,
        "parameters": sum(p.numel() for p in model.parameters()),
        "peak_gb": peak_bytes / GB,
        "paper_peak_gb": PAPER_PEAK_GB.get(args.model),
        "estimate_without_activations_gb": estimated.total / GB,
        **{f"{key}_s": statistics.median(values) for key, values in timings.items()},
    }
    print(
        f"BAdam, {args.model} shape ({figures['parameters']:,} parameters), bf16, batch {args.batch} x {args.seq}, "
        f"gradient checkpointing, on {figures['device']}"
    )
    print(
        f"  peak memory      {figures['peak_gb']:.2f} GB   (paper: {figures['paper_peak_gb']} GB; "
        f"badam.memory without activations: {figures['estimate_without_activations_gb']:.2f} GB)"
    )
    print(
        f"  step time split  forward {figures['forward_s']:.3f} s, backward {figures['backward_s']:.3f} s, "
        f"update {figures['update_s']:.3f} s (medians of {args.steps} steps)"
    )
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
