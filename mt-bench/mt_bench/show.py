"""Show MT-bench results: per-model scores, the paper's Table 2, pairwise win rates, a radar plot, W&B.

Reads FastChat's judgment files (so FastChat's own gpt-4_single.jsonl and gpt-4_pair.jsonl work too)
and counts them as FastChat's show_result.py does, every line (a repeated judgment is counted again,
with a warning). Writes to --results_dir:

    --mode single             results.md/.csv (judged count, turn 1, turn 2, overall and the 8
                              categories per model), table2.md/.csv (rows: methods, columns: base
                              models, next to the published scores), radar.png; with --pairwise_file
                              also pairwise.md/.csv against --baseline_model
    --mode pairwise-baseline  pairwise.md/.csv: win, loss and tie rates of each model against the baseline
    --mode pairwise-all       pairwise.md/.csv: the same over all the comparisons of each model

Scores show with up to 6 decimals, the precision FastChat's tables show.

    python -m mt_bench.show --data_dir ../shared/data/mt_bench [--model_list a b] [--wandb_project badam]
"""

from __future__ import annotations

import csv
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mt_bench import cli
from mt_bench.cli import UsageError
from mt_bench.data import CATEGORIES, OUTPUT_DIR, check_question_ids, load_judgments, load_questions, resolve_data_dir
from mt_bench.judge import KEY_FIELDS, MODES
from mt_bench.scores import Summary, WinRate, repeated, summarize, win_rates
from mt_bench.table2 import CONFIG, load_runs, table2


@dataclass
class ShowArgs:
    mode: str = field(default="single", metadata={"help": "what to show (FastChat's modes)", "choices": MODES})
    out_dir: str = field(default=str(OUTPUT_DIR), metadata={"help": "reads model_judgment/, writes results/"})
    judgment_file: str | None = field(
        default=None,
        metadata={"help": "single-answer judgments (default: <out_dir>/model_judgment/<judge>_single.jsonl)"},
    )
    pairwise_file: str | None = field(
        default=None,
        metadata={
            "help": "pairwise judgments (default in the pairwise modes: <out_dir>/model_judgment/<judge>_pair.jsonl)"
        },
    )
    baseline_model: str = field(default="gpt-3.5-turbo", metadata={"help": "the baseline of the pairwise table"})
    data_dir: str | None = field(default=None, metadata={"help": "dir with question.jsonl, for the categories"})
    judge_model: str | None = field(default=None, metadata={"help": "count only this judge's judgments (default: all)"})
    model_list: list[str] | None = field(
        default=None,
        metadata={"help": "models to show (default: all judged; pairwise: the lines whose model_1 is one)"},
    )
    table2_config: str | None = field(default=str(CONFIG), metadata={"help": "Table 2 layout; empty to skip"})
    results_dir: str | None = field(
        default=None, metadata={"help": "where tables and plot go (default: <out_dir>/results)"}
    )
    wandb_project: str | None = field(default=None, metadata={"help": "log the results to this W&B project"})
    wandb_run_name: str | None = field(default=None, metadata={"help": "W&B run name"})

    def judgments(self, kind: str) -> Path:
        """The judgment file of a kind, single or pair: the one given, else the one in out_dir."""
        given = self.judgment_file if kind == "single" else self.pairwise_file
        return Path(given or Path(self.out_dir) / "model_judgment" / f"{self.judge_model or 'gpt-4'}_{kind}.jsonl")


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt(value) -> str:
    if missing(value):
        return "-"
    if not isinstance(value, float):
        return str(value)
    text = f"{value:.6f}".rstrip("0")  # pandas' 6 decimals, as FastChat prints; trailing zeros say nothing
    return text + "0" if text.endswith(".") else text


def to_markdown(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([None if missing(v) else v for v in row] for row in rows)


def results_table(summaries: list[Summary]) -> tuple[list[str], list[list]]:
    header = ["Model", "Judged", "Unparsed", "Turn 1", "Turn 2", "Overall", *CATEGORIES]
    rows = [
        [
            s.model,
            s.judged,
            s.unparsed,
            s.turn1,
            s.turn2,
            s.overall,
            *(s.categories.get(c, math.nan) for c in CATEGORIES),
        ]
        for s in summaries
    ]
    return header, rows


def pairwise_table(rates: list[WinRate]) -> tuple[list[str], list[list]]:
    """Rows by adjusted win rate, best first, as FastChat sorts them."""
    header = ["Model", "Win", "Loss", "Tie", "Error", "Win rate", "Loss rate", "Adjusted win rate"]
    rows = [[r.model, r.win, r.loss, r.tie, r.error, *r.rates().values()] for r in rates]
    rows.sort(key=lambda row: math.inf if missing(row[-1]) else -row[-1])
    return header, rows


def radar_plot(summaries: list[Summary], path: Path) -> None:
    """One closed polygon per model over the 8 categories, on a 0-10 scale."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    angles = [2 * math.pi * i / len(CATEGORIES) for i in range(len(CATEGORIES))]
    fig, ax = plt.subplots(figsize=(7, 7), subplot_kw={"projection": "polar"})
    for s in summaries:
        values = [s.categories.get(c, math.nan) for c in CATEGORIES]
        ax.plot(angles + angles[:1], values + values[:1], label=s.model, linewidth=1.5)
        ax.fill(angles + angles[:1], values + values[:1], alpha=0.1)
    ax.set_xticks(angles, ["STEM" if c == "stem" else c.capitalize() for c in CATEGORIES])
    ax.set_ylim(0, 10)
    ax.legend(loc="upper right", bbox_to_anchor=(1.3, 1.1), fontsize=8)
    ax.set_title("MT-bench score per category")
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)


def log_wandb(
    args: ShowArgs, tables: dict[str, tuple[list[str], list[list]]], summaries: list[Summary], plot: Path | None
) -> None:
    try:
        import wandb
    except ImportError:
        raise UsageError("--wandb_project needs wandb: pip install wandb (tables and plot are written)") from None
    run = wandb.init(project=args.wandb_project, name=args.wandb_run_name, job_type="mt-bench")
    for name, (header, rows) in tables.items():
        data = [[None if missing(v) else v for v in row] for row in rows]
        run.log({f"mt_bench/{name}": wandb.Table(columns=header, data=data)})
    for s in summaries:
        run.summary.update(
            {
                f"mt_bench/{s.model}/{k}": v
                for k, v in [("turn1", s.turn1), ("turn2", s.turn2), ("overall", s.overall), *s.categories.items()]
            }
        )
    if plot:
        run.log({"mt_bench/radar": wandb.Image(str(plot))})
    run.finish()


def load(path: Path, kind: str, data_dir: Path, questions: list[dict]) -> list[dict]:
    """The judgments of a file, checked to be about these questions; repeated lines are warned about."""
    if not path.exists():
        flag, mode = ("--judgment_file", "") if kind == "single" else ("--pairwise_file", " --mode pairwise-...")
        raise UsageError(f"{flag} {path}: no such file (run mt_bench.judge{mode} first)")
    judgments = load_judgments(path, kind)
    check_question_ids((j["question_id"] for j in judgments), questions, path, data_dir)
    n = repeated(judgments, KEY_FIELDS)
    if n:
        what = "model, question and turn" if kind == "single" else "models, question and turn"
        print(
            f"warning: {path}: {n} lines repeat an earlier judgment (same judge, {what}); each counts, "
            "as in FastChat's show_result.py: delete them to count every judgment once",
            file=sys.stderr,
        )
    return judgments


def single_tables(args: ShowArgs, data_dir: Path, questions: list[dict]) -> tuple[dict, dict[str, Summary]]:
    """The results and Table 2 tables, and the summaries by model, from the single-answer judgments."""
    path = args.judgments("single")
    judgments = load(path, "single", data_dir, questions)
    by_model = summarize(judgments, {q["question_id"]: q["category"] for q in questions}, args.judge_model)
    if not by_model:
        judges = sorted({j["judge"][0] for j in judgments})
        if judges:
            raise UsageError(f"{path}: no judgments by --judge_model {args.judge_model}; judges in it: {judges}")
        raise UsageError(f"{path}: no judgments in it (run mt_bench.judge first)")
    models = args.model_list or sorted(by_model)
    unknown = [m for m in models if m not in by_model]
    if unknown:
        raise UsageError(f"{path}: no judgments for {unknown} (see --model_list); judged: {sorted(by_model)}")
    for m in models:
        if by_model[m].turns < 2 * len(questions):
            print(
                f"warning: {m} has {by_model[m].turns} of {2 * len(questions)} turns judged: "
                "scores are not comparable with full runs",
                file=sys.stderr,
            )
    tables = {"results": results_table([by_model[m] for m in models])}
    if args.table2_config:
        tables["table2"] = table2(load_runs(args.table2_config), {m: by_model[m].overall for m in models})
    return tables, {m: by_model[m] for m in models}


def show(args: ShowArgs) -> dict[str, Summary]:
    data_dir = resolve_data_dir(args.data_dir)
    questions = load_questions(data_dir)
    tables, summaries = single_tables(args, data_dir, questions) if args.mode == "single" else ({}, {})
    if args.mode != "single" or args.pairwise_file:
        path = args.judgments("pair")
        baseline = None if args.mode == "pairwise-all" else args.baseline_model
        rates = win_rates(load(path, "pair", data_dir, questions), baseline, args.model_list, args.judge_model)
        if not rates:
            raise UsageError(
                f"{path}: no comparisons of --model_list {args.model_list} by --judge_model {args.judge_model}"
                + (f" with --baseline_model {baseline}" if baseline else "")
            )
        tables["pairwise"] = pairwise_table(list(rates.values()))
    out = Path(args.results_dir or Path(args.out_dir) / "results")  # made only once every input is read
    out.mkdir(parents=True, exist_ok=True)
    for name, (header, rows) in tables.items():
        (out / f"{name}.md").write_text(to_markdown(header, rows))
        write_csv(out / f"{name}.csv", header, rows)
        print(f"\n{name} ({out / name}.md):\n" + to_markdown(header, rows))
    plot = out / "radar.png" if summaries else None
    if plot:
        radar_plot(list(summaries.values()), plot)
        print(f"radar plot: {plot}")
    if args.wandb_project:
        log_wandb(args, tables, list(summaries.values()), plot)
    return summaries


def main(argv: list[str] | None = None) -> dict[str, Summary]:
    return show(cli.parse_args(ShowArgs, argv))


if __name__ == "__main__":
    cli.run(main)
