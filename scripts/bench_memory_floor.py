"""The memory floor of BAdam's update: peak bytes per active parameter and step time, three ways.

For AdamW and for Adam-mini as the inner solver, three updates of the same bf16 Llama:
  * per-tensor (the update before badam.tensor_step): each tensor's gradient upcast whole and
    handed to the optimizer's own step, reached here through a subclass of the optimizer, which
    BlockOptimizer steps with the optimizer's own code;
  * chunked: badam.tensor_step, the default;
  * in backward: badam.in_backward (`update_in_backward=True`).

Memory is what the optimizer holds at its peak, in storage bytes per active parameter: gradients,
fp32 masters and optimizer states held before the update, plus the update's transient peak
(allocator-measured). In backward, each tensor is updated inside its hook, so the peak is what the
optimizer holds as the worst tensor's hook starts (that tensor's gradient, the masters, the states
made so far), plus that update's transient.
Times are medians over one block-epoch with every variant stepping in turn, so only ratios measured
in one run are compared. Run:

    .venv/bin/python scripts/bench_memory_floor.py                   # 8 layers, hidden 512, 4 x 256
    .venv/bin/python scripts/bench_memory_floor.py --layers 2 --hidden 128 --seq 64   # a quick look
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from bench_core import ModelShape, build_model, parse_dataclass_args
from tqdm import tqdm

from badam import AdamMini, BlockOptimizer
from badam.in_backward import BackwardUpdates
from badam.memory import enable_cpu_allocation_accounting, held_bytes, track_peak

UPDATES = ("per-tensor", "chunked", "in backward")
TARGETS = {  # issue 14: bytes per active parameter
    ("AdamW", "chunked"): 14.5,
    ("AdamW", "in backward"): 12.5,
    ("Adam-mini", "chunked"): 10.5,
    ("Adam-mini", "in backward"): 8.5,
}


@dataclass
class Args(ModelShape):
    switch_every: int = 4  # K
    lr: float = 1e-5  # inner learning rate
    memory_steps: int = 6  # steps measured for memory (crossing a block switch)
    checkpointing: bool = False  # HF gradient checkpointing (the model bench_core.py builds)


class PerTensorAdamW(torch.optim.AdamW):
    """torch's AdamW under another type: BlockOptimizer then steps it with its own step, per tensor."""


class PerTensorAdamMini(AdamMini):
    """AdamMini under another type, for the same reason."""


class HookPeaks:
    """The optimizer's worst moment inside backward, in bytes: what it holds as a tensor's hook
    starts (its gradient, the masters and the states made so far), plus that update's transient."""

    def __init__(self) -> None:
        self.worst = 0
        self.measuring: Variant | None = None
        original = BackwardUpdates._step

        def measured(updates: BackwardUpdates, param: torch.nn.Parameter) -> None:
            if self.measuring is None:
                return original(updates, param)
            held = held_bytes(self.measuring.base, self.measuring.model).optimizer_held
            with track_peak("cpu") as peak:
                original(updates, param)
            self.worst = max(self.worst, held + peak.peak_delta_bytes)

        BackwardUpdates._step = measured


class Variant:
    """One inner solver and update path on its own model, stepped and measured a step at a time."""

    def __init__(self, solver: str, update: str, args: Args, hooks: HookPeaks) -> None:
        self.solver, self.update, self.hooks = solver, update, hooks
        self.model = build_model(args)
        kwargs = {"lr": args.lr}
        if solver == "AdamW":
            base = (PerTensorAdamW if update == "per-tensor" else torch.optim.AdamW)(
                self.model.parameters(), foreach=False, **kwargs
            )
        else:
            base = (PerTensorAdamMini if update == "per-tensor" else AdamMini).from_model(self.model, **kwargs)
        self.base = base
        self.optimizer = BlockOptimizer(
            base,
            list(self.model.named_parameters()),
            switch_block_every=args.switch_every,
            switch_mode="ascending",
            verbose=0,
            update_in_backward=update == "in backward",
        )
        self.inputs = torch.randint(0, args.vocab, (args.batch, args.seq), generator=torch.Generator().manual_seed(0))
        self.times: list[float] = []
        self.peak_per_param = 0.0

    @property
    def name(self) -> str:
        return f"{self.solver}, {self.update}"

    def _active(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def measure_memory_step(self) -> None:
        active = self._active()
        loss = self.model(input_ids=self.inputs, labels=self.inputs).loss
        if self.update == "in backward":
            self.hooks.worst, self.hooks.measuring = 0, self
            loss.backward()
            self.hooks.measuring = None
            held = held_bytes(self.base, self.model).optimizer_held
            with track_peak("cpu") as step:
                self.optimizer.step()
            peak = max(self.hooks.worst, held + step.peak_delta_bytes)
        else:
            loss.backward()
            held = held_bytes(self.base, self.model).optimizer_held
            with track_peak("cpu") as step:
                self.optimizer.step()
            peak = held + step.peak_delta_bytes
        self.optimizer.zero_grad(set_to_none=True)
        self.peak_per_param = max(self.peak_per_param, peak / active)

    def timed_step(self) -> None:
        start = time.perf_counter()
        self.model(input_ids=self.inputs, labels=self.inputs).loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.times.append(time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    _, args = parse_dataclass_args(Args, argv, __doc__.split("\n")[0])
    enable_cpu_allocation_accounting()
    print(f"[bench] torch {torch.__version__}, {torch.get_num_threads()} threads; {args}", flush=True)
    hooks = HookPeaks()
    variants = [Variant(solver, update, args, hooks) for solver in ("AdamW", "Adam-mini") for update in UPDATES]
    for variant in variants:
        print(f"[bench] memory: {variant.name} ...", flush=True)
        for _ in range(args.memory_steps):
            variant.measure_memory_step()
    steps = args.switch_every * args.layers
    for _ in tqdm(range(steps), desc="timing, variants in turn", disable=None):
        for variant in variants:
            variant.timed_step()
    figures = {}
    print(f"\n{'inner solver, update':<26}{'peak B/active param':>21}{'target':>16}{'step s':>9}{'vs per-tensor':>15}")
    for variant in variants:
        baseline = next(v for v in variants if v.solver == variant.solver and v.update == "per-tensor")
        step_s, ratio = (
            statistics.median(variant.times),
            statistics.median(variant.times) / statistics.median(baseline.times),
        )
        target = TARGETS.get((variant.solver, variant.update))
        met = "" if target is None else (f"<= {target}" + ("" if variant.peak_per_param <= target else " MISSED"))
        print(f"{variant.name:<26}{variant.peak_per_param:>21.2f}{met:>16}{step_s:>9.4f}{ratio:>15.3f}")
        figures[variant.name] = {
            "peak_bytes_per_active_param": variant.peak_per_param,
            "step_s": step_s,
            "step_vs_per_tensor": ratio,
        }
    return figures


if __name__ == "__main__":
    main()
