"""The command line and the shipped configs: YAML plus flag overrides, the paper's protocol, the README's setting."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from alpaca_sft.args import parse_args

PROJECT = Path(__file__).resolve().parents[1]
PAPER_MD = PROJECT.parents[1] / "shared" / "paper.md"
PAPER = sorted(PROJECT.glob("configs/llama*_paper.yaml"))
README = sorted(PROJECT.glob("configs/llama*_readme.yaml"))


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


@pytest.fixture(scope="module")
def paper_md() -> str:
    if not PAPER_MD.is_file():
        pytest.skip(f"the paper's protocol not found at {PAPER_MD} (the repository's ../shared/paper.md)")
    return PAPER_MD.read_text()


def number(text: str, pattern: str) -> float:
    """The number a regex's group 1 captures in paper.md (so the tests fail if the protocol text changes)."""
    match = re.search(pattern, text)
    assert match, f"paper.md no longer says {pattern!r}"
    return float(match.group(1))


def load(path: Path):
    _, data, ft, args = parse_args([str(path), "--use_cpu", "true"])  # bf16 parses only on a GPU otherwise
    script = PROJECT / "scripts" / f"{path.stem}.sh"
    assert os.access(script, os.X_OK) and f"configs/{path.stem}.yaml" in script.read_text()
    assert (data.dataset, data.template, args.bf16, args.gradient_checkpointing) == (
        "alpaca_gpt4_en",
        "default",
        True,
        True,
    )
    return data, ft, args


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_configs_follow_the_papers_protocol(path, paper_md):
    data, ft, args = load(path)
    assert args.learning_rate == number(paper_md, r"Learning rate ([\d.e-]+) for every method")
    batch = number(paper_md, r"Batch size (\d+) with \d+ gradient-accumulation")
    accumulation = number(paper_md, r"Batch size \d+ with (\d+) gradient-accumulation")
    lomo = ft.finetuning_type == "lomo"  # LOMO cannot accumulate: the same batch, one micro-batch per step
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (batch, 1 if lomo else accumulation)
    if lomo:  # one logged point per 15 LOMO iterations, the paper's unit when curves are compared
        assert args.logging_steps == number(paper_md, r"(\d+) LOMO iterations are counted as one")
    if ft.finetuning_type == "lora":
        assert ft.lora_rank == number(paper_md, r"LoRA rank (\d+)") and ft.lora_target == "all-linear"
        assert ft.lora_alpha is None  # the paper gives none: 2 x rank, LLaMA-Factory's default
    if ft.finetuning_type == "block":
        n, d = 52002, 32  # Alpaca-GPT4's records; decoder layers of Llama 2-7B and Llama 3-8B
        k_floor = number(paper_md, r"K = max\(n / \(B D\), (\d+)\)")
        assert ft.switch_block_every == max(n // (batch * accumulation * d), k_floor) == 50
        assert ft.switch_mode == "random"
    assert (args.lr_scheduler_type.value, args.num_train_epochs) == ("cosine", 3)
    assert str(args.output_dir).endswith(path.stem.removesuffix("_paper").replace("_", "-"))


@pytest.mark.parametrize("path", README, ids=lambda p: p.stem)
def test_readme_configs_follow_the_official_readme(path, paper_md):
    data, ft, args = load(path)
    setting = paper_md[paper_md.index("The official README's sample command") :]
    assert args.per_device_train_batch_size == number(setting, r"per-device batch (\d+)")
    assert args.gradient_accumulation_steps == number(setting, r"accumulation (\d+)")
    assert args.learning_rate == number(setting, r"lr ([\d.e-]+) \(Llama 2-7B and Llama 3-8B\)")
    assert args.num_train_epochs == number(setting, r"(\d+) epochs")
    assert ft.switch_block_every == number(setting, r"K = (\d+)") and ft.switch_mode == "random"
    assert data.val_size == number(setting, r"val_size (\d+)")
    assert args.eval_steps == number(setting, r"eval every (\d+) steps")
    assert (ft.finetuning_type, args.lr_scheduler_type.value) == ("block", "cosine")


def test_one_config_per_run():
    models = ("llama2_7b", "llama3_8b")
    assert {p.stem for p in PAPER} == {
        f"{m}_{x}_paper" for m in models for x in ("badam", "lora", "adam", "lomo", "galore")
    }
    assert {p.stem for p in README} == {f"{m}_badam_readme" for m in models}


def test_mt_bench_table2_reads_the_paper_runs():
    """mt-bench's Table 2 config points at the paper configs' output dirs."""
    table2 = yaml.safe_load((PROJECT.parent / "mt-bench" / "configs" / "table2.yaml").read_text())
    outputs = {yaml.safe_load(p.read_text())["output_dir"] for p in PAPER}
    local = {run["path"] for run in table2["runs"] if run["path"].startswith("llama-alpaca/")}
    assert local and local <= outputs
