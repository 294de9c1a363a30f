"""Table 2 of the BAdam paper (arXiv 2404.02827): which run fills which cell.

configs/table2.yaml lists the runs, each with model_id (the name its answers and judgments are stored
under), path (hub name, local dir or LoRA adapter dir), template, row (the method), column (the base
model) and paper (the published MT-bench score, or null). scripts/table2.sh loops over them with

    python -m mt_bench.table2 mt-bench/configs/table2.yaml   # one "model_id<TAB>path<TAB>template" line per run
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "table2.yaml"


@dataclass
class Run:
    model_id: str         # name of the run's answers and judgments
    path: str             # hub name, local dir or LoRA adapter dir
    template: str         # chat template the model was trained with (see templates.py)
    row: str              # method, e.g. BAdam
    column: str           # base model, e.g. Llama 3-8B
    paper: float | None   # published score, None where the paper has none


def load_runs(path: str | Path = CONFIG) -> list[Run]:
    """The runs of a Table 2 config; a bad entry is an error naming the file and entry."""
    config = yaml.safe_load(Path(path).read_text())
    if not isinstance(config, dict) or not isinstance(config.get("runs"), list):
        raise ValueError(f"{path}: expected a mapping with a list under 'runs'")
    names = [f.name for f in fields(Run)]
    runs = []
    for i, entry in enumerate(config["runs"]):
        if not isinstance(entry, dict) or set(entry) != set(names):
            raise ValueError(f"{path}: runs[{i}] must have exactly the keys {names}, got {entry!r}")
        runs.append(Run(**entry))
    return runs


def table2(runs: list[Run], scores: dict[str, float]) -> tuple[list[str], list[list]]:
    """Header and rows of Table 2: one row per method, one column per base model, with each cell's
    score and the paper's side by side (NaN where a run has no score yet, None where the paper has none)."""
    columns = list(dict.fromkeys(r.column for r in runs))
    header = ["Method"] + [c + suffix for c in columns for suffix in ("", " (paper)")]
    rows = []
    for method in dict.fromkeys(r.row for r in runs):
        cells = {r.column: r for r in runs if r.row == method}
        row: list = [method]
        for c in columns:
            run = cells.get(c)
            row += [scores.get(run.model_id, math.nan) if run else None, run.paper if run else None]
        rows.append(row)
    return header, rows


if __name__ == "__main__":
    for run in load_runs(sys.argv[1] if len(sys.argv) > 1 else CONFIG):
        print(f"{run.model_id}\t{run.path}\t{run.template}")
