"""BAdam on accelerate's FSDP2: the Trainer's `--fsdp`, or `accelerate launch` with an FSDP config.

accelerate shards the model after the optimizer exists: `prepare(model, optimizer)` replaces every
parameter with a DTensor and points the optimizer's groups at the new parameters by data pointer.
The Trainer then checkpoints the optimizer with torch.distributed.checkpoint's
get/set_optimizer_state_dict, which key the state by the names of the model's parameters. A plain
BlockOptimizer fits neither: it is bound to the parameters it was built on, and its groups hold the
active block's fp32 masters, which are not model parameters.

FSDPBlockOptimizer is BAdam in the shape both expect:
- its groups hold model parameters: none until the model is sharded, then the active block's;
- its BlockOptimizer is built on the sharded parameters when first needed after `fully_shard`, so
  the active block's fp32 masters and Adam states are sharded like the weights they belong to;
- its state is keyed by model parameter: the base optimizer's state plus the fp32 master
  ("badam_master"); the block schedule rides in the first group ("badam_schedule").

Plain loop with accelerate (an FSDP2 plugin, mixed_precision "no"):

    optimizer = FSDPBlockOptimizer(model, lambda m: AdamW(m.parameters(), lr=1e-5), switch_block_every=100)
    model, optimizer = accelerator.prepare(model, optimizer)

Hugging Face Trainer: `badam.hf` sets it up. A checkpoint restores state into the parameters of the
block that is active, so a resumed run must start on the saved block: the checkpoint's
badam_schedule.json is read before the load (`restore_schedule`), as under ZeRO-3.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from torch import nn
from torch.distributed.fsdp import FSDPModule
from torch.optim import Optimizer

from .block import BlockOptimizer
from .schedule import SCHEDULE_KEY

MASTER = "badam_master"


def _hyperparameters(group: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in group.items() if key not in ("params", SCHEDULE_KEY)}


class FSDPBlockOptimizer(Optimizer):
    """A BlockOptimizer over `model` that is built once accelerate's FSDP2 has sharded the model.

    Args:
        model: the model accelerate will shard in place (`fully_shard` keeps the module objects).
        make_base_optimizer: builds the base optimizer on a model's parameters; called on the whole
            model for the groups' hyperparameters, and on the sharded model for the real one.
        block_kwargs: BlockOptimizer's arguments (switch_block_every, switch_mode, ...).
    """

    def __init__(
        self, model: nn.Module, make_base_optimizer: Callable[[nn.Module], Optimizer], **block_kwargs: Any
    ) -> None:
        self.model = model
        self.make_base_optimizer = make_base_optimizer
        self.block_kwargs = block_kwargs
        self.block_optimizer: BlockOptimizer | None = None
        self._saved_schedule: tuple[dict[str, Any], int] | None = None
        base = make_base_optimizer(model)
        self.__setstate__({"defaults": base.defaults})
        self.param_groups = [{**_hyperparameters(group), "params": []} for group in base.param_groups]

    def bind(self) -> BlockOptimizer | None:
        """The BlockOptimizer on the sharded parameters, built at the first call after sharding; None before."""
        if self.block_optimizer is None and isinstance(self.model, FSDPModule):
            optimizer = BlockOptimizer(
                self.make_base_optimizer(self.model), list(self.model.named_parameters()), **self.block_kwargs
            )
            if len(optimizer.param_groups) != len(self.param_groups):
                raise RuntimeError(
                    f"the base optimizer has {len(optimizer.param_groups)} groups on the sharded model and "
                    f"{len(self.param_groups)} on the whole one: make_base_optimizer must group the same way"
                )
            self.block_optimizer = optimizer
            optimizer.register_switch_hook(self._show_active_block)
            if self._saved_schedule is not None:
                # A checkpoint of this position is loaded into existing state tensors (DCP loads in place).
                optimizer.restore_schedule(*self._saved_schedule)
                optimizer.materialise_state()
            self._show_active_block(optimizer)
        return self.block_optimizer

    def _bound(self, action: str) -> BlockOptimizer:
        optimizer = self.bind()
        if optimizer is None:
            raise RuntimeError(
                f"cannot {action} before the model is sharded: pass model and optimizer to accelerator.prepare first"
            )
        return optimizer

    def _show_active_block(self, optimizer: BlockOptimizer) -> None:
        for index, group in enumerate(self.param_groups):
            group["params"] = [p for p in optimizer.trainable_params if optimizer.group_of[p] == index]

    def _pass_hyperparameters(self, optimizer: BlockOptimizer) -> None:
        # LR schedulers set this object's groups; the base optimizer (and BREAD's SGD) read its own.
        for mine, base in zip(self.param_groups, optimizer.param_groups):
            base.update(_hyperparameters(mine))

    def restore_schedule(self, schedule: dict[str, Any], active_block: int) -> None:
        """Start from a saved schedule and its block (now if bound, else at binding)."""
        if self.block_optimizer is None:
            self._saved_schedule = (schedule, active_block)
        else:
            self.block_optimizer.restore_schedule(schedule, active_block)

    @property
    def active_block(self) -> int | None:
        optimizer = self.bind()
        return None if optimizer is None else optimizer.active_block

    @property
    def state(self) -> dict[nn.Parameter, dict[str, Any]]:
        """Per parameter of the active block: the base optimizer's state and, for bf16/fp16 weights, the fp32 master."""
        optimizer = self.bind()
        if optimizer is None:
            return {}
        view = {}
        for param in (p for group in self.param_groups for p in group["params"]):
            view[param] = dict(optimizer.state.get(optimizer.masters.optimized(param), {}))
            if param in optimizer.masters.master_of:
                view[param][MASTER] = optimizer.masters.master_of[param]
        return view

    def state_dict(self) -> dict[str, Any]:
        """torch's optimizer layout over the active block's parameters; the schedule in the first group."""
        state = self.state  # binds first, if the model is sharded by now
        params = [p for group in self.param_groups for p in group["params"]]
        index = {p: i for i, p in enumerate(params)}
        groups = [
            {**_hyperparameters(group), "params": [index[p] for p in group["params"]]} for group in self.param_groups
        ]
        if self.block_optimizer is not None:
            schedule = {
                "schedule": self.block_optimizer.schedule.state_dict(),
                "active_block": self.block_optimizer.active_block,
            }
            groups[0][SCHEDULE_KEY] = json.dumps(schedule)
        return {"state": {index[p]: entry for p, entry in state.items()}, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load what state_dict saved (keyed by position, or by name as torch.distributed.checkpoint does)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"the state dict has {len(groups)} param groups, this optimizer {len(self.param_groups)}")
        for mine, saved in zip(self.param_groups, groups):
            mine.update(_hyperparameters(saved))
        if not state_dict["state"] and SCHEDULE_KEY not in groups[0]:
            return  # hyperparameters only: accelerate's round trip through an optimizer not bound yet
        optimizer = self._bound("load optimizer state")
        if SCHEDULE_KEY in groups[0]:
            saved = json.loads(groups[0][SCHEDULE_KEY])
            if saved["active_block"] != optimizer.active_block:
                raise ValueError(
                    f"this checkpoint was saved with block {saved['active_block']} active and this optimizer trains "
                    f"block {optimizer.active_block}: name the checkpoint in badam_trainer_kwargs(resume_from_checkpoint=...) "
                    "(or call restore_schedule with its badam_schedule.json) before the model is sharded"
                )
            optimizer.schedule.load_state_dict(saved["schedule"])
        keys = [key for group in groups for key in group["params"]]
        params = [p for group in self.param_groups for p in group["params"]]
        if len(keys) != len(params):
            raise ValueError(f"the state dict holds {len(keys)} parameters, the active block trains {len(params)}")
        base_state = {}
        for position, (key, param) in enumerate(zip(keys, params)):
            entry = dict(state_dict["state"].get(key, {}))
            master = entry.pop(MASTER, None)
            if master is not None:
                optimizer.masters.master_of[param].copy_(master)
            base_state[position] = entry
        base_groups, start = [], 0
        for group in self.param_groups:
            base_groups.append({**_hyperparameters(group), "params": list(range(start, start + len(group["params"])))})
            start += len(group["params"])
        optimizer.base_optimizer.load_state_dict({"state": base_state, "param_groups": base_groups})

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        optimizer = self._bound("step")
        self._pass_hyperparameters(optimizer)
        return optimizer.step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        optimizer = self.bind()
        if optimizer is not None:
            # Called after the scheduler's step: the next backward's BREAD corrections see the new lr.
            self._pass_hyperparameters(optimizer)
            optimizer.zero_grad(set_to_none)

    def __repr__(self) -> str:
        return f"FSDPBlockOptimizer({self.block_optimizer if self.block_optimizer is not None else 'not bound: the model is not sharded yet'})"
