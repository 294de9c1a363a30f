"""BREAD: landscape correction for the blocks BAdam leaves inactive.

Plain BAdam moves one block at a time; BREAD also nudges the others, cheaply:

* LoRA-based (`lora_mode`): the model carries PEFT LoRA adapters on its (frozen-by-PEFT) base
  weights. The active block's base weights train with the base optimizer as in BAdam, and so do the
  adapters of every block (`"all"`) or only of the blocks backward passes through anyway
  (`"partial"`: the active block and those after it, towards the output).
* SGD-based (`sgd_mode`): inactive blocks (`"all"`, or `"partial"`: only those after the active
  one) get one SGD (or signSGD) step inside backward, from a post-accumulate-grad hook, at the
  base optimizer's current learning rate x `sgd_lr_scaling`; the gradient is freed right there, so
  no inactive block ever holds a gradient beyond the moment it is used. No weight decay, no state,
  and the update is not clipped (clipping happens after backward).

Gradient accumulation under `sgd_mode`: every backward is one SGD step with that micro-batch's
gradient (as in LOMO). With the loss divided by the number of micro-batches, as usual, a cycle moves
an inactive weight by -lr x scaling x (g1 + g2 + ...), where each g is taken at the weights the
previous micro-batch left; the Adam-trained block accumulates and steps once, as always.

    optimizer = BlockOptimizer(AdamW(model.parameters()), list(model.named_parameters()),
                               sgd_mode="partial", sgd_lr_scaling=0.1)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal, get_args

import torch
from torch import nn

LoraMode = Literal["all", "partial"]
SgdMode = Literal["disabled", "all", "partial"]
LORA_MODES: tuple[str | None, ...] = (None, *get_args(LoraMode))
SGD_MODES: tuple[str, ...] = get_args(SgdMode)


def is_lora_adapter(name: str) -> bool:
    """PEFT's LoRA parameter names: `...lora_A.<adapter>.weight`, `lora_embedding_B`, ..."""
    return any(
        part.startswith(("lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B")) for part in name.split(".")
    )


def check_modes(lora_mode: str | None, sgd_mode: str, sgd_lr_scaling: float) -> None:
    if lora_mode not in LORA_MODES:
        raise ValueError(f"unknown lora_mode {lora_mode!r}; choose one of {LORA_MODES}")
    if sgd_mode not in SGD_MODES:
        raise ValueError(f"unknown sgd_mode {sgd_mode!r}; choose one of {SGD_MODES}")
    if not sgd_lr_scaling > 0:
        raise ValueError(f"sgd_lr_scaling must be positive, got {sgd_lr_scaling!r}")


def corrected_blocks(mode: str | None, active: int, num_blocks: int, include_active: bool) -> list[int]:
    """The blocks a BREAD mode corrects while `active` trains, in forward (input-to-output) order.

    `partial` means the blocks that backward reaches anyway: the active one and every later one.
    """
    if mode in (None, "disabled"):
        return []
    blocks = range(num_blocks) if mode == "all" else range(active, num_blocks)
    return [block for block in blocks if include_active or block != active]


class SGDCorrection:
    """Post-accumulate-grad hooks that step inactive parameters with SGD inside backward."""

    def __init__(
        self, params: Iterable[nn.Parameter], lr_of: Callable[[nn.Parameter], float], scaling: float, use_sign: bool
    ) -> None:
        self.lr_of = lr_of
        self.scaling = scaling
        self.use_sign = use_sign
        self.targets: set[nn.Parameter] = set()
        self.handles = [param.register_post_accumulate_grad_hook(self._step) for param in params]

    def _step(self, param: nn.Parameter) -> None:
        if param not in self.targets:
            return
        with torch.no_grad():
            # In place under no_grad bumps the version counter, so a node that still needed this
            # weight would fail loudly instead of computing a wrong gradient.
            update = param.grad.sign() if self.use_sign else param.grad
            param.add_(update, alpha=-self.lr_of(param) * self.scaling)
        param.grad = None

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
