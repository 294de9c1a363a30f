"""Hugging Face Trainer integration: BAdam with one extra argument to `Trainer(...)`.

    from badam.hf import badam_trainer_kwargs
    trainer = Trainer(model=model, args=args, train_dataset=data,
                      **badam_trainer_kwargs(model, args, switch_block_every=100, switch_mode="random"))
    trainer.train()            # also trainer.train(resume_from_checkpoint=...) resumes exactly

The base optimizer is the one `args.optim` names (AdamW by default) with `args`' learning rate,
betas, epsilon and weight decay; biases and norm weights go to a no-decay group. The Trainer builds
the learning-rate scheduler on the BlockOptimizer from `args` as usual, saves the optimizer's full
state in its checkpoints, and the callback keeps backward truncated, keeps DDP all-reducing the
block that trains now (under `torchrun`), and logs the active block.

With `--deepspeed ds_z3_config.json` (ZeRO-3) the same call sets BAdam up on DeepSpeed (badam.zero3):
DeepSpeed shards the active block's masters and states, and its optimizer wrapper is rebuilt at each
switch. To resume such a run, name the checkpoint here as well as in `trainer.train`:

    kwargs = badam_trainer_kwargs(model, args, resume_from_checkpoint="out/checkpoint-500", ...)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from .block import BlockOptimizer
from .distributed import follow_wrapping
from .truncation import truncate_backward
from .zero3 import read_schedule, write_schedule


def _base_optimizer(model: nn.Module, args: TrainingArguments) -> Optimizer:
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    if not (isinstance(optimizer_cls, type) and issubclass(optimizer_cls, Optimizer)) or {"params", "model"} & set(optimizer_kwargs):
        raise ValueError(
            f"optim={args.optim!r} is not a per-parameter torch optimizer, which BAdam needs as its inner "
            "solver; use e.g. adamw_torch"
        )
    trainable = [p for p in model.parameters() if p.requires_grad]
    # A ZeRO-3 partitioned parameter is an empty tensor; its shape is kept in ds_shape.
    ndim = {p: len(getattr(p, "ds_shape", p.shape)) for p in trainable}
    groups = [
        {"params": [p for p in trainable if ndim[p] >= 2], "weight_decay": args.weight_decay},
        {"params": [p for p in trainable if ndim[p] < 2], "weight_decay": 0.0},
    ]
    return optimizer_cls([g for g in groups if g["params"]], **optimizer_kwargs)


def create_badam_optimizer(
    model: nn.Module, args: TrainingArguments, resume_from_checkpoint: str | os.PathLike | bool | None = None,
    **block_kwargs: Any,
) -> BlockOptimizer:
    """A BlockOptimizer over `model` whose base optimizer is the one `args` describes.

    `block_kwargs` go to BlockOptimizer (switch_block_every, switch_mode, start_block, ...). Under a
    ZeRO-3 DeepSpeed config it runs in ZeRO-3 mode; DeepSpeed builds its partitions for the active
    block when the Trainer starts, so a resumed run names its checkpoint here too, for that block.
    """
    block_kwargs.setdefault("seed", args.seed)
    block_kwargs.setdefault("ds_zero3_enabled", _deepspeed_stage(args) == 3)
    optimizer = BlockOptimizer(_base_optimizer(model, args), list(model.named_parameters()), **block_kwargs)
    if resume_from_checkpoint and optimizer.ds_zero3_enabled:
        if resume_from_checkpoint is True:
            resume_from_checkpoint = get_last_checkpoint(args.output_dir)
            if resume_from_checkpoint is None:
                raise FileNotFoundError(f"resume_from_checkpoint=True, but {args.output_dir} holds no checkpoint-N folder")
        optimizer.restore_schedule(*read_schedule(resume_from_checkpoint))
    return optimizer


def _deepspeed_stage(args: TrainingArguments) -> int | None:
    """The ZeRO stage of the DeepSpeed config in `args`, None without DeepSpeed; refuses what BAdam cannot run on."""
    if args.fsdp or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        raise ValueError(
            "BAdam through the Trainer runs on DDP and DeepSpeed ZeRO-3, not on the Trainer's FSDP: accelerate "
            "replaces the parameters after the optimizer is built. Shard with fully_shard in a plain loop "
            "(badam.distributed; scripts/train_distributed.py --engine fsdp2), or pass --deepspeed scripts/configs/ds_z3_config.json."
        )
    config = getattr(args, "hf_deepspeed_config", None)
    if config is None and os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        # The Trainer would take accelerate's DeepSpeed config only once it exists, after the
        # optimizer was made for no DeepSpeed, and then replace that optimizer with AdamW.
        raise ValueError(
            "accelerate launches this run with DeepSpeed: pass the DeepSpeed config to the Trainer too "
            "(--deepspeed scripts/configs/ds_z3_config.json), so BAdam is set up for it before the Trainer starts"
        )
    if config is None:
        return None
    stage = config.get_value("zero_optimization.stage", 0)
    if stage != 3:
        raise ValueError(
            f"BAdam under DeepSpeed needs ZeRO stage 3, and {args.deepspeed!r} sets stage {stage}: stages 0-2 "
            "build their fp32 partitions once, over the block that trains first. Use stage 3, or DDP without DeepSpeed."
        )
    return stage


class BAdamCallback(TrainerCallback):
    """Truncates backward once checkpointing is set up, and adds the active block to the logs."""

    def __init__(self, optimizer: BlockOptimizer, model: nn.Module) -> None:
        self.optimizer = optimizer
        self.model = model

    def on_train_begin(self, args, state, control, **kwargs):
        # Trainer enables activation checkpointing inside train(), after the optimizer exists, and
        # that re-installs the hook that defeats truncation: undo it here.
        truncate_backward(self.model, self.optimizer)
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            follow_wrapping(self.model, self.optimizer)

    def on_save(self, args, state, control, **kwargs):
        # DeepSpeed's checkpoint holds the active block's partitions only: a resumed run must start
        # on that block, which create_badam_optimizer reads back from here.
        if self.optimizer.ds_zero3_enabled and args.process_index == 0:
            write_schedule(Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}", self.optimizer)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs:
            return
        logs["badam_active_block"] = self.optimizer.active_block
        # The Trainer stored its copy of these logs in the history before calling us.
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1]["badam_active_block"] = self.optimizer.active_block


def badam_trainer_kwargs(
    model: nn.Module, args: TrainingArguments, resume_from_checkpoint: str | os.PathLike | bool | None = None,
    **block_kwargs: Any,
) -> dict[str, Any]:
    """The optimizer and `callbacks` arguments that turn a Trainer into a BAdam trainer.

    `resume_from_checkpoint`: under ZeRO-3, the checkpoint that `trainer.train` will resume from
    (True: the newest in args.output_dir, as for `trainer.train`).
    """
    optimizer = create_badam_optimizer(model, args, resume_from_checkpoint, **block_kwargs)
    callbacks = [BAdamCallback(optimizer, model)]
    if optimizer.ds_zero3_enabled:
        # Under DeepSpeed the Trainer drops `optimizers` and builds its own through a factory
        # (factory()(model) -> optimizer): hand it ours that way.
        return {"optimizer_cls_and_kwargs": (lambda: lambda model, **kwargs: optimizer, {}), "callbacks": callbacks}
    return {"optimizers": (optimizer, None), "callbacks": callbacks}
