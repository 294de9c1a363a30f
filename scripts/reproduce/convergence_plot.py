"""The convergence figure at CPU scale: training and validation loss against iteration and against time.

    python scripts/reproduce/convergence_plot.py RUNS_DIR --command "..."

RUNS_DIR holds one `<method>/run_report.json` per method of llama-alpaca/configs/cpu_paper.yaml
(alpaca_sft.compare). LOMO cannot accumulate gradients, so, as in the paper, its iterations are
counted in groups of `--lomo_group` (the others' accumulation steps). Writes convergence.png, section.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib.pyplot as plt
from common import markdown_table, save_png, write_section

ORDER = ("badam", "lora", "lomo", "adam", "galore")


def curves(report: dict, per_iteration: float) -> dict[str, list[tuple[float, float, float]]]:
    """{"train": [(iteration, seconds, loss)], "eval": [...]}, LOMO's steps divided by its group size."""
    out: dict[str, list[tuple[float, float, float]]] = {"train": [], "eval": []}
    for entry in report["log_history"]:
        for kind, key in (("train", "loss"), ("eval", "eval_loss")):
            if key in entry and "train_seconds" in entry:
                out[kind].append((entry["step"] / per_iteration, entry["train_seconds"], entry[key]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--command", required=True, help="the command that made the runs, for the report")
    parser.add_argument("--lomo_group", type=int, default=15, help="LOMO iterations counted as one")
    args = parser.parse_args()
    reports = {
        m: json.loads((args.runs / m / "run_report.json").read_text())
        for m in ORDER
        if (args.runs / m / "run_report.json").is_file()
    }
    if not reports:
        raise SystemExit(f"error: no <method>/run_report.json under {args.runs}: run the convergence runs first")
    data = {m: curves(r, args.lomo_group if m == "lomo" else 1) for m, r in reports.items()}

    # Rows: validation, training loss (each on its own scale, so the validation gaps show); columns:
    # against iteration, against time.
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), sharex="col", sharey="row")
    for i, (name, c) in enumerate(data.items()):
        for row, kind, style in ((0, "eval", "o-"), (1, "train", "-")):
            for col in (0, 1):
                points = c[kind]
                axes[row][col].plot([p[col] for p in points], [p[2] for p in points], style, color=f"C{i}", label=name)
    axes[0][0].set(ylabel="validation loss", title="against iteration")
    axes[0][1].set(title="against time")
    axes[1][0].set(ylabel="training loss", xlabel=f"iteration (LOMO: {args.lomo_group} of its iterations)")
    axes[1][1].set(xlabel="training seconds (forward + backward + update)")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    axes[0][1].legend(fontsize=9)
    save_png(fig, args.runs / "convergence.png", args.command)

    def last(c: dict, kind: str) -> float | None:
        return c[kind][-1][2] if c[kind] else None

    ranked = sorted(data, key=lambda m: last(data[m], "eval") if last(data[m], "eval") is not None else float("inf"))
    rows = [
        [
            m,
            f"{reports[m]['trainable_parameters']:,}",
            f"{reports[m]['global_steps'] / (args.lomo_group if m == 'lomo' else 1):.0f}",
            f"{data[m]['eval'][0][2]:.3f}" if data[m]["eval"] else "-",
            f"{last(data[m], 'train'):.3f}" if data[m]["train"] else "-",
            f"{last(data[m], 'eval'):.3f}" if data[m]["eval"] else "-",
            f"{reports[m]['train_seconds']:.0f}",
        ]
        for m in ranked
    ]
    header = [
        "method (best val first)",
        "trainable",
        "iterations",
        "first val loss",
        "last train loss",
        "last val loss",
        "wall s",
    ]
    body = f"""
{markdown_table(header, rows)}
![convergence](convergence/convergence.png)

Order by the last validation loss: {" < ".join(ranked)}. The paper (Llama 2-7B on Alpaca-GPT4): BAdam
converges faster than LoRA and LOMO and close to Adam, in loss against iteration and against time.
Protocol (scaled from the paper's, `llama-alpaca/configs/cpu_paper.yaml`): one learning rate for all,
15 accumulation steps, LOMO counted per {args.lomo_group} iterations, LoRA with about one layer's
parameters on every linear layer, gradient checkpointing; validation on the 100 held-out records the
base was not pretrained on.
"""
    write_section(args.runs, "Convergence: loss against iteration and time", body, args.command)


if __name__ == "__main__":
    main()
