"""Tables, plot and W&B logging from judgments whose averages are known by hand."""

import csv
import subprocess
import sys
import types

import pytest

from mt_bench import show
from mt_bench.cli import UsageError
from mt_bench.data import append_jsonl, load_questions
from mt_bench.table2 import CONFIG, load_runs

TABLE2_MD = """\
| Method | Llama 2-7B | Llama 2-7B (paper) | Llama 3-8B | Llama 3-8B (paper) |
|---|---|---|---|---|
| Pretrained | - | 3.93 | 3.75 | 5.46 |
| LoRA | - | - | - | 6.41 |
| BAdam | - | 5.21 | 6.5 | 6.67 |
"""


@pytest.fixture
def judgments(tmp_path, data_dir):
    # badam: 7 on every first turn, 6 on every second: 7, 6, 6.5 and 6.5 in every category.
    # base: 4 everywhere but math, where it gets 2: overall (70 * 4 + 10 * 2) / 80 = 3.75.
    records = []
    for q in load_questions(data_dir):
        for turn in (1, 2):
            base = 2 if q["category"] == "math" else 4
            for model, score in (("llama3-8b-badam", 8 - turn), ("llama3-8b-base", base)):
                records.append(
                    {
                        "question_id": q["question_id"],
                        "model": model,
                        "judge": ["gpt-4", "single-v1"],
                        "user_prompt": "",
                        "judgment": "",
                        "score": score,
                        "turn": turn,
                        "tstamp": 0,
                    }
                )
    path = tmp_path / "gpt-4_single.jsonl"
    append_jsonl(path, records)
    return path


def run_show(judgments, data_dir, out, *extra):
    return show.main(
        ["--judgment_file", str(judgments), "--data_dir", str(data_dir), "--results_dir", str(out), *extra]
    )


def test_tables_and_radar_plot(judgments, data_dir, tmp_path):
    summaries = run_show(judgments, data_dir, tmp_path / "results")
    assert (summaries["llama3-8b-badam"].turn1, summaries["llama3-8b-badam"].turn2) == (7.0, 6.0)
    assert (tmp_path / "results" / "table2.md").read_text() == TABLE2_MD
    rows = list(csv.DictReader((tmp_path / "results" / "results.csv").open()))
    assert [r["Model"] for r in rows] == ["llama3-8b-badam", "llama3-8b-base"]
    assert {k: float(rows[1][k]) for k in ("Judged", "Turn 1", "Turn 2", "Overall", "writing", "math")} == {
        "Judged": 160,
        "Turn 1": 3.75,
        "Turn 2": 3.75,
        "Overall": 3.75,
        "writing": 4.0,
        "math": 2.0,
    }
    table2 = list(csv.reader((tmp_path / "results" / "table2.csv").open()))
    assert table2[3] == ["BAdam", "", "5.21", "6.5", "6.67"]
    assert (tmp_path / "results" / "radar.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pairwise_table(judgments, data_dir, tmp_path):
    comparison = {
        "question_id": 81,
        "model_1": "llama3-8b-base",
        "model_2": "gpt-3.5-turbo",
        "g1_winner": "model_1",
        "g2_winner": "model_1",
        "judge": ["gpt-4", "pair-v2"],
        "turn": 1,
    }
    pair_file = tmp_path / "model_judgment" / "gpt-4_pair.jsonl"
    append_jsonl(pair_file, [comparison])
    run_show(judgments, data_dir, tmp_path, "--pairwise_file", str(pair_file))
    assert (tmp_path / "pairwise.md").read_text().splitlines()[
        2
    ] == "| llama3-8b-base | 1 | 0 | 0 | 0 | 1.0 | 0.0 | 1.0 |"
    summaries = show.main(["--mode", "pairwise-all", "--out_dir", str(tmp_path), "--data_dir", str(data_dir)])
    assert summaries == {} and not (tmp_path / "results" / "radar.png").exists()  # pairwise only
    assert (tmp_path / "results" / "pairwise.md").read_text().splitlines()[2:] == [
        "| llama3-8b-base | 1 | 0 | 0 | 0 | 1.0 | 0.0 | 1.0 |",
        "| gpt-3.5-turbo | 0 | 1 | 0 | 0 | 0.0 | 1.0 | 0.0 |",
    ]


@pytest.mark.parametrize(
    "value, shown", [(9.075, "9.075"), (8.311764705882353, "8.311765"), (7.0, "7.0"), (3, "3"), (float("nan"), "-")]
)
def test_numbers_show_with_fastchats_precision(value, shown):
    assert show.fmt(value) == shown  # pandas' 6 decimals, as FastChat's show_result.py prints them


def test_wandb_logging(judgments, data_dir, tmp_path, monkeypatch):
    calls = []

    class Run:
        summary = {}

        def log(self, data):
            calls.append(("log", sorted(data)))

        def finish(self):
            calls.append(("finish",))

    wandb = types.SimpleNamespace(
        init=lambda **kw: calls.append(("init", kw)) or Run(),
        Table=lambda columns, data: (columns, data),
        Image=lambda path: path,
    )
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    run_show(judgments, data_dir, tmp_path, "--wandb_project", "badam", "--model_list", "llama3-8b-base")
    assert calls == [
        ("init", {"project": "badam", "name": None, "job_type": "mt-bench"}),
        ("log", ["mt_bench/results"]),
        ("log", ["mt_bench/table2"]),
        ("log", ["mt_bench/radar"]),
        ("finish",),
    ]
    assert Run.summary["mt_bench/llama3-8b-base/overall"] == 3.75
    assert Run.summary["mt_bench/llama3-8b-base/math"] == 2.0


def test_unknown_model(judgments, data_dir, tmp_path):
    with pytest.raises(UsageError, match=r"no judgments for \['ghost'\]"):
        run_show(judgments, data_dir, tmp_path, "--model_list", "ghost")


def test_table2_config(tmp_path):
    runs = load_runs(CONFIG)
    assert [(r.row, r.column, r.paper) for r in runs if r.paper] == [
        ("Pretrained", "Llama 2-7B", 3.93),
        ("BAdam", "Llama 2-7B", 5.21),
        ("Pretrained", "Llama 3-8B", 5.46),
        ("LoRA", "Llama 3-8B", 6.41),
        ("BAdam", "Llama 3-8B", 6.67),
    ]
    out = subprocess.run(
        [sys.executable, "-m", "mt_bench.table2", str(CONFIG)],
        capture_output=True,
        text=True,
        check=True,
        cwd=CONFIG.parents[1],
    ).stdout
    assert out.splitlines()[0] == "llama2-7b-base\tmeta-llama/Llama-2-7b-hf\tdefault"
    bad = tmp_path / "t.yaml"
    bad.write_text("runs:\n  - {model_id: x, path: y}\n")
    with pytest.raises(UsageError, match=r"t.yaml: runs\[0\] must have exactly the keys"):
        load_runs(bad)
