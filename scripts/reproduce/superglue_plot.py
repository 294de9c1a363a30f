"""The SuperGLUE-style table at CPU scale, from roberta-superglue's table.csv: the tasks run, next to the paper's.

    python scripts/reproduce/superglue_plot.py DIR --command "..."

DIR holds table.csv as `superglue.aggregate` writes it (rows: methods; columns: each task, then
"<task> (paper)"). Writes DIR/superglue.png and DIR/section.md.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib.pyplot as plt
from common import markdown_table, save_png, write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--command", required=True, help="the command that made the table, for the report")
    args = parser.parse_args()
    with open(args.dir / "table.csv", newline="") as f:
        table = list(csv.DictReader(f))
    tasks = [c for c in table[0] if c != "Method" and not c.endswith("(paper)") and any(row[c] for row in table)]
    if not tasks:
        raise SystemExit(f"error: {args.dir / 'table.csv'} has no measured score")
    rows = [
        [r["Method"], *(f"{float(r[t]):.3f} ({r[f'{t} (paper)'] or '-'})" if r[t] else "-" for t in tasks)]
        for r in table
    ]

    fig, ax = plt.subplots(figsize=(2.2 + 1.8 * len(tasks), 4))
    width = 0.8 / len(table)
    for i, row in enumerate(table):
        xs = [j + (i - (len(table) - 1) / 2) * width for j in range(len(tasks))]
        ax.bar(xs, [float(row[t] or 0) for t in tasks], width, label=row["Method"], color=f"C{i}")
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set(ylabel="test score (held-out part of val)", ylim=(0, 1), title="small pretrained RoBERTa, CPU scale")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.legend(fontsize=8)
    save_png(fig, args.dir / "superglue.png", args.command)

    orders = []
    for t in tasks:
        scores = {r["Method"]: float(r[t]) for r in table if r[t]}
        ranked = sorted(scores, key=lambda m: -scores[m])
        tied = len(set(scores.values())) == 1
        orders.append(f"{t}: " + (f"all {next(iter(scores.values())):.3f}" if tied else " > ".join(ranked)))
    body = f"""
{markdown_table(["method", *(f"{t} (paper)" for t in tasks)], rows)}
Order per task, best first: {"; ".join(orders)}.

![SuperGLUE at CPU scale](superglue/superglue.png)

Each cell: the score on the task's reported test part (roberta-superglue's split of the official
validation set), the paper's RoBERTa-large score in brackets. The runs are roberta-superglue's own
(`roberta-superglue/scripts/run_task.sh`, `configs/paper.yaml`) on the small pretrained RoBERTa with
fewer steps; the per-run JSON is under `superglue/runs/`. A 2M-parameter encoder pretrained for
minutes is far from RoBERTa-large: near chance (dotted line) methods that all predict one class tie.
Read the table as a check that every optimizer runs through roberta-superglue's protocol, and its
order only where the scores differ.
"""
    write_section(args.dir, "SuperGLUE-style table (small RoBERTa)", body, args.command)


if __name__ == "__main__":
    main()
