"""Benchmark the BAdam core against full AdamW and the published `badam` package, side by side.

One run on one machine, so only the ratios it prints are meant to be compared:
  * step time split into forward / backward / update, median over one block-epoch (K steps on each
    of the D blocks, ascending order for all BAdam variants so every run sees the same depths).
    All methods live in one process and take their steps in turn, so drift of the machine (other
    load, frequency, allocator state) hits every method alike. Forward is the same code for every
    method, so the forward ratio is printed as a gauge of the remaining noise;
  * peak optimizer-held bytes per active parameter: gradients + fp32 masters + optimizer states held
    before the step, plus the transient peak of the step itself (allocator-measured).

With --checkpointing every model gets Hugging Face's default gradient checkpointing, and ours gets
`truncate_backward` as `badam.hf` applies it in a Trainer run. The published package's own helper
for this (`gradient_checkpointing_enable_for_bcd`) raises AttributeError on transformers 5 (it reads
`func.__self__` of what is now a functools.partial), so it runs with the default, as its users would.

The published package (PyPI `badam`, whose import name clashes with ours) is loaded from the
folder that `pip install --no-deps --target .bench/published badam==1.4` makes; the script installs
it there on first use unless --published off. Run:

    .venv/bin/python scripts/bench_core.py                 # CPU-sized Llama: 8 layers, hidden 512, bf16, 4x256
    .venv/bin/python scripts/bench_core.py --vocab 32000   # Llama 2's vocabulary: the LM head then dominates
    .venv/bin/python scripts/bench_core.py --checkpointing # the same with gradient checkpointing
    .venv/bin/python scripts/bench_core.py --layers 2 --hidden 128 --seq 64   # a quick look
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import LlamaConfig, LlamaForCausalLM

from badam import BlockOptimizer, truncate_backward
from badam.memory import enable_cpu_allocation_accounting, held_bytes, track_peak

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_DIR = ROOT / ".bench" / "published"


@dataclass
class ModelShape:
    """The CPU-sized bf16 Llama and batch the benchmarks share (bench_memory_floor.py, bench_ratio.py)."""

    layers: int = 8  # decoder layers (= BAdam blocks D)
    hidden: int = 512  # hidden size
    intermediate: int = 1376  # MLP size (Llama's 2.6875 x hidden)
    heads: int = 8  # attention heads
    vocab: int = 1024  # keeps the LM head at Llama 2-7B's ~2% of the layers' compute (32000 would be 65% here)
    batch: int = 4  # sequences per step
    seq: int = 256  # tokens per sequence


@dataclass
class Args(ModelShape):
    switch_every: int = 4  # K
    lr: float = 1e-5  # inner AdamW learning rate
    published: str = "auto"  # auto: install/use the published package; off: skip it
    memory_steps: int = 3  # steps measured for memory (crossing a block switch)
    checkpointing: bool = False  # HF gradient checkpointing, as in the paper's runs (see the docstring)
    methods: str = "ours,adamw,published"  # which methods to run
    out: str = ""  # optional JSON file for the figures


@dataclass
class Result:
    method: str
    forward_s: float
    backward_s: float
    update_s: float
    peak_bytes_per_active_param: float
    active_params: int
    samples: dict = field(default_factory=dict)

    @property
    def step_s(self) -> float:
        return self.forward_s + self.backward_s + self.update_s


def load_published():
    if not (PUBLISHED_DIR / "badam" / "__init__.py").exists():
        print(f"[bench] installing the published badam==1.4 into {PUBLISHED_DIR}", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(PUBLISHED_DIR),
                "badam==1.4",
            ],
            check=True,
        )
    package = PUBLISHED_DIR / "badam"
    spec = importlib.util.spec_from_file_location(
        "badam_published", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["badam_published"] = module
    spec.loader.exec_module(module)
    return module.BlockOptimizer


def parse_dataclass_args(args_cls: type, argv: list[str] | None, description: str):
    """An `args_cls` dataclass from the command line: each field a --flag-with-dashes, bools as switches.

    The benchmark scripts share it (bench_memory_floor.py, bench_ratio.py, bench_distributed_memory.py).
    """
    parser = argparse.ArgumentParser(description=description)
    for name, default in asdict(args_cls()).items():
        if isinstance(default, bool):
            parser.add_argument(f"--{name.replace('_', '-')}", action="store_true")
        else:
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return parser, args_cls(**vars(parser.parse_args(argv)))


def llama_config(args) -> LlamaConfig:
    """The benchmarks' Llama: `args` has layers, hidden, intermediate, heads, vocab and seq."""
    return LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.heads,
        max_position_embeddings=args.seq,
    )


def build_model(args: Args) -> LlamaForCausalLM:
    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config(args)).to(torch.bfloat16).train()
    if args.checkpointing:
        model.activation_checkpointing_enable()
    return model


def make_optimizer(method: str, model: LlamaForCausalLM, args: Args, published_cls):
    """The optimizer to step, and the base AdamW whose groups and state hold what is counted."""
    base = torch.optim.AdamW(model.parameters(), lr=args.lr, foreach=False)
    named = list(model.named_parameters())
    if method == "AdamW (full)":
        return base, base
    if method == "BAdam (ours)":
        optimizer = BlockOptimizer(
            base, named, switch_block_every=args.switch_every, switch_mode="ascending", verbose=0
        )
        if args.checkpointing:
            truncate_backward(model)  # what badam.hf's callback does in a Trainer run
        return optimizer, base
    return published_cls(base, named, switch_block_every=args.switch_every, switch_mode="ascending", verbose=0), base


def active_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


PHASES = ("forward", "backward", "update")


def timed_step(
    model: torch.nn.Module, inputs: torch.Tensor, optimizer: torch.optim.Optimizer
) -> tuple[float, float, float]:
    """One training step on a language-modelling batch; seconds of forward, backward and update."""
    t0 = time.perf_counter()
    loss = model(input_ids=inputs, labels=inputs).loss
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


METHODS = {"ours": "BAdam (ours)", "adamw": "AdamW (full)", "published": "BAdam (published 1.4)"}


class Trainee:
    """One method's model, optimizer and fixed batch, stepped and timed one step at a time."""

    def __init__(self, method: str, args: Args, published_cls) -> None:
        self.method = method
        self.model = build_model(args)
        self.optimizer, self.base = make_optimizer(method, self.model, args, published_cls)
        self.inputs = torch.randint(0, args.vocab, (args.batch, args.seq), generator=torch.Generator().manual_seed(0))
        self.timings: dict[str, list[float]] = {phase: [] for phase in PHASES}
        self.peak_per_param = 0.0
        self.active_params = 0

    def step(self, timed: bool = True) -> None:
        seconds = timed_step(self.model, self.inputs, self.optimizer)
        if timed:
            for phase, value in zip(PHASES, seconds):
                self.timings[phase].append(value)

    def measure_memory_step(self) -> None:
        """One step whose optimizer-held peak is measured: held bytes before it plus its transient."""
        loss = self.model(input_ids=self.inputs, labels=self.inputs).loss
        loss.backward()
        self.active_params = active_params(self.model)
        before = held_bytes(self.base, self.model).optimizer_held
        with track_peak("cpu") as peak:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.peak_per_param = max(self.peak_per_param, (before + peak.peak_delta_bytes) / self.active_params)

    def result(self) -> Result:
        return Result(
            method=self.method,
            forward_s=statistics.median(self.timings["forward"]),
            backward_s=statistics.median(self.timings["backward"]),
            update_s=statistics.median(self.timings["update"]),
            peak_bytes_per_active_param=self.peak_per_param,
            active_params=self.active_params,
            samples=self.timings,
        )


def report(results: list[Result]) -> dict:
    by = {r.method: r for r in results}
    print(
        f"\n{'method':<24}{'forward s':>11}{'backward s':>12}{'update s':>10}{'step s':>9}{'peak B/active param':>21}"
    )
    for r in results:
        print(
            f"{r.method:<24}{r.forward_s:>11.4f}{r.backward_s:>12.4f}{r.update_s:>10.4f}{r.step_s:>9.4f}{r.peak_bytes_per_active_param:>21.2f}"
        )
    ours, adamw, published = by["BAdam (ours)"], by["AdamW (full)"], by.get("BAdam (published 1.4)")
    ratios = {
        "forward ours/AdamW (noise gauge)": ours.forward_s / adamw.forward_s,
        "backward ours/AdamW": ours.backward_s / adamw.backward_s,
    }
    if published is not None:
        ratios["forward ours/published (noise gauge)"] = ours.forward_s / published.forward_s
        ratios["backward published/AdamW"] = published.backward_s / adamw.backward_s
        ratios["step ours/published"] = ours.step_s / published.step_s
        ratios["update ours/published"] = ours.update_s / published.update_s
    print("\nratios (targets: backward ours/AdamW <= 0.40, step ours/published <= 0.95, peak ours <= 16.0 B)")
    for name, value in ratios.items():
        print(f"  {name:<38}{value:.3f}")
    return ratios


def main(argv: list[str] | None = None) -> None:
    parser, args = parse_dataclass_args(Args, argv, __doc__.split("\n")[0])
    enable_cpu_allocation_accounting()
    print(f"[bench] torch {torch.__version__}, {torch.get_num_threads()} threads; {args}", flush=True)
    keys = [k for k in args.methods.split(",") if k != "published" or args.published != "off"]
    unknown = set(keys) - set(METHODS)
    if unknown or "ours" not in keys or "adamw" not in keys:
        parser.error(f"--methods must include ours and adamw, from {', '.join(METHODS)}; got {args.methods!r}")
    published_cls = load_published() if "published" in keys else None
    trainees = [Trainee(METHODS[key], args, published_cls) for key in keys]
    for trainee in trainees:
        print(f"[bench] memory: {trainee.method} ...", flush=True)
        for _ in range(args.memory_steps):  # also the warm-up of every kernel shape
            trainee.measure_memory_step()
    steps = args.switch_every * args.layers
    print(f"[bench] timing: {steps} steps (one block-epoch), methods alternating step by step", flush=True)
    for _ in tqdm(range(steps), desc="steps", disable=None):
        for trainee in trainees:
            trainee.step()
    results = {t.method: t.result() for t in trainees}
    ratios = report(list(results.values()))
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {"args": asdict(args), "ratios": ratios, "results": [asdict(r) for r in results.values()]}, indent=1
            )
        )


if __name__ == "__main__":
    main()
