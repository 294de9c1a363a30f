"""The four ways to train: what each adds to the Trainer (a wrapped model, an optimizer, callbacks).

- adam: full fine-tuning with the Trainer's own AdamW (weight decay off for biases and LayerNorm).
- lora: LoRA adapters (peft) on the attention's query and value; the task head is trained in full
  (peft's modules_to_save), and so is the pooler with --train_last_layer.
- block: BAdam (`badam.hf.badam_trainer_kwargs`): one encoder layer trains at a time, K steps each,
  in ascending order. --train_last_layer keeps the fresh pooler and head trainable throughout
  (BlockOptimizer's active_modules); without it they are one more block, after the last layer.
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

from superglue.model import TaskModel

OPTIMIZERS = {
    "adam": "full fine-tuning with AdamW",
    "lora": "LoRA adapters (peft) on query/value, the task head trained in full",
    "block": "BAdam: badam.BlockOptimizer, one layer at a time for K steps, ascending",
    "sparse": "BAdam's ratio variant: badam.ratio.BlockOptimizerRatio, a moving share of every tensor",
}

# The settings each optimizer reads (besides the learning rate, Adam's and the schedule's, which all use).
OPTIMIZER_SETTINGS = {
    "adam": (),
    "lora": ("train_last_layer", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"),
    "block": ("train_last_layer", "switch_every", "switch_mode"),
    "sparse": ("train_last_layer", "switch_every", "update_ratio", "mask_mode"),
}


def check_optimizer(name: str) -> str:
    if name not in OPTIMIZERS:
        known = "; ".join(f"{key} ({text})" for key, text in OPTIMIZERS.items())
        raise ValueError(f"unknown optimizer {name!r}. Choose one of: {known}")
    return name


def prepare(name: str, model: TaskModel, args: TrainingArguments, settings) -> tuple[nn.Module, dict[str, Any]]:
    """The model to hand to the Trainer and the Trainer's extra keyword arguments for optimizer `name`.

    `settings` holds train_last_layer, switch_every, switch_mode, lora_* , update_ratio and mask_mode
    (superglue.train.RunArgs). Call it with the model already on its device: the ratio
    optimizer allocates its state next to the parameters.
    """
    last_layer = model.last_layer_prefixes()
    if check_optimizer(name) == "adam":
        return model, {}
    if name == "lora":
        from peft import LoraConfig, get_peft_model

        keep = ["head"] + (["pooler"] if settings.train_last_layer and last_layer[0] == "encoder.pooler." else [])
        config = LoraConfig(
            r=settings.lora_r,
            lora_alpha=settings.lora_alpha,
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

        if settings.train_last_layer:
            placement = {"active_modules": last_layer}
        else:
            layers = infer_block_prefixes([n for n, _ in model.named_parameters()])
            placement = {"block_prefix_list": layers + [last_layer]}
        return model, badam_trainer_kwargs(
            model, args, switch_block_every=settings.switch_every, switch_mode=settings.switch_mode, **placement
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
