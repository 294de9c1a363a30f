"""What an optimizer holds: gradients, fp32 master copies and optimizer states, in real storage bytes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.distributed.tensor import DTensor


@dataclass(frozen=True)
class HeldBytes:
    """Bytes held by a model and its optimizer, each storage counted once.

    `master_copies` are the tensors the optimizer updates that are not model parameters (BAdam's
    fp32 copies of a bf16 block); with an fp32 model the optimizer updates the parameters themselves
    and this is 0. `optimized_numel` is the number of elements the optimizer updates.
    """

    parameters: int
    gradients: int
    master_copies: int
    optimizer_states: int
    optimized_numel: int

    @property
    def optimizer_held(self) -> int:
        """What training adds on top of the model: gradients, master copies and optimizer states."""
        return self.gradients + self.master_copies + self.optimizer_states

    def per_param(self, n: int | None = None) -> dict[str, float]:
        """Bytes per parameter, over `n` parameters (default: the elements the optimizer updates)."""
        n = self.optimized_numel if n is None else n
        if n <= 0:
            raise ValueError(f"per_param needs a positive parameter count, got {n}")
        return {
            "gradients": self.gradients / n,
            "master_copies": self.master_copies / n,
            "optimizer_states": self.optimizer_states / n,
            "optimizer_held": self.optimizer_held / n,
        }


class _StorageCounter:
    """Sums storage bytes, counting a storage once however many tensors view it."""

    def __init__(self) -> None:
        self.seen: set[tuple[torch.device, int]] = set()

    def count(self, tensors: Iterable[torch.Tensor]) -> int:
        total = 0
        for tensor in tensors:
            if tensor.device.type == "meta":  # a meta tensor has no memory behind it
                continue
            if isinstance(tensor, DTensor):  # sharded (FSDP2): this rank holds its local shard
                tensor = tensor.to_local()
            storage = tensor.untyped_storage()
            key = (tensor.device, storage.data_ptr())
            if storage.nbytes() == 0 or key in self.seen:
                continue
            self.seen.add(key)
            total += storage.nbytes()
        return total


def _tensors_in(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside nested dicts, lists and tuples (optimizer states can nest)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors_in(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors_in(value)


def _updating(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer whose groups hold the tensors it updates.

    BAdam's FSDP2 face (badam.fsdp, possibly inside accelerate's wrapper) shows model parameters in
    its groups and the fp32 masters in its state; the BlockOptimizer inside shows them as they are.
    """
    from ..unwrap import unwrap_bound

    return unwrap_bound(optimizer) or optimizer


def held_bytes(optimizer: torch.optim.Optimizer, model: nn.Module) -> HeldBytes:
    """Count what `model` and `optimizer` hold now, in real storage bytes.

    Works with any torch optimizer. Gradients are those of the model's parameters and of the
    optimizer's own tensors (e.g. fp32 masters); a storage shared by several tensors, or already
    counted in an earlier category, is counted once.
    """
    optimizer = _updating(optimizer)
    storages = _StorageCounter()
    model_params = list(model.parameters())
    parameters = storages.count([*model_params, *model.buffers()])
    optimized = list({id(p): p for group in optimizer.param_groups for p in group["params"]}.values())
    gradients = storages.count(p.grad for p in (*model_params, *optimized) if p.grad is not None)
    master_copies = storages.count(optimized)
    optimizer_states = storages.count(_tensors_in(list(optimizer.state.values())))
    return HeldBytes(
        parameters=parameters,
        gradients=gradients,
        master_copies=master_copies,
        optimizer_states=optimizer_states,
        optimized_numel=sum(p.numel() for p in optimized),
    )


def storage_bytes(obj: Any) -> int:
    """Bytes behind the tensors in `obj` (a tensor, or dicts, lists and tuples of them), each storage once.

    For engines whose tensors held_bytes does not know about, e.g. DeepSpeed's partitions.
    """
    return _StorageCounter().count(_tensors_in(obj))
