"""The demo end to end through its script (shortened), and the shipped demo data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alpaca_sft.demo_data import OUT, make_records

PROJECT = Path(__file__).resolve().parents[1]


def test_shipped_demo_data_is_the_generated_one():
    shipped = [json.loads(line) for line in OUT.read_text().splitlines()]
    assert shipped == make_records(len(shipped)) and len(shipped) == 600
    assert {r["instruction"] for r in shipped} == {
        "Reverse the word.",
        "Write the word in capital letters.",
        "Sort the letters of the word.",
        "Add the two numbers.",
    }


def run_demo(out, *flags, env=()):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **dict(env)}
    result = subprocess.run(
        ["bash", str(PROJECT / "scripts" / "demo.sh"), "--output_dir", str(out), "--disable_tqdm", "true", *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_demo_script_writes_the_plot_and_table(tmp_path, alpaca_sample, base_cache):
    # The minimal base: the same script path, a barely trained model built in seconds.
    env = {"PRESET": "minimal", "BADAM_CACHE": str(base_cache)}
    run_demo(tmp_path, "--max_steps", "4", "--eval_steps", "2", "--logging_steps", "1", env=env)
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    table = (tmp_path / "summary.md").read_text()
    assert all(f"| {m} |" in table for m in ("badam", "lora", "adam")) and "optimizer states MB" in table
    reports = {m: json.loads((tmp_path / m / "run_report.json").read_text()) for m in ("badam", "lora", "adam")}
    assert {r["model"] for r in reports.values()} == {str(base_cache / "small-llama-minimal")}


@pytest.mark.slow
def test_full_demo_learns(tmp_path, alpaca_sample):
    run_demo(tmp_path)  # the whole demo (and the default base's first build): a few minutes
    reports = {m: json.loads((tmp_path / m / "run_report.json").read_text()) for m in ("badam", "lora", "adam")}
    for report in reports.values():  # every method's validation loss keeps falling after its first evaluation
        evals = [h["eval_loss"] for h in report["log_history"] if "eval_loss" in h]
        assert evals[-1] < evals[0]
    assert reports["adam"]["eval_loss"] < min(reports["badam"]["eval_loss"], reports["lora"]["eval_loss"])
    assert (
        reports["badam"]["memory"]["optimizer_states_bytes"] < reports["adam"]["memory"]["optimizer_states_bytes"] / 3
    )
