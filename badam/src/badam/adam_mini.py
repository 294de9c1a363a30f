"""Adam-mini (arXiv 2406.16793): Adam with one second-moment value per Hessian block.

Adam keeps a second moment v for every parameter. Adam-mini cuts the parameters into the blocks
that the Hessian of a transformer is (near) block-diagonal in, and keeps ONE v per block: the mean
of g² over the block, in an exponential moving average. The first moment m stays per parameter, so
the optimizer state is about half of Adam's (4 bytes per parameter instead of 8 in fp32).

The partition, from the parameter names and shapes:

    query / key weight (q_proj, k_proj, wq, wk, query, key)    one v per attention head
    any other matrix (value, output projection, MLP,           one v per output row: a neuron,
        embedding and LM head, and 2-d weights of any model)       or a token for the embeddings
    norms and biases (1-d tensors, or "norm" in the name)      one v per tensor, no weight decay
    anything else (convolutions, scalars)                      one v per tensor

Weight decay is decoupled, as in AdamW. Non-transformer models need no configuration: without
query/key names every matrix gets one v per row and every other tensor one v per tensor.

    from badam.adam_mini import AdamMini
    optimizer = AdamMini(model.named_parameters(), lr=1e-5, weight_decay=0.1,
                         n_heads=config.num_attention_heads, n_kv_heads=config.num_key_value_heads)
    optimizer = AdamMini.from_model(model, lr=1e-5)  # the same, reading the heads from model.config

As BAdam's inner solver (the active block then costs about 10 bytes per parameter instead of 14):

    optimizer = BlockOptimizer(AdamMini.from_model(model, lr=1e-5), list(model.named_parameters()))

Every parameter has its own param group, which carries what its step needs ("name", "partition",
"blocks": the number of v values); state is keyed by the tensor in the group. So the optimizer
also steps tensors it was not built on when they arrive in a group copy, which is how
`BlockOptimizer` steps the fp32 master copy of a bf16 parameter.

States take the parameter's dtype, as in torch's AdamW; mixed precision (an fp32 copy of a bf16
model) is the job of the caller, e.g. BlockOptimizer's fp32 masters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

# Name segments of the attention projections whose Hessian blocks are the heads.
_QUERY_NAMES = frozenset({"q_proj", "wq", "query"})
_KEY_NAMES = frozenset({"k_proj", "wk", "key"})


def _is_norm_or_bias(name: str, param: torch.Tensor) -> bool:
    segments = name.lower().split(".")
    return param.dim() < 2 or segments[-1] == "bias" or any("norm" in s for s in segments)


def _partition(
    name: str, param: torch.Tensor, dim: int | None, n_heads: int | None, n_kv_heads: int | None
) -> tuple[str, int, bool]:
    """(partition kind, number of v values, whether weight decay applies) of one named tensor."""
    if _is_norm_or_bias(name, param):
        return "tensor", 1, False
    if param.dim() != 2:
        return "tensor", 1, True
    # The module that owns the weight decides, so a LoRA adapter inside q_proj is a plain matrix.
    owner = name.lower().split(".")[-2] if "." in name else ""
    is_query, is_key = owner in _QUERY_NAMES, owner in _KEY_NAMES
    if not (is_query or is_key):
        return "row", param.shape[0], True
    if n_heads is None:
        raise ValueError(
            f"AdamMini: {name!r} is an attention query/key weight, partitioned per head: pass n_heads "
            "(and n_kv_heads under grouped-query attention), or build with AdamMini.from_model(model, ...)"
        )
    heads = n_heads if is_query else (n_kv_heads or n_heads)
    if param.shape[0] % heads:
        raise ValueError(f"AdamMini: {name!r} has {param.shape[0]} output rows, not divisible into {heads} heads")
    if dim is not None and param.shape[1] != dim:
        raise ValueError(f"AdamMini: dim={dim} but {name!r} has {param.shape[1]} input features")
    return "head", heads, True


def advance_state(state: dict[str, Any], param: torch.Tensor, blocks: int) -> dict[str, Any]:
    """A tensor's Adam-mini state, created at its first step, with the step counted: AdamMini.step
    and badam.tensor_step's sliced step share it, so either continues from the other."""
    if not state:
        state["step"] = 0
        state["m"] = torch.zeros_like(param)
        state["v"] = param.new_zeros(blocks)
    state["step"] += 1
    return state


def update_blocks(
    group: dict[str, Any], w: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, t: int
) -> torch.Tensor:
    """Adam-mini's update of Hessian blocks, in place: `w`, `g` and `m` are (blocks, block size)
    views of the weight, its gradient and m, `v` the blocks' second moments, `t` the step.

    AdamMini.step passes a tensor's every block, badam.tensor_step a slice of them at a time.
    Returns the blocks' squared gradient norms.
    """
    lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
    beta1, beta2 = group["betas"]
    # mean of g² per block through a norm, which reduces without materialising g²; out of place,
    # since on a sharded (DTensor) tensor the norm is a pending reduction
    squares = torch.linalg.vector_norm(g, dim=1).square()
    v.mul_(beta2).add_(squares / g.shape[1], alpha=1 - beta2)
    m.lerp_(g, 1 - beta1)
    if weight_decay:
        w.mul_(1 - lr * weight_decay)
    denom = v.sqrt().div_(math.sqrt(1 - beta2**t)).add_(eps)
    w.addcdiv_(m, denom[:, None], value=-lr / (1 - beta1**t))
    return squares


class AdamMini(Optimizer):
    """Adam-mini: Adam's update with one second-moment value per Hessian block.

    Args:
        named_parameters: `model.named_parameters()`; parameters with requires_grad=False are left out.
        lr, betas, eps: as in torch.optim.AdamW.
        weight_decay: decoupled weight decay, not applied to norms and biases.
        dim: hidden size; when given, checked against the input features of the query/key weights.
        n_heads: attention heads, needed when the model has query/key weights.
        n_kv_heads: key/value heads under grouped-query attention (default n_heads).
    """

    def __init__(
        self,
        named_parameters: Iterable[tuple[str, torch.Tensor]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        dim: int | None = None,
        n_heads: int | None = None,
        n_kv_heads: int | None = None,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"invalid learning rate: {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"invalid betas: {betas}, each must be in [0, 1)")
        if eps < 0.0:
            raise ValueError(f"invalid eps: {eps}")
        if weight_decay < 0.0:
            raise ValueError(f"invalid weight_decay: {weight_decay}")
        if n_heads is not None and n_kv_heads is not None and n_heads % n_kv_heads:
            raise ValueError(f"n_heads={n_heads} is not a multiple of n_kv_heads={n_kv_heads}")

        groups = []
        for entry in named_parameters:
            if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)):
                raise TypeError("AdamMini takes (name, parameter) pairs, e.g. model.named_parameters()")
            name, param = entry
            if not param.requires_grad:
                continue
            if not param.is_contiguous():
                raise ValueError(f"AdamMini: {name!r} is not contiguous; its blocks are views of its memory")
            kind, blocks, decays = _partition(name, param, dim, n_heads, n_kv_heads)
            group = {"params": [param], "name": name, "partition": kind, "blocks": blocks}
            if not decays:
                group["weight_decay"] = 0.0
            groups.append(group)
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        super().__init__(groups, defaults)

    @classmethod
    def from_model(cls, model: nn.Module, **kwargs: Any) -> AdamMini:
        """Build on `model.named_parameters()`, taking dim / n_heads / n_kv_heads from `model.config`
        (Hugging Face names) unless given in `kwargs`."""
        config = getattr(model, "config", None)
        for key, attribute in (
            ("dim", "hidden_size"),
            ("n_heads", "num_attention_heads"),
            ("n_kv_heads", "num_key_value_heads"),
        ):
            if kwargs.get(key) is None and getattr(config, attribute, None) is not None:
                kwargs[key] = getattr(config, attribute)
        return cls(model.named_parameters(), **kwargs)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            blocks = group["blocks"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                if param.grad.is_sparse:
                    raise RuntimeError(f"AdamMini does not support sparse gradients ({group['name']})")
                state = advance_state(self.state[param], param, blocks)
                # Every partition is a (blocks, block size) view of the tensor, so one code path
                # serves heads, rows and whole tensors. Nothing of the tensor's size is allocated:
                # a gradient upcast by BlockOptimizer is already the largest buffer of the step.
                update_blocks(
                    group,
                    param.view(blocks, -1),
                    param.grad.reshape(blocks, -1),
                    state["m"].view(blocks, -1),
                    state["v"],
                    state["step"],
                )
        return loss

    def __repr__(self) -> str:
        defaults = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        values = sum(group["blocks"] for group in self.param_groups)
        return f"AdamMini({defaults}, tensors={len(self.param_groups)}, second_moment_values={values})"
