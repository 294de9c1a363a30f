"""The four ways to train: what each adds to the Trainer (a wrapped model, an optimizer, callbacks).

- adam: full fine-tuning with the Trainer's own AdamW (weight decay off for biases and LayerNorm).
- lora: LoRA adapters (peft) on the attention's query and value (peft's default targets for
  RoBERTa), alpha 4 x rank unless --lora_alpha is given (the official code's rule); the task head
  is trained in full (peft's modules_to_save), and so is the pooler with --lora_pooler (the
  official code keeps it frozen).
- block: BAdam (`badam.hf.badam_trainer_kwargs`): one block trains at a time, K steps each, in
  ascending order. --block_list official: the encoder layers, then the pooler and the head as blocks
  of their own (the official code's 26 blocks for RoBERTa-large); layers: the encoder layers, then,
  without --train_last_layer, pooler and head as one more block. --train_last_layer keeps the fresh
  pooler and head trainable throughout (BlockOptimizer's active_modules); the official list then
  keeps the pooler and head blocks as K-step slots in which only they train (keep_idle_blocks, the
  official 26-slot cycle), the layers list drops them.
- sparse: BAdam's ratio variant (BlockOptimizerRatio, through the same badam_trainer_kwargs with
  badam_mode="ratio"): every tensor trains a moving `update_ratio` share of its entries, switched
  every K steps; --train_last_layer trains the pooler and head in full (ratio 1). Its hooks gather the active gradient entries during backward; the
  Trainer's max_grad_norm clips those by their global norm, which it logs as grad_norm
  (SuperGLUETrainer installs badam.hf.clip_ratio_gradients).
"""

from __future__ import annotations

from typing import Any

from torch import nn
from transformers import TrainingArguments

from superglue.cli import check_choice
from superglue.model import TaskModel

BLOCK_LISTS = {
    "official": "the encoder layers, then the pooler and the head as one block each (the official code)",
    "layers": "the encoder layers, then (without --train_last_layer) pooler and head as one block",
}
OPTIMIZERS = {
    "adam": "full fine-tuning with AdamW",
    "lora": "LoRA adapters (peft) on query/value, the task head trained in full",
    "block": "BAdam: badam.BlockOptimizer, one layer at a time for K steps, ascending",
    "sparse": "BAdam's ratio variant: badam.ratio.BlockOptimizerRatio, a moving share of every tensor",
}

# The settings each optimizer reads (besides the learning rate, Adam's and the schedule's, which all use).
OPTIMIZER_SETTINGS = {
    "adam": (),
    "lora": ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "lora_pooler"),
    "block": ("train_last_layer", "switch_every", "switch_mode", "block_list"),
    "sparse": ("train_last_layer", "switch_every", "update_ratio", "mask_mode"),
}


def check_optimizer(name: str) -> str:
    if name not in OPTIMIZERS:
        known = "; ".join(f"{key} ({text})" for key, text in OPTIMIZERS.items())
        raise ValueError(f"unknown optimizer {name!r}. Choose one of: {known}")
    return name


def prepare(name: str, model: TaskModel, args: TrainingArguments, settings) -> tuple[nn.Module, dict[str, Any]]:
    """The model to hand to the Trainer and the Trainer's extra keyword arguments for optimizer `name`.

    `settings` holds train_last_layer, switch_every, switch_mode, block_list, lora_*, update_ratio and mask_mode
    (superglue.train.RunArgs). Call it with the model already on its device: the ratio
    optimizer allocates its state next to the parameters.
    """
    last_layer = model.last_layer_prefixes()
    if check_optimizer(name) == "adam":
        return model, {}
    if name == "lora":
        from peft import LoraConfig, get_peft_model

        keep = ["head"] + (["pooler"] if settings.lora_pooler and last_layer[0] == "encoder.pooler." else [])
        config = LoraConfig(
            r=settings.lora_r,
            lora_alpha=4 * settings.lora_r if settings.lora_alpha is None else settings.lora_alpha,
            lora_dropout=settings.lora_dropout,
            target_modules=list(settings.lora_target_modules),
            modules_to_save=keep,
        )
        try:
            return get_peft_model(model, config), {}
        except ValueError as e:  # peft's words for targets that match no module
            raise ValueError(f"--lora_target_modules {' '.join(settings.lora_target_modules)}: {e}") from None
    if name == "block":
        from badam.hf import badam_trainer_kwargs
        from badam.partition import infer_block_prefixes

        layers = infer_block_prefixes([n for n, _ in model.named_parameters()])
        official = check_choice("block_list", settings.block_list, BLOCK_LISTS) == "official"
        tail = [[prefix] for prefix in last_layer] if official else [last_layer]
        return model, badam_trainer_kwargs(
            model,
            args,
            switch_block_every=settings.switch_every,
            switch_mode=settings.switch_mode,
            block_prefix_list=layers + tail,
            active_modules=last_layer if settings.train_last_layer else (),
            keep_idle_blocks=official,
        )
    from badam.hf import badam_trainer_kwargs

    return model, badam_trainer_kwargs(
        model,
        args,
        badam_mode="ratio",
        switch_every=settings.switch_every,
        update_ratio=settings.update_ratio,
        mask_mode=settings.mask_mode,
        include_embedding=False,
        param_update_ratios={prefix: 1.0 for prefix in last_layer} if settings.train_last_layer else None,
    )
