"""Who holds the active block's fp32 masters and optimizer states: BlockOptimizer, or the engine around it.

BlockOptimizer chooses what trains; a holder owns the memory that training costs:

- `LocalStates` (one process, DDP, FSDP2): BlockOptimizer keeps fp32 masters of the active block's
  bf16/fp16 weights (badam.precision) and the base optimizer's states on them, and runs the inner
  step itself, tensor by tensor in slices (badam.tensor_step), or inside backward
  (badam.in_backward, one process). A switch frees the old block's masters, states and gradients and
  creates the new block's. Under FSDP2 the parameters are DTensors, so all of it is sharded too.
- `EngineStates` (DeepSpeed ZeRO-3, through badam.zero3): the engine's optimizer wrapper keeps the
  masters and states (as flat partitions) of whatever requires grad when it is built, and runs the
  inner step itself. BlockOptimizer only selects what requires grad and hands the wrapper groups to
  build from; the adapter counts the steps the engine applied and rebuilds the wrapper at a switch.

Neither imports an engine: a holder is chosen by `BlockOptimizer(ds_zero3_enabled=...)`, and the
engine-specific work (rebuilding DeepSpeed's wrapper, DDP's reducer) lives in the adapters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .precision import MasterCopies

if TYPE_CHECKING:
    from .block import BlockOptimizer
    from .in_backward import BackwardUpdates


def is_zero3_partitioned(param: torch.Tensor) -> bool:
    """Whether DeepSpeed ZeRO-3 has partitioned `param` (its data then lives in `param.ds_tensor`)."""
    return hasattr(param, "ds_id")


class LocalStates:
    """The active block's fp32 masters and base-optimizer states, held by BlockOptimizer itself."""

    engine_held = False

    def __init__(self) -> None:
        self.masters = MasterCopies()
        self.in_backward: BackwardUpdates | None = None  # set by BlockOptimizer(update_in_backward=True)

    def check(self, optimizer: BlockOptimizer, active_modules: Sequence[str]) -> None:
        if any(is_zero3_partitioned(p) for p in optimizer.named_params.values()):
            raise ValueError("the parameters are partitioned by DeepSpeed ZeRO-3: pass ds_zero3_enabled=True")

    def hold(
        self, optimizer: BlockOptimizer, leaving: Sequence[nn.Parameter], training: Sequence[nn.Parameter]
    ) -> None:
        """Free what `leaving` held, create masters for `training` and point the groups at what it updates."""
        base = optimizer.base_optimizer
        for param in leaving:
            param.grad = None
            base.state.pop(self.masters.optimized(param), None)
        self.masters.release(leaving)
        self.masters.create(training)
        for group, members in zip(base.param_groups, optimizer.grouped(training)):
            group["params"] = [self.masters.optimized(p) for p in members]
        if self.in_backward is not None:
            self.in_backward.watch(training)

    def step(self, optimizer: BlockOptimizer, closure: Callable[[], Any] | None) -> tuple[Any, bool]:
        """One inner step on what trains; (loss, whether this step counts towards the schedule)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.in_backward is not None:
            self.in_backward.finish()  # backward stepped the rest
        else:
            self.masters.step(optimizer.base_optimizer, optimizer.trainable_params, optimizer.group_of)
        return loss, True

    def positions(self, optimizer: BlockOptimizer) -> list[str]:
        """The parameter name of each position in the base optimizer's state dict."""
        return [optimizer.name_of[p] for members in optimizer.grouped(optimizer.trainable_params) for p in members]


class EngineStates:
    """The masters and states live in the engine's optimizer wrapper (DeepSpeed ZeRO-3), not here.

    The wrapper keeps one state per flat partition, so a parameter cannot keep its Adam moments
    across a rebuild: what trains across switches, and inner optimizers that need each tensor's
    shape, are refused.
    """

    engine_held = True

    def __init__(self) -> None:
        self.masters = MasterCopies()  # stays empty: the engine holds them
        self.in_backward = None  # the engine runs the step: never in backward

    def check(self, optimizer: BlockOptimizer, active_modules: Sequence[str]) -> None:
        from .adam_mini import AdamMini

        reasons = []
        if active_modules:
            reasons.append(f"active_modules={list(active_modules)} (their Adam moments would restart at every switch)")
        if optimizer.lora_mode is not None or optimizer.sgd_mode != "disabled":
            reasons.append("BREAD (lora_mode / sgd_mode): its corrections train across block switches")
        if isinstance(optimizer.base_optimizer, AdamMini):
            reasons.append("an AdamMini base optimizer: it needs each tensor's shape, and ZeRO-3 steps flat partitions")
        if reasons:
            raise ValueError(
                "BlockOptimizer(ds_zero3_enabled=True) cannot run with "
                + "; ".join(reasons)
                + ". Use FSDP2 (badam.distributed) for these."
            )

    def hold(
        self, optimizer: BlockOptimizer, leaving: Sequence[nn.Parameter], training: Sequence[nn.Parameter]
    ) -> None:
        """Give every group all its managed parameters: the wrapper takes those that require grad.

        No group is ever empty then: DeepSpeed drops empty groups for good, which would shift the
        group of every later block. The old states belong to the old block's flat partitions.
        """
        base = optimizer.base_optimizer
        base.state.clear()
        for group, members in zip(base.param_groups, optimizer.grouped(optimizer.managed)):
            group["params"] = members

    def step(self, optimizer: BlockOptimizer, closure: Callable[[], Any] | None) -> tuple[Any, bool]:
        """The engine calls this once per flat fp32 partition; the adapter counts the engine's steps."""
        if not is_zero3_partitioned(optimizer.managed[0]):
            # Stepping on its own, it would never switch blocks and keep bf16 Adam states.
            raise RuntimeError(
                "ds_zero3_enabled=True, but this model is not under DeepSpeed ZeRO-3: hand the optimizer to "
                "deepspeed.initialize (or the Trainer with a stage-3 --deepspeed config), or pass ds_zero3_enabled=False"
            )
        return optimizer.base_optimizer.step(closure), False

    def positions(self, optimizer: BlockOptimizer) -> None:
        """None: the positions are the engine's flat partitions, not parameters."""
        return None


StateHolder = LocalStates | EngineStates
