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
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from transformers import Trainer, TrainerCallback, TrainingArguments

from .block import BlockOptimizer
from .distributed import follow_ddp_wrapping
from .truncation import truncate_backward


def _base_optimizer(model: nn.Module, args: TrainingArguments) -> Optimizer:
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    if not (isinstance(optimizer_cls, type) and issubclass(optimizer_cls, Optimizer)) or {"params", "model"} & set(optimizer_kwargs):
        raise ValueError(
            f"optim={args.optim!r} is not a per-parameter torch optimizer, which BAdam needs as its inner "
            "solver; use e.g. adamw_torch"
        )
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if p.ndim >= 2], "weight_decay": args.weight_decay},
        {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0},
    ]
    return optimizer_cls([g for g in groups if g["params"]], **optimizer_kwargs)


def create_badam_optimizer(model: nn.Module, args: TrainingArguments, **block_kwargs: Any) -> BlockOptimizer:
    """A BlockOptimizer over `model` whose base optimizer is the one `args` describes.

    `block_kwargs` go to BlockOptimizer (switch_block_every, switch_mode, start_block, ...).
    """
    block_kwargs.setdefault("seed", args.seed)
    return BlockOptimizer(_base_optimizer(model, args), list(model.named_parameters()), **block_kwargs)


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
            follow_ddp_wrapping(self.model, self.optimizer)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs:
            return
        logs["badam_active_block"] = self.optimizer.active_block
        # The Trainer stored its copy of these logs in the history before calling us.
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1]["badam_active_block"] = self.optimizer.active_block


def badam_trainer_kwargs(model: nn.Module, args: TrainingArguments, **block_kwargs: Any) -> dict[str, Any]:
    """The `optimizers` and `callbacks` arguments that turn a Trainer into a BAdam trainer."""
    optimizer = create_badam_optimizer(model, args, **block_kwargs)
    return {"optimizers": (optimizer, None), "callbacks": [BAdamCallback(optimizer, model)]}
