"""BlockOptimizerRatio: the ratio variant of BAdam, where every tensor trains a moving share of its entries.

Layer-wise BAdam trains one layer at a time. This variant trains every tensor at once, but only an
`update_ratio` share of each tensor's entries. Every `switch_every` steps a new share becomes active,
and the old share's optimizer state is dropped:

* `adjacent`: a contiguous run of k = round(ratio * numel) entries of the flattened tensor. At each
  switch the run moves on by k, wrapping around at the end, so ceil(numel / k) switches (a
  ratio-epoch) cover the whole tensor. A run is a slice of the tensor (two slices when it wraps),
  so reading its gradient and writing it back are plain copies.
* `scatter`: a random subset of k entries, drawn from a generator seeded by (seed, switch, tensor),
  so runs are reproducible.

The inner solver is AdamW, with bias correction and decoupled weight decay, on the active entries
only. Autograd's dense gradient of a tensor is not kept. A post-accumulate-grad hook copies the
active entries into an fp32 buffer, summing over micro-batches, and frees the dense gradient as soon
as that tensor's backward is done. The buffer, Adam's m and v, and for bf16/fp16 tensors an fp32
master copy of the active entries all live in `self.state[param]`. Memory is therefore
proportional to the ratio: 16 bytes per active entry for a bf16 model (+4 for scatter's indices).
`badam.memory.held_bytes` sees all of it.

    optimizer = BlockOptimizerRatio(model.parameters(), list(model.named_parameters()),
                                    switch_every=100, update_ratio=0.1, lr=1e-5)
    # the usual loop: loss.backward(); optimizer.step(); scheduler.step(); optimizer.zero_grad()
    # clip with optimizer.clip_grad_norm_(1.0) or badam.clipping.clip_grad_norm_(model.parameters(), 1.0):
    # the model's parameters hold no .grad for torch's own clip_grad_norm_ to see

It runs on one process: its hooks take each gradient before DDP would average it, and sharding
engines never pass it through them, so several processes or sharded parameters are refused.
"""

from __future__ import annotations

import hashlib
import logging
import math
import numbers
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import nn
from torch.distributed.tensor import DTensor
from torch.optim import Optimizer
from torch.optim.optimizer import ParamsT

from .block import saved_by
from .clipping import clip_tensors_, register_gatherer
from .holders import is_zero3_partitioned
from .partition import embedding_prefixes, lm_head_prefixes, named_pairs
from .precision import LOW_PRECISION

logger = logging.getLogger("badam")

MaskMode = Literal["adjacent", "scatter"]
MASK_MODES: tuple[str, ...] = get_args(MaskMode)


@dataclass(frozen=True)
class TrainableTensor:
    """A tensor the optimizer trains, and the fixed size of its active share."""

    name: str
    param: nn.Parameter
    position: int  # among the trainable tensors; seeds its scatter subsets
    ratio: float  # the share asked for it: update_ratio, a param_update_ratios override, or 1.0 if tiny
    active: int  # k, the entries active in each switch

    def span(self, switch: int) -> tuple[int, int]:
        """Adjacent mode's run at `switch`: [start, stop) of the flattened tensor, where a stop past
        the end wraps around to the start."""
        start = switch * self.active % self.param.numel()
        return start, start + self.active


def _subset_seed(seed: int, switch: int, position: int) -> int:
    # A hash rather than arithmetic on the three numbers: (seed + 1, switch) must not replay
    # (seed, switch + 1), or two runs with neighbouring seeds would share their subsets.
    digest = hashlib.sha256(f"{seed}/{switch}/{position}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _is_view(flat: torch.Tensor, state: dict[str, Any]) -> bool:
    """Whether `_gather` returns a view: a span that does not wrap."""
    return "index" not in state and state["span"][1] <= flat.numel()


def _gather(flat: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
    """The active entries of a flattened tensor, in the order of the optimizer's buffers."""
    if "index" in state:
        return flat.index_select(0, state["index"])
    start, stop = state["span"]
    if stop <= flat.numel():
        return flat[start:stop]
    return torch.cat((flat[start:], flat[: stop - flat.numel()]))


def _put(flat: torch.Tensor, state: dict[str, Any], values: torch.Tensor) -> None:
    """Write `values` (fp32) into the active entries of a flattened tensor, rounding to its dtype."""
    if "index" in state:
        flat.index_put_((state["index"],), values.to(flat.dtype))
        return
    start, stop = state["span"]
    head = min(stop, flat.numel()) - start
    flat[start : start + head].copy_(values[:head])
    flat[: stop - start - head].copy_(values[head:])


def _is_ratio(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 < value <= 1


def _check_hyperparameters(group: Mapping[str, Any]) -> None:
    beta1, beta2 = group["betas"]
    for key, value, ok in (
        ("lr", group["lr"], group["lr"] >= 0),
        ("eps", group["eps"], group["eps"] >= 0),
        ("weight_decay", group["weight_decay"], group["weight_decay"] >= 0),
        ("betas", group["betas"], 0 <= beta1 < 1 and 0 <= beta2 < 1),
    ):
        if not ok:
            raise ValueError(f"invalid {key}: {value!r}")


def _check_single_process(named: list[tuple[str, nn.Parameter]]) -> None:
    """The ratio mode reads each gradient in its post-accumulate-grad hook, the moment autograd makes
    it: under DDP that is before the all-reduce, and FSDP2 and ZeRO-3 never hand it over there."""
    sharded = [name for name, param in named if isinstance(param, DTensor) or is_zero3_partitioned(param)]
    several = (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )
    if sharded or several:
        where = (
            f"parameter {sharded[0]!r} is sharded (FSDP2 or DeepSpeed ZeRO-3)"
            if sharded
            else (f"torch.distributed runs {torch.distributed.get_world_size()} processes")
        )
        raise ValueError(
            f"BlockOptimizerRatio runs on one process, and {where}: its gradient hooks take each gradient before "
            "DDP averages it across ranks, and sharding engines never pass it through them. For multi-GPU "
            "training use the layer-wise BlockOptimizer, which supports DDP, FSDP2 and ZeRO-3."
        )


class BlockOptimizerRatio(Optimizer):
    """AdamW on a moving `update_ratio` share of the entries of every trainable tensor.

    Args:
        param_groups: the model's parameters or a list of group dicts, as for torch.optim.AdamW.
            A group's own lr, betas, eps and weight_decay override the defaults below.
        named_parameters_list: `list(model.named_parameters())`.
        update_ratio: the share of each tensor's entries that is active, in (0, 1].
        verbose: 0 silent, 1 logs each switch (logging, INFO), 2 prints it (stdout).
        switch_every: steps between switches to a new share. State resets at each switch.
        preserve_threshold: tensors with fewer entries than this (norms, biases) are fully active.
        param_update_ratios: `{name prefix: ratio}` overrides, e.g. `{"lm_head.": 1.0}` for a freshly
            initialised head. The longest matching prefix wins.
        mask_mode: "adjacent" (contiguous runs, visited in order) or "scatter" (seeded random subsets).
        lr, betas, eps, weight_decay: AdamW's defaults. Weight decay is decoupled and applies to the
            active entries only.
        include_embedding / include_lm_head: train the input embedding / the LM head too. When False
            they are frozen (`requires_grad_(False)`), so backward skips their gradients, as in the
            published package. A head tied to the embedding is the same parameter and follows it.
        seed: seed of the scatter subsets.
        fused, foreach: accepted and unused, so that the Trainer's AdamW options (which LLaMA-Factory
            passes on) can be handed over as they are; the update here is its own.

    The positional order is the published package's (param_groups, named_parameters_list,
    update_ratio, verbose, switch_every, ...); the rest are keyword-only.
    """

    def __init__(
        self,
        param_groups: ParamsT,
        named_parameters_list: Iterable[tuple[str, nn.Parameter]],
        update_ratio: float = 0.1,
        verbose: int = 1,
        switch_every: int = 100,
        preserve_threshold: int = 100,
        param_update_ratios: Mapping[str, float] | None = None,
        mask_mode: MaskMode = "adjacent",
        lr: float = 1e-5,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        *,
        weight_decay: float = 0.0,
        include_embedding: bool = False,
        include_lm_head: bool = False,
        seed: int = 0,
        fused: bool | None = None,
        foreach: bool | None = None,
    ) -> None:
        if not isinstance(switch_every, int) or isinstance(switch_every, bool) or switch_every <= 0:
            raise ValueError(f"switch_every must be a positive integer, got {switch_every!r}")
        if not _is_ratio(update_ratio):
            raise ValueError(f"update_ratio must be in (0, 1], got {update_ratio!r}")
        if mask_mode not in MASK_MODES:
            raise ValueError(f"unknown mask_mode {mask_mode!r}; choose one of {', '.join(MASK_MODES)}")
        if preserve_threshold < 0:
            raise ValueError(f"preserve_threshold must be >= 0, got {preserve_threshold!r}")
        overrides = dict(param_update_ratios or {})
        for prefix, ratio in overrides.items():
            if not _is_ratio(ratio):
                raise ValueError(f"param_update_ratios[{prefix!r}] must be in (0, 1], got {ratio!r}")
        super().__init__(param_groups, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})
        for group in self.param_groups:
            _check_hyperparameters(group)
        self.switch_every = switch_every
        self.update_ratio = update_ratio
        self.mask_mode = mask_mode
        self.verbose = verbose
        self.seed = seed
        self.global_step = 0

        named = named_pairs(named_parameters_list)
        _check_single_process(named)
        self.name_of = {param: name for name, param in named}
        grouped = {param for group in self.param_groups for param in group["params"]}
        stray = [param for param in grouped if param not in self.name_of]
        if stray:
            shape = tuple(stray[0].shape)
            raise ValueError(f"param_groups hold a parameter (shape {shape}) that is not in named_parameters_list")
        names = [name for name, _ in named]
        frozen = (() if include_embedding else tuple(embedding_prefixes(names))) + (
            () if include_lm_head else tuple(lm_head_prefixes(names))
        )
        trainable = [(name, param) for name, param in named if param.requires_grad and not name.startswith(frozen)]
        if not trainable:
            raise ValueError(
                "no trainable parameters: all have requires_grad=False (or are the frozen embedding or LM head)"
            )
        for name, param in trainable:
            if param not in grouped:
                raise ValueError(f"trainable parameter {name!r} is missing from param_groups")
            if not param.is_contiguous():
                raise ValueError(f"parameter {name!r} is not contiguous; entries are addressed in the flattened tensor")
        for prefix in overrides:
            if not any(name.startswith(prefix) for name, _ in trainable):
                raise ValueError(f"param_update_ratios prefix {prefix!r} matches no trainable parameter")

        self.entries: list[TrainableTensor] = []
        for position, (name, param) in enumerate(trainable):
            matches = [prefix for prefix in overrides if name.startswith(prefix)]
            ratio = overrides[max(matches, key=len)] if matches else update_ratio
            n = param.numel()
            if n < preserve_threshold:
                ratio = 1.0
            active = max(1, min(n, round(ratio * n)))
            self.entries.append(TrainableTensor(name, param, position, ratio, active))
        self.entry_of = {entry.name: entry for entry in self.entries}
        for name, param in named:
            if name.startswith(frozen):
                param.requires_grad_(False)  # so backward skips the embedding's gradient

        # The hooks hold the optimizer weakly and go when it does, so a model that outlives its
        # optimizer gets its ordinary dense gradients back.
        owner = weakref.ref(self)
        handles = [entry.param.register_post_accumulate_grad_hook(self._hook(owner)) for entry in self.entries]
        weakref.finalize(self, lambda: [handle.remove() for handle in handles])
        for entry in self.entries:
            register_gatherer(entry.param, self)
        self._switch()

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        # The trainable tensors, their shares and hooks are fixed at construction; a group added
        # later would silently never train.
        if hasattr(self, "entries"):
            raise NotImplementedError("BlockOptimizerRatio cannot take parameter groups after construction")
        super().add_param_group(param_group)

    @staticmethod
    def _hook(owner: weakref.ref[BlockOptimizerRatio]) -> Callable[[torch.Tensor], None]:
        def gather_active_grad(param: torch.Tensor) -> None:
            optimizer = owner()
            if optimizer is not None and param.grad is not None:
                optimizer._take_grad(param)

        return gather_active_grad

    @torch.no_grad()
    def _take_grad(self, param: torch.Tensor) -> None:
        """Add the active entries of `param.grad` to the fp32 buffer and free the dense gradient."""
        state = self.state[param]
        flat = param.grad.reshape(-1)
        active = _gather(flat, state)
        if "grad" in state:
            state["grad"].add_(active)
        else:
            # A view is copied even in fp32: it would keep the whole dense gradient alive.
            state["grad"] = active.to(torch.float32, copy=_is_view(flat, state))
        param.grad = None

    @property
    def switch(self) -> int:
        """How many switches have happened: the index of the share that is active now."""
        return self.global_step // self.switch_every

    def _select(self, entry: TrainableTensor) -> dict[str, Any]:
        n = entry.param.numel()
        if entry.active == n or self.mask_mode == "adjacent":  # a fully active tensor is one run
            return {"span": entry.span(self.switch)}
        generator = torch.Generator().manual_seed(_subset_seed(self.seed, self.switch, entry.position))
        index = torch.randperm(n, generator=generator)[: entry.active].sort().values
        # int32 halves the memory of the index; index_select and index_put_ accept it.
        return {"index": index.to(device=entry.param.device, dtype=torch.int32 if n < 2**31 else torch.int64)}

    @torch.no_grad()
    def _switch(self) -> None:
        """Make the current switch's share active, with fresh Adam state (and fresh fp32 masters)."""
        for entry in self.entries:
            state = self._select(entry)
            flat = entry.param.view(-1)
            state["step"] = 0
            state["exp_avg"] = torch.zeros(entry.active, dtype=torch.float32, device=flat.device)
            state["exp_avg_sq"] = torch.zeros(entry.active, dtype=torch.float32, device=flat.device)
            if flat.dtype in LOW_PRECISION:
                state["master"] = _gather(flat, state).to(torch.float32, copy=True)
            self.state[entry.param] = state
        if self.verbose > 1:
            print(f"BAdam ratio: switch {self.switch} at step {self.global_step}", flush=True)
        elif self.verbose:
            logger.info("BAdam ratio: switch %d at step %d", self.switch, self.global_step)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One AdamW step on the active entries of every tensor that got a gradient, then maybe a switch.

        The gathered gradients are consumed, so a training loop that only calls `model.zero_grad()`
        (as the Hugging Face Trainer does) still starts every step from zero.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for param in group["params"]:
                state = self.state.get(param)
                if state is None or "grad" not in state:
                    continue  # frozen, or no gradient this step: AdamW skips it too, decay included
                grad = state.pop("grad")
                flat = param.view(-1)
                # An fp32 span that does not wrap is a view: Adam updates the model in place.
                # Otherwise it updates the master (or a gathered copy) and the result is written back.
                values = state["master"] if "master" in state else _gather(flat, state)
                state["step"] += 1
                if weight_decay != 0:
                    values.mul_(1 - lr * weight_decay)
                state["exp_avg"].lerp_(grad, 1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                bias_correction1 = 1 - beta1 ** state["step"]
                bias_correction2 = 1 - beta2 ** state["step"]
                denom = (state["exp_avg_sq"].sqrt() / math.sqrt(bias_correction2)).add_(eps)
                values.addcdiv_(state["exp_avg"], denom, value=-lr / bias_correction1)
                if "master" in state or not _is_view(flat, state):
                    _put(flat, state, values)
        self.global_step += 1
        if self.global_step % self.switch_every == 0:
            self._switch()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (or zero) the gathered gradients, e.g. to discard a backward without stepping."""
        for entry in self.entries:
            state = self.state[entry.param]
            if set_to_none:
                state.pop("grad", None)
            elif "grad" in state:
                state["grad"].zero_()
            entry.param.grad = None

    def gathered_grads(self) -> list[torch.Tensor]:
        """The fp32 gradients of the active entries gathered since the last step (what step() consumes)."""
        return [self.state[entry.param]["grad"] for entry in self.entries if "grad" in self.state[entry.param]]

    def clip_grad_norm_(self, max_norm: float, norm_type: float = 2.0) -> torch.Tensor:
        """`torch.nn.utils.clip_grad_norm_` over the gathered gradients; returns their total norm.

        Call it between backward and step (the Trainer does, through badam.clipping). The norm is
        that of the active entries' gradient, the only part that trains, just as layer-wise BAdam
        clips the active block's gradient.
        """
        return clip_tensors_(self.gathered_grads(), max_norm, norm_type)

    def active_indices(self, name: str) -> torch.Tensor:
        """The flat indices (int64, ascending) of the entries of parameter `name` that are active now."""
        if name not in self.entry_of:
            raise KeyError(f"{name!r} is not a trainable parameter of this optimizer")
        param = self.entry_of[name].param
        state = self.state[param]
        if "index" in state:
            return state["index"].long()
        start, stop = state["span"]
        return (torch.arange(start, stop, device=param.device) % param.numel()).sort().values

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs besides the model weights, keyed by parameter name."""
        return {
            "global_step": self.global_step,
            "switch_every": self.switch_every,
            "update_ratio": self.update_ratio,
            "mask_mode": self.mask_mode,
            "seed": self.seed,
            "param_groups": [
                {**group, "params": [self.name_of[p] for p in group["params"]]} for group in self.param_groups
            ],
            "state": {entry.name: dict(self.state[entry.param]) for entry in self.entries},
            "param_shapes": {entry.name: list(entry.param.shape) for entry in self.entries},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the step, the active shares, masters, Adam states and group hyperparameters.

        Load the model's weights first. The checkpoint must come from an optimizer built the same
        way (same switch_every, ratios, mask_mode, seed and parameter groups).
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        if "mask_mode" not in state_dict:
            raise ValueError(
                f"this is not a BlockOptimizerRatio state dict (no 'mask_mode' key): it was saved by "
                f"{saved_by(state_dict)}. A BlockOptimizerRatio resumes from what its own state_dict() returned"
            )
        for key in ("switch_every", "update_ratio", "mask_mode", "seed"):
            if state_dict[key] != getattr(self, key):
                ours = getattr(self, key)
                raise ValueError(f"checkpoint was made with {key}={state_dict[key]!r}, this optimizer has {ours!r}")
        missing = [name for name in self.entry_of if name not in state_dict["state"]]
        unexpected = [name for name in state_dict["state"] if name not in self.entry_of]
        if missing or unexpected:
            odd, where = (
                (missing[0], "this optimizer trains but the checkpoint lacks")
                if missing
                else (unexpected[0], "the checkpoint holds but this optimizer does not train")
            )
            raise ValueError(f"checkpoint and optimizer train different parameters: {odd!r}, which {where}")
        # Checkpoints of older versions carry no shapes; their names and active entries are still checked.
        for name, saved_shape in state_dict.get("param_shapes", {}).items():
            shape = tuple(self.entry_of[name].param.shape)
            if tuple(saved_shape) != shape:
                raise ValueError(
                    f"parameter {name!r} has shape {tuple(saved_shape)} in the checkpoint and {shape} here"
                )
        saved_groups = state_dict["param_groups"]
        ours = [[self.name_of[p] for p in group["params"]] for group in self.param_groups]
        if [group["params"] for group in saved_groups] != ours:
            raise ValueError("checkpoint's param_groups hold other parameters (or group them otherwise) than ours")
        global_step = int(state_dict["global_step"])
        for name, saved in state_dict["state"].items():
            entry = self.entry_of[name]
            if "index" in saved:
                have, expected = len(saved["index"]), entry.active
            else:
                have, expected = tuple(saved["span"]), entry.span(global_step // self.switch_every)
            if have != expected:
                raise ValueError(
                    f"active entries of {name!r} differ: checkpoint {have}, this optimizer {expected} "
                    "(update_ratio, param_update_ratios or preserve_threshold changed?)"
                )
        for group, saved in zip(self.param_groups, saved_groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.global_step = global_step
        for name, saved in state_dict["state"].items():
            param = self.entry_of[name].param
            self.state[param] = {
                key: value.to(param.device, copy=True) if isinstance(value, torch.Tensor) else value
                for key, value in saved.items()
            }

    def __repr__(self) -> str:
        return (
            f"BlockOptimizerRatio(tensors={len(self.entries)}, ratio={self.update_ratio}, mode={self.mask_mode!r}, "
            f"switch_every={self.switch_every}, global_step={self.global_step})"
        )
