"""BlockOptimizer: layer-wise BAdam (Algorithm 1 of arXiv 2404.02827).

Block coordinate descent over the model's blocks with Adam as the inner solver: only the active
block is trainable, it takes K = `switch_block_every` steps of the base optimizer, then the next
block (in `switch_mode` order) takes over and the old block's master copies and optimizer states
are freed. With a bf16 model the memory is 2M bytes for the model plus ~16M/D for the active block.

The "one line change" of the paper:

    base = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    optimizer = BlockOptimizer(base, list(model.named_parameters()), switch_block_every=100,
                               switch_mode="random")
    # ... the usual loop: loss.backward(); optimizer.step(); scheduler.step(); optimizer.zero_grad()
"""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle

from .bread import LoraMode, SGDCorrection, SgdMode, check_modes, corrected_blocks, is_lora_adapter
from .holders import EngineStates, LocalStates
from .in_backward import BackwardUpdates
from .partition import assign_blocks, did_you_mean, infer_block_prefixes, named_pairs, normalize_prefix_list
from .precision import MasterCopies, needs_master
from .schedule import SCHEDULE_KEY, BlockSchedule, SwitchMode

logger = logging.getLogger("badam")


def _is_rank_zero() -> bool:
    return (
        not (torch.distributed.is_available() and torch.distributed.is_initialized())
        or torch.distributed.get_rank() == 0
    )


def _shape(param: torch.Tensor) -> tuple[int, ...]:
    # A ZeRO-3 partitioned parameter is an empty tensor; its shape is kept in ds_shape.
    return tuple(getattr(param, "ds_shape", param.shape))


def _first(names: Sequence[str]) -> str:
    return repr(names[0]) + (f" (and {len(names) - 1} more)" if len(names) > 1 else "")


def saved_by(state_dict: Mapping[str, Any]) -> str:
    """A best guess at the optimizer that saved `state_dict`, for the error that refuses it."""
    if "schedule" in state_dict:
        return "BlockOptimizer"
    if "mask_mode" in state_dict:
        return "BlockOptimizerRatio"
    groups = state_dict.get("param_groups")
    if "state" in state_dict and isinstance(groups, list):
        if groups and SCHEDULE_KEY in groups[0]:
            return "FSDPBlockOptimizer"
        return "a plain torch.optim optimizer (it has only 'state' and 'param_groups')"
    return f"an unknown source (its keys: {', '.join(map(repr, list(state_dict)[:6]))})"


class BlockOptimizer(Optimizer):
    """Wraps `base_optimizer` so that only one block of parameters trains at a time.

    Args:
        base_optimizer: any per-parameter torch optimizer built on the model's parameters (its param
            groups keep their own lr / weight decay / betas per parameter).
        named_parameters_list: `list(model.named_parameters())`.
        block_prefix_list: custom partition, a list of blocks, each a prefix or a list of prefixes;
            inferred from the names (one block per layer) when None.
        switch_block_every: K, the optimizer steps each block takes before the switch.
        switch_mode: "random", "ascending", "descending" or "fixed".
        start_block: the first active block (random: the rest of the first block-epoch is random).
        active_modules: name substrings of parameters that stay trainable throughout (e.g. a task head).
        include_embedding / include_lm_head: add the embedding / LM head as extra blocks.
        include_vision_tower: a vision-language (or audio) model's towers and projector become blocks
            too, before the language model's layers; frozen otherwise (badam.stacks).
        split_moe: split each mixture-of-experts layer into its attention and router, then its
            experts (badam.moe); experts_per_block: experts per block, for experts kept as modules.
        keep_idle_blocks: keep a block all of whose parameters are active modules as a K-step slot
            in which only the active modules train, as the published package does (the official
            SuperGLUE code's 26-block cycle); by default such a block is dropped.
        verbose: 0 silent, 1 logs each switch (logging, level INFO), 2 prints each switch and the
            trainable parameter names (stdout, rank 0), as the published package does.
        log_fn: called as log_fn({"block": ..., "global_step": ..., "block_epoch": ...}) at each switch.
        seed: seed of the random block order.
        lora_mode: BREAD with LoRA ("all" or "partial"): blocks hold the base weights, which train
            when active, and the PEFT LoRA adapters of the corrected blocks train alongside.
        sgd_mode: BREAD with SGD ("all", "partial" or "disabled"): inactive blocks get an SGD step
            inside backward; see badam.bread for the rules.
        sgd_lr_scaling: the SGD learning rate as a multiple of the parameter's current group lr.
        sgd_use_sign: use signSGD for the correction.
        update_in_backward: step each tensor of the active block inside backward, as soon as its
            gradient exists, so the block's gradient never exists as a whole (badam.in_backward).
            One process; no clipping by global norm; AdamW/Adam or AdamMini inside.
        gradient_accumulation_steps: with update_in_backward, the micro-batches per step (their
            gradients accumulate in fp32; the last backward steps).
        ds_zero3_enabled: the model runs under DeepSpeed ZeRO-3, whose optimizer wrapper keeps the
            active block's fp32 masters and states (sharded) and runs the inner step; see badam.zero3.
            step() outside DeepSpeed is refused; None means False.

    The positional order, up to ds_zero3_enabled, is the published package's; seed, the BREAD
    options and the options this package adds are keyword-only.

    The adapters' contract: what badam.holders, fsdp, zero3, distributed and checkpoint use, and
    all that an engine adapter may use besides the torch.optim interface:
        named_params, name_of: the parameters by name, and each parameter's name;
        managed, blocks, block_prefixes: every parameter that some block or mode trains, the blocks;
        group_of, grouped(params): the base-optimizer group index of each managed parameter;
        trainable_params, active_block, schedule, global_step: what trains now, and where in the schedule;
        holder, masters: who holds the masters and states (badam.holders), and the fp32 masters;
        count_step(): count a step an engine ran itself; restore_schedule(): continue a saved one;
        materialise_state(): allocate the state a checkpoint of this position holds;
        register_switch_hook(hook): run `hook(optimizer)` after each switch.
    """

    def __init__(
        self,
        base_optimizer: Optimizer,
        named_parameters_list: Iterable[tuple[str, nn.Parameter]],
        block_prefix_list: Sequence[str | Sequence[str]] | None = None,
        switch_block_every: int = 50,
        start_block: int | None = None,
        switch_mode: SwitchMode = "descending",
        active_modules: Sequence[str] = (),
        include_embedding: bool = False,
        include_lm_head: bool = False,
        verbose: int = 1,
        log_fn: Callable[[dict[str, Any]], None] | None = None,
        ds_zero3_enabled: bool | None = False,
        *,
        seed: int = 0,
        lora_mode: LoraMode | None = None,
        sgd_mode: SgdMode = "disabled",
        sgd_lr_scaling: float = 1.0,
        sgd_use_sign: bool = False,
        update_in_backward: bool = False,
        gradient_accumulation_steps: int = 1,
        include_vision_tower: bool = False,
        split_moe: bool = False,
        experts_per_block: int | None = None,
        keep_idle_blocks: bool = False,
    ) -> None:
        if not isinstance(base_optimizer, Optimizer):
            raise TypeError(f"base_optimizer must be a torch.optim.Optimizer, got {type(base_optimizer).__name__}")
        self.base_optimizer = base_optimizer
        # Optimizer.__setstate__ installs the hook registries and the step profiling wrapper without
        # creating param groups of our own: ours are the base optimizer's.
        self.__setstate__({"defaults": base_optimizer.defaults})
        self.verbose = verbose
        self.log_fn = log_fn
        check_modes(lora_mode, sgd_mode, sgd_lr_scaling)
        self.lora_mode = lora_mode
        self.sgd_mode = sgd_mode
        if isinstance(active_modules, str):
            raise TypeError(
                f"active_modules must be a list of name substrings, e.g. [{active_modules!r}], not a string"
            )
        named = named_pairs(named_parameters_list)
        self.named_params = dict(named)
        self.holder = EngineStates() if ds_zero3_enabled else LocalStates()
        self.holder.check(self, active_modules)
        if update_in_backward:
            if self.holder.engine_held:
                raise ValueError(
                    "update_in_backward=True cannot run under DeepSpeed ZeRO-3, whose engine runs the step"
                )
            self.holder.in_backward = BackwardUpdates(self, gradient_accumulation_steps)
        self.name_of = {param: name for name, param in named}
        self.group_of = self._map_groups(named)
        if block_prefix_list is not None and (include_vision_tower or split_moe or experts_per_block is not None):
            raise ValueError(
                "include_vision_tower, split_moe and experts_per_block shape the inferred partition; "
                "with block_prefix_list, list those blocks in it instead"
            )
        if block_prefix_list is None:
            block_prefix_list = infer_block_prefixes(
                list(self.named_params),
                include_embedding,
                include_lm_head,
                include_vision_tower=include_vision_tower,
                split_moe=split_moe,
                experts_per_block=experts_per_block,
            )
        self._partition(normalize_prefix_list(block_prefix_list), tuple(active_modules), keep_idle_blocks)
        self.managed = [p for block in self.blocks + self.block_adapters for p in block] + self.always_active
        self.sgd = None
        if sgd_mode != "disabled":
            lr_of = lambda param: self.base_optimizer.param_groups[self.group_of[param]]["lr"]  # noqa: E731
            self.sgd = SGDCorrection([p for block in self.blocks for p in block], lr_of, sgd_lr_scaling, sgd_use_sign)

        self.schedule = BlockSchedule(len(self.blocks), switch_block_every, switch_mode, start_block, seed)
        for param in self.named_params.values():
            param.requires_grad_(False)
            param.grad = None
        self.active_block: int | None = None
        self._adam: list[nn.Parameter] = []
        self._switch_hooks: OrderedDict[int, Callable[[BlockOptimizer], None]] = OrderedDict()
        self._activate(self.schedule.current)

    def _partition(self, prefixes: list[list[str]], active_modules: tuple[str, ...], keep_idle: bool) -> None:
        """Sort the parameters into blocks, always-active modules and (lora_mode) per-block adapters.

        Without lora_mode what trains is what requires grad (under PEFT: the adapters). With it, the
        blocks hold the base weights PEFT froze, and the adapters are BREAD's correction. A block of
        active modules only is idle: dropped, or with `keep_idle` kept with no parameters of its own.
        """
        trainable = [name for name, param in self.named_params.items() if param.requires_grad]
        if not trainable:
            raise ValueError("no trainable parameters: every parameter has requires_grad=False")
        adapters = [name for name in trainable if is_lora_adapter(name)]
        if self.lora_mode is not None:
            if not adapters:
                raise ValueError(f"lora_mode={self.lora_mode!r} needs a model with PEFT LoRA adapters; none was found")
            trainable = [n for n, p in self.named_params.items() if p in self.group_of and not is_lora_adapter(n)]
            if not trainable:
                frozen = [n for n in self.named_params if not is_lora_adapter(n)]
                raise ValueError(
                    f"lora_mode={self.lora_mode!r} trains the active block's base weights, but the base optimizer "
                    f"holds none of them (e.g. {frozen[0]!r}): build it on all parameters, e.g. model.parameters()"
                )
        for entry in active_modules:
            if not any(entry in name for name in trainable):
                frozen = next((name for name in self.named_params if entry in name), None)
                hint = f"; it matches only frozen ones, e.g. {frozen!r}" if frozen else did_you_mean(entry, trainable)
                raise ValueError(
                    f"active_modules entry {entry!r} matches no trainable parameter name (entries match as "
                    f"substrings){hint}"
                )
        self.always_active = [self.named_params[n] for n in trainable if any(m in n for m in active_modules)]
        # Blocks are matched against every name (a prefix that matches nothing is a typo), then keep
        # only what trains: frozen weights under PEFT and the always-active modules drop out.
        trains = set(trainable) - {self.name_of[p] for p in self.always_active}
        members = assign_blocks(list(self.named_params), prefixes)
        active = set(trainable) - trains
        kept = [
            (p, [n for n in m if n in trains], [n for n in m if n in adapters])
            for p, m in zip(prefixes, members)
            if any(n in trains for n in m) or (keep_idle and any(n in active for n in m))
        ]
        if not kept:
            raise ValueError("no trainable parameter falls in any block")
        self.block_prefixes = [p for p, _, _ in kept]
        self.blocks = [[self.named_params[n] for n in m] for _, m, _ in kept]
        self.block_adapters = [[self.named_params[n] for n in a] for _, _, a in kept] if self.lora_mode else []

    def _map_groups(self, named: list[tuple[str, nn.Parameter]]) -> dict[nn.Parameter, int]:
        group_of: dict[nn.Parameter, int] = {}
        for index, group in enumerate(self.base_optimizer.param_groups):
            for param in group["params"]:
                if param not in self.name_of:
                    raise ValueError(
                        "the base optimizer holds a parameter (shape "
                        f"{tuple(param.shape)}) that is not in named_parameters_list"
                    )
                group_of[param] = index
        for name, param in named:
            if param.requires_grad and param not in group_of:
                raise ValueError(f"trainable parameter {name!r} is missing from the base optimizer's param_groups")
        return group_of

    # torch.optim.Optimizer's contract: the groups (and state) are the base optimizer's, so lr
    # schedulers, gradient clipping utilities and checkpointing all see one source of truth.
    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.base_optimizer.param_groups

    @param_groups.setter
    def param_groups(self, groups: list[dict[str, Any]]) -> None:
        self.base_optimizer.param_groups = groups

    @property
    def state(self) -> dict:
        return self.base_optimizer.state

    @state.setter
    def state(self, state: dict) -> None:
        self.base_optimizer.state = state

    @property
    def masters(self) -> MasterCopies:
        """The active block's fp32 master copies (empty when the engine holds them, under ZeRO-3)."""
        return self.holder.masters

    @property
    def update_in_backward(self) -> bool:
        """Whether the active block steps inside backward (badam.in_backward)."""
        return self.holder.in_backward is not None

    @property
    def ds_zero3_enabled(self) -> bool:
        """Whether DeepSpeed ZeRO-3's optimizer wrapper holds the masters and states (badam.zero3)."""
        return self.holder.engine_held

    @property
    def trainable_params(self) -> list[nn.Parameter]:
        """The model parameters the base optimizer trains now: the active block, the active modules
        and, with lora_mode, the LoRA adapters of the corrected blocks."""
        return self._adam

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def global_step(self) -> int:
        return self.schedule.global_step

    def _selection(self, block: int) -> tuple[list[nn.Parameter], set[nn.Parameter]]:
        """What trains while `block` is active: with the base optimizer, and with BREAD's SGD."""
        adam = self.blocks[block] + self.always_active
        for corrected in corrected_blocks(self.lora_mode, block, self.num_blocks, include_active=True):
            adam += self.block_adapters[corrected]
        sgd = {
            p
            for b in corrected_blocks(self.sgd_mode, block, self.num_blocks, include_active=False)
            for p in self.blocks[b]
        }
        return adam, sgd

    def _activate(self, block: int) -> None:
        """Make `block` the active one: set what trains, then the holder frees and creates state."""
        adam, sgd = self._selection(block)
        keep = set(adam)
        for param in self.managed:
            param.requires_grad_(param in keep or param in sgd)
            if not param.requires_grad:
                param.grad = None
        self.holder.hold(self, [p for p in self._adam if p not in keep], adam)
        if self.sgd is not None:
            self.sgd.targets = sgd
        self.active_block, self._adam = block, adam
        self._announce(block)

    def _announce(self, block: int) -> None:
        """Log the switch (verbose, log_fn) and run the switch hooks, which engines rely on."""
        if self.verbose and _is_rank_zero():
            line = (
                f"BAdam: block {block}/{self.num_blocks} active ({', '.join(self.block_prefixes[block])}), "
                f"{sum(getattr(p, 'ds_numel', p.numel()) for p in self.blocks[block])} parameters, "
                f"global step {self.schedule.global_step}"
            )
            if self.verbose > 1:
                # The published package prints at this level, whether or not logging is set up.
                print("\n".join([line, *(f"  {self.name_of[p]}" for p in self._adam)]), flush=True)
            else:
                logger.info(line)
        if self.log_fn is not None:
            self.log_fn(
                {"block": block, "global_step": self.schedule.global_step, "block_epoch": self.schedule.block_epoch}
            )
        for hook in self._switch_hooks.values():
            hook(self)

    def grouped(self, params: Sequence[nn.Parameter]) -> list[list[nn.Parameter]]:
        """`params` split by base-optimizer group, in the order the groups hold them."""
        return [
            [p for p in params if self.group_of[p] == index] for index in range(len(self.base_optimizer.param_groups))
        ]

    def register_switch_hook(self, hook: Callable[[BlockOptimizer], None]) -> RemovableHandle:
        """Call `hook(optimizer)` after every block switch, once the new block is set up.

        For engines that must learn what trains now (badam.distributed rebuilds DDP's reducer here).
        """
        handle = RemovableHandle(self._switch_hooks)
        self._switch_hooks[handle.id] = hook
        return handle

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One inner step on the active block, then the switch if the block has had its K steps.

        The gradients of low-precision parameters are consumed (upcast and freed) here, one tensor at
        a time, so the block's fp32 gradient never exists as a whole. Under ZeRO-3 the engine steps
        its flat partitions through this, and badam.zero3 counts the steps instead.
        """
        loss, counts = self.holder.step(self, closure)
        if counts:
            self.count_step()
        return loss

    def count_step(self) -> None:
        """Count one finished inner step; switch to the next block once the active one had its K.

        step() calls it; so does an adapter whose engine runs the steps itself (badam.zero3).
        """
        if self.schedule.advance():
            self._activate(self.schedule.current)

    def materialise_state(self) -> None:
        """Allocate the base optimizer's state that a checkpoint taken at this schedule position holds.

        torch.distributed.checkpoint loads into existing tensors, so they must exist first. The
        active block has state once it took a step in this block, the other trained tensors (active
        modules, adapters) once any step was taken. A zero-gradient step at lr 0 allocates it
        without moving a weight; the load then overwrites it.
        """
        block = set(self.blocks[self.active_block])
        block_stepped, any_stepped = self.schedule.steps_in_block > 0, self.schedule.global_step > 0
        tensors = [self.masters.optimized(p) for p in self._adam if (block_stepped if p in block else any_stepped)]
        groups = self.base_optimizer.param_groups
        saved_lr = [group["lr"] for group in groups]
        for group in groups:
            group["lr"] = 0.0
        for tensor in tensors:
            tensor.grad = torch.zeros_like(tensor)
        self.base_optimizer.step()
        for tensor in tensors:
            tensor.grad = None
        for group, lr in zip(groups, saved_lr):
            group["lr"] = lr

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self.holder.in_backward is not None:
            self.holder.in_backward.discard()  # gradients accumulated in fp32 for a step not taken
        for param in self.trainable_params:
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad.detach_().zero_()

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs besides the model weights themselves.

        "base_optimizer" is torch's positional layout; "param_names" names its positions (None under
        ZeRO-3, where they are DeepSpeed's flat partitions), "blocks" the partition and "param_shapes"
        every managed parameter, so that a load matches by name and refuses another model.
        """
        return {
            "schedule": self.schedule.state_dict(),
            "active_block": self.active_block,
            "masters": {self.name_of[p]: m for p, m in self.masters.master_of.items()},
            "base_optimizer": self.base_optimizer.state_dict(),
            "param_names": self.holder.positions(self),
            "blocks": [[self.name_of[p] for p in block] for block in self.blocks],
            "param_shapes": {self.name_of[p]: list(_shape(p)) for p in self.managed},
        }

    def restore_schedule(self, schedule: dict[str, Any], active_block: int) -> None:
        """Continue a saved schedule: its position, and its block set up as the active one."""
        self.schedule.load_state_dict(schedule)
        # An engine's wrapper is built for the active block already; activating it again would clear
        # the state the engine holds and rebuild the wrapper for nothing.
        if active_block != self.active_block or not self.holder.engine_held:
            self._activate(active_block)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the block, its fp32 masters and the base optimizer's state (load the model first).

        Everything is matched by parameter name: the blocks may be listed in another order than at
        save time (the saved schedule continues over the same layers), but a state dict of other
        parameters, shapes or blocks is refused. One saved before names were kept loads by position,
        with a warning.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        if "schedule" not in state_dict:
            raise ValueError(
                f"this is not a BlockOptimizer state dict (no 'schedule' key): it was saved by {saved_by(state_dict)}. "
                "A BlockOptimizer resumes from what its own state_dict() returned"
            )
        names = state_dict.get("param_names")
        schedule, active_block = state_dict["schedule"], state_dict["active_block"]
        if "blocks" in state_dict:
            if (names is None) != self.ds_zero3_enabled:
                raise ValueError(
                    f"this state dict was saved {'under' if names is None else 'without'} DeepSpeed ZeRO-3, and this "
                    f"optimizer runs {'without' if names is None else 'under'} it: their base-optimizer states do not "
                    "translate (under ZeRO-3, resume with badam.checkpoint.load_checkpoint)"
                )
            self._check_params(state_dict["param_shapes"])
            here = self._match_blocks(state_dict["blocks"])
            schedule = {**schedule, "order": [here[b] for b in schedule["order"]]}
            active_block = here[active_block]
        else:
            if schedule["num_blocks"] != self.num_blocks:
                saved = schedule["num_blocks"]
                raise ValueError(f"the state dict was saved with {saved} blocks, this optimizer has {self.num_blocks}")
            warnings.warn(
                "this BlockOptimizer state dict has no parameter names (it was saved by an older badam): it loads "
                "by position, which is right only for the same model and the same block_prefix_list",
                stacklevel=2,
            )
        if self.ds_zero3_enabled and active_block != self.active_block:
            raise ValueError(
                f"this checkpoint was saved with block {active_block} active, and DeepSpeed has built "
                f"its partitions for block {self.active_block}: resume with badam.checkpoint.load_checkpoint, which "
                "switches to the saved block before the engine loads"
            )
        base = state_dict["base_optimizer"]
        if names is not None:
            base = self._renumbered(base, names, active_block)
        trains = set(self._selection(active_block)[0])
        for name, saved in state_dict["masters"].items():
            param = self.named_params.get(name)
            if param is None or param not in trains or not needs_master(param):
                why = (
                    "this model has no such parameter"
                    if param is None
                    else "it does not train in the saved block"
                    if param not in trains
                    else f"it is {param.dtype} here, which needs none"
                )
                raise ValueError(f"the state dict holds an fp32 master copy of {name!r}, but {why}")
            if tuple(saved.shape) != _shape(param):
                raise ValueError(
                    f"the master copy of {name!r} has shape {tuple(saved.shape)} in the state dict and {_shape(param)} here"
                )
        self.restore_schedule(schedule, active_block)
        for name, saved in state_dict["masters"].items():
            self.masters.master_of[self.named_params[name]].copy_(saved)
        self.base_optimizer.load_state_dict(base)

    def _check_params(self, saved_shapes: Mapping[str, Sequence[int]]) -> None:
        """Refuse a state dict of other parameters, or of the same names with other shapes."""
        ours = {self.name_of[p]: _shape(p) for p in self.managed}
        missing = [name for name in ours if name not in saved_shapes]
        unexpected = [name for name in saved_shapes if name not in ours]
        if missing or unexpected:
            problems = ([f"it lacks {_first(missing)}, which this optimizer trains"] if missing else []) + (
                [f"it holds {_first(unexpected)}, which this optimizer does not train"] if unexpected else []
            )
            raise ValueError(f"the state dict does not fit this optimizer: {'; '.join(problems)}")
        for name, shape in ours.items():
            if tuple(saved_shapes[name]) != shape:
                saved = tuple(saved_shapes[name])
                raise ValueError(f"parameter {name!r} has shape {saved} in the state dict and {shape} here")

    def _match_blocks(self, saved_blocks: Sequence[Sequence[str]]) -> list[int]:
        """Our index of each saved block, by its parameter names: blocks may be reordered, not regrouped.

        Idle blocks (keep_idle_blocks) have no names: they match ours in their order.
        """
        block_of = {self.name_of[p]: index for index, block in enumerate(self.blocks) for p in block}
        idle = iter([index for index, block in enumerate(self.blocks) if not block])
        here = []
        for index, names in enumerate(saved_blocks):
            if not names:
                ours = next(idle, None)
                if ours is None:
                    raise ValueError(f"block {index} of the state dict is idle (active modules only); none is here")
                here.append(ours)
                continue
            ours = block_of.get(names[0])
            if ours is None:
                raise ValueError(f"block {index} of the state dict holds {names[0]!r}, which is in no block here")
            theirs, mine = set(names), {self.name_of[p] for p in self.blocks[ours]}
            if theirs != mine:
                odd = sorted(theirs ^ mine)[0]
                raise ValueError(
                    f"block {index} of the state dict and block {ours} here both hold {names[0]!r}, but only "
                    f"{'the state dict' if odd in theirs else 'this one'} holds {odd!r} with it: the blocks "
                    "may be listed in another order, but must group the parameters the same way"
                )
            here.append(ours)
        if len(here) != self.num_blocks:
            spare = next(i for i in range(self.num_blocks) if i not in here)
            first = self.name_of[self.blocks[spare][0]] if self.blocks[spare] else self.block_prefixes[spare][0]
            raise ValueError(f"block {spare} here ({first!r}, ...) is no block of the state dict")
        return here

    def _renumbered(self, saved: Mapping[str, Any], names: Sequence[str], active_block: int) -> dict[str, Any]:
        """The saved base-optimizer state dict, its positions moved to where each name sits here
        once `active_block` is active."""
        ours = [[self.name_of[p] for p in members] for members in self.grouped(self._selection(active_block)[0])]
        theirs = [[names[i] for i in group["params"]] for group in saved["param_groups"]]
        if len(theirs) != len(ours):
            raise ValueError(f"the state dict's base optimizer has {len(theirs)} param groups, this one {len(ours)}")
        for index, (a, b) in enumerate(zip(theirs, ours)):
            if set(a) != set(b):
                odd = sorted(set(a) ^ set(b))[0]
                where = (
                    "the state dict but not of this optimizer"
                    if odd in a
                    else "this optimizer but not of the state dict"
                )
                raise ValueError(f"{odd!r} is in param group {index} of {where}")
        position = {name: i for i, name in enumerate(name for group in ours for name in group)}
        return {
            "state": {position[names[i]]: value for i, value in saved["state"].items()},
            "param_groups": [
                {**group, "params": [position[name] for name in members]}
                for group, members in zip(saved["param_groups"], ours)
            ],
        }

    def __repr__(self) -> str:
        return (
            f"BlockOptimizer({type(self.base_optimizer).__name__}, blocks={self.num_blocks}, "
            f"K={self.schedule.switch_every}, mode={self.schedule.mode!r}, active={self.active_block})"
        )
