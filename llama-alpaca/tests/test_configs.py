"""The command line and the shipped configs: YAML plus flag overrides, the paper's hyperparameters, the scripts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from alpaca_sft.args import parse_args

PROJECT = Path(__file__).resolve().parents[1]
PAPER = sorted(PROJECT.glob("configs/llama*_*.yaml"))


def test_yaml_then_flags(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "model_name_or_path: m\nfinetuning_type: lora\nlearning_rate: 1.0e-5\noutput_dir: o\n"
        "report_to: [none]\ngradient_checkpointing: true\n"
    )
    model, data, ft, args = parse_args([str(config), "--learning_rate", "3e-4", "--cutoff_len", "64"])
    assert (model.model_name_or_path, ft.finetuning_type, args.learning_rate, data.cutoff_len) == (
        "m",
        "lora",
        3e-4,
        64,
    )
    assert args.gradient_checkpointing is True and data.template == "default"


def test_unknown_yaml_key_is_an_error(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model_name_or_path: m\nswitch_every: 5\n")
    with pytest.raises((SystemExit, ValueError)):
        parse_args([str(config)])


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_configs(path):
    _, data, ft, args = parse_args([str(path), "--use_cpu", "true"])  # bf16 parses only on a GPU otherwise
    llama3 = "llama3" in path.stem
    assert args.learning_rate == (1e-6 if llama3 else 1e-5)
    assert (
        args.lr_scheduler_type.value,
        args.num_train_epochs,
        args.per_device_train_batch_size,
        args.gradient_accumulation_steps,
        args.bf16,
        args.gradient_checkpointing,
    ) == ("cosine", 3, 2, 8, True, True)
    assert (data.dataset, data.template) == ("alpaca_gpt4_en", "default")
    if ft.finetuning_type == "block":
        assert (ft.switch_block_every, ft.switch_mode) == (100, "random")
    script = PROJECT / "scripts" / f"{path.stem}.sh"
    assert os.access(script, os.X_OK) and f"configs/{path.stem}.yaml" in script.read_text()


def test_one_config_per_paper_run():
    assert {p.stem for p in PAPER} == {
        f"{m}_{x}" for m in ("llama2_7b", "llama3_8b") for x in ("badam", "lora", "adam", "lomo", "galore")
    }
