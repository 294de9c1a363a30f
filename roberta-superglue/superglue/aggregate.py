"""The paper's SuperGLUE table from a directory of runs: methods by tasks, next to the paper's scores.

    python -m superglue.aggregate --results_dir roberta-superglue/outputs [--config configs/paper.yaml]

Reads every results.json below the directory (superglue.train writes one per run). Runs of the same
task and optimizer (several seeds) are averaged; the Markdown shows mean ± std and n when there are
several. Writes, atomically, into the directory (or --out_dir): table.md and table.csv (rows: the
config's methods; columns: its tasks, each followed by the paper's score) and runs.csv (one line per
run). Rows and columns, the metric of each column and the paper's numbers come from the config.
Errors (no results, a broken results.json, a bad config) print one line and exit 2 (superglue.cli).
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from superglue.cli import DEBUG_HELP, run_cli
from superglue.files import base_config, read_json, read_yaml, write_text_atomic
from superglue.tasks import get_task

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "paper.yaml"


@dataclass
class AggregateArgs:
    results_dir: str = field(metadata={"help": "directory searched (recursively) for results.json"})
    config: str = field(default=str(CONFIG), metadata={"help": "YAML with methods, columns and paper"})
    out_dir: str | None = field(default=None, metadata={"help": "where the tables go (default: results_dir)"})


def load_results(results_dir: str | Path) -> list[dict]:
    if not Path(results_dir).is_dir():
        raise FileNotFoundError(f"--results_dir {results_dir} does not exist")
    runs = []
    for path in sorted(Path(results_dir).rglob("results.json")):
        run = read_json(path)
        if (
            not isinstance(run, dict)
            or not {"task", "optimizer", "test"} <= run.keys()
            or not isinstance(run["test"], dict)
        ):
            raise ValueError(
                f"{path}: not a superglue results file (needs task, optimizer and test): delete it or "
                "rerun its run with --overwrite"
            )
        runs.append({**run, "_path": str(path)})
    if not runs:
        raise FileNotFoundError(
            f"no results.json under --results_dir {results_dir}: nothing to tabulate (a run "
            "writes one when it finishes)"
        )
    return runs


def load_config(path: str) -> dict:
    """The table's layout: methods and columns (mappings), paper (optimizer -> task -> score)."""
    _, config = read_yaml(path)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a mapping with methods, columns and paper (see configs/paper.yaml)")
    base = base_config(path, config)
    if base is not None:  # what the config does not set comes from the one it extends
        config = {**load_config(str(base)), **config}
    for key in ("methods", "columns"):
        if not isinstance(config.get(key), dict):
            raise ValueError(f"{path}: needs a '{key}' mapping (see configs/paper.yaml)")
    for task in config["columns"]:
        try:
            get_task(str(task))
        except ValueError as e:
            raise ValueError(f"{path}: columns: {e}") from None
    paper = config.get("paper") or {}
    if not (isinstance(paper, dict) and all(isinstance(v, dict) for v in paper.values())):
        raise ValueError(f"{path}: 'paper' must map each optimizer to its task scores (see configs/paper.yaml)")
    return config


def table(runs: list[dict], config: dict) -> tuple[list[str], list[list], list[list]]:
    """Header, rows of mean scores (None: no run), and the Markdown cells of those rows."""
    columns, paper = config["columns"], config.get("paper") or {}
    methods = dict(config["methods"])
    for run in runs:  # optimizers the config does not name still get a row
        methods.setdefault(run["optimizer"], run["optimizer"])
    header = ["Method"]
    for task in columns:
        name = get_task(task).official_name
        header += [name, f"{name} (paper)"]
    rows, cells = [], []
    for optimizer, label in methods.items():
        row, cell = [label], [label]
        for task, metric in columns.items():
            chosen = [r for r in runs if r["task"] == task and r["optimizer"] == optimizer]
            for r in chosen:
                if metric not in r["test"]:
                    raise ValueError(
                        f"{r['_path']}: no test metric {metric!r} for the {task} column (it has {', '.join(r['test'])})"
                    )
            scores = [r["test"][metric] for r in chosen]
            published = (paper.get(optimizer) or {}).get(task)
            mean = round(statistics.fmean(scores), 6) if scores else None
            row += [mean, published]
            if len(scores) > 1:
                cell.append(f"{mean:.3f} ± {statistics.stdev(scores):.3f} (n={len(scores)})")
            else:
                cell.append("-" if mean is None else f"{mean:.3f}")
            cell.append("-" if published is None else f"{published:.2f}")
        rows.append(row)
        cells.append(cell)
    return header, rows, cells


def to_csv(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return out.getvalue()


def write_tables(runs: list[dict], config: dict, out_dir: str | Path) -> str:
    """Write table.md, table.csv and runs.csv; returns the Markdown."""
    header, rows, cells = table(runs, config)
    markdown = (
        "\n".join(
            ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(row) + " |" for row in cells]
        )
        + "\n"
    )
    out_dir = Path(out_dir)
    write_text_atomic(out_dir / "table.md", markdown)
    write_text_atomic(out_dir / "table.csv", to_csv(header, rows))
    metrics = sorted({k for r in runs for k in r["test"]})
    run_rows = [
        [r["task"], r["optimizer"], r.get("seed"), r.get("run_name"), r.get("best_step")]
        + [r["test"].get(k) for k in metrics]
        for r in runs
    ]
    write_text_atomic(
        out_dir / "runs.csv",
        to_csv(["task", "optimizer", "seed", "run_name", "best_step"] + [f"test_{k}" for k in metrics], run_rows),
    )
    return markdown


def main(argv: list[str] | None = None) -> str:
    parser = HfArgumentParser(AggregateArgs, prog="python -m superglue.aggregate", epilog=DEBUG_HELP)
    args, unknown = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    if unknown:
        raise ValueError(f"unknown argument(s) {' '.join(unknown)} (--help lists the flags)")
    config = load_config(args.config)
    runs = load_results(args.results_dir)
    markdown = write_tables(runs, config, args.out_dir or args.results_dir)
    print(f"{len(runs)} runs from {args.results_dir}\n\n{markdown}")
    return markdown


if __name__ == "__main__":
    run_cli(main)
