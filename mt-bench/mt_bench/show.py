"""Show MT-bench results: per-model scores, the paper's Table 2, a radar plot, and W&B logging.

Reads single-answer judgments (FastChat's format, so FastChat's own gpt-4_single.jsonl works too) and
writes to --results_dir: results.md/.csv (turn 1, turn 2, overall and the 8 categories per model),
table2.md/.csv (rows: methods, columns: base models, next to the published scores), radar.png, and
with --pairwise_file pairwise.md/.csv (win rates against the baseline).

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
from mt_bench.scores import Summary, WinRate, summarize, win_rates
from mt_bench.table2 import CONFIG, load_runs, table2


@dataclass
class ShowArgs:
    judgment_file: str = field(
        default=str(OUTPUT_DIR / "model_judgment" / "gpt-4_single.jsonl"), metadata={"help": "single-answer judgments"}
    )
    data_dir: str | None = field(default=None, metadata={"help": "dir with question.jsonl, for the categories"})
    judge_model: str | None = field(default=None, metadata={"help": "count only this judge's judgments (default: all)"})
    model_list: list[str] | None = field(default=None, metadata={"help": "models to show (default: all judged)"})
    table2_config: str | None = field(default=str(CONFIG), metadata={"help": "Table 2 layout; empty to skip"})
    results_dir: str = field(default=str(OUTPUT_DIR / "results"), metadata={"help": "where tables and plot go"})
    pairwise_file: str | None = field(default=None, metadata={"help": "pairwise game judgments: adds win rates"})
    wandb_project: str | None = field(default=None, metadata={"help": "log the results to this W&B project"})
    wandb_run_name: str | None = field(default=None, metadata={"help": "W&B run name"})


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt(value) -> str:
    if missing(value):
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


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
    header = ["Model", "Baseline", "Win", "Loss", "Tie", "Error", "Win rate", "Loss rate", "Adjusted win rate"]
    return header, [[r.model, r.baseline, r.win, r.loss, r.tie, r.error, *r.rates().values()] for r in rates]


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
    args: ShowArgs, tables: dict[str, tuple[list[str], list[list]]], summaries: list[Summary], plot: Path
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
    run.log({"mt_bench/radar": wandb.Image(str(plot))})
    run.finish()


def load(path: str, data_dir: Path, questions: list[dict], pairwise: bool = False) -> list[dict]:
    """The judgments of a file, checked to be about these questions."""
    if not Path(path).exists():
        flag, mode = ("--pairwise_file", " --mode pairwise-baseline") if pairwise else ("--judgment_file", "")
        raise UsageError(f"{flag} {path}: no such file (run mt_bench.judge{mode} first)")
    judgments = load_judgments(path, pairwise)
    check_question_ids((j["question_id"] for j in judgments), questions, path, data_dir)
    return judgments


def show(args: ShowArgs) -> dict[str, Summary]:
    data_dir = resolve_data_dir(args.data_dir)
    questions = load_questions(data_dir)
    categories = {q["question_id"]: q["category"] for q in questions}
    judgments = load(args.judgment_file, data_dir, questions)
    by_model = summarize(judgments, categories, args.judge_model)
    if not by_model:
        judges = sorted({j["judge"][0] for j in judgments})
        if judges:
            raise UsageError(
                f"{args.judgment_file}: no judgments by --judge_model {args.judge_model}; judges in it: {judges}"
            )
        raise UsageError(f"{args.judgment_file}: no judgments in it (run mt_bench.judge first)")
    models = args.model_list or sorted(by_model)
    missing = [m for m in models if m not in by_model]
    if missing:
        raise UsageError(
            f"{args.judgment_file}: no judgments for {missing} (see --model_list); judged: {sorted(by_model)}"
        )
    summaries = [by_model[m] for m in models]
    for s in summaries:
        if s.judged + s.unparsed < 2 * len(questions):
            print(
                f"warning: {s.model} has {s.judged + s.unparsed} of {2 * len(questions)} judgments: "
                "scores are not comparable with full runs",
                file=sys.stderr,
            )

    tables = {"results": results_table(summaries)}
    if args.table2_config:
        scores = {s.model: s.overall for s in summaries}
        tables["table2"] = table2(load_runs(args.table2_config), scores)
    if args.pairwise_file:
        rates = win_rates(load(args.pairwise_file, data_dir, questions, pairwise=True), args.judge_model)
        tables["pairwise"] = pairwise_table([r for r in rates.values() if r.model in models])
    out = Path(args.results_dir)  # made only once every input has been read without error
    out.mkdir(parents=True, exist_ok=True)
    for name, (header, rows) in tables.items():
        (out / f"{name}.md").write_text(to_markdown(header, rows))
        write_csv(out / f"{name}.csv", header, rows)
        print(f"\n{name} ({out / name}.md):\n" + to_markdown(header, rows))
    radar_plot(summaries, out / "radar.png")
    print(f"radar plot: {out / 'radar.png'}")
    if args.wandb_project:
        log_wandb(args, tables, summaries, out / "radar.png")
    return by_model


def main(argv: list[str] | None = None) -> dict[str, Summary]:
    return show(cli.parse_args(ShowArgs, argv))


if __name__ == "__main__":
    cli.run(main)
