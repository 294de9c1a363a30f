"""Backward truncation: when block i is the only one training, backward stops at block i.

Autograd already skips everything below the lowest tensor that requires grad, so freezing inactive
blocks is enough for a plain model. Two Hugging Face habits defeat it:

* activation checkpointing (and PEFT) install a hook that makes the embedding output require grad,
  so backward runs through, and recomputes, every layer below the active block;
* reentrant checkpointing gives a layer's parameters gradients only if the layer's *input* requires
  grad, so removing that hook alone would leave the active block without gradients.

`truncate_backward` removes the hook, runs the layers below everything that trains without
checkpointing, and, for reentrant checkpointing, makes the input of the lowest trained layer
require grad (with BREAD's SGD correction, the layers below the active block may train too). It is idempotent; call it again after (re-)enabling checkpointing
(`badam.hf` does, at the start of training).

    model.activation_checkpointing_enable()   # gradient_checkpointing_enable() before transformers 5
    optimizer = BlockOptimizer(...)
    truncate_backward(model, optimizer)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from .block import BlockOptimizer


class _TruncatingCheckpoint:
    """A layer's checkpoint function that runs only where gradients are needed.

    A layer none of whose parameters trains, below everything that trains, needs no gradient: it runs
    plainly (checkpointing would only add overhead, and reentrant checkpointing a warning). Under
    reentrant checkpointing, a layer whose parameters train but whose input does not require grad
    (the lowest trained layer) gets an input that does, since only that gives its parameters
    gradients there.
    """

    def __init__(self, checkpoint_fn: Callable[..., Any], layer: nn.Module) -> None:
        self.checkpoint_fn = checkpoint_fn
        self.layer = layer
        self.reentrant = _is_reentrant(checkpoint_fn)

    def __call__(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        hidden = args[0] if args and torch.is_tensor(args[0]) else None
        if hidden is not None and torch.is_grad_enabled() and not hidden.requires_grad:
            if not any(p.requires_grad for p in self.layer.parameters()):
                return function(*args, **kwargs)
            if self.reentrant and hidden.is_floating_point():
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
    for prefixes in optimizer.block_prefixes:
        for prefix in prefixes:
            try:
                layer = model.get_submodule(prefix.rstrip("."))
            except AttributeError:
                continue  # a prefix of parameter names that is not a module path
            checkpoint_fn = getattr(layer, "_gradient_checkpointing_func", None)
            if checkpoint_fn is not None and not isinstance(checkpoint_fn, _TruncatingCheckpoint):
                layer._gradient_checkpointing_func = _TruncatingCheckpoint(checkpoint_fn, layer)
