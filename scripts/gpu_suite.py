"""The GPU suite: BAdam's peak memory on a Llama 2-7B shape, and its step-time split against LoRA and AdamW.

Part 1, memory (the paper's 21.8 GB, Table 12): a Llama 2-7B-shaped model with random weights from
its config, bf16, gradient checkpointing with backward truncation, batch 8 x 728, one decoder layer
active. Each update variant is built fresh and measured over a block switch: the chunked update
(the default), the update inside backward, the update before chunking (per tensor, through a
subclass of AdamW that BlockOptimizer steps with AdamW's own code), and Adam-mini inside.

Part 2, time: forward / backward / update per step of BAdam, LoRA (rank 100 on every linear layer,
peft) and AdamW (bf16 weights, all trained) on the same 7B-shaped layers but fewer of them, so that
AdamW fits. All three step in turn in one process; the ratios are the figures (the paper: backward
5.54 h for BAdam against 9.45 h for LoRA per epoch).

    bash scripts/gpu_suite.sh              # one H100/H200, under 8 minutes; writes badam/docs/gpu.md
    bash scripts/gpu_suite.sh --dry-run    # a tiny shape on CPU, to know the script works (tests run it)
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

from badam import AdamMini, BlockOptimizer, truncate_backward
from badam.atomic import atomic_write_text
from badam.memory import BUILTIN_MODELS, GB, PAPER_TABLE12_GB, estimate, held_bytes, track_peak

PAPER_PEAK_GB = 21.8
PAPER_BACKWARD_HOURS = {"BAdam": 5.54, "LoRA": 9.45}


@dataclass
class Args:
    dry_run: bool = False  # a tiny shape on CPU instead of Llama 2-7B on the GPU
    out: str = "badam/docs/gpu.md"  # the Markdown report
    batch: int = 8  # sequences per step (the paper's)
    seq: int = 728  # tokens per sequence (the paper's)
    memory_steps: int = 4  # steps per memory variant, K = 2: one block switch
    timing_layers: int = 8  # decoder layers of the timing model (7B-shaped layers, AdamW must fit)
    timing_steps: int = 6  # timed steps per method, after one warm-up


class PerTensorAdamW(torch.optim.AdamW):
    """AdamW under another type: BlockOptimizer steps it with AdamW's own step, tensor by tensor."""


def llama2_7b_config(args: Args, layers: int | None = None) -> LlamaConfig:
    shape = dict(BUILTIN_MODELS["llama2-7b"].config)
    if args.dry_run:
        shape.update(hidden_size=64, intermediate_size=172, num_attention_heads=4, num_key_value_heads=4)
        shape.update(vocab_size=256, num_hidden_layers=2)
    if layers is not None:
        shape["num_hidden_layers"] = min(layers, shape["num_hidden_layers"])
    return LlamaConfig(**shape, max_position_embeddings=max(args.seq, 4096))


def build(config: LlamaConfig, device: torch.device) -> LlamaForCausalLM:
    torch.manual_seed(0)
    with device:
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.train()
    model.activation_checkpointing_enable()
    return model


class Clock:
    """Wall time of the phases of a step, synchronised with the device."""

    def __init__(self, device: torch.device) -> None:
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def step(self, model, inputs, optimizer) -> tuple[float, float, float]:
        self.sync()
        t0 = time.perf_counter()
        loss = model(input_ids=inputs, labels=inputs).loss
        self.sync()
        t1 = time.perf_counter()
        loss.backward()
        self.sync()
        t2 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        self.sync()
        return t1 - t0, t2 - t1, time.perf_counter() - t2


MEMORY_VARIANTS = {
    "BAdam, chunked update (default)": {},
    "BAdam, update in backward": {"update_in_backward": True},
    "BAdam, per-tensor update (before chunking)": {"base": PerTensorAdamW},
    "BAdam + Adam-mini, chunked": {"base": "adam_mini"},
    "BAdam + Adam-mini, in backward": {"base": "adam_mini", "update_in_backward": True},
}


def memory_run(name: str, args: Args, device: torch.device) -> dict:
    """Peak memory of one update variant on the 7B shape, and its split by kind."""
    variant = MEMORY_VARIANTS[name]
    model = build(llama2_7b_config(args), device)
    base_cls = variant.get("base", torch.optim.AdamW)
    base = (
        AdamMini.from_model(model, lr=1e-5)
        if base_cls == "adam_mini"
        else base_cls(model.parameters(), lr=1e-5, weight_decay=0.0)
    )
    optimizer = BlockOptimizer(
        base,
        list(model.named_parameters()),
        switch_block_every=2,
        switch_mode="random",
        verbose=0,
        update_in_backward=variant.get("update_in_backward", False),
    )
    truncate_backward(model)
    inputs = torch.randint(0, model.config.vocab_size, (args.batch, args.seq), device=device)
    clock, times, split = Clock(device), [], None
    held_at_start = held_bytes(optimizer, model)
    baseline = (
        torch.cuda.memory_allocated(device)
        if device.type == "cuda"
        else held_at_start.parameters + held_at_start.master_copies
    )
    with track_peak(device) as peak:
        for _ in range(args.memory_steps):
            loss = model(input_ids=inputs, labels=inputs).loss
            loss.backward()
            split = held_bytes(optimizer, model)  # before the step: gradients of the block still held
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    for _ in range(2):
        times.append(clock.step(model, inputs, optimizer))
    active = sum(p.numel() for p in optimizer.blocks[optimizer.active_block])
    result = {
        "peak_gb": (baseline + peak.peak_delta_bytes) / GB,
        "parameters_gb": split.parameters / GB,
        "gradients_gb": split.gradients / GB,
        "states_gb": (split.master_copies + split.optimizer_states) / GB,
        "active_params": active,
        "forward_s": statistics.median(t[0] for t in times),
        "backward_s": statistics.median(t[1] for t in times),
        "update_s": statistics.median(t[2] for t in times),
    }
    result["rest_gb"] = result["peak_gb"] - result["parameters_gb"] - result["gradients_gb"] - result["states_gb"]
    del model, optimizer, base, inputs
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def timing_models(args: Args, device: torch.device) -> dict:
    """BAdam, LoRA and AdamW on the timing shape, ready to step in turn."""
    from peft import LoraConfig, get_peft_model

    config = llama2_7b_config(args, layers=args.timing_layers)
    methods = {}
    model = build(config, device)
    optimizer = BlockOptimizer(
        torch.optim.AdamW(model.parameters(), lr=1e-5), list(model.named_parameters()), switch_block_every=2, verbose=0
    )
    truncate_backward(model)
    methods["BAdam"] = (model, optimizer)
    lora = get_peft_model(build(config, device), LoraConfig(r=100, lora_alpha=200, target_modules="all-linear"))
    lora.enable_input_require_grads()  # checkpointed layers below the first adapter must still backpropagate
    methods["LoRA"] = (lora, torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-5))
    model = build(config, device)
    methods["AdamW"] = (model, torch.optim.AdamW(model.parameters(), lr=1e-5))
    return methods


def timing_run(args: Args, device: torch.device) -> dict:
    methods = timing_models(args, device)
    vocab = next(iter(methods.values()))[0].config.vocab_size
    inputs = torch.randint(0, vocab, (args.batch, args.seq), device=device)
    clock = Clock(device)
    samples = {name: [] for name in methods}
    for step in range(args.timing_steps + 1):
        for name, (model, optimizer) in methods.items():
            times = clock.step(model, inputs, optimizer)
            if step:  # the first step builds kernels and caches
                samples[name].append(times)
    medians = {
        name: {
            phase: statistics.median(t[i] for t in values) for i, phase in enumerate(("forward", "backward", "update"))
        }
        for name, values in samples.items()
    }
    return {"layers": methods["BAdam"][0].config.num_hidden_layers, "medians": medians}


def report(args: Args, device: torch.device, memory: dict, timing: dict, command: str) -> str:
    """The Markdown of badam/docs/gpu.md; a dry run's tiny figures are in MB."""
    unit, scale = ("MB", 2**20 / GB) if args.dry_run else ("GB", 1.0)
    config = llama2_7b_config(args)
    badam = estimate("badam", config)
    paper = PAPER_TABLE12_GB["llama2-7b"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or 'cpu'})"
    lines = [
        "# BAdam on a GPU",
        "",
        f"Recorded by `{command}` on {name}, torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{time.strftime('%Y-%m-%d')}."
        + (" **Dry run: a tiny shape on CPU, no GPU figures.**" if args.dry_run else ""),
        "",
        f"## Peak memory, Llama 2-7B shape ({config.num_hidden_layers} layers, hidden {config.hidden_size}), "
        f"bf16, batch {args.batch} x {args.seq}, "
        "gradient checkpointing",
        "",
        f"The paper: {PAPER_PEAK_GB} GB. badam.memory's estimate without activations: {badam.ours.total / GB:.2f} GB "
        f"(Table 12 accounting: parameters {badam.table12.parameters / GB:.1f}, gradients "
        f"{badam.table12.gradients / GB:.1f}, optimizer states {badam.table12.states / GB:.1f} GB; the paper's Table 12: "
        f"{paper['parameters']}, {paper['gradients']}, {paper['optimizer_states']} GB).",
        "",
        f"| update | peak {unit} | parameters | gradients (before the step) | masters + states | "
        "activations and buffers | forward s | backward s | update s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, m in memory.items():
        sizes = " | ".join(
            f"{m[key] / scale:.2f}" for key in ("peak_gb", "parameters_gb", "gradients_gb", "states_gb", "rest_gb")
        )
        lines.append(f"| {variant} | {sizes} | {m['forward_s']:.3f} | {m['backward_s']:.3f} | {m['update_s']:.3f} |")
    lines += [
        "",
        "In backward, the update runs inside backward: its time is in the backward column, and no",
        "gradient is held before the step.",
        "",
        f"## Step time, {timing['layers']} Llama 2-7B-shaped layers, bf16, batch {args.batch} x {args.seq}, "
        "gradient checkpointing",
        "",
        "BAdam: AdamW inside, one layer active. LoRA: rank 100, alpha 200, every linear layer (peft). AdamW: every",
        "weight trained in bf16. Medians over the timed steps, the methods stepping in turn.",
        "",
        "| method | forward s | backward s | update s | backward / LoRA's |",
        "|---|---|---|---|---|",
    ]
    lora_backward = timing["medians"]["LoRA"]["backward"]
    for method, t in timing["medians"].items():
        lines.append(
            f"| {method} | {t['forward']:.3f} | {t['backward']:.3f} | {t['update']:.3f} | {t['backward'] / lora_backward:.3f} |"
        )
    paper_ratio = PAPER_BACKWARD_HOURS["BAdam"] / PAPER_BACKWARD_HOURS["LoRA"]
    lines += ["", f"The paper's backward ratio BAdam / LoRA: {paper_ratio:.3f} (5.54 h / 9.45 h per epoch).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="a tiny shape on CPU, to check the script")
    parser.add_argument("--out", default=Args.out, help="the Markdown report (default: %(default)s)")
    parsed = parser.parse_args(argv)
    args = Args(dry_run=parsed.dry_run, out=parsed.out)
    if args.dry_run:
        args.batch, args.seq, args.memory_steps, args.timing_steps = 2, 32, 4, 2
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        print("error: no GPU here; run with --dry-run to check the script on CPU", file=sys.stderr)
        raise SystemExit(2)
    else:
        device = torch.device("cuda")
    start = time.perf_counter()
    memory = {}
    for name in MEMORY_VARIANTS:
        print(f"[gpu_suite] memory: {name} ...", flush=True)
        memory[name] = memory_run(name, args, device)
        print(f"[gpu_suite]   peak {memory[name]['peak_gb']:.2f} GB ({time.perf_counter() - start:.0f} s)", flush=True)
    print("[gpu_suite] timing: BAdam, LoRA, AdamW ...", flush=True)
    timing = timing_run(args, device)
    command = "bash scripts/gpu_suite.sh" + (" --dry-run" if args.dry_run else "")
    text = report(args, device, memory, timing, command)
    atomic_write_text(Path(args.out), text)
    print(text)
    print(f"[gpu_suite] wrote {args.out} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
