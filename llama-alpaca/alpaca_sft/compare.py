"""Train several finetuning types on one task and compare them: one loss PNG and a memory/time table.

    PYTHONPATH=llama-alpaca python -m alpaca_sft.compare llama-alpaca/configs/demo.yaml [--flag value ...]

The config has `common:` training arguments, `methods:` (a name -> its own arguments, e.g. the
finetuning type and learning rate) and `output_dir:`; extra flags override every run. Each run goes to
<output_dir>/<name>/ as with alpaca_sft.train; the comparison to <output_dir>/loss.png and
<output_dir>/summary.md (also printed). An `--output_dir` flag moves the whole comparison.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from badam.atomic import atomic_write_text

from .args import read_yaml, to_flags
from .cli import run_cli
from .report import memory_time_table, plot_losses
from .train import train


def compare(config_path: str, extra: list[str]) -> str:
    config = read_yaml(config_path)
    missing = {"common", "methods", "output_dir"} - set(config)
    if missing:
        raise ValueError(f"{config_path}: missing {', '.join(sorted(missing))} (see alpaca_sft/compare.py)")
    if "--output_dir" in extra:  # the comparison's root, not one shared dir for every run
        i = extra.index("--output_dir")
        config["output_dir"], extra = extra[i + 1], extra[:i] + extra[i + 2 :]
    out = Path(config["output_dir"])
    reports = {}
    for name, method in config["methods"].items():
        logging.getLogger("alpaca_sft").info("=== %s ===", name)
        flags = to_flags({**config["common"], **method, "output_dir": str(out / name)})
        reports[name] = train(flags + extra)
    plot_losses(
        {name: r["log_history"] for name, r in reports.items()},
        out / "loss.png",
        title=config.get("title", "training loss"),
    )
    table = memory_time_table(reports)
    note = (
        "\nMemory: bytes held (badam.memory.held_bytes, the largest over the run) and the peak; "
        "time: mean seconds per optimizer step (Table 3 split). Per-run JSON: <method>/run_report.json.\n"
    )
    atomic_write_text(out / "summary.md", table + note)
    return table


def main() -> None:
    if len(sys.argv) < 2 or not sys.argv[1].endswith((".yaml", ".yml")):
        sys.exit(__doc__)
    print(run_cli(lambda: compare(sys.argv[1], sys.argv[2:])))


if __name__ == "__main__":
    main()
