"""`unwrap(optimizer)`: the BAdam optimizer inside the wrappers that training engines put around it.

accelerate's AcceleratedOptimizer, DeepSpeed's ZeRO optimizer (and the Trainer, through both) hold
the optimizer they were given as `.optimizer`; this peels them until a BAdam optimizer shows.

    from badam import unwrap
    block_optimizer = unwrap(trainer.optimizer)   # None for a plain torch optimizer
    unwrap_bound(trainer.optimizer)               # FSDP2: the BlockOptimizer bound to the shards
"""

from __future__ import annotations

from typing import Any

from .block import BlockOptimizer
from .fsdp import FSDPBlockOptimizer
from .ratio import BlockOptimizerRatio

BAdamOptimizer = BlockOptimizer | FSDPBlockOptimizer | BlockOptimizerRatio


def unwrap(optimizer: Any) -> BAdamOptimizer | None:
    """The BlockOptimizer, FSDPBlockOptimizer or BlockOptimizerRatio inside `optimizer`, or None."""
    while optimizer is not None and not isinstance(
        optimizer, (BlockOptimizer, FSDPBlockOptimizer, BlockOptimizerRatio)
    ):
        optimizer = getattr(optimizer, "optimizer", None)
    return optimizer


def unwrap_bound(optimizer: Any) -> BlockOptimizer | BlockOptimizerRatio | None:
    """The BAdam optimizer that holds the state: `unwrap`'s, and for an FSDPBlockOptimizer the
    BlockOptimizer it has bound to the sharded model (None before the model is sharded)."""
    found = unwrap(optimizer)
    return found.bind() if isinstance(found, FSDPBlockOptimizer) else found
