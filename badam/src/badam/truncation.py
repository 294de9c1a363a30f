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
    truncate_backward(model)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


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
                if not _any_requires_grad(function, args, kwargs):
                    return function(*args, **kwargs)
            elif self.reentrant and hidden.is_floating_point():
                args = (hidden.detach().requires_grad_(True), *args[1:])
        return self.checkpoint_fn(function, *args, **kwargs)


def _any_requires_grad(function: Callable[..., Any], args: tuple, kwargs: dict) -> bool:
    """Whether an input of the layer requires grad: a frozen decoder layer above a training encoder
    layer gets its hidden states without grad but the encoder's output with it, and must pass
    gradients back through it (transformers binds keyword arguments into a partial)."""
    bound = function.keywords if isinstance(function, functools.partial) else {}
    return any(torch.is_tensor(v) and v.requires_grad for v in (*args, *kwargs.values(), *bound.values()))


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


def truncate_backward(model: nn.Module) -> None:
    """Stop backward at the lowest layer that trains (BlockOptimizer's active block), for a
    (possibly PEFT-wrapped) Hugging Face model; it reads what trains from requires_grad at each call."""
    _remove_input_require_grads_hooks(model)
    # Every checkpointed layer, not only the blocks': a tower's frozen layers below a training one
    # run plainly too, and a partition that splits layers (badam.moe) names no layer module.
    for layer in model.modules():
        checkpoint_fn = getattr(layer, "_gradient_checkpointing_func", None)
        if checkpoint_fn is not None and not isinstance(checkpoint_fn, _TruncatingCheckpoint):
            layer._gradient_checkpointing_func = _TruncatingCheckpoint(checkpoint_fn, layer)
