"""BAdam on DeepSpeed ZeRO-3: the engine holds the active block's sharded fp32 masters and states.

ZeRO-3 partitions every weight across the ranks, and its optimizer wrapper keeps fp32 master
partitions, gradient partitions and optimizer states for the parameters that require grad when it
is built. BAdam's part is which parameters those are. At a block switch the weight partitions stay
where they are; only DeepSpeed's optimizer wrapper is rebuilt, over the new block, which frees the
old block's fp32 partitions and states and creates the new block's. Nothing else is re-partitioned.

DeepSpeed runs the inner step itself (one base-optimizer step per flat fp32 partition), so the
BlockOptimizer counts the steps the engine applied instead: before each forward it catches up with
the engine's count and switches when the active block has had its K steps.

Plain PyTorch loop, under `deepspeed` or `torchrun`:

    optimizer = BlockOptimizer(AdamW(model.parameters()), list(model.named_parameters()),
                               switch_block_every=100, ds_zero3_enabled=True)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)  # ZeRO stage 3
    follow_block_switches(engine, optimizer)            # badam.distributed, as for DDP
    for batch in loader:
        engine.backward(engine(**batch).loss)
        engine.step()
    save_checkpoint("ckpt/step-100", engine, optimizer)  # badam.checkpoint, as for every engine

Hugging Face Trainer with `--deepspeed scripts/configs/ds_z3_config.json`: `badam.hf` does all of it.

DeepSpeed keeps one optimizer state per flat partition, so a parameter cannot keep its Adam moments
across a switch: modes that train something across switches (`active_modules`, BREAD) and
optimizers that need per-tensor shapes (Adam-mini, the ratio mode) are refused (badam.holders'
EngineStates); they run on FSDP2.

This adapter uses the BlockOptimizer's adapter contract: `count_step()`, `global_step`,
`register_switch_hook()` and `ds_zero3_enabled` (the EngineStates holder).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .block import BlockOptimizer

_MISSING = object()


def is_deepspeed_engine(obj: Any) -> bool:
    """Whether `obj` is a DeepSpeedEngine; False without importing DeepSpeed (which costs seconds) if unused."""
    deepspeed = sys.modules.get("deepspeed")
    engine_class = getattr(deepspeed, "DeepSpeedEngine", None)
    return engine_class is not None and isinstance(obj, engine_class)


def applied_steps(engine: Any) -> int:
    """Optimizer steps the engine has applied (fp16 overflow steps are skipped, not applied)."""
    return engine.global_steps - engine.skipped_steps


def rebuild_zero_optimizer(engine: Any) -> None:
    """Rebuild `engine`'s ZeRO-3 optimizer wrapper over the parameters that require grad now.

    The weights' side of ZeRO-3 (the module hooks that gather and release partitions, and their
    prefetch trace) does not depend on which block trains, so the wrapper's `parameter_offload` is
    kept: a fresh one re-hooks the modules, and activation-checkpoint recomputation then sees
    released (empty) weights. The new wrapper takes over the old one's identity (its attributes),
    so every holder of the old object (accelerate's wrapper, the Trainer) sees the new one.
    """
    current = engine.optimizer
    offload = current.parameter_offload
    try:
        # current.destroy() would take the module hooks down with it, and the new wrapper would make new ones.
        with _replaced(offload, "destroy", lambda: None):
            current.destroy()
        with _replaced(type(current), "initialize_ds_offload", lambda self, **kwargs: offload):
            rebuilt = engine._configure_zero_optimizer(engine.basic_optimizer)
    except (AttributeError, TypeError) as error:
        import deepspeed

        raise RuntimeError(
            f"cannot rebuild the ZeRO-3 optimizer with DeepSpeed {deepspeed.__version__} ({error}); BAdam's "
            "ZeRO-3 support is tested with DeepSpeed 0.19.8"
        ) from error
    current.__dict__ = rebuilt.__dict__


@contextmanager
def _replaced(owner: Any, name: str, value: Any) -> Iterator[None]:
    """Set `owner.name` to `value` for the block, then put back what `owner` itself held (or nothing)."""
    own = owner.__dict__.get(name, _MISSING)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if own is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, own)


def catch_up(engine: Any, optimizer: BlockOptimizer) -> None:
    """Count the steps the engine applied since the last call; switch blocks where they are due."""
    while optimizer.global_step < applied_steps(engine):
        optimizer.count_step()


def follow_engine(engine: Any, optimizer: BlockOptimizer) -> None:
    """Make `engine` (a ZeRO-3 DeepSpeedEngine built on `optimizer`) follow BAdam's block switches."""
    if engine.zero_optimization_stage() != 3:
        raise ValueError(f"badam.zero3 needs ZeRO stage 3; this engine runs stage {engine.zero_optimization_stage()}")
    if engine.basic_optimizer is not optimizer:
        raise ValueError(
            f"the engine was not built on this optimizer (it wraps {type(engine.basic_optimizer).__name__}): "
            "pass the BlockOptimizer to deepspeed.initialize(optimizer=...)"
        )
    if not optimizer.ds_zero3_enabled:
        raise ValueError("build the BlockOptimizer with ds_zero3_enabled=True to run it under ZeRO-3")
    optimizer.register_switch_hook(lambda _: rebuild_zero_optimizer(engine))
    engine.register_forward_pre_hook(lambda module, args: catch_up(engine, optimizer))
    # An engine found during its first forward (badam.distributed.follow_wrapping) may have loaded a
    # checkpoint already, and that forward has gone past the hook just registered.
    catch_up(engine, optimizer)
