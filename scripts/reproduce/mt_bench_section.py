"""The MT-bench pipeline check's section: mt-bench's Table 2 and radar plot for the small models, labelled as such.

    python scripts/reproduce/mt_bench_section.py DIR --command "..."

DIR is the OUT_DIR of mt-bench's scripts (model_answer/, model_judgment/, results/).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import PAPER_MT_BENCH, markdown_table, write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--command", required=True, help="the command that made the results, for the report")
    args = parser.parse_args()
    results = args.dir / "results"
    for needed in ("table2.md", "radar.png", "results.md"):
        if not (results / needed).is_file():
            raise SystemExit(f"error: {results / needed} missing: run mt-bench's show.sh first")
    answers = {p.stem: len(p.read_text().splitlines()) for p in sorted((args.dir / "model_answer").glob("*.jsonl"))}
    judged = sum(len(p.read_text().splitlines()) for p in (args.dir / "model_judgment").glob("*_single.jsonl"))
    sample = json.loads((args.dir / "model_answer" / "small-llama-badam.jsonl").read_text().splitlines()[0])
    paper = markdown_table(
        ["method", "Llama 2-7B (paper)"], [[k, f"{v:.2f}"] for k, v in PAPER_MT_BENCH["Llama 2-7B"].items()]
    )
    body = f"""
**A pipeline check, not a quality figure.** The answers come from 2M-parameter models and the
judgments from mt-bench's local fake judge (`mt_bench.fake_judge`, scores drawn from a hash of the
prompt), so the scores below say that generate -> judge -> show runs end to end on the tuned models'
directories (a full model for BAdam, a LoRA adapter for LoRA), nothing about the methods.

Answers per model (of MT-bench's 80 questions): {", ".join(f"{k} {v}" for k, v in answers.items())}; judgments recorded: {judged}.

{(results / "table2.md").read_text().strip()}

The paper's Table 2 (GPT-4 judge):

{paper}
![per-category radar (fake judge)](mt_bench/results/radar.png)

First answer of the BAdam model, turn 1 (question {sample["question_id"]}): `{sample["choices"][0]["turns"][0][:160]!r}`
"""
    write_section(args.dir, "MT-bench Table 2 pipeline (check only)", body, args.command)


if __name__ == "__main__":
    main()
