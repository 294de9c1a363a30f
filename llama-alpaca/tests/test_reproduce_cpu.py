"""scripts/reproduce_cpu.sh end to end on its minimal setting: one report with every table, plot and command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
TITLES = (
    "## Table 1: memory per method",
    "## Backward time: forward / backward / update per step",
    "## Convergence: loss against iteration and time",
    "## SuperGLUE-style table (small RoBERTa)",
    "## MT-bench Table 2 pipeline (check only)",
)
PARTS = ("table1_memory", "backward_time", "convergence", "superglue", "mt_bench")


@pytest.fixture(scope="module")
def report(tmp_path_factory, base_cache) -> Path:
    for needed in ("alpaca_gpt4/alpaca_gpt4_en_sample.json", "superglue/RTE/val.jsonl", "mt_bench/question.jsonl"):
        if not (SHARED / needed).exists():
            pytest.skip(f"{SHARED / needed} not found (the repository's ../shared/data)")
    out = tmp_path_factory.mktemp("report")
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "OUT": str(out),
        "BADAM_CACHE": str(base_cache),
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "reproduce_cpu.sh"), "--minimal"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith(str(out / "report.md"))
    return out


def test_report_has_every_table_in_order_with_its_command_and_plots(report):
    text = (report / "report.md").read_text()
    positions = [text.index(title) for title in TITLES]
    assert positions == sorted(positions)
    for part in PARTS:
        assert f"Made by `PRESET=minimal bash scripts/reproduce/{part}.sh`" in text
    images = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", text)
    assert len(images) == 5 and all((report / image).read_bytes()[:4] == b"\x89PNG" for image in images)
    assert "small-llama-minimal" in text and "small-roberta-minimal" in text and "held-out loss" in text


def test_memory_table_orders_the_methods_by_what_they_hold(report):
    held = {}
    for method in ("adam", "badam", "lora", "lomo", "adam_mini", "galore"):
        memory = json.loads((report / "table1_memory" / method / "run_report.json").read_text())["memory"]
        held[method] = memory
    total = {
        m: sum(v[f"{k}_bytes"] for k in ("gradients", "master_copies", "optimizer_states")) for m, v in held.items()
    }
    assert total["adam"] > total["adam_mini"] > total["badam"] and total["adam"] > total["lora"]
    assert held["lomo"]["gradients_bytes"] == 0 and held["lomo"]["optimizer_states_bytes"] == 0
    section = (report / "table1_memory" / "section.md").read_text()
    assert "| badam |" in section and "122.8+" in section and "21.8" in section  # the paper's 7B figures beside
    assert "Measured total, most first: adam >" in section


def test_backward_time_and_convergence_sections(report):
    timing = (report / "backward_time" / "section.md").read_text()
    assert "0.59 (5.54 h / 9.45 h)" in timing and all(f"| {m} |" in timing for m in ("badam", "lora", "adam"))
    convergence = (report / "convergence" / "section.md").read_text()
    assert all(f"| {m} |" in convergence for m in ("badam", "lora", "lomo", "adam", "galore"))
    lomo = json.loads((report / "convergence" / "lomo" / "run_report.json").read_text())
    assert lomo["log_history"][0]["train_seconds"] > 0  # curves against time come from the runs themselves


def test_superglue_and_mt_bench_through_the_subprojects(report):
    superglue = (report / "superglue" / "section.md").read_text()
    assert all(f"| {m} |" in superglue for m in ("Adam", "LoRA", "BAdam", "BAdam (ratio)")) and "(0.87)" in superglue
    mt_bench = (report / "mt_bench" / "section.md").read_text()
    assert "**A pipeline check, not a quality figure.**" in mt_bench
    answers = report / "mt_bench" / "model_answer"
    assert {p.stem for p in answers.glob("*.jsonl")} == {"small-llama-base", "small-llama-lora", "small-llama-badam"}
    assert all(len(p.read_text().splitlines()) == 8 for p in answers.glob("*.jsonl"))
