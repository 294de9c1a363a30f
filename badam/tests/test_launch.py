"""scripts/launch.sh on 2 CPU processes: every launcher starts the plain loop, resumes exactly, the
Trainer recipe runs on ZeRO-3, and reaches BAdam's FSDP2 support through accelerate."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from badam_launch import ENV, build_deepspeed_comm_op, free_port

pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install -r requirements.txt)")

ROOT = Path(__file__).parents[2]
TINY = str(ROOT / "llama-alpaca" / "configs" / "tiny_llama.json")
LOOP = ["--model", TINY, "--batch", "4", "--seq", "32", "--switch_every", "2", "--lr", "1e-3"]


def run_launch(engine: str, *args: str, launcher: str | None = "torchrun") -> subprocess.CompletedProcess:
    build_deepspeed_comm_op()
    env = {**ENV, "GPUS_PER_NODE": "2", "MASTER_PORT": str(free_port()), "PYTHON": sys.executable}
    if launcher is not None:
        env["LAUNCHER"] = launcher
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "launch.sh"), engine, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def launch(engine: str, *args: str, launcher: str = "torchrun") -> None:
    result = run_launch(engine, *args, launcher=launcher)
    assert result.returncode == 0, (
        f"launch.sh {engine} ({launcher}) failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )


def losses(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "loss.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "engine, launcher", [("loop-fsdp2", "torchrun"), ("loop-zero3", "deepspeed"), ("loop-ddp", "accelerate")]
)
@pytest.mark.distributed
def test_plain_loop_resumes_exactly_under_each_launcher(tmp_path, engine, launcher):
    launch(engine, *LOOP, "--steps", "6", "--output_dir", str(tmp_path / "straight"), launcher=launcher)
    launch(engine, *LOOP, "--steps", "3", "--output_dir", str(tmp_path / "resumed"), launcher=launcher)
    with open(tmp_path / "resumed" / "loss.jsonl", "a") as log:  # as if a run had died after step 4, unsaved
        log.write(json.dumps({"step": 4, "loss": 0.0, "block": -1}) + "\n")
    launch(
        engine, *LOOP, "--steps", "6", "--resume", "true", "--output_dir", str(tmp_path / "resumed"), launcher=launcher
    )
    straight, resumed = losses(tmp_path / "straight"), losses(tmp_path / "resumed")
    assert [entry["step"] for entry in resumed] == [1, 2, 3, 4, 5, 6]
    assert resumed == straight
    assert len({entry["block"] for entry in straight}) == 3, "6 steps with K = 2 cross two block switches"


def recipe(output: Path) -> list[str]:
    return [
        "--model_name_or_path",
        TINY,
        "--dataset",
        "demo",
        "--finetuning_type",
        "block",
        "--max_steps",
        "4",
        "--output_dir",
        str(output),
        "--use_cpu",
        "true",
        "--per_device_train_batch_size",
        "2",
        "--switch_block_every",
        "2",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--logging_steps",
        "1",
        "--gradient_checkpointing",
        "true",
    ]


@pytest.mark.distributed
def test_trainer_recipe_on_zero3(tmp_path):
    output = tmp_path / "sft"
    launch("zero3", *recipe(output))
    report = json.loads((output / "run_report.json").read_text())
    assert report["global_steps"] == 4
    # Counted from DeepSpeed's ds_numel: every weight is partitioned to nothing on the module itself.
    assert report["total_parameters"] > report["trainable_parameters"] > 0
    blocks = [
        h["badam_active_block"]
        for h in json.loads((output / "trainer_state.json").read_text())["log_history"]
        if "badam_active_block" in h
    ]
    assert len(blocks) == 4 and blocks[0] == blocks[1] != blocks[2] == blocks[3]


@pytest.mark.distributed
def test_trainer_recipe_on_fsdp2_reaches_badam_through_accelerate(tmp_path):
    # accelerate shards on GPUs only (tests/test_fsdp.py switches it on for CPU ranks). Here the
    # FSDP2 config, through launch.sh and alpaca_sft (--bf16 with mixed precision kept off), must
    # reach BAdam, which refuses to train the model unsharded rather than silently replicating it.
    result = run_launch("fsdp2", *recipe(tmp_path / "sft"), "--bf16", "true", launcher=None)
    assert result.returncode != 0
    assert "FSDP is configured, but the Trainer started training on a model that FSDP2 has not sharded" in result.stderr
    refused = run_launch("fsdp2", *recipe(tmp_path / "sft"), launcher="deepspeed")
    assert refused.returncode == 2 and "fsdp2 runs under accelerate" in refused.stderr


@pytest.mark.distributed
def test_plain_loop_checkpoints_on_sigterm_and_resumes_exactly(tmp_path):
    """torchrun forwards SIGTERM to both ranks: they finish the step, save step-N, exit 143; --resume continues."""
    import os
    import signal
    import time

    steps = ["--steps", "40", "--save_every", "0"]
    launch("loop-ddp", *LOOP, *steps, "--output_dir", str(tmp_path / "straight"))
    run = tmp_path / "resumed"
    env = {
        **ENV,
        "GPUS_PER_NODE": "2",
        "MASTER_PORT": str(free_port()),
        "PYTHON": sys.executable,
        "LAUNCHER": "torchrun",
    }
    job = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "launch.sh"), "loop-ddp", *LOOP, *steps, "--output_dir", str(run)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not ((run / "loss.jsonl").is_file() and len((run / "loss.jsonl").read_text().splitlines()) >= 2):
        assert job.poll() is None and time.monotonic() < deadline, "the run ended before it could be signalled"
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGTERM)
    _, stderr = job.communicate(timeout=300)
    stopped = int((run / "latest").read_text().removeprefix("step-"))
    assert 2 <= stopped < 40 and f"stopped: stopped by SIGTERM after step {stopped}" in stderr, stderr[-3000:]
    assert [e["step"] for e in losses(run)] == list(range(1, stopped + 1))
    launch("loop-ddp", *LOOP, *steps, "--resume", "true", "--output_dir", str(run))
    assert losses(run) == losses(tmp_path / "straight")


def test_plain_loop_errors_are_one_line(tmp_path):
    env = {
        **ENV,
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train_distributed.py"),
            "--engine",
            "ddp",
            "--model",
            str(tmp_path / "no-such-model"),
            "--output_dir",
            str(tmp_path / "out"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert run.returncode == 2 and len(lines) == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert lines[0].startswith(f"error: --model {tmp_path / 'no-such-model'}: no such model directory")
