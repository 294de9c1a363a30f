"""Table 2 of the BAdam paper (arXiv 2404.02827): which run fills which cell.

configs/table2.yaml lists the runs, each with model_id (the name its answers and judgments are stored
under), path (hub name, local dir or LoRA adapter dir), template, row (the method), column (the base
model) and paper (the published MT-bench score, or null). scripts/table2.sh loops over them with

    python -m mt_bench.table2 mt-bench/configs/table2.yaml   # one "model_id<TAB>path<TAB>template" line per run
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from mt_bench import cli
from mt_bench.cli import UsageError

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "table2.yaml"


@dataclass
class Run:
    model_id: str  # name of the run's answers and judgments
    path: str  # hub name, local dir or LoRA adapter dir
    template: str  # chat template the model was trained with (see templates.py)
    row: str  # method, e.g. BAdam
    column: str  # base model, e.g. Llama 3-8B
    paper: float | None  # published score, None where the paper has none


def load_runs(path: str | Path = CONFIG) -> list[Run]:
    """The runs of a Table 2 config; a missing file or a bad entry is a UsageError naming them."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such Table 2 config (see configs/table2.yaml for the format)")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as e:
        raise UsageError(f"{path}:{e.problem_mark.line + 1}: not valid YAML ({e.problem})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: not a YAML file ({e})") from None
    if not isinstance(config, dict) or not isinstance(config.get("runs"), list):
        raise UsageError(f"{path}: expected a mapping with a list under 'runs'")
    names = [f.name for f in fields(Run)]
    runs = []
    for i, entry in enumerate(config["runs"]):
        if not isinstance(entry, dict) or set(entry) != set(names):
            raise UsageError(f"{path}: runs[{i}] must have exactly the keys {names}, got {entry!r}")
        if not all(isinstance(entry[k], str) for k in names if k != "paper") or not (
            entry["paper"] is None or isinstance(entry["paper"], (int, float))
        ):
            raise UsageError(
                f"{path}: runs[{i}]: paper must be a number or null, the other keys strings, got {entry!r}"
            )
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


def main(argv: list[str] | None = None) -> list[Run]:
    parser = cli.argument_parser(
        description="Print a Table 2 config's runs, one model_id<TAB>path<TAB>template line each."
    )
    parser.add_argument("config", nargs="?", default=str(CONFIG), help="Table 2 config (default: configs/table2.yaml)")
    runs = load_runs(parser.parse_args(argv).config)
    for run in runs:
        print(f"{run.model_id}\t{run.path}\t{run.template}")
    return runs


if __name__ == "__main__":
    cli.run(main)
