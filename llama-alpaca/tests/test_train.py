"""Training through the CLI entry point on a tiny Llama: every finetuning type learns, runs resume exactly,
the run report, loss plot and W&B offline run are written, and bad arguments are explained."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from alpaca_sft.train import train

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
    return ["--model_name_or_path", str(config), "--dataset", "demo", "--max_samples", "16", "--cutoff_len", "48",
            "--finetuning_type", finetuning_type, "--output_dir", str(out), "--max_steps", str(steps),
            "--per_device_train_batch_size", "4", "--learning_rate", str(LEARNING_RATES.get(finetuning_type, 1e-2)),
            "--lr_scheduler_type", "constant", "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none",
            "--disable_tqdm", "true", "--memory_sample_steps", "1", "--seed", "0", *EXTRA.get(finetuning_type, []), *more]


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


@pytest.mark.parametrize("finetuning_type", TYPES)
def test_every_finetuning_type_learns_real_alpaca(tiny_config, tmp_path, alpaca_sample, finetuning_type):
    report = train(flags(tiny_config, tmp_path, finetuning_type, 12, "--dataset", str(alpaca_sample), "--cutoff_len", "96"))
    losses = [round(h["loss"], 3) for h in report["log_history"] if "loss" in h]
    assert len(losses) == 12 and falls(report), losses
    assert report["memory"]["parameters_bytes"] > 0 and report["time"]["per_step_seconds"]["forward"] > 0


def test_block_on_the_real_alpaca_sample(tiny_config, tmp_path, alpaca_sample):
    report = train(flags(tiny_config, tmp_path, "block", 12, "--dataset", str(alpaca_sample), "--cutoff_len", "128",
                         "--max_samples", "8", "--val_size", "4", "--eval_strategy", "steps", "--eval_steps", "6",
                         "--plot_loss", "--bf16", "--use_cpu"))
    assert falls(report) and report["eval_loss"] is not None and report["dtype"] == "bfloat16"
    saved = json.loads((tmp_path / "run_report.json").read_text())
    assert saved["finetuning_type"] == "block" and saved["time"]["per_epoch_seconds"][0]["backward"] > 0
    assert set(saved["memory"]) >= {"parameters_bytes", "gradients_bytes", "optimizer_states_bytes", "peak_bytes"}
    # BAdam holds Adam states for one of the two layers at a time, in fp32 (bf16 model: with master copies).
    assert saved["memory"]["master_copies_bytes"] > 0
    assert (tmp_path / "training_loss.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("finetuning_type", ["block", "sparse", "lora", "bread_sgd", "block_adam_mini"])
def test_interrupted_run_resumes_exactly(tiny_config, tmp_path, finetuning_type):
    save = ["--save_strategy", "steps", "--save_steps", "4", "--lr_scheduler_type", "cosine"]
    train(flags(tiny_config, tmp_path / "straight", finetuning_type, 8, *save))
    train(flags(tiny_config, tmp_path / "resumed", finetuning_type, 8, *save))
    # Simulate a crash after step 4: drop what came later, then resume from the checkpoint.
    for later in ("checkpoint-8", "model.safetensors", "adapter_model.safetensors"):
        path = tmp_path / "resumed" / later
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    report = train(flags(tiny_config, tmp_path / "resumed", finetuning_type, 8, *save, "--resume_from_checkpoint", "last"))
    assert report["time"]["steps_timed"] == 4  # it did resume: only steps 5-8 ran
    weights = "adapter_model.safetensors" if finetuning_type == "lora" else "model.safetensors"
    straight, resumed = (load_file(tmp_path / d / weights) for d in ("straight", "resumed"))
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name


def test_wandb_offline_run_directory(tiny_config, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    (tmp_path / "wb").mkdir()
    train(flags(tiny_config, tmp_path / "out", "block", 3, "--report_to", "wandb", "--run_name", "offline-test"))
    runs = list((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


@pytest.mark.parametrize("more, message", [
    (["--finetuning_type", "dora"], "unknown finetuning_type 'dora': use one of block, full, lora"),
    (["--template", "vicuna"], "unknown template 'vicuna'"),
    (["--eval_strategy", "steps"], "evaluation needs a validation split, set --val_size"),
    (["--cutoff_len", "4"], "cutoff_len=4 is shorter than every prompt"),
    (["--dataset", "nope"], "unknown dataset 'nope'"),
    (["--bread_mode", "some"], "bread_mode must be all or partial"),
])
def test_bad_arguments_are_explained(tiny_config, tmp_path, more, message):
    with pytest.raises(ValueError, match=message):
        train(flags(tiny_config, tmp_path, "block", 2, *more))
    assert not (tmp_path / "run_report.json").exists()


@pytest.mark.parametrize("finetuning_type, package", [("lomo", "lomo-optim"), ("galore", "galore-torch")])
def test_missing_baseline_package_is_explained(tiny_config, tmp_path, monkeypatch, finetuning_type, package):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.endswith(("lomo_optim", "galore_torch")) else real(name, *a))
    with pytest.raises(ImportError, match=f"finetuning_type={finetuning_type} needs the {package} package: pip install {package}"):
        train(flags(tiny_config, tmp_path, finetuning_type, 2))


def test_cli_prints_the_error_and_exits(tiny_config, tmp_path, monkeypatch):
    from alpaca_sft.train import main

    monkeypatch.setattr("sys.argv", ["train", *flags(tiny_config, tmp_path, "block", 2, "--template", "vicuna")])
    with pytest.raises(SystemExit, match="error: unknown template 'vicuna'"):
        main()


@pytest.mark.parametrize("finetuning_type", ["sparse", "adam_mini", "bread_sgd"])
@pytest.mark.parametrize("engine", ["--deepspeed", "FSDP"])
def test_types_the_trainer_would_replace_are_refused_on_sharding_engines(finetuning_type, engine):
    from types import SimpleNamespace

    from alpaca_sft.args import FinetuningArguments
    from alpaca_sft.methods import prepare

    args = SimpleNamespace(deepspeed="ds_z3_config.json" if engine == "--deepspeed" else None,
                           fsdp="full_shard" if engine == "FSDP" else "")
    with pytest.raises(ValueError, match=f"{finetuning_type} does not run under {engine}"):
        prepare(None, FinetuningArguments(finetuning_type=finetuning_type), args)


def test_block_under_fsdp2_keeps_the_bf16_model_and_binds_after_sharding(tmp_path, monkeypatch):
    import torch
    from alpaca_sft.args import FinetuningArguments
    from alpaca_sft.methods import prepare
    from badam_tiny import tiny_llama
    from transformers import TrainingArguments

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
    from alpaca_sft.train import _trainable
    from badam_launch import free_port
    from torch.distributed.fsdp import fully_shard

    dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"tcp://127.0.0.1:{free_port()}")
    try:
        fully_shard(model)
        assert optimizer.bind() is not None
        layers = sum(p.numel() for n, p in model.named_parameters() if ".layers." in n)
        assert _trainable(optimizer) == layers
    finally:
        dist.destroy_process_group()
