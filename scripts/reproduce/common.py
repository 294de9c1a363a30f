"""What the parts of the CPU report share: the paper's published figures, section files, PNG output."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt

from badam.atomic import atomic_write_bytes, atomic_write_text

# ../shared/paper.md, "Published figures": GB (1e9 bytes) and hours on Llama 2-7B, one RTX 3090.
PAPER_MEMORY_GB = {"adam": "122.8+", "badam": "21.8"}
PAPER_BADAM_SPLIT_GB = {"parameters": 13.4, "gradient": 0.8, "optimizer states": 2.4}
PAPER_BACKWARD_HOURS = {"badam": 5.54, "lora": 9.45}
PAPER_MT_BENCH = {"Llama 2-7B": {"Pretrained": 3.93, "LoRA": 5.05, "BAdam": 5.21}}


def save_png(fig, path: Path, command: str) -> None:
    """The figure as a PNG whose footer names the command that made it (from the repository root)."""
    fig.text(0.01, -0.03, f"made by: {command}", fontsize=7, color="grey", family="monospace")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_section(out: Path, title: str, body: str, command: str) -> None:
    """`out/section.md`: the part's title, the command that made its figures, then its tables and plots."""
    text = f"## {title}\n\nMade by `{command}` (from the repository root).\n\n{body.strip()}\n"
    atomic_write_text(out / "section.md", text)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"
