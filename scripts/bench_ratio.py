"""Benchmark BlockOptimizerRatio (both mask modes) against dense torch AdamW and the published one.

One run on one machine, so only the ratios it prints are meant to be compared:
  * step time split into forward / backward / update, medians over the timed steps. All methods
    live in one process and take their steps in turn (in a rotating order), so drift of the machine
    (other load, frequency, allocator state) hits every method alike. Forward is the same code for
    every method, so the forward ratio is printed as a gauge of the remaining noise: rerun when it
    is far from 1.
    The timed steps include switches (every --switch-every steps). The medians leave their one-off
    cost out; it is printed apart, as the extra update time of a step that ends in a switch.
  * optimizer-held bytes (`badam.memory.held_bytes`, plus the published package's sparse
    gradients) right after backward, when gradients, masters and Adam states all exist: what
    training adds on top of the bf16 model.

The model is the CPU-sized bf16 Llama of scripts/bench_core.py. Dense AdamW is torch's default on
CPU (the for-loop implementation) and trains the bf16 weights directly; the ratio optimizer keeps
fp32 masters of its active entries and, by default, a frozen embedding. The published package's
BlockOptimizerRatio (PyPI `badam` 1.4, loaded as scripts/bench_core.py loads it) runs beside them
with the same settings, unless --published off. Run:

    .venv/bin/python scripts/bench_ratio.py                      # 8 layers, hidden 512, vocab 1024, 4x256
    .venv/bin/python scripts/bench_ratio.py --layers 2 --hidden 128 --seq 64 --steps 10   # a quick look
"""

from __future__ import annotations

import statistics
import sys
import warnings
from dataclasses import dataclass

import torch
from bench_core import (  # scripts/ is on sys.path
    PHASES,
    ModelShape,
    build_model,
    load_published,
    parse_dataclass_args,
    timed_step,
)

from badam.memory import held_bytes
from badam.ratio import BlockOptimizerRatio


@dataclass
class Args(ModelShape):
    update_ratio: float = 0.1
    switch_every: int = 10  # a switch every 10 steps, so the timed steps cross a few
    lr: float = 1e-5
    warmup: int = 3  # untimed steps per method (kernel shapes, allocator); AdamW's states exist from the 2nd
    steps: int = 40  # timed steps per method
    include_embedding: bool = False  # train the embedding in the ratio optimizer too
    checkpointing: bool = False  # Hugging Face gradient checkpointing for every model
    published: str = "auto"  # auto: also run the published BlockOptimizerRatio; off: skip it


def optimizer_held_bytes(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> int:
    """`held_bytes(...).optimizer_held`, with sparse gradients (the published package makes them)
    counted as their indices plus values, since held_bytes reads dense storages only."""
    sparse = {p: p.grad for p in model.parameters() if p.grad is not None and p.grad.is_sparse}
    for param in sparse:
        param.grad = None
    held = held_bytes(optimizer, model).optimizer_held
    for param, grad in sparse.items():
        param.grad = grad
        held += grad._indices().nbytes + grad._values().nbytes
    return held


class Trainee:
    """One method's model, optimizer and fixed batch, stepped and timed one step at a time."""

    def __init__(self, method: str, args: Args, published_cls: type | None) -> None:
        self.method = method
        self.model = build_model(args)
        kind, mask_mode = method.split()
        settings = dict(
            switch_every=args.switch_every,
            update_ratio=args.update_ratio,
            mask_mode=mask_mode,
            lr=args.lr,
            include_embedding=args.include_embedding,
        )
        named = list(self.model.named_parameters())
        if kind == "AdamW":
            self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=args.lr, weight_decay=0.0)
        elif kind == "ratio":
            self.optimizer = BlockOptimizerRatio(self.model.parameters(), named, **settings)
        else:
            self.optimizer = published_cls([{"params": list(self.model.parameters())}], named, verbose=0, **settings)
        self.inputs = torch.randint(0, args.vocab, (args.batch, args.seq), generator=torch.Generator().manual_seed(0))
        self.times: dict[str, list[float]] = {phase: [] for phase in PHASES}
        self.switch_updates: list[float] = []  # update times of the steps that end in a switch
        self.held = 0  # optimizer-held bytes after backward, measured by warm_up()

    def warm_up(self) -> None:
        """An untimed step that measures what the optimizer holds right after backward."""
        self.model(input_ids=self.inputs, labels=self.inputs).loss.backward()
        self.held = optimizer_held_bytes(self.optimizer, self.model)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        ours = isinstance(self.optimizer, BlockOptimizerRatio)
        switches = ours and (self.optimizer.global_step + 1) % self.optimizer.switch_every == 0
        seconds = timed_step(self.model, self.inputs, self.optimizer)
        for phase, value in zip(PHASES, seconds):
            self.times[phase].append(value)
        if switches:
            self.switch_updates.append(seconds[-1])

    def median(self, phase: str) -> float:
        return statistics.median(self.times[phase])

    def median_step(self) -> float:
        return statistics.median(sum(parts) for parts in zip(*self.times.values()))

    def switch_cost(self) -> float:
        """What a switch adds to a step: its update time beyond the median update."""
        return statistics.median(self.switch_updates) - self.median("update")


def report(trainees: list[Trainee], args: Args) -> None:
    model_params = sum(p.numel() for p in trainees[0].model.parameters())
    print(f"\nmodel: {model_params / 1e6:.2f}M parameters, bf16 ({2 * model_params / 2**20:.1f} MiB)")
    header = f"{'forward s':>11}{'backward s':>12}{'update s':>10}{'step s':>9}{'held MiB':>10}{'held B/param':>14}"
    print(f"{'method':<20}{header}")
    for t in trainees:
        print(
            f"{t.method:<20}{t.median('forward'):>11.4f}{t.median('backward'):>12.4f}{t.median('update'):>10.4f}"
            f"{t.median_step():>9.4f}{t.held / 2**20:>10.2f}{t.held / model_params:>14.3f}"
        )
    dense = trainees[0]
    print("\nratios vs AdamW (dense), medians (target for ours: step <= 1.3x)")
    for t in trainees[1:]:
        print(
            f"  {t.method:<20} step {t.median_step() / dense.median_step():.3f}"
            f"  forward {t.median('forward') / dense.median('forward'):.3f} (noise gauge)"
            f"  backward {t.median('backward') / dense.median('backward'):.3f}"
            f"  update {t.median('update') / dense.median('update'):.3f}"
            f"  held {t.held / dense.held:.3f}"
        )
    switching = [t for t in trainees if t.switch_updates]
    if switching:
        print(f"\na switch adds to its step (once every {args.switch_every} steps; the default switch_every is 100):")
    for t in switching:
        print(f"  {t.method:<20} {t.switch_cost():.4f} s = {t.switch_cost() / t.median_step():.1%} of a step")


def main(argv: list[str] | None = None) -> None:
    parser, args = parse_dataclass_args(Args, argv, __doc__.split("\n")[0])
    if args.warmup < 2:
        parser.error("--warmup must be at least 2: dense AdamW makes its states in its first step")
    print(f"[bench] torch {torch.__version__}, {torch.get_num_threads()} threads; {args}", flush=True)
    methods = ["AdamW (dense)", "ratio adjacent", "ratio scatter"]
    published_cls = None
    if args.published != "off":
        load_published()  # registers the published package as the module badam_published
        warnings.filterwarnings("ignore", message="Sparse invariant checks")  # raised by its every step
        published_cls = sys.modules["badam_published"].BlockOptimizerRatio
        methods += ["published adjacent", "published scatter"]
    trainees = [Trainee(method, args, published_cls) for method in methods]
    for _ in range(args.warmup):
        for trainee in trainees:
            trainee.warm_up()
    print(f"[bench] timing {args.steps} steps per method, taken in turn, in a rotating order", flush=True)
    for step in range(args.steps):
        # Rotating who goes first spreads any effect of the turn order over all methods alike.
        for trainee in trainees[step % len(trainees) :] + trainees[: step % len(trainees)]:
            trainee.step()
    report(trainees, args)


if __name__ == "__main__":
    main()
