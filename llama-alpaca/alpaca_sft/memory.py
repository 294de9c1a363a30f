"""MemoryCallback: what training holds (the paper's Table 12 split) and its peak, measured during the run.

Parameter, gradient, master-copy and optimizer-state bytes come from `badam.memory.held_bytes`,
taken just before each optimizer step (gradients are complete; BAdam's step consumes them) and
just after it (states exist), the largest of each kept. Peak memory: on CUDA the allocator's
`max_memory_allocated`; on CPU, `badam.memory.track_peak` traces the first `sample_steps` steps
(the profiler is slow) and the peak is what was live at the step's start plus the traced rise.
"""

from __future__ import annotations

from contextlib import ExitStack

import torch
from transformers import TrainerCallback

from badam.memory import held_bytes, track_peak


class MemoryCallback(TrainerCallback):
    def __init__(self, sample_steps: int = 2) -> None:
        self.sample_steps = sample_steps
        self.bytes = {"parameters": 0, "gradients": 0, "master_copies": 0, "optimizer_states": 0}
        self.peak_bytes = 0
        self.peak_method = ""
        self._trace = ExitStack()
        self._start_bytes = 0
        self._sampled = 0
        self._peak = None

    def _take(self, model, optimizer, keys: tuple[str, ...]) -> None:
        held = held_bytes(optimizer, model)
        for key in keys:
            self.bytes[key] = max(self.bytes[key], getattr(held, key))

    def on_train_begin(self, args, state, control, **kwargs):
        if args.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(args.device)

    def on_step_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if args.device.type == "cpu" and self._sampled < self.sample_steps:
            held = held_bytes(optimizer, model)
            self._start_bytes = held.parameters + held.optimizer_held
            self._peak = self._trace.enter_context(track_peak("cpu"))

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        self._take(model, optimizer, ("parameters", "gradients"))

    def on_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        self._take(model, optimizer, ("parameters", "gradients", "master_copies", "optimizer_states"))

    def on_step_end(self, args, state, control, **kwargs):
        if args.device.type == "cpu" and self._sampled < self.sample_steps:
            self._trace.close()
            self._sampled += 1
            self.peak_bytes = max(self.peak_bytes, self._start_bytes + self._peak.peak_delta_bytes)
            self.peak_method = f"cpu: live bytes at step start + traced rise, max over {self._sampled} step(s)"

    def on_train_end(self, args, state, control, **kwargs):
        if args.device.type == "cuda":
            self.peak_bytes = torch.cuda.max_memory_allocated(args.device)
            self.peak_method = "cuda: torch.cuda.max_memory_allocated"

    def summary(self) -> dict:
        return {
            **{f"{k}_bytes": v for k, v in self.bytes.items()},
            "peak_bytes": self.peak_bytes,
            "peak_method": self.peak_method,
        }
