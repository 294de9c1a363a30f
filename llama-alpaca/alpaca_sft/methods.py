"""One function per finetuning type: prepare the model and the Trainer's optimizer arguments.

`prepare(model, ft, args)` returns (model, trainer kwargs). The Trainer always builds the learning
rate scheduler (on whatever optimizer we hand it) and saves the optimizer's full state in its
checkpoints, so every type resumes with `--resume_from_checkpoint`.

    block            BAdam: BlockOptimizer over AdamW (badam.hf)
    full             AdamW on every parameter (the Trainer's own optimizer)
    lora             PEFT LoRA on all linear layers (the Trainer's own optimizer on the adapters)
    sparse           BlockOptimizerRatio: a moving share of every tensor's entries
    bread_lora       BAdam + the LoRA adapters of the corrected blocks (BREAD, lora_mode)
    bread_sgd        BAdam + an SGD step on the inactive blocks inside backward (BREAD, sgd_mode)
    adam_mini        Adam-mini on every parameter
    block_adam_mini  BAdam with Adam-mini as the inner solver
    lomo             LOMO, the update fused into backward (lomo-optim, the Trainer's optim="lomo")
    galore           GaLore AdamW on the linear layers (galore-torch, the Trainer's optim="galore_adamw")
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from torch import nn
from transformers import TrainingArguments

from .args import FinetuningArguments

logger = logging.getLogger(__name__)


def _block_kwargs(ft: FinetuningArguments) -> dict[str, Any]:
    return dict(
        switch_block_every=ft.switch_block_every,
        switch_mode=ft.switch_mode,
        start_block=ft.start_block,
        include_embedding=ft.include_embedding,
        include_lm_head=ft.include_lm_head,
        update_in_backward=ft.update_in_backward,
    )


def _lora_config(ft: FinetuningArguments):
    from peft import LoraConfig

    target = ft.lora_target if ft.lora_target == "all-linear" else [t.strip() for t in ft.lora_target.split(",")]
    return LoraConfig(
        task_type="CAUSAL_LM",
        r=ft.lora_rank,
        lora_alpha=ft.lora_alpha or 2 * ft.lora_rank,
        lora_dropout=ft.lora_dropout,
        target_modules=target,
    )


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold BREAD's LoRA corrections into the base weights and drop the adapters: a plain model to save."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, module.get_base_layer())
    return model


def _no_clipping(args: TrainingArguments, why: str) -> None:
    if args.max_grad_norm:
        logger.warning("max_grad_norm=%s ignored: %s", args.max_grad_norm, why)
        args.max_grad_norm = 0.0


def _adam_kwargs(args: TrainingArguments) -> dict[str, Any]:
    return dict(
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
        weight_decay=args.weight_decay,
    )


def _adam_mini(model: nn.Module, args: TrainingArguments):
    from badam.adam_mini import AdamMini

    return AdamMini.from_model(model, **_adam_kwargs(args))


def block(model, ft, args):
    from badam.hf import badam_trainer_kwargs

    # Under DeepSpeed ZeRO-3 a resumed run must start on the checkpoint's block (train.py resolved `last`).
    return model, badam_trainer_kwargs(model, args, args.resume_from_checkpoint, **_block_kwargs(ft))


def full(model, ft, args):
    return model, {}


def lora(model, ft, args):
    from peft import get_peft_model

    return get_peft_model(model, _lora_config(ft)), {}


def sparse(model, ft, args):
    from badam.hf import badam_trainer_kwargs

    # The Trainer's max_grad_norm clips it too: SFTTrainer installs badam.hf.clip_ratio_gradients.
    return model, badam_trainer_kwargs(
        model,
        args,
        badam_mode="ratio",
        switch_every=ft.switch_block_every,
        update_ratio=ft.update_ratio,
        mask_mode=ft.mask_mode,
        include_embedding=ft.include_embedding,
        include_lm_head=ft.include_lm_head,
    )


def bread_lora(model, ft, args):
    from peft import inject_adapter_in_model

    from badam.hf import badam_trainer_kwargs

    # Adapters injected into the model itself, not a PeftModel: the Trainer then saves, and resumes,
    # every weight, the base weights BREAD trains block by block as well as the adapters.
    model = inject_adapter_in_model(_lora_config(ft), model)
    # The blocks hold the base weights, which PEFT froze: the base optimizer must cover them too.
    model.requires_grad_(True)
    return model, badam_trainer_kwargs(
        model, args, args.resume_from_checkpoint, lora_mode=ft.bread_mode, **_block_kwargs(ft)
    )


def bread_sgd(model, ft, args):
    from badam.hf import badam_trainer_kwargs

    return model, badam_trainer_kwargs(
        model, args, sgd_mode=ft.bread_mode, sgd_lr_scaling=ft.sgd_lr_scaling, **_block_kwargs(ft)
    )


def adam_mini(model, ft, args):
    return model, {"optimizers": (_adam_mini(model, args), None)}


def block_adam_mini(model, ft, args):
    from badam.hf import badam_trainer_kwargs

    return model, badam_trainer_kwargs(
        model, args, args.resume_from_checkpoint, base_optimizer_fn=lambda m: _adam_mini(m, args), **_block_kwargs(ft)
    )


def _require(module: str, package: str, finetuning_type: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ImportError(f"finetuning_type={finetuning_type} needs the {package} package: pip install {package}")


def lomo(model, ft, args):
    _require("lomo_optim", "lomo-optim", "lomo")
    _no_clipping(args, "LOMO updates inside backward; the Trainer's clipping would see no gradients")
    args.optim = "lomo"
    return model, {}


def galore(model, ft, args):
    _require("galore_torch", "galore-torch", "galore")
    import torch
    from galore_torch.galore_projector import GaLoreProjector

    # The Trainer loads optimizer.pt with weights_only=True; GaLore keeps a projector object per
    # tensor in its state, which must be allowed for the run to resume.
    torch.serialization.add_safe_globals([GaLoreProjector])
    args.optim = "galore_adamw"
    args.optim_target_modules = [r".*\.(self_attn|mlp)\..*"]
    args.optim_args = f"rank={ft.galore_rank},update_proj_gap={ft.galore_update_interval},scale={ft.galore_scale}"
    return model, {}


METHODS: dict[str, Callable[[nn.Module, FinetuningArguments, TrainingArguments], tuple[nn.Module, dict]]] = {
    "block": block,
    "full": full,
    "lora": lora,
    "sparse": sparse,
    "bread_lora": bread_lora,
    "bread_sgd": bread_sgd,
    "adam_mini": adam_mini,
    "block_adam_mini": block_adam_mini,
    "lomo": lomo,
    "galore": galore,
}


# Under DeepSpeed the Trainer drops the `optimizers` it is given and builds AdamW, and under FSDP it
# refuses them, so only these types train as named there: full and lora are AdamW runs, block goes
# through badam's ZeRO-3 and FSDP2 support.
SHARDED_TYPES = ("block", "full", "lora")


def prepare(model: nn.Module, ft: FinetuningArguments, args: TrainingArguments) -> tuple[nn.Module, dict[str, Any]]:
    from badam.hf import deepspeed_enabled, fsdp_enabled

    deepspeed = deepspeed_enabled(args)
    fsdp = fsdp_enabled(args)
    if (deepspeed or fsdp) and ft.finetuning_type not in SHARDED_TYPES:
        engine = "--deepspeed" if deepspeed else "FSDP"
        raise ValueError(
            f"--finetuning_type {ft.finetuning_type} does not run under {engine} (the Trainer would replace or refuse "
            f"its optimizer); {engine} runs {', '.join(SHARDED_TYPES)}"
        )
    if fsdp and ft.finetuning_type == "block" and args.bf16:
        # --bf16 loaded the model in bf16 already. As mixed precision, accelerate's FSDP2 would upcast
        # every trainable weight to fp32 for good; BAdam keeps fp32 masters of the active block itself.
        logger.info("FSDP2: the model is in bf16; accelerate's bf16 mixed precision is left off for BAdam")
        args.bf16 = False
    return METHODS[ft.finetuning_type](model, ft, args)
