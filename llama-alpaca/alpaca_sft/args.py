"""The command line: typed dataclass arguments, from flags, a YAML file, or a YAML file plus flags.

    python -m alpaca_sft.train --model_name_or_path meta-llama/Llama-2-7b-hf --dataset alpaca_gpt4_en ...
    python -m alpaca_sft.train configs/llama2_7b_badam_paper.yaml [--learning_rate 1e-6 ...]   # flags override

Besides these, every `transformers.TrainingArguments` flag is accepted (learning rate, scheduler,
epochs, batch size, accumulation, bf16, gradient checkpointing, eval/save steps, report_to, ...).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from transformers import HfArgumentParser, TrainingArguments

from .templates import TEMPLATES, TRUNCATIONS

FINETUNING_TYPES = (
    "block",
    "full",
    "lora",
    "sparse",
    "bread_lora",
    "bread_sgd",
    "adam_mini",
    "block_adam_mini",
    "lomo",
    "galore",
)
# Types whose optimizer keeps its own fp32 copy (or needs none): with --bf16 the model is loaded in
# bf16. `full` and `adam_mini` train the fp32 model under bf16 autocast (mixed precision).
PURE_BF16_TYPES = ("block", "lora", "sparse", "bread_lora", "bread_sgd", "block_adam_mini", "lomo", "galore")


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "hub name, local model dir, or a config .json built offline"})


@dataclass
class DataArguments:
    dataset: str = field(
        default="demo", metadata={"help": "registered name, .json/.jsonl file or hub id; comma-separated"}
    )
    template: str = field(default="default", metadata={"help": f"chat template: {', '.join(TEMPLATES)}"})
    cutoff_len: int = field(default=1024, metadata={"help": "max tokens per example (prompt + answer)"})
    truncation: str = field(
        default="tail",
        metadata={
            "help": "tail: keep the first cutoff_len tokens; proportional: LLaMA-Factory 0.9.5's prompt/answer split"
        },
    )
    val_size: float = field(default=0.0, metadata={"help": "validation records: a fraction if < 1, else a count"})
    max_samples: int | None = field(default=None, metadata={"help": "use only the first N records"})


@dataclass
class FinetuningArguments:
    finetuning_type: str = field(default="block", metadata={"help": f"one of {', '.join(FINETUNING_TYPES)}"})
    switch_block_every: int = field(default=100, metadata={"help": "BAdam's K: steps per block (also sparse's switch)"})
    switch_mode: str = field(default="random", metadata={"help": "block order: random, ascending, descending, fixed"})
    start_block: int | None = field(default=None, metadata={"help": "first active block"})
    include_embedding: bool = field(default=False, metadata={"help": "BAdam/sparse: the embedding trains too"})
    include_lm_head: bool = field(default=False, metadata={"help": "BAdam: the LM head is a block too"})
    update_in_backward: bool | None = field(
        default=None,
        metadata={
            "help": "BAdam: step the active block inside backward (badam.in_backward); default: on where nothing "
            "needs the whole gradient first (one process, max_grad_norm 0, no gradient accumulation)"
        },
    )
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank (lora, bread_lora)"})
    lora_alpha: int | None = field(default=None, metadata={"help": "LoRA alpha (default 2 * rank)"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    lora_target: str = field(
        default="all-linear", metadata={"help": "LoRA modules: all-linear or comma-separated names"}
    )
    update_ratio: float = field(default=0.1, metadata={"help": "sparse: share of each tensor's entries trained"})
    mask_mode: str = field(default="adjacent", metadata={"help": "sparse: adjacent or scatter"})
    bread_mode: str = field(
        default="partial", metadata={"help": "bread_*: which inactive blocks are corrected, all or partial"}
    )
    sgd_lr_scaling: float = field(default=1.0, metadata={"help": "bread_sgd: SGD lr as a multiple of the lr"})
    galore_rank: int = field(default=128, metadata={"help": "galore: projection rank"})
    galore_update_interval: int = field(default=200, metadata={"help": "galore: steps between projection updates"})
    galore_scale: float = field(default=0.25, metadata={"help": "galore: update scale"})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "replace the run already in --output_dir (its checkpoints are deleted)"}
    )
    plot_loss: bool = field(default=False, metadata={"help": "write training_loss.png (train and eval loss)"})
    memory_sample_steps: int = field(default=2, metadata={"help": "CPU: steps whose peak memory is traced (slow)"})


def parse_args(
    argv: list[str] | None = None,
) -> tuple[ModelArguments, DataArguments, FinetuningArguments, TrainingArguments]:
    """Parse flags; a leading .yaml/.yml argument supplies values that later flags override."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith((".yaml", ".yml")):
        argv = yaml_to_flags(argv[0]) + argv[1:]
    parser = HfArgumentParser((ModelArguments, DataArguments, FinetuningArguments, TrainingArguments))
    model_args, data_args, ft_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    check(data_args, ft_args)
    return model_args, data_args, ft_args, training_args


def read_yaml(path: str) -> dict:
    if not Path(path).is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else path
        raise ValueError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start})") from exc
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a mapping of argument names to values")
    return config


def yaml_to_flags(path: str) -> list[str]:
    return to_flags(read_yaml(path))


def to_flags(config: dict) -> list[str]:
    """{"learning_rate": 1e-5, "report_to": ["wandb"]} -> ["--learning_rate", "1e-05", "--report_to", "wandb"]."""
    flags = []
    for key, value in config.items():
        if isinstance(value, list):
            flags += [f"--{key}", *map(str, value)]
        elif isinstance(value, dict):
            flags += [f"--{key}", json.dumps(value)]
        elif value is not None:
            flags += [f"--{key}", str(value)]
    return flags


def check(data_args: DataArguments, ft_args: FinetuningArguments) -> None:
    if ft_args.finetuning_type not in FINETUNING_TYPES:
        raise ValueError(
            f"unknown finetuning_type {ft_args.finetuning_type!r}: use one of {', '.join(FINETUNING_TYPES)}"
        )
    if data_args.template not in TEMPLATES:
        raise ValueError(f"unknown template {data_args.template!r}: use one of {', '.join(TEMPLATES)}")
    if data_args.truncation not in TRUNCATIONS:
        raise ValueError(f"unknown truncation {data_args.truncation!r}: use one of {', '.join(TRUNCATIONS)}")
    if data_args.cutoff_len < 2:
        raise ValueError(f"cutoff_len must be at least 2, got {data_args.cutoff_len}")
    if data_args.max_samples is not None and data_args.max_samples < 1:
        raise ValueError(f"max_samples must be positive, got {data_args.max_samples}")
    if ft_args.bread_mode not in ("all", "partial"):
        raise ValueError(f"bread_mode must be all or partial, got {ft_args.bread_mode!r}")
