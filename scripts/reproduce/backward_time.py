"""The backward-time table at CPU scale: forward / backward / update seconds per step of BAdam, LoRA and Adam.

    python scripts/reproduce/backward_time.py MODEL_DIR OUT_DIR --command "..." [--block_epochs 2]

The three methods fine-tune copies of the small pretrained Llama in one process and take their steps
in turn, on the same batches of Alpaca-GPT4 responses, so drift of a shared machine hits each alike;
each phase is the median over the run. As in the paper: bf16 weights, gradient checkpointing for all,
LoRA with about one layer's parameters on every linear layer, BAdam in ascending order over one or
more whole block-epochs (every depth timed alike), its backward stopping at the active block
(`badam.truncate_backward`). Compare the ratios, not the seconds. Writes OUT_DIR/time.png, section.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from common import PAPER_BACKWARD_HOURS, markdown_table, save_png, write_section
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from alpaca_sft.data import load_records
from badam import BlockOptimizer, truncate_backward

PHASES = ("forward", "backward", "update")


@dataclass
class Trainee:
    """One method's model and optimizer, and its seconds per phase."""

    name: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    seconds: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})

    def step(self, batch: torch.Tensor, timed: bool) -> None:
        t0 = time.perf_counter()
        loss = self.model(input_ids=batch, labels=batch).loss
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if timed:
            for phase, value in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2)):
                self.seconds[phase].append(value)

    def median(self, phase: str) -> float:
        return statistics.median(self.seconds[phase])


def load(model_dir: str) -> torch.nn.Module:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).train()
    model.activation_checkpointing_enable()
    return model


def trainees(model_dir: str, lr: float, lora_rank: int, switch_every: int) -> list[Trainee]:
    badam_model = load(model_dir)
    badam = BlockOptimizer(
        torch.optim.AdamW(badam_model.parameters(), lr=lr),
        list(badam_model.named_parameters()),
        switch_block_every=switch_every,
        switch_mode="ascending",
        verbose=0,
    )
    truncate_backward(badam_model)  # what badam.hf does in a Trainer run
    lora_model = get_peft_model(
        load(model_dir), LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, target_modules="all-linear")
    )
    lora = torch.optim.AdamW([p for p in lora_model.parameters() if p.requires_grad], lr=lr)
    adam_model = load(model_dir)
    adam = torch.optim.AdamW(adam_model.parameters(), lr=lr)
    return [Trainee("badam", badam_model, badam), Trainee("lora", lora_model, lora), Trainee("adam", adam_model, adam)]


def batches(model_dir: str, count: int, batch_size: int, seq_len: int) -> list[torch.Tensor]:
    """Rows of packed Alpaca-GPT4 responses (real text: the sequence length is what matters for time)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = [t for r in load_records("alpaca_gpt4_en_sample") for t in tokenizer(r["output"])["input_ids"]]
    rows = torch.tensor(ids[: len(ids) // seq_len * seq_len]).view(-1, seq_len)
    return [rows[(i * batch_size) % (len(rows) - batch_size) :][:batch_size] for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("out", type=Path)
    parser.add_argument("--command", required=True, help="the command that made the table, for the report")
    parser.add_argument("--block_epochs", type=int, default=2, help="timed passes of BAdam over all its blocks")
    parser.add_argument("--switch_every", type=int, default=3, help="BAdam's K")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=256)
    parser.add_argument("--lora_rank", type=int, default=28, help="about one decoder layer's parameters")
    args = parser.parse_args()
    runs = trainees(args.model, 1e-4, args.lora_rank, args.switch_every)
    layers = runs[-1].model.config.num_hidden_layers
    steps = args.block_epochs * layers * args.switch_every
    data = batches(args.model, steps + 1, args.batch_size, args.seq_len)
    for run in runs:  # warm-up: kernels, allocator, Adam states
        run.step(data[0], timed=False)
    for batch in data[1:]:
        for run in runs:  # in turn, step by step
            run.step(batch, timed=True)

    medians = {r.name: {p: r.median(p) for p in PHASES} for r in runs}
    ms = 1e3
    rows = [[n, *(f"{m[p] * ms:.1f}" for p in PHASES), f"{sum(m.values()) * ms:.1f}"] for n, m in medians.items()]
    header = ["method", "forward ms", "backward ms", "update ms", "step ms"]
    ratio = {p: medians["badam"][p] / medians["lora"][p] for p in PHASES}
    paper = PAPER_BACKWARD_HOURS["badam"] / PAPER_BACKWARD_HOURS["lora"]
    ratio_rows = [
        ["backward BAdam / LoRA", f"{ratio['backward']:.2f}", f"{paper:.2f} (5.54 h / 9.45 h)"],
        ["backward BAdam / Adam", f"{medians['badam']['backward'] / medians['adam']['backward']:.2f}", "-"],
        ["forward BAdam / LoRA (noise gauge)", f"{ratio['forward']:.2f}", "about 1"],
        ["update BAdam / Adam", f"{medians['badam']['update'] / medians['adam']['update']:.2f}", "small"],
    ]

    fig, ax = plt.subplots(figsize=(7, 4))
    names = list(medians)
    bottom = [0.0] * len(names)
    for i, phase in enumerate(PHASES):
        heights = [medians[n][phase] * ms for n in names]
        ax.bar(names, heights, bottom=bottom, label=phase, color=f"C{i}")
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set(
        ylabel="ms per step (median)",
        title=f"step time split; BAdam/LoRA backward {ratio['backward']:.2f} (paper {paper:.2f})",
    )
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    save_png(fig, args.out / "time.png", args.command)

    body = f"""
{markdown_table(header, rows)}
{markdown_table(["ratio", "measured here", "paper (Llama 2-7B, per epoch)"], ratio_rows)}
![step time split](backward_time/time.png)

{len(data) - 1} timed steps per method of batch {args.batch_size} x {args.seq_len} tokens, the methods in turn
in one process, bf16, gradient checkpointing; BAdam K = {args.switch_every} in ascending order over
{args.block_epochs} block-epochs; LoRA rank {args.lora_rank} on every linear layer. Backward, shortest first:
{" < ".join(sorted(medians, key=lambda n: medians[n]["backward"]))} (BAdam's stops at the active block; the paper's
Table 3 has BAdam's backward at 0.59 of LoRA's).
"""
    write_section(args.out, "Backward time: forward / backward / update per step", body, args.command)


if __name__ == "__main__":
    main()
