"""Gradient clipping by global norm that also sees ratio mode's gathered gradients.

BlockOptimizerRatio takes each tensor's active gradient entries during backward and frees the dense
gradient, so `torch.nn.utils.clip_grad_norm_(model.parameters(), ...)` finds no gradient, returns
0 and clips nothing. `clip_grad_norm_` here clips the gathered entries (the only part that trains)
together with any ordinary `.grad`, by their joint norm. For the Hugging Face Trainer, which clips
through its accelerator:

    trainer.accelerator.clip_grad_norm_ = MethodType(clip_grad_norm_old_version, trainer.accelerator)

`clip_grad_norm_old_version` is the published package's name for that patch; LLaMA-Factory installs
it under `use_badam`. The Trainer's `max_grad_norm` then clips ratio mode too, and the logged
`grad_norm` is the true norm. Everything else goes to the accelerator's own method.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

import torch

# The attribute of a parameter that names (weakly) the BlockOptimizerRatio holding its gradient.
_GATHERER = "_badam_gradient_gatherer"


def register_gatherer(param: torch.Tensor, optimizer: Any) -> None:
    """Record that `optimizer` (a BlockOptimizerRatio) holds `param`'s gradient between backward and step."""
    setattr(param, _GATHERER, weakref.ref(optimizer))


def _gatherers(parameters: list[torch.Tensor]) -> list[Any]:
    found = []
    for param in parameters:
        ref = getattr(param, _GATHERER, None)
        optimizer = ref() if ref is not None else None
        if optimizer is not None and all(optimizer is not other for other in found):
            found.append(optimizer)
    return found


@torch.no_grad()
def clip_tensors_(grads: list[torch.Tensor], max_norm: float, norm_type: float = 2.0) -> torch.Tensor:
    """Scale `grads` in place so their joint norm is at most `max_norm`; return the norm before.

    The rule of torch.nn.utils.clip_grad_norm_: coefficient max_norm / (norm + 1e-6), at most 1.
    """
    if not grads:
        return torch.tensor(0.0)
    total = torch.nn.utils.get_total_norm(grads, norm_type)
    coefficient = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for grad in grads:
        grad.mul_(coefficient.to(grad.device))
    return total


def clip_grad_norm_(parameters: Iterable[torch.Tensor], max_norm: float, norm_type: float = 2.0) -> torch.Tensor:
    """`torch.nn.utils.clip_grad_norm_` over `parameters`' gradients, ratio mode's gathered ones included."""
    parameters = list(parameters)
    grads = [g for optimizer in _gatherers(parameters) for g in optimizer.gathered_grads()]
    grads += [p.grad for p in parameters if p.grad is not None]
    return clip_tensors_(grads, max_norm, norm_type)


def clip_grad_norm_old_version(
    accelerator: Any, parameters: Iterable[torch.Tensor], max_norm: float, norm_type: float = 2.0
) -> torch.Tensor | None:
    """`Accelerator.clip_grad_norm_` that clips ratio mode's gathered gradients (bind it to an accelerator)."""
    parameters = list(parameters)
    if not _gatherers(parameters):
        return type(accelerator).clip_grad_norm_(accelerator, parameters, max_norm, norm_type)
    accelerator.unscale_gradients()
    return clip_grad_norm_(parameters, max_norm, norm_type)
