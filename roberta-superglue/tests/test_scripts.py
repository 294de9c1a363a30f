"""The shell scripts end to end: run_all.sh (through run_task.sh and table.sh) with a tiny RoBERTa."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def test_run_all_trains_tabulates_and_reports_failures(tiny_model, data_dir, tmp_path):
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "DATA_DIR": str(data_dir),
        "OUT_DIR": str(out),
        "TASKS": "copa boolq cb",
        "OPTIMIZERS": "block",
        "OMP_NUM_THREADS": "1",
    }  # a tiny model: no extra threads
    smoke = [
        "--model_name",
        str(tiny_model),
        "--max_steps",
        "3",
        "--batch_size",
        "4",
        "--max_train_examples",
        "12",
        "--max_eval_examples",
        "8",
    ]
    result = subprocess.run(
        ["bash", str(SCRIPTS / "run_all.sh"), *smoke], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "unknown task 'cb'. The paper's SuperGLUE tasks are: boolq" in result.stderr
    assert "[run_all] failed: cb/block" in result.stderr
    results = json.loads((out / "copa-block-seed0" / "results.json").read_text())
    # The config's settings, the flags' overrides.
    assert results["config"]["eval_steps"] == 100 and results["config"]["switch_mode"] == "ascending"
    assert results["global_step"] == 3 and results["examples"]["selection"] == 8
    # The shared data's layout works as it is: BoolQ trains on FewGLUE's train32.jsonl, saying so.
    boolq = json.loads((out / "boolq-block-seed0" / "results.json").read_text())
    assert boolq["sources"]["train"].endswith("BoolQ/train32.jsonl")
    assert f"boolq: no train.jsonl in {data_dir / 'BoolQ'}; training on" in result.stdout
    table = (out / "table.md").read_text().splitlines()
    row = f"| BAdam | {boolq['test']['score']:.3f} | 0.85 | {results['test']['score']:.3f} | 0.69 |"
    assert table[4].startswith(row)

    usage = subprocess.run(["bash", str(SCRIPTS / "run_task.sh")], env=env, capture_output=True, text=True)
    assert usage.returncode == 2 and "Usage: run_task.sh TASK OPTIMIZER" in usage.stdout


def test_run_all_stops_when_a_run_is_stopped_by_a_signal(tmp_path):
    python = tmp_path / "python"  # a run that was sent SIGTERM: it checkpointed and exited 143
    python.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "calls"}\nexit 143\n')
    python.chmod(0o755)
    env = {
        **os.environ,
        "PYTHON": str(python),
        "OUT_DIR": str(tmp_path / "out"),
        "TASKS": "rte copa",
        "OPTIMIZERS": "block",
    }
    result = subprocess.run(["bash", str(SCRIPTS / "run_all.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 143
    assert "[run_all] stopped during rte/block: rerun to resume" in result.stderr
    assert len((tmp_path / "calls").read_text().splitlines()) == 1  # neither copa nor the table ran
