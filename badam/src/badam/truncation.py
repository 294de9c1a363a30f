"""Backward truncation: when block i is the only one training, backward stops at block i.

Autograd already skips everything below the lowest tensor that requires grad, so freezing inactive
blocks is enough for a plain model. Two Hugging Face habits defeat it:

* activation checkpointing (and PEFT) install a hook that makes the embedding output require grad,
  so backward runs through, and recomputes, every layer below the active block;
* reentrant checkpointing gives a layer's parameters gradients only if the layer's *input* requires
  grad, so removing that hook alone would leave the active block without gradients.

`truncate_backward` removes the hook and, for reentrant checkpointing, makes only the active
block's input require grad. It is idempotent; call it again after (re-)enabling checkpointing
(`badam.hf` does, at the start of training).

    model.gradient_checkpointing_enable()
    optimizer = BlockOptimizer(...)
    truncate_backward(model, optimizer)
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

if TYPE_CHECKING:
    from .block import BlockOptimizer


class _ActiveInputRequiresGrad:
    """A layer's checkpoint function that gives the active block's input requires_grad=True."""

    def __init__(self, checkpoint_fn: Callable[..., Any], optimizer: BlockOptimizer, block: int) -> None:
        self.checkpoint_fn = checkpoint_fn
        self.optimizer = optimizer
        self.block = block

    def __call__(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.optimizer.active_block == self.block and args and torch.is_tensor(args[0]):
            hidden = args[0]
            if torch.is_grad_enabled() and hidden.is_floating_point() and not hidden.requires_grad:
                args = (hidden.detach().requires_grad_(True), *args[1:])
        return self.checkpoint_fn(function, *args, **kwargs)


def _is_reentrant(checkpoint_fn: Callable[..., Any]) -> bool:
    # Unknown wrappers are treated as reentrant: an input that needlessly requires grad costs time,
    # a missing one silently stops training.
    if isinstance(checkpoint_fn, functools.partial):
        return bool(checkpoint_fn.keywords.get("use_reentrant", True))
    return True


def _remove_input_require_grads_hooks(model: nn.Module) -> None:
    for module in model.modules():
        has_hook = getattr(module, "_require_grads_hooks", None) or hasattr(module, "_require_grads_hook")
        if has_hook and hasattr(module, "disable_input_require_grads"):
            module.disable_input_require_grads()


def truncate_backward(model: nn.Module, optimizer: BlockOptimizer) -> None:
    """Stop backward at the active block of `optimizer` for a (possibly PEFT-wrapped) HF model."""
    _remove_input_require_grads_hooks(model)
    for block, prefixes in enumerate(optimizer.block_prefixes):
        for prefix in prefixes:
            try:
                layer = model.get_submodule(prefix.rstrip("."))
            except AttributeError:
                continue  # a prefix of parameter names that is not a module path
            checkpoint_fn = getattr(layer, "_gradient_checkpointing_func", None)
            if checkpoint_fn is None or isinstance(checkpoint_fn, _ActiveInputRequiresGrad):
                continue
            if _is_reentrant(checkpoint_fn):
                layer._gradient_checkpointing_func = _ActiveInputRequiresGrad(checkpoint_fn, optimizer, block)
