"""Mixed precision for the active block: fp32 master copies and a per-tensor inner step.

The model lives in bf16/fp16. Only the active block gets fp32 master weights (and, through the base
optimizer, fp32 Adam states). The block's low-precision gradient is never upcast as a whole: with
AdamW/Adam or Adam-mini inside, each tensor is stepped in slices (badam.tensor_step), so the
transient fp32 memory is one slice, 1/256 of the block; with any other optimizer each tensor's gradient is upcast, used
for that tensor's update and freed before the next, bounded by the largest tensor. Processing the largest
tensors last also lets their peak coincide with the fewest low-precision gradients still held.

    masters = MasterCopies()
    masters.create(named_params)            # at a block switch
    masters.step(base_optimizer)            # inside BlockOptimizer.step()
    masters.release()                       # at the next switch
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.optim import Optimizer

from .tensor_step import chunked_step_supported, slice_numel, sliceable, step_tensor

LOW_PRECISION = (torch.bfloat16, torch.float16)


def needs_master(param: torch.Tensor) -> bool:
    return param.dtype in LOW_PRECISION


@contextmanager
def only_params(optimizer: Optimizer, group_index: int, params: list[torch.Tensor]) -> Iterator[None]:
    """Make `optimizer.step()` see just `params`, with the hyperparameters of one of its groups.

    The group is a shallow copy taken now, so the learning rate a scheduler set is the one used.
    """
    groups = optimizer.param_groups
    optimizer.param_groups = [dict(groups[group_index], params=params)]
    try:
        yield
    finally:
        optimizer.param_groups = groups


class MasterCopies:
    """fp32 masters of the active block's low-precision parameters, keyed by the model parameter."""

    def __init__(self) -> None:
        self.master_of: dict[nn.Parameter, torch.Tensor] = {}

    def create(self, params: Sequence[nn.Parameter]) -> None:
        for param in params:
            if needs_master(param) and param not in self.master_of:
                self.master_of[param] = param.detach().float()

    def release(self, params: Sequence[nn.Parameter]) -> list[torch.Tensor]:
        """Drop the masters of `params` and return them (their optimizer state is keyed by them)."""
        return [self.master_of.pop(param) for param in params if param in self.master_of]

    def optimized(self, param: nn.Parameter) -> torch.Tensor:
        """The tensor the base optimizer updates for `param`: its master, or itself when fp32."""
        return self.master_of.get(param, param)

    def step(self, optimizer: Optimizer, params: Sequence[nn.Parameter], group_of: dict[nn.Parameter, int]) -> None:
        """One inner-optimizer step over `params`, reading and freeing their gradients.

        Full-precision parameters are stepped together (so foreach/fused kernels still apply);
        low-precision ones one tensor at a time, smallest first.
        """
        full = [p for p in params if p.grad is not None and p not in self.master_of]
        low = sorted((p for p in params if p.grad is not None and p in self.master_of), key=torch.Tensor.numel)
        for group_index in sorted({group_of[p] for p in full}):
            members = [p for p in full if group_of[p] == group_index]
            with only_params(optimizer, group_index, members):
                optimizer.step()
        size = slice_numel(sum(p.numel() for p in params))
        for param in low:
            master, group = self.master_of[param], optimizer.param_groups[group_of[param]]
            if chunked_step_supported(optimizer, group) and sliceable(optimizer, master, param.grad):
                step_tensor(optimizer, group, master, param.grad, param, size)
                param.grad = None
                continue
            master.grad = param.grad.float()
            param.grad = None
            with only_params(optimizer, group_of[param], [master]):
                optimizer.step()
            master.grad = None
            param.data.copy_(master)
