"""Training through the CLI entry point on a tiny Llama: every finetuning type learns, runs resume exactly,
the run report, loss plot and W&B offline run are written, and bad arguments are explained."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from alpaca_sft.train import train

PROJECT = Path(__file__).resolve().parents[1]

# lr per type: each is the optimizer's own scale (LOMO is plain SGD, the block methods train one layer).
LEARNING_RATES = {"lomo": 0.3, "bread_sgd": 5e-3}
EXTRA = {
    "block": ["--switch_block_every", "2"],
    "sparse": ["--update_ratio", "0.5", "--switch_block_every", "4"],
    "bread_lora": ["--switch_block_every", "2", "--include_lm_head"],
    "bread_sgd": ["--switch_block_every", "2"],
    "block_adam_mini": ["--switch_block_every", "2", "--include_lm_head"],
    "galore": ["--galore_rank", "8", "--galore_update_interval", "4"],
}


def flags(config, out, finetuning_type="block", steps=12, *more):
    return [
        "--model_name_or_path",
        str(config),
        "--dataset",
        "demo",
        "--max_samples",
        "16",
        "--cutoff_len",
        "48",
        "--finetuning_type",
        finetuning_type,
        "--output_dir",
        str(out),
        "--max_steps",
        str(steps),
        "--per_device_train_batch_size",
        "4",
        "--learning_rate",
        str(LEARNING_RATES.get(finetuning_type, 1e-2)),
        "--lr_scheduler_type",
        "constant",
        "--logging_steps",
        "1",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
        "--memory_sample_steps",
        "1",
        "--seed",
        "0",
        *EXTRA.get(finetuning_type, []),
        *more,
    ]


def falls(report) -> bool:
    losses = [h["loss"] for h in report["log_history"] if "loss" in h]
    return sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.1


TYPES = ["block", "full", "lora", "sparse", "bread_lora", "bread_sgd", "adam_mini", "block_adam_mini", "lomo", "galore"]


@pytest.mark.parametrize("finetuning_type", TYPES)
def test_every_finetuning_type_learns(tiny_config, tmp_path, finetuning_type):
    report = train(flags(tiny_config, tmp_path, finetuning_type))
    losses = [round(h["loss"], 3) for h in report["log_history"] if "loss" in h]
    assert len(losses) == 12 and falls(report), losses
    assert report["memory"]["parameters_bytes"] > 0 and report["time"]["per_step_seconds"]["forward"] > 0
    if finetuning_type in ("block", "sparse"):  # max_grad_norm clips (and logs) what trains, ratio mode too
        assert all(h["grad_norm"] > 0 for h in report["log_history"] if "loss" in h)


@pytest.mark.parametrize("finetuning_type", TYPES)
def test_every_finetuning_type_learns_real_alpaca(tiny_config, tmp_path, alpaca_sample, finetuning_type):
    report = train(
        flags(tiny_config, tmp_path, finetuning_type, 12, "--dataset", str(alpaca_sample), "--cutoff_len", "96")
    )
    losses = [round(h["loss"], 3) for h in report["log_history"] if "loss" in h]
    assert len(losses) == 12 and falls(report), losses
    assert report["memory"]["parameters_bytes"] > 0 and report["time"]["per_step_seconds"]["forward"] > 0


def test_block_on_the_real_alpaca_sample(tiny_config, tmp_path, alpaca_sample):
    report = train(
        flags(
            tiny_config,
            tmp_path,
            "block",
            12,
            "--dataset",
            str(alpaca_sample),
            "--cutoff_len",
            "128",
            "--max_samples",
            "8",
            "--val_size",
            "4",
            "--eval_strategy",
            "steps",
            "--eval_steps",
            "6",
            "--plot_loss",
            "--bf16",
            "--use_cpu",
        )
    )
    assert falls(report) and report["eval_loss"] is not None and report["dtype"] == "bfloat16"
    saved = json.loads((tmp_path / "run_report.json").read_text())
    assert saved["finetuning_type"] == "block" and saved["time"]["per_epoch_seconds"][0]["backward"] > 0
    assert set(saved["memory"]) >= {"parameters_bytes", "gradients_bytes", "optimizer_states_bytes", "peak_bytes"}
    # BAdam holds Adam states for one of the two layers at a time, in fp32 (bf16 model: with master copies).
    assert saved["memory"]["master_copies_bytes"] > 0
    assert (tmp_path / "training_loss.png").read_bytes()[:4] == b"\x89PNG"


SAVE_EVERY_4 = ["--save_strategy", "steps", "--save_steps", "4", "--lr_scheduler_type", "cosine"]


def interrupted(how: str, step: int, argv: list[str]) -> subprocess.CompletedProcess:
    """Run alpaca_sft.train in a subprocess that interrupted_run.py stops at `step` (see there)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT), str(Path(__file__).parent)])}
    return subprocess.run(
        [sys.executable, str(Path(__file__).with_name("interrupted_run.py")), how, str(step), *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def losses_by_step(report) -> list[tuple[int, float]]:
    return [(h["step"], h["loss"]) for h in report["log_history"] if "loss" in h]


def assert_same_weights(straight_dir, resumed_dir, finetuning_type):
    weights = "adapter_model.safetensors" if finetuning_type == "lora" else "model.safetensors"
    straight, resumed = load_file(straight_dir / weights), load_file(resumed_dir / weights)
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name


@pytest.mark.parametrize("finetuning_type", TYPES)
def test_run_killed_mid_save_resumes_exactly(tiny_config, tmp_path, finetuning_type):
    straight = train(flags(tiny_config, tmp_path / "straight", finetuning_type, 8, *SAVE_EVERY_4))
    run = tmp_path / "resumed"
    killed = interrupted("kill-during-save", 8, flags(tiny_config, run, finetuning_type, 8, *SAVE_EVERY_4))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    # The save of checkpoint-8 was cut short: it never became a checkpoint-N folder.
    assert (
        (run / "checkpoint-4").is_dir() and not (run / "checkpoint-8").exists() and (run / "tmp-checkpoint-8").is_dir()
    )
    resumed = train(flags(tiny_config, run, finetuning_type, 8, *SAVE_EVERY_4, "--resume_from_checkpoint", "last"))
    assert resumed["time"]["steps_timed"] == 4  # it did resume: only steps 5-8 ran
    assert losses_by_step(resumed) == losses_by_step(straight)
    assert_same_weights(tmp_path / "straight", run, finetuning_type)
    assert not (run / "tmp-checkpoint-8").exists()


def test_bread_lora_saves_the_base_weights_it_trains(tiny_config, tmp_path):
    from transformers import AutoModelForCausalLM

    from alpaca_sft.model import load_model_and_tokenizer

    train(flags(tiny_config, tmp_path, "bread_lora", 4, *SAVE_EVERY_4))
    pretrained, _ = load_model_and_tokenizer(str(tiny_config), torch.float32, seed=0)
    checkpoint = load_file(tmp_path / "checkpoint-4" / "model.safetensors")
    base = {k.replace(".base_layer", ""): v for k, v in checkpoint.items() if "lora_" not in k}
    changed = [k for k, v in pretrained.state_dict().items() if not torch.equal(v, base[k])]
    assert any(".layers." in k for k in changed) and "lm_head.weight" in changed
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in checkpoint.items())
    # The final model has the corrections folded in: a plain model that loads without PEFT.
    final = load_file(tmp_path / "model.safetensors")
    assert not [k for k in final if "lora_" in k or "base_layer" in k]
    AutoModelForCausalLM.from_pretrained(tmp_path)


def test_sigterm_writes_a_checkpoint_that_resumes_exactly(tiny_config, tmp_path):
    straight = train(flags(tiny_config, tmp_path / "straight", "block", 8))
    run = tmp_path / "resumed"
    stopped = interrupted("sigterm-during", 3, flags(tiny_config, run, "block", 8))
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    last_line = stopped.stderr.strip().splitlines()[-1]
    assert (
        last_line.startswith("stopped: stopped by SIGTERM after step 3")
        and "--resume_from_checkpoint last" in last_line
    )
    assert (run / "checkpoint-3").is_dir() and not (run / "model.safetensors").exists()
    resumed = train(flags(tiny_config, run, "block", 8, "--resume_from_checkpoint", "last"))
    assert resumed["time"]["steps_timed"] == 5
    assert losses_by_step(resumed) == losses_by_step(straight)
    assert_same_weights(tmp_path / "straight", run, "block")


def test_last_skips_incomplete_checkpoints_and_says_why(tiny_config, tmp_path, caplog):
    straight = train(flags(tiny_config, tmp_path / "straight", "block", 8, *SAVE_EVERY_4))
    run = tmp_path / "resumed"
    train(flags(tiny_config, run, "block", 8, *SAVE_EVERY_4))
    for later in ("model.safetensors", "trainer_state.json"):
        (run / later).unlink()
    # Checkpoints cut short by another tool, as a kill leaves them: a truncated file, an empty state.
    weights = run / "checkpoint-8" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    (run / "checkpoint-12").mkdir()
    (run / "checkpoint-12" / "trainer_state.json").write_text("")
    with caplog.at_level("WARNING"):
        resumed = train(flags(tiny_config, run, "block", 8, *SAVE_EVERY_4, "--resume_from_checkpoint", "last"))
    assert "checkpoint-12: trainer_state.json is empty or not valid JSON" in caplog.text
    assert "checkpoint-8: model.safetensors is truncated" in caplog.text
    assert losses_by_step(resumed) == losses_by_step(straight)


def test_an_earlier_run_in_the_output_dir_is_never_overwritten_silently(tiny_config, tmp_path):
    train(flags(tiny_config, tmp_path, "block", 4, *SAVE_EVERY_4))
    before = (tmp_path / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="already holds a run .*pass --overwrite_output_dir to replace it"):
        train(flags(tiny_config, tmp_path, "lora", 4))
    assert (tmp_path / "model.safetensors").read_bytes() == before
    with pytest.raises(
        ValueError, match="written by a different run: finetuning_type: 'block' in the checkpoint, 'lora' now"
    ):
        train(flags(tiny_config, tmp_path, "lora", 8, "--resume_from_checkpoint", "last"))
    with pytest.raises(ValueError, match="switch_block_every: 2 in the checkpoint, 3 now"):
        train(flags(tiny_config, tmp_path, "block", 8, "--resume_from_checkpoint", "last", "--switch_block_every", "3"))
    train(flags(tiny_config, tmp_path, "full", 2, "--overwrite_output_dir"))
    assert not (tmp_path / "checkpoint-4").exists()  # `last` cannot pick the earlier run any more


def test_wandb_offline_run_directory(tiny_config, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    (tmp_path / "wb").mkdir()
    train(flags(tiny_config, tmp_path / "out", "block", 3, "--report_to", "wandb", "--run_name", "offline-test"))
    runs = list((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


@pytest.mark.parametrize(
    "more, message",
    [
        (["--finetuning_type", "dora"], "unknown finetuning_type 'dora': use one of block, full, lora"),
        (["--template", "vicuna"], "unknown template 'vicuna'"),
        (["--eval_strategy", "steps"], "evaluation needs a validation split, set --val_size"),
        (["--cutoff_len", "4"], "cutoff_len=4 is shorter than every prompt"),
        (["--dataset", "nope"], "unknown dataset 'nope'"),
        (["--bread_mode", "some"], "bread_mode must be all or partial"),
    ],
)
def test_bad_arguments_are_explained(tiny_config, tmp_path, more, message):
    with pytest.raises(ValueError, match=message):
        train(flags(tiny_config, tmp_path, "block", 2, *more))
    assert not (tmp_path / "run_report.json").exists()


@pytest.mark.parametrize("finetuning_type, package", [("lomo", "lomo-optim"), ("galore", "galore-torch")])
def test_missing_baseline_package_is_explained(tiny_config, tmp_path, monkeypatch, finetuning_type, package):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.endswith(("lomo_optim", "galore_torch")) else real(name, *a),
    )
    with pytest.raises(
        ImportError, match=f"finetuning_type={finetuning_type} needs the {package} package: pip install {package}"
    ):
        train(flags(tiny_config, tmp_path, finetuning_type, 2))


def cli_error(monkeypatch, capsys, argv: list[str]) -> str:
    """Run the CLI entry point; assert it exits 2 with one line and no traceback; return that line."""
    from alpaca_sft.train import main

    monkeypatch.delenv("BADAM_DEBUG", raising=False)
    monkeypatch.setattr("sys.argv", ["train", *argv])
    with pytest.raises(SystemExit) as exit:
        main()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert exit.value.code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_cli_prints_the_error_and_exits(tiny_config, tmp_path, monkeypatch, capsys):
    line = cli_error(monkeypatch, capsys, flags(tiny_config, tmp_path, "block", 2, "--template", "vicuna"))
    assert line.startswith("error: unknown template 'vicuna'")
    monkeypatch.setenv("BADAM_DEBUG", "1")
    monkeypatch.setattr("sys.argv", ["train", *flags(tiny_config, tmp_path, "block", 2, "--template", "vicuna")])
    from alpaca_sft.train import main

    with pytest.raises(ValueError, match="unknown template"):
        main()


def test_cli_errors_name_the_file_or_parameter(tiny_config, tmp_path, monkeypatch, capsys):
    def error(*more, model=str(tiny_config)):
        argv = flags(tiny_config, tmp_path / "out", "block", 2, *more)
        argv[argv.index("--model_name_or_path") + 1] = model
        return cli_error(monkeypatch, capsys, argv)

    assert "model directory /no/such/model does not exist" in error(model="/no/such/model")
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: without its constant the lookup retries for a minute.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert "model 'someone/no-such-model' was not found locally and could not be downloaded" in error(
        model="someone/no-such-model"
    )
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('[{"instruction": "caf\xe9", "output": "x"}]'.encode("latin-1"))
    assert f"{latin1} is not UTF-8 text" in error("--dataset", str(latin1))
    text = tmp_path / "data.txt"
    text.write_text("hello")
    assert f"{text}: expected a .json or .jsonl file in Alpaca format, not .txt" in error("--dataset", str(text))
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text('{"global_step": 4}')
    (tmp_path / "checkpoint-4" / "optimizer.pt").write_bytes(b"PK\x03\x04 cut short")
    assert "optimizer.pt is truncated" in error("--resume_from_checkpoint", str(tmp_path / "checkpoint-4"))


def test_yaml_errors_name_the_file_and_line(tmp_path, monkeypatch, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("model_name_or_path: x\nlearning_rate: [1e-5\n")
    assert f"error: {config}, line 3: not valid YAML" in cli_error(monkeypatch, capsys, [str(config)])


@pytest.mark.parametrize("finetuning_type", ["sparse", "adam_mini", "bread_sgd"])
@pytest.mark.parametrize("engine", ["--deepspeed", "FSDP"])
def test_types_the_trainer_would_replace_are_refused_on_sharding_engines(finetuning_type, engine):
    from types import SimpleNamespace

    from alpaca_sft.args import FinetuningArguments
    from alpaca_sft.methods import prepare

    args = SimpleNamespace(
        deepspeed="ds_z3_config.json" if engine == "--deepspeed" else None,
        fsdp="full_shard" if engine == "FSDP" else "",
    )
    with pytest.raises(ValueError, match=f"{finetuning_type} does not run under {engine}"):
        prepare(None, FinetuningArguments(finetuning_type=finetuning_type), args)


def test_block_under_fsdp2_keeps_the_bf16_model_and_binds_after_sharding(tmp_path, monkeypatch):
    import torch
    from badam_tiny import tiny_llama
    from transformers import TrainingArguments

    from alpaca_sft.args import FinetuningArguments
    from alpaca_sft.methods import prepare
    from badam.fsdp import FSDPBlockOptimizer

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    args = TrainingArguments(output_dir=str(tmp_path), bf16=True, use_cpu=True, report_to=[])
    model = tiny_llama(dtype=torch.bfloat16)
    _, kwargs = prepare(model, FinetuningArguments(finetuning_type="block"), args)
    optimizer = kwargs["optimizer_cls_and_kwargs"][0]()(model)
    assert isinstance(optimizer, FSDPBlockOptimizer) and optimizer.bind() is None  # not sharded yet
    assert not args.bf16, "accelerate's mixed precision would upcast the trainable weights to fp32"

    # Once sharded, the report counts every block as trainable, not only the active one.
    import torch.distributed as dist
    from badam_launch import free_port
    from torch.distributed.fsdp import fully_shard

    from alpaca_sft.train import _trainable

    dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"tcp://127.0.0.1:{free_port()}")
    try:
        fully_shard(model)
        assert optimizer.bind() is not None
        layers = sum(p.numel() for n, p in model.named_parameters() if ".layers." in n)
        assert _trainable(optimizer) == layers
    finally:
        dist.destroy_process_group()


def test_block_in_backward_equals_the_step_and_resumes_exactly(tiny_config, tmp_path):
    # adamw_torch: the fp32 tiny model's step() then takes torch's single-tensor AdamW, as the hooks do,
    # bit for bit (the default fused kernel agrees with it to about 1e-7 a step).
    no_clipping = ["--max_grad_norm", "0", "--optim", "adamw_torch", *SAVE_EVERY_4]
    stepped = train(flags(tiny_config, tmp_path / "step", "block", 8, *no_clipping, "--update_in_backward", "false"))
    straight = train(flags(tiny_config, tmp_path / "backward", "block", 8, *no_clipping))  # on by default here
    assert losses_by_step(straight) == losses_by_step(stepped)
    assert all(h["grad_norm"] > 0 for h in straight["log_history"] if "loss" in h), "the hooks' norm is logged"
    resumed_dir = tmp_path / "resumed"
    killed = interrupted("kill-during-save", 8, flags(tiny_config, resumed_dir, "block", 8, *no_clipping))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = train(flags(tiny_config, resumed_dir, "block", 8, *no_clipping, "--resume_from_checkpoint", "last"))
    assert resumed["time"]["steps_timed"] == 4  # it resumed from checkpoint-4
    assert losses_by_step(resumed) == losses_by_step(straight)
    assert_same_weights(tmp_path / "backward", resumed_dir, "block")
    with pytest.raises(ValueError, match="before the Trainer could clip"):
        train(flags(tiny_config, tmp_path / "clipped", "block", 2, "--update_in_backward", "true"))
