"""Hugging Face Trainer integration: BAdam with one extra argument to `Trainer(...)`.

    from badam.hf import badam_trainer_kwargs
    trainer = Trainer(model=model, args=args, train_dataset=data,
                      **badam_trainer_kwargs(model, args, switch_block_every=100, switch_mode="random"))
    trainer.train()            # also trainer.train(resume_from_checkpoint=...) resumes exactly

Ratio mode is the same call with `badam_mode="ratio"` (and BlockOptimizerRatio's options), plus
`clip_ratio_gradients(trainer)` after the Trainer is built, as LLaMA-Factory does.

The base optimizer is the one `args.optim` names (AdamW by default) with `args`' learning rate,
betas, epsilon and weight decay; biases and norm weights go to a no-decay group. The Trainer builds
the learning-rate scheduler on the BlockOptimizer from `args` as usual, saves the optimizer's full
state in its checkpoints, and the callback keeps backward truncated, keeps DDP all-reducing the
block that trains now (under `torchrun`), and logs the active block.

With `--deepspeed ds_z3_config.json` (ZeRO-3) the same call sets BAdam up on DeepSpeed (badam.zero3):
DeepSpeed shards the active block's masters and states, and its optimizer wrapper is rebuilt at each
switch. With FSDP2 (`accelerate launch --config_file scripts/configs/accelerate_fsdp2.yaml`, or
`--fsdp full_shard`) it hands the Trainer an FSDPBlockOptimizer (badam.fsdp), which binds to the
sharded parameters. Both restore the optimizer into the block that is active, so to resume such a
run, name the checkpoint here as well as in `trainer.train`:

    kwargs = badam_trainer_kwargs(model, args, resume_from_checkpoint="out/checkpoint-500", ...)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from types import MethodType
from typing import Any, Literal

import torch
from torch import nn
from torch.optim import Optimizer
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .block import BlockOptimizer
from .checkpoint import SCHEDULE_FILE, read_schedule, write_schedule
from .clipping import clip_grad_norm_old_version
from .distributed import follow_wrapping
from .fsdp import FSDPBlockOptimizer
from .hf_checkpoint import resolve_resume
from .ratio import BlockOptimizerRatio
from .tensor_step import chunked_step_supported
from .truncation import truncate_backward
from .unwrap import unwrap


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """The trainable parameters in two groups: matrices with `weight_decay`, biases and norms without."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    # A ZeRO-3 partitioned parameter is an empty tensor; its shape is kept in ds_shape.
    ndim = {p: len(getattr(p, "ds_shape", p.shape)) for p in trainable}
    groups = [
        {"params": [p for p in trainable if ndim[p] >= 2], "weight_decay": weight_decay},
        {"params": [p for p in trainable if ndim[p] < 2], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def _base_optimizer(model: nn.Module, args: TrainingArguments) -> Optimizer:
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    if not (isinstance(optimizer_cls, type) and issubclass(optimizer_cls, Optimizer)) or {"params", "model"} & set(
        optimizer_kwargs
    ):
        raise ValueError(
            f"optim={args.optim!r} is not a per-parameter torch optimizer, which BAdam needs as its inner "
            "solver; use e.g. adamw_torch"
        )
    return optimizer_cls(decay_groups(model, args.weight_decay), **optimizer_kwargs)


def create_badam_optimizer(
    model: nn.Module,
    args: TrainingArguments,
    resume_from_checkpoint: str | os.PathLike | bool | None = None,
    base_optimizer_fn: Callable[[nn.Module], Optimizer] | None = None,
    **block_kwargs: Any,
) -> BlockOptimizer | FSDPBlockOptimizer:
    """A BlockOptimizer over `model` whose base optimizer is the one `args` describes.

    `block_kwargs` go to BlockOptimizer (switch_block_every, switch_mode, start_block, ...).
    `update_in_backward` (badam.in_backward) is on by default where nothing needs the whole
    gradient first: one process, no max_grad_norm, no gradient accumulation, AdamW/Adam-mini inside.
    `base_optimizer_fn(model)` builds another base optimizer (e.g. AdamMini.from_model) instead of
    `args.optim`'s. Under a ZeRO-3 DeepSpeed config it runs in ZeRO-3 mode; under FSDP2 it is an
    FSDPBlockOptimizer. Both engines build their optimizer state for the active block when the
    Trainer starts, so a resumed run names its checkpoint here too, for that block.
    """
    block_kwargs.setdefault("seed", args.seed)
    make_base = base_optimizer_fn or (lambda module: _base_optimizer(module, args))
    engine = _engine(args)
    requested = block_kwargs.pop("update_in_backward", None)
    if engine == "fsdp2":
        if requested:
            _refuse_in_backward(args, engine)
        optimizer = FSDPBlockOptimizer(model, make_base, **block_kwargs)
    else:
        base = make_base(model)
        in_backward = _update_in_backward(args, engine, base, requested)
        if in_backward:
            block_kwargs["gradient_accumulation_steps"] = args.gradient_accumulation_steps
        optimizer = BlockOptimizer(
            base,
            list(model.named_parameters()),
            ds_zero3_enabled=engine == "zero3",
            update_in_backward=in_backward,
            **block_kwargs,
        )
    if resume_from_checkpoint and engine is not None:
        optimizer.restore_schedule(*read_schedule(resolve_resume(args.output_dir, resume_from_checkpoint)))
    return optimizer


def _update_in_backward(args: TrainingArguments, engine: str | None, base: Optimizer, requested: bool | None) -> bool:
    """update_in_backward: as asked, or (None) on where nothing needs the whole gradient first."""
    if requested is None:
        supported = all(chunked_step_supported(base, group) for group in base.param_groups)
        return (
            supported
            and engine is None
            and args.world_size == 1
            and not args.max_grad_norm
            and args.gradient_accumulation_steps == 1
        )
    if requested:
        _refuse_in_backward(args, engine)
    return bool(requested)


def _refuse_in_backward(args: TrainingArguments, engine: str | None) -> None:
    if args.max_grad_norm:
        raise ValueError(
            f"update_in_backward=True steps each tensor inside backward, before the Trainer could clip the "
            f"gradients to max_grad_norm={args.max_grad_norm}: pass --max_grad_norm 0, or update_in_backward=False"
        )
    if engine is not None or args.world_size > 1:
        raise ValueError(
            "update_in_backward=True runs in one process only (DDP, FSDP and ZeRO-3 reduce gradients after backward "
            "hands them over): pass update_in_backward=False"
        )


def deepspeed_enabled(args: TrainingArguments) -> bool:
    """Whether the Trainer will run DeepSpeed: `--deepspeed`, or `accelerate launch` with a DeepSpeed config."""
    return bool(args.deepspeed) or _accelerate_uses_deepspeed()


def _accelerate_uses_deepspeed() -> bool:
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def fsdp_enabled(args: TrainingArguments) -> bool:
    """Whether the Trainer will shard with FSDP: `--fsdp`, or `accelerate launch` with an FSDP config."""
    return bool(args.fsdp) or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def _engine(args: TrainingArguments) -> str | None:
    """ "zero3", "fsdp2" or None (DDP or one process); refuses the engines BAdam cannot run on."""
    if fsdp_enabled(args):
        _check_fsdp(args)
        return "fsdp2"
    config = getattr(args, "hf_deepspeed_config", None)
    if config is None and _accelerate_uses_deepspeed():
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
    return "zero3"


def _check_fsdp(args: TrainingArguments) -> None:
    """FSDP2 without mixed precision, which is how BAdam keeps the model in bf16 with fp32 masters."""
    if args.fsdp:
        version = int((args.fsdp_config or {}).get("version", 2))
    else:
        version = int(os.environ.get("FSDP_VERSION", "1"))
    if version != 2:
        raise ValueError(
            f"BAdam runs on FSDP2 (fsdp_version: 2), and this run asks for FSDP{version}, which flattens each wrapped "
            "module into one parameter that trains or freezes as a whole; see scripts/configs/accelerate_fsdp2.yaml"
        )
    precision = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if args.bf16 or args.fp16 or precision != "no":
        raise ValueError(
            "BAdam on FSDP2 needs mixed precision off (no --bf16/--fp16, accelerate mixed_precision: 'no'): accelerate "
            "would upcast the trainable block to fp32 for good. Load the model in bf16 instead; BAdam keeps fp32 "
            "masters of the active block itself."
        )


class BAdamCallback(TrainerCallback):
    """Truncates backward once checkpointing is set up, and adds the active block to the logs.

    `BAdamCallback()` (as `trainer.add_callback(BAdamCallback)` makes it, which LLaMA-Factory does)
    finds the optimizer and the model in the Trainer's callback arguments when training begins.
    """

    def __init__(
        self,
        optimizer: BlockOptimizer | FSDPBlockOptimizer | BlockOptimizerRatio | None = None,
        model: nn.Module | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.model = model
        self._warned = False

    @property
    def layer_wise(self) -> bool:
        return isinstance(self.optimizer, (BlockOptimizer, FSDPBlockOptimizer))

    @property
    def block_optimizer(self) -> BlockOptimizer:
        if not isinstance(self.optimizer, FSDPBlockOptimizer):
            return self.optimizer
        optimizer = self.optimizer.bind()
        if optimizer is None:
            raise RuntimeError(
                "FSDP is configured, but the Trainer started training on a model that FSDP2 has not sharded "
                "(accelerate runs FSDP on GPUs only)"
            )
        return optimizer

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if self.optimizer is None:
            self.optimizer = unwrap(optimizer)
            if self.optimizer is None:
                raise TypeError(
                    f"BAdamCallback: the Trainer's optimizer ({type(optimizer).__name__}) is not a BAdam one"
                )
        self.model = self.model or model
        if not self.layer_wise:
            return  # ratio mode trains every tensor: no backward to truncate, no block to log
        # Trainer enables activation checkpointing inside train(), after the optimizer exists, and
        # that re-installs the hook that defeats truncation: undo it here.
        truncate_backward(self.model)
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            follow_wrapping(self.model, self.block_optimizer)

    def write_checkpoint_files(self, folder: Path, args, state) -> None:
        """Add the block schedule to a checkpoint (badam.hf_checkpoint calls this before publishing it)."""
        # DeepSpeed's and FSDP2's checkpoints hold the active block's state only: a resumed run must
        # start on that block, which create_badam_optimizer reads back from here.
        if self.layer_wise and _restores_into_active_block(self.optimizer) and args.process_index == 0:
            write_schedule(folder, self.block_optimizer)

    def on_save(self, args, state, control, **kwargs):
        # A plain Trainer (without ResumableTrainerMixin) has published the checkpoint already.
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if not (folder / SCHEDULE_FILE).is_file():
            self.write_checkpoint_files(folder, args, state)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs:
            return
        if not self.layer_wise:
            if logs.get("grad_norm") == 0.0 and not self._warned:
                self._warned = True
                warnings.warn(
                    "grad_norm is 0: the Trainer's clipping did not see ratio mode's gradients and clipped "
                    "nothing; call badam.hf.clip_ratio_gradients(trainer) after building the Trainer",
                    stacklevel=2,
                )
            return
        added = {"badam_active_block": self.block_optimizer.active_block}
        in_backward = self.block_optimizer.holder.in_backward
        if in_backward is not None and in_backward.last_grad_norm is not None:
            # The Trainer measured the norm after backward had stepped and freed every gradient: 0.
            added["grad_norm"] = in_backward.last_grad_norm
        logs.update(added)
        # The Trainer stored its copy of these logs in the history before calling us.
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(added)


def clip_ratio_gradients(trainer: Trainer) -> None:
    """Make the Trainer's `max_grad_norm` clip ratio mode's gradients, and log their true norm.

    BlockOptimizerRatio gathers the gradients during backward, where the Trainer's clipping (through
    its accelerator) would see none; this installs badam.clipping's version in the accelerator,
    which clips everything else as before.
    """
    trainer.accelerator.clip_grad_norm_ = MethodType(clip_grad_norm_old_version, trainer.accelerator)


def _restores_into_active_block(optimizer: BlockOptimizer | FSDPBlockOptimizer) -> bool:
    return isinstance(optimizer, FSDPBlockOptimizer) or optimizer.ds_zero3_enabled


def create_ratio_optimizer(model: nn.Module, args: TrainingArguments, **ratio_kwargs: Any) -> BlockOptimizerRatio:
    """A BlockOptimizerRatio over `model` with `args`' Adam settings, seed and no-decay group.

    `ratio_kwargs` go to BlockOptimizerRatio (update_ratio, switch_every, mask_mode, ...).
    """
    engine = _engine(args)
    if engine is not None:
        raise ValueError(
            f"ratio mode (BlockOptimizerRatio) runs on one process or DDP, not on {engine}: it keeps a dense "
            "state per tensor and gathers gradient entries in backward. Use the layer-wise mode there."
        )
    ratio_kwargs = {
        "lr": args.learning_rate,
        "betas": (args.adam_beta1, args.adam_beta2),
        "eps": args.adam_epsilon,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
        **ratio_kwargs,
    }
    return BlockOptimizerRatio(decay_groups(model, args.weight_decay), list(model.named_parameters()), **ratio_kwargs)


def badam_trainer_kwargs(
    model: nn.Module,
    args: TrainingArguments,
    resume_from_checkpoint: str | os.PathLike | bool | None = None,
    base_optimizer_fn: Callable[[nn.Module], Optimizer] | None = None,
    *,
    badam_mode: Literal["layer", "ratio"] = "layer",
    **optimizer_kwargs: Any,
) -> dict[str, Any]:
    """The optimizer and `callbacks` arguments that turn a Trainer into a BAdam trainer.

    badam_mode "layer" (BlockOptimizer; `optimizer_kwargs` are its switch_block_every, switch_mode,
    ...) or "ratio" (BlockOptimizerRatio; update_ratio, switch_every, mask_mode, ...), the names
    LLaMA-Factory's `badam_mode` uses. In ratio mode also call `clip_ratio_gradients(trainer)` once
    the Trainer exists, so that `max_grad_norm` clips its gathered gradients.

    `resume_from_checkpoint`: under ZeRO-3 or FSDP2, the checkpoint that `trainer.train` will resume
    from (True or "last": the newest complete one in args.output_dir).
    """
    if badam_mode == "ratio":
        if base_optimizer_fn is not None:
            raise ValueError("ratio mode has Adam built in: base_optimizer_fn applies to the layer-wise mode only")
        optimizer = create_ratio_optimizer(model, args, **optimizer_kwargs)
        return {"optimizers": (optimizer, None), "callbacks": [BAdamCallback(optimizer, model)]}
    if badam_mode != "layer":
        raise ValueError(f"unknown badam_mode {badam_mode!r}; choose 'layer' or 'ratio'")
    optimizer = create_badam_optimizer(model, args, resume_from_checkpoint, base_optimizer_fn, **optimizer_kwargs)
    callbacks = [BAdamCallback(optimizer, model)]
    if _restores_into_active_block(optimizer):
        # The Trainer drops `optimizers` under DeepSpeed and refuses them under FSDP, but builds its
        # optimizer through a factory (factory()(model) -> optimizer): hand it ours that way.
        return {"optimizer_cls_and_kwargs": (lambda: lambda model, **kwargs: optimizer, {}), "callbacks": callbacks}
    return {"optimizers": (optimizer, None), "callbacks": callbacks}
