"""Stopping on SIGTERM or SIGINT at a step boundary, so that a preempted run checkpoints instead of dying.

A scheduler preempts with SIGTERM, a person with Ctrl-C (SIGINT). Inside `StopRequest` either one
only sets a flag: the training loop asks `should_stop()` after each optimizer step, writes a
checkpoint and leaves by raising `Preempted`. A second SIGINT interrupts at once, for the impatient.

    with StopRequest() as stop:
        for step in range(start, steps):
            train_one_step()
            if stop.should_stop():
                save_checkpoint(...)
                raise Preempted(stop.signum, step, checkpoint)

On several processes `should_stop()` agrees across ranks (any rank's signal stops all), so no rank
is left waiting in a collective the others never reach.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


class Preempted(Exception):
    """Training stopped on a signal after writing `checkpoint`; the exit status is 128 + signum."""

    def __init__(self, signum: int, step: int, checkpoint: str, resume_hint: str) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = 128 + signum
        super().__init__(
            f"stopped by {signal.Signals(signum).name} after step {step}; checkpoint {checkpoint} "
            f"written. Resume with {resume_hint}"
        )


class StopRequest:
    """Turns SIGTERM and SIGINT into a request to stop at the next step boundary."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        # Handlers can only be set from the main thread; elsewhere the defaults stay.
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is None:
            logger.warning(
                "%s received: finishing this step, then writing a checkpoint (Ctrl-C again to abort now)",
                signal.Signals(signum).name,
            )
            self.signum = signum

    def should_stop(self) -> bool:
        """Whether any process was signalled; a collective under torch.distributed, so call it on every rank."""
        if not (dist.is_initialized() and dist.get_world_size() > 1):
            return self.signum is not None
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        flag = torch.tensor([self.signum or 0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self.signum = int(flag.item()) or None
        return self.signum is not None
