"""Table 1 / the memory split at CPU scale: the bytes each method held on the small Llama, badam.memory's estimate, the paper's 7B figures.

    python scripts/reproduce/memory_table.py RUNS_DIR MODEL_DIR --command "..."

RUNS_DIR holds one `<method>/run_report.json` per method of llama-alpaca/configs/cpu_memory.yaml
(alpaca_sft.compare). Writes RUNS_DIR/memory.png and RUNS_DIR/section.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib.pyplot as plt
from common import PAPER_BADAM_SPLIT_GB, PAPER_MEMORY_GB, markdown_table, save_png, write_section

from badam.memory import GB, estimate

# alpaca_sft's finetuning types -> badam.memory's methods (GaLore has no estimator there).
ESTIMATED = {"full": "adam", "block": "badam", "lora": "lora", "lomo": "lomo", "adam_mini": "adam_mini"}
ORDER = ("adam", "badam", "lora", "lomo", "adam_mini", "galore")  # Table 1's, then the companions
KINDS = ("parameters", "gradients", "master_copies", "optimizer_states")


def estimate_for(report: dict, model: str, lora_rank: int):
    """The estimate of this run's method on this model: BAdam in this implementation's accounting."""
    method = ESTIMATED.get(report["finetuning_type"])
    if method is None:
        return None
    result = estimate(method, model, lora_rank=lora_rank)
    return result.ours if method == "badam" else result.table1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("model")
    parser.add_argument("--lora_rank", type=int, default=28, help="the LoRA run's rank (configs/cpu_memory.yaml)")
    parser.add_argument("--command", required=True, help="the command that made the runs, for the report")
    args = parser.parse_args()
    found = {p.parent.name: json.loads(p.read_text()) for p in args.runs.glob("*/run_report.json")}
    reports = {name: found[name] for name in sorted(found, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))}
    if not reports:
        raise SystemExit(f"error: no */run_report.json under {args.runs}: run the memory runs first")
    kb = 1e3
    rows, measured_totals, estimated_totals = [], {}, {}
    for name, report in reports.items():
        memory = report["memory"]
        held = [memory[f"{k}_bytes"] for k in KINDS]
        est = estimate_for(report, args.model, args.lora_rank)
        measured_totals[name] = held
        estimated_totals[name] = est.total if est else None
        seven_b = estimate(ESTIMATED[report["finetuning_type"]], "llama2-7b", lora_rank=100).table1 if est else None
        rows.append(
            [name, f"{report['trainable_parameters']:,}", *(f"{b / kb:,.0f}" for b in held), f"{sum(held) / kb:,.0f}"]
            + ([f"{est.total / kb:,.0f}", f"{seven_b.total / GB:.1f}"] if est else ["-", "-"])
            + [PAPER_MEMORY_GB.get(name, "-")]
        )
    header = ["method", "trainable", "params kB", "grads kB", "fp32 masters kB", "opt. states kB", "measured total kB"]
    header += ["estimate kB", "estimate 7B GB", "paper 7B GB"]

    fig, ax = plt.subplots(figsize=(8, 4.2))
    names = list(reports)
    bottom = [0.0] * len(names)
    for i, kind in enumerate(KINDS):
        heights = [measured_totals[n][i] / kb for n in names]
        ax.bar(names, heights, bottom=bottom, label=kind.replace("_", " "), color=f"C{i}")
        bottom = [b + h for b, h in zip(bottom, heights)]
    for x, name in enumerate(names):
        if estimated_totals[name] is not None:
            ax.plot([x - 0.4, x + 0.4], [estimated_totals[name] / kb] * 2, "k--", lw=1.5)
    ax.plot([], [], "k--", label="badam.memory estimate")
    ax.set(ylabel="kB held (measured, bf16 run)", title="memory held per method, small pretrained Llama")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    save_png(fig, args.runs / "memory.png", args.command)

    split = ", ".join(f"{k} {v} GB" for k, v in PAPER_BADAM_SPLIT_GB.items())
    body = f"""
{markdown_table(header, rows)}
![memory held per method](table1_memory/memory.png)

Measured: the largest bytes held over a few bf16 steps (`badam.memory.held_bytes` through alpaca_sft's
MemoryCallback; Adam and Adam-mini keep fp32 weights under bf16 autocast, so their "params" are fp32 and
they need no master copies). Estimate: `badam.memory.estimate` on the same model (the paper's accounting;
BAdam in this implementation's, on its largest block; GaLore has none). "estimate 7B": the same estimate
for Llama 2-7B (LoRA rank 100). Paper 7B: Table 1 of the official README (Adam 18M, BAdam 2M + 16M/D) and
BAdam's split on Llama 2-7B: {split} (activations and overhead make up the rest of 21.8 GB).
Measured total, most first: {" > ".join(sorted(measured_totals, key=lambda n: -sum(measured_totals[n])))}.
"""
    write_section(args.runs, "Table 1: memory per method", body, args.command)


if __name__ == "__main__":
    main()
