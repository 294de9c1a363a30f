"""Optimizer-in-backward for the active block: each tensor steps as soon as its gradient exists.

A post-accumulate-grad hook on every tensor that trains runs its inner step (badam.tensor_step)
the moment backward has finished its gradient, and frees the gradient at once, so the block's
gradient never exists as a whole: at most one tensor's low-precision gradient and one fp32 slice
are alive beside the fp32 masters and the Adam moments (12 bytes per active parameter with AdamW,
about 8 with Adam-mini).

With gradient accumulation over N micro-batches, the hook adds each low-precision gradient into
the fp32 master's gradient and frees it; the N-th backward steps the tensor. `step()` then only
counts the step, after stepping what a shorter window (the end of an epoch) left pending, and
records the norm of the gradients the step used as `last_grad_norm` (badam.hf logs it as grad_norm).

    optimizer = BlockOptimizer(AdamW(model.parameters(), lr=1e-5), list(model.named_parameters()),
                               update_in_backward=True)       # gradient_accumulation_steps=N
    for batch in loader:
        model(**batch).loss.backward()                         # the active block moves here
        optimizer.step()                                       # counts the step, switches blocks
        optimizer.zero_grad()

Nothing can see the whole gradient first, so clipping by global norm is impossible (badam.hf
refuses `max_grad_norm` with it) and gradients must be final when backward produces them: one
process only (DDP and FSDP reduce gradients after these hooks would run).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .tensor_step import chunked_step_supported, slice_numel, step_tensor

if TYPE_CHECKING:
    from .block import BlockOptimizer


def check_supported(optimizer: BlockOptimizer, gradient_accumulation_steps: int) -> None:
    if not isinstance(gradient_accumulation_steps, int) or gradient_accumulation_steps < 1:
        raise ValueError(f"gradient_accumulation_steps must be a positive integer, got {gradient_accumulation_steps!r}")
    base = optimizer.base_optimizer
    unsupported = [index for index, group in enumerate(base.param_groups) if not chunked_step_supported(base, group)]
    if unsupported:
        raise ValueError(
            f"update_in_backward=True steps tensors itself, which it can for torch's Adam/AdamW (without amsgrad, "
            f"maximize, capturable or a tensor lr) and AdamMini; {type(base).__name__} with param group "
            f"{unsupported[0]}'s settings is none of these"
        )


class BackwardUpdates:
    """The hooks that step the tensors that train now, each as its gradient arrives."""

    def __init__(self, optimizer: BlockOptimizer, gradient_accumulation_steps: int) -> None:
        check_supported(optimizer, gradient_accumulation_steps)
        self.optimizer = optimizer
        self.accumulation_steps = gradient_accumulation_steps
        self.arrived: dict[nn.Parameter, int] = {}
        self.handles: list[RemovableHandle] = []
        self.slice = 0
        self._squares: list[torch.Tensor] = []
        self.last_grad_norm: float | None = None

    def watch(self, params: Sequence[nn.Parameter]) -> None:
        """Hook `params` (the new block's trainable tensors) and nothing else."""
        for handle in self.handles:
            handle.remove()
        self.arrived.clear()
        self.handles = [param.register_post_accumulate_grad_hook(self._gradient_ready) for param in params]
        self.slice = slice_numel(sum(p.numel() for p in params))

    @torch.no_grad()
    def _gradient_ready(self, param: nn.Parameter) -> None:
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            raise RuntimeError(
                "update_in_backward=True runs in one process only: under DDP or FSDP the gradient is reduced across "
                "ranks after backward hands it over. Build the BlockOptimizer without it"
            )
        master = self.optimizer.masters.master_of.get(param)
        if master is not None and self.accumulation_steps > 1:
            master.grad = param.grad.float() if master.grad is None else master.grad.add_(param.grad)
            param.grad = None
        self.arrived[param] = self.arrived.get(param, 0) + 1
        if self.arrived[param] == self.accumulation_steps:
            self._step(param)

    def _step(self, param: nn.Parameter) -> None:
        masters = self.optimizer.masters
        master = masters.optimized(param)
        grad = param.grad if master.grad is None else master.grad
        group = self.optimizer.base_optimizer.param_groups[self.optimizer.group_of[param]]
        base, target = self.optimizer.base_optimizer, param if master is not param else None
        self._squares.append(step_tensor(base, group, master, grad, target, self.slice, with_norm=True))
        master.grad = None
        param.grad = None
        self.arrived[param] = 0

    def discard(self) -> None:
        """Drop what an unfinished accumulation window gathered (zero_grad between micro-batches)."""
        for param, count in self.arrived.items():
            if count:
                self.optimizer.masters.optimized(param).grad = None
                param.grad = None
                self.arrived[param] = 0

    @torch.no_grad()
    def finish(self) -> None:
        """Step the tensors whose accumulation window ended short (fewer than N micro-batches), and
        record the norm of the gradients this step used (what clipping would have seen)."""
        for param, count in list(self.arrived.items()):
            if count:
                self._step(param)
        if self._squares:
            self.last_grad_norm = (
                torch.stack([s.to(self._squares[0].device) for s in self._squares]).sum().sqrt().item()
            )
        self._squares = []
