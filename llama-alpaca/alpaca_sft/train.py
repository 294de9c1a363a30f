"""Supervised fine-tuning on Alpaca-format data with BAdam or a baseline: the training entry point.

    PYTHONPATH=llama-alpaca python -m alpaca_sft.train llama-alpaca/configs/llama2_7b_badam_paper.yaml
    PYTHONPATH=llama-alpaca python -m alpaca_sft.train --model_name_or_path meta-llama/Llama-2-7b-hf \
        --dataset alpaca_gpt4_en --finetuning_type block --output_dir outputs/run ...   # --help for all

Writes to --output_dir: checkpoints (checkpoint-N/, published whole or not at all, resumable with
--resume_from_checkpoint, "last" for the newest complete one), the final model (or LoRA adapter),
run_report.json (time and memory split, losses), and with --plot_loss training_loss.png. A used
--output_dir is refused unless the run resumes or --overwrite_output_dir is given; SIGTERM/Ctrl-C
checkpoints and exits 128 + signal; expected errors are one line and exit 2 (alpaca_sft.cli). --report_to wandb logs to W&B (WANDB_MODE=offline works
without network or account; `wandb sync` the run directory later).
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from transformers import set_seed

from badam.atomic import atomic_write_json
from badam.hf_checkpoint import resolve_resume

from .args import PURE_BF16_TYPES, parse_args
from .cli import run_cli
from .data import Collator, load_splits
from .memory import MemoryCallback
from .methods import merge_lora, prepare
from .model import load_model_and_tokenizer
from .report import plot_losses
from .run_dir import RunIdentity, check_resumable, prepare_output_dir, run_identity
from .timing import SFTTrainer

logger = logging.getLogger("alpaca_sft")


def train(argv: list[str] | None = None) -> dict[str, Any]:
    """Run one training job; returns the run report (also written to output_dir/run_report.json)."""
    model_args, data_args, ft, args = parse_args(argv)
    if args.eval_strategy != "no" and not data_args.val_size:
        raise ValueError(
            f"eval_strategy={args.eval_strategy.value}: evaluation needs a validation split, set --val_size"
        )
    # From here on the resume target is a checked folder: "last" is the newest complete checkpoint.
    args.resume_from_checkpoint = resolve_resume(args.output_dir, args.resume_from_checkpoint)
    prepare_output_dir(Path(args.output_dir), args.resume_from_checkpoint is not None, ft.overwrite_output_dir)
    os.environ.setdefault("WANDB_PROJECT", "badam-alpaca")
    set_seed(args.seed)
    if args.deepspeed:
        # ZeRO-3 partitions the weights while the model is built (zero.Init), over DeepSpeed's process
        # group; accelerate sets that group up on GPUs only, so CPU runs need it here (a no-op otherwise).
        import deepspeed

        deepspeed.init_distributed()
    dtype = torch.bfloat16 if args.bf16 and ft.finetuning_type in PURE_BF16_TYPES else torch.float32
    model, tokenizer = load_model_and_tokenizer(model_args.model_name_or_path, dtype, args.seed)
    train_set, val_set = load_splits(
        data_args.dataset,
        tokenizer,
        data_args.template,
        data_args.cutoff_len,
        data_args.val_size,
        data_args.max_samples,
        args.seed,
        data_args.truncation,
    )
    logger.info("%d training and %d validation examples", len(train_set), len(val_set))
    model, kwargs = prepare(model, ft, args)
    memory = MemoryCallback(ft.memory_sample_steps)
    identity = run_identity(model_args.model_name_or_path, ft, model, (kwargs.get("optimizers") or [None])[0])
    if args.resume_from_checkpoint:
        check_resumable(args.resume_from_checkpoint, identity)
    kwargs["callbacks"] = [*kwargs.get("callbacks", []), memory, RunIdentity(identity)]
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=val_set or None,
        data_collator=Collator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        resume_hint="the same command and --resume_from_checkpoint last",
        **kwargs,
    )
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    seconds = time.perf_counter() - start
    if ft.finetuning_type == "bread_lora":
        merge_lora(model)  # the final model is the base weights with BREAD's corrections folded in
    trainer.save_model()
    trainer.save_state()

    eval_loss = trainer.evaluate()["eval_loss"] if val_set else None
    train_losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    report = {
        "finetuning_type": ft.finetuning_type,
        "model": model_args.model_name_or_path,
        "dataset": data_args.dataset,
        "template": data_args.template,
        "dtype": str(dtype).removeprefix("torch."),
        "device": str(args.device),
        "total_parameters": sum(_numel(p) for p in model.parameters()),
        "trainable_parameters": _trainable(trainer.optimizer),
        "train_examples": len(train_set),
        "global_steps": trainer.state.global_step,
        "train_seconds": seconds,
        "tokens_per_second": trainer.timer.tokens / seconds if seconds else 0.0,
        "train_loss": result.training_loss,
        "final_train_loss": train_losses[-1] if train_losses else math.nan,
        "eval_loss": eval_loss,
        # The mean skips the warm-up step and the steps the CPU memory tracing slowed down.
        "time": trainer.timer.summary(skip=max(1, ft.memory_sample_steps if args.device.type == "cpu" else 1)),
        "memory": memory.summary(),
        "log_history": trainer.state.log_history,
    }
    out = Path(args.output_dir)
    atomic_write_json(out / "run_report.json", report)
    if ft.plot_loss:
        plot_losses(
            {ft.finetuning_type: trainer.state.log_history},
            out / "training_loss.png",
            title=f"{ft.finetuning_type}: {Path(model_args.model_name_or_path).name} on {data_args.dataset}",
        )
    return report


def _numel(param: torch.Tensor) -> int:
    """Elements of a parameter, also when DeepSpeed ZeRO-3 has partitioned it away (ds_numel)."""
    return getattr(param, "ds_numel", param.numel())


def _trainable(optimizer: torch.optim.Optimizer) -> int:
    """Parameters the optimizer can update over the run (BAdam: all its blocks, not just the active one)."""
    from badam.unwrap import unwrap_bound

    blocks = getattr(unwrap_bound(optimizer), "blocks", None)
    if blocks is not None:
        return sum(_numel(p) for block in blocks for p in block)
    return sum(_numel(p) for g in optimizer.param_groups for p in g["params"])


def main() -> None:
    run_cli(train)


if __name__ == "__main__":
    main()
