"""One inner-optimizer step on one tensor, in slices: the temporaries never exceed one fp32 slice.

torch's AdamW on an fp32 master needs the tensor's whole gradient in fp32 and two more fp32
tensors of its size (the square root and the quotient). Here AdamW/Adam and Adam-mini run on
slices: each slice of the low-precision gradient is upcast, the moments updated in place, the
master moved and the slice written back into the model's weight, so the only temporary is one fp32
slice. A caller stepping a block sizes the slices by the block (`slice_numel`: 1/256 of it, 0.016
bytes per active parameter), so small tensors take few slices and only the large ones many. The
arithmetic is torch's own single-tensor step, op for op, on the same state tensors, so the result
equals torch's step (bit for bit; its fused kernel's to 1e-6) and the state dict is the base
optimizer's.

    if chunked_step_supported(base_optimizer, group):
        size = slice_numel(sum(p.numel() for p in block))
        step_tensor(base_optimizer, group, master, grad, param, size)   # master (fp32) and param (bf16) move

BlockOptimizer uses it for every tensor it steps when the inner optimizer is one of these (and
falls back to the optimizer's own step for anything else, e.g. AMSGrad or a capturable one). With
`fused=True` (the Trainer's default AdamW) the slices replace the fused kernel: the step's memory
matters more to BAdam than its speed, which is a small share of a step.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.distributed.tensor import DTensor
from torch.optim import Optimizer

from .adam_mini import AdamMini, advance_state, update_blocks

SLICES_PER_BLOCK = 256  # the fp32 temporary is 1/256 of what is stepped: 0.016 bytes per parameter
MIN_SLICE = 4096  # elements: smaller slices cost more in launches than they save


def slice_numel(total_numel: int) -> int:
    """The slice size, in elements, for stepping tensors of `total_numel` elements in all."""
    return max(MIN_SLICE, math.ceil(total_numel / SLICES_PER_BLOCK))


def _is_plain_adam(optimizer: Optimizer, group: dict[str, Any]) -> bool:
    return (
        type(optimizer) in (torch.optim.Adam, torch.optim.AdamW)
        and not group.get("amsgrad")
        and not group.get("maximize")
        and not group.get("capturable")
        and not group.get("differentiable")
        and not isinstance(group["lr"], torch.Tensor)
        and not any(isinstance(beta, torch.Tensor) for beta in group["betas"])
    )


def chunked_step_supported(optimizer: Optimizer, group: dict[str, Any]) -> bool:
    """Whether `step_tensor` reproduces `optimizer`'s step for a tensor of `group`."""
    # Exact types: a subclass may change the step, and then takes its own.
    return type(optimizer) is AdamMini or _is_plain_adam(optimizer, group)


def sliceable(optimizer: Optimizer, master: torch.Tensor, grad: torch.Tensor) -> bool:
    """Whether `step_tensor` can step these tensors: plain ones, or (AdamW/Adam, whose update is
    elementwise) DTensors sharded alike, whose local shards it steps. Adam-mini's head blocks may
    straddle shards: it keeps its own step on DTensors."""
    sharded = [isinstance(t, DTensor) for t in (master, grad)]
    if not any(sharded):
        return True
    return (
        all(sharded)
        and type(optimizer) is not AdamMini
        and master.device_mesh == grad.device_mesh
        and master.placements == grad.placements
    )


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def _spans(numel: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, numel)) for start in range(0, numel, size)]


def step_tensor(
    optimizer: Optimizer,
    group: dict[str, Any],
    master: torch.Tensor,
    grad: torch.Tensor,
    param: torch.Tensor | None = None,
    size: int | None = None,
    with_norm: bool = False,
) -> torch.Tensor | None:
    """One step of `optimizer`'s rule with `group`'s hyperparameters on `master` from `grad`.

    `master` is the tensor the optimizer's state is keyed by (an fp32 master, or the parameter
    itself); `param`, if given, is the low-precision weight that receives the new values.
    size: elements per slice (default: `slice_numel` of this tensor alone).
    with_norm: also return the squared L2 norm of `grad` (fp32), summed over the slices.
    """
    step = _adam_mini if type(optimizer) is AdamMini else _adam
    return step(optimizer, group, master, grad, param, size or slice_numel(master.numel()), with_norm)


def _adam(
    optimizer: Optimizer,
    group: dict[str, Any],
    master: torch.Tensor,
    grad: torch.Tensor,
    param: torch.Tensor | None,
    size: int,
    with_norm: bool,
) -> torch.Tensor | None:
    state = optimizer.state[master]
    if not state:  # as torch.optim.Adam initialises it, so either can continue from the other
        if group.get("fused"):  # the fused kernel keeps its step on the parameter's device
            state["step"] = torch.zeros((), dtype=torch.float32, device=master.device)
        else:
            scalar = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
            state["step"] = torch.tensor(0.0, dtype=scalar)
        state["exp_avg"] = torch.zeros_like(master, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(master, memory_format=torch.preserve_format)
    state["step"] += 1
    step = state["step"].item()
    lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
    beta1, beta2 = group["betas"]
    decoupled = group.get("decoupled_weight_decay", type(optimizer) is torch.optim.AdamW)
    step_size = lr / (1 - beta1**step)
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5

    # Elementwise: on DTensors sharded alike, each rank steps its local shards (see `sliceable`).
    master, grad = _local(master), _local(grad)
    flat_master, flat_grad = master.view(-1), grad.reshape(-1)
    flat_m, flat_v = _local(state["exp_avg"]).view(-1), _local(state["exp_avg_sq"]).view(-1)
    flat_param = None if param is None else _local(param).view(-1)
    buffer = torch.empty(min(size, master.numel()), dtype=master.dtype, device=master.device)
    square_sum = torch.zeros((), dtype=torch.float32, device=master.device) if with_norm else None
    for start, stop in _spans(master.numel(), size):
        g = buffer[: stop - start]
        g.copy_(flat_grad[start:stop])
        if square_sum is not None:
            square_sum += torch.dot(g, g)
        w, m, v = flat_master[start:stop], flat_m[start:stop], flat_v[start:stop]
        if weight_decay != 0:
            if decoupled:
                w.mul_(1 - lr * weight_decay)
            else:
                g.add_(w, alpha=weight_decay)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = torch.sqrt(v, out=g)  # the gradient slice is spent: its buffer takes the denominator
        denom.div_(bias_correction2_sqrt).add_(eps)
        w.addcdiv_(m, denom, value=-step_size)
        if flat_param is not None:
            flat_param[start:stop].copy_(w)
    return square_sum


def _adam_mini(
    optimizer: AdamMini,
    group: dict[str, Any],
    master: torch.Tensor,
    grad: torch.Tensor,
    param: torch.Tensor | None,
    size: int,
    with_norm: bool,
) -> torch.Tensor | None:
    """AdamMini.step's arithmetic (adam_mini.update_blocks), on slices of whole Hessian blocks."""
    blocks = group["blocks"]
    state = advance_state(optimizer.state[master], master, blocks)
    rows_master, rows_grad = master.view(blocks, -1), grad.reshape(blocks, -1)
    rows_m, v = state["m"].view(blocks, -1), state["v"]
    rows_param = None if param is None else param.view(blocks, -1)
    rows = max(1, size // rows_master.shape[1])
    square_sum = torch.zeros((), dtype=torch.float32, device=master.device) if with_norm else None
    buffer = torch.empty(min(rows, blocks), rows_master.shape[1], dtype=master.dtype, device=master.device)
    for start, stop in _spans(blocks, rows):
        g = buffer[: stop - start]
        g.copy_(rows_grad[start:stop])
        w = rows_master[start:stop]
        squares = update_blocks(group, w, g, rows_m[start:stop], v[start:stop], state["step"])
        if square_sum is not None:
            square_sum += squares.sum()
        if rows_param is not None:
            rows_param[start:stop].copy_(w)
    return square_sum
