"""The order in which BAdam visits its blocks, and how long it stays on each.

One block-epoch visits every block once; each visit lasts exactly K optimizer steps (the paper's
inner Adam steps), the first visit included. Orders: `random` (a fresh permutation each block-epoch,
reproducible from a seed), `ascending`, `descending`, and `fixed` (one block forever).

    schedule = BlockSchedule(num_blocks=32, switch_every=100, mode="random", seed=0)
    block = schedule.current
    if schedule.advance():      # after each optimizer step
        block = schedule.current
"""

from __future__ import annotations

import math
import random
from typing import Any, Literal, get_args

SwitchMode = Literal["random", "ascending", "descending", "fixed"]
SWITCH_MODES: tuple[str, ...] = get_args(SwitchMode)
# Where FSDPBlockOptimizer's state dict carries the schedule (its first param group), for readers of it.
SCHEDULE_KEY = "badam_schedule"


def suggest_switch_every(num_samples: int, batch_size: int, num_blocks: int) -> int:
    """The paper's suggested K = min(max(n / (B * D), 50), 100).

    n / (B * D) steps per block is one data pass per block-epoch; the clamp keeps K in the range the
    paper found robust.
    """
    if min(num_samples, batch_size, num_blocks) <= 0:
        raise ValueError(
            f"num_samples, batch_size and num_blocks must be positive, got {num_samples}, {batch_size}, {num_blocks}"
        )
    return int(min(max(math.ceil(num_samples / (batch_size * num_blocks)), 50), 100))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class BlockSchedule:
    """Which block is active, and when to switch to the next one."""

    def __init__(
        self, num_blocks: int, switch_every: int, mode: str, start_block: int | None = None, seed: int = 0
    ) -> None:
        if not _is_int(switch_every) or switch_every <= 0:
            raise ValueError(f"switch_block_every must be a positive integer, got {switch_every!r}")
        if mode not in SWITCH_MODES:
            raise ValueError(f"unknown switch_mode {mode!r}; choose one of {', '.join(SWITCH_MODES)}")
        if num_blocks <= 0:
            raise ValueError("there are no blocks to train")
        if start_block is not None and not _is_int(start_block):
            raise ValueError(f"start_block must be a block index (an integer) or None, got {start_block!r}")
        if start_block is not None and not 0 <= start_block < num_blocks:
            raise ValueError(
                f"start_block={start_block} is out of range: there are {num_blocks} blocks (0..{num_blocks - 1})"
            )
        self.num_blocks = num_blocks
        self.switch_every = switch_every
        self.mode = mode
        self.rng = random.Random(seed)
        self.order = self._new_order(start_block)
        self.position = 0
        self.steps_in_block = 0
        self.global_step = 0
        self.block_epoch = 0

    @property
    def current(self) -> int:
        return self.order[self.position]

    def _new_order(self, first: int | None = None) -> list[int]:
        blocks = list(range(self.num_blocks))
        if self.mode == "fixed":
            return [0 if first is None else first]
        if self.mode == "descending":
            blocks.reverse()
        elif self.mode == "random":
            self.rng.shuffle(blocks)
        if first is not None:
            # The first block-epoch starts at `first`; for the ordered modes it then continues in order
            # (wrapping around), for random the rest stays a random permutation.
            at = blocks.index(first)
            blocks = blocks[at:] + blocks[:at] if self.mode != "random" else [first] + blocks[:at] + blocks[at + 1 :]
        return blocks

    def advance(self) -> bool:
        """Count one optimizer step; return True when it completed the active block's K steps."""
        self.global_step += 1
        self.steps_in_block += 1
        if self.steps_in_block < self.switch_every:
            return False
        self.steps_in_block = 0
        self.position += 1
        if self.position == len(self.order):
            self.block_epoch += 1
            self.position = 0
            if self.mode != "fixed":
                self.order = self._new_order()
        return self.mode != "fixed"

    def state_dict(self) -> dict[str, Any]:
        return {
            "order": list(self.order),
            "position": self.position,
            "steps_in_block": self.steps_in_block,
            "global_step": self.global_step,
            "block_epoch": self.block_epoch,
            "rng_state": self.rng.getstate(),
            "num_blocks": self.num_blocks,
            "switch_every": self.switch_every,
            "mode": self.mode,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["num_blocks"] != self.num_blocks:
            raise ValueError(
                f"checkpoint was made with {state['num_blocks']} blocks, this optimizer has {self.num_blocks}"
            )
        self.order = list(state["order"])
        self.position = int(state["position"])
        self.steps_in_block = int(state["steps_in_block"])
        self.global_step = int(state["global_step"])
        self.block_epoch = int(state["block_epoch"])
        version, internal, gauss = state["rng_state"]
        self.rng.setstate((version, tuple(internal), gauss))
