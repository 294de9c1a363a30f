"""The run's outputs besides checkpoints: run_report.json (time and memory split) and the loss PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from badam.atomic import atomic_write_bytes


def losses(log_history: list[dict[str, Any]]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, train loss) and (step, eval loss) points of a Trainer log history."""
    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h]
    return train, evals


def plot_losses(curves: dict[str, list[dict[str, Any]]], path: Path, title: str = "training loss") -> None:
    """One PNG: the train loss (solid) and eval loss (dashed, dots) of each named log history."""
    import io

    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, history) in enumerate(curves.items()):
        train, evals = losses(history)
        color = f"C{i}"
        if train:
            ax.plot(*zip(*train), color=color, label=f"{name} train")
        if evals:
            ax.plot(*zip(*evals), "o--", color=color, label=f"{name} eval")
    ax.set(xlabel="optimizer step", ylabel="loss", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def memory_time_table(reports: dict[str, dict[str, Any]]) -> str:
    """Markdown: per run, the Table 12 split (MB), the peak, and the Table 3 split (ms per step)."""
    mb = 1e6
    lines = [
        "| method | trainable params | parameters MB | gradients MB | optimizer states MB | master copies MB "
        "| peak MB | forward ms | backward ms | update ms | tokens/s | final train loss | eval loss |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in reports.items():
        m, t = r["memory"], r["time"]["per_step_seconds"]
        eval_loss = r.get("eval_loss")
        lines.append(
            f"| {name} | {r['trainable_parameters']:,} | {m['parameters_bytes'] / mb:.2f} | {m['gradients_bytes'] / mb:.2f} "
            f"| {m['optimizer_states_bytes'] / mb:.2f} | {m['master_copies_bytes'] / mb:.2f} | {m['peak_bytes'] / mb:.2f} "
            f"| {t['forward'] * 1e3:.1f} | {t['backward'] * 1e3:.1f} | {t['update'] * 1e3:.1f} "
            f"| {r['tokens_per_second']:.0f} | {r['final_train_loss']:.3f} | "
            + (f"{eval_loss:.3f} |" if eval_loss is not None else "- |")
        )
    return "\n".join(lines) + "\n"
