"""SFTTrainer: the Trainer, timing every optimizer step's forward, backward and update (the paper's Table 3).

Forward is `compute_loss` during training, backward the rest of `training_step` (summed over the
micro-batches of a step), update the optimizer's `step()` between the Trainer's pre/post optimizer
step events. CUDA is synchronised at each boundary so the split is real. Optimizers that update
inside backward (LOMO, BREAD-SGD, sparse's gradient gathering) count that work as backward. The
logs gain `tokens_per_second` (non-padding tokens over the logging interval) and `train_seconds`
(forward + backward + update time of the steps this process ran, evaluation left out: loss-against-time
curves; a resumed run starts it again at 0).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager

import torch
from transformers import Trainer, TrainerCallback

from badam.hf import clip_ratio_gradients
from badam.hf_checkpoint import ResumableTrainerMixin


class StepTimer:
    """Seconds per phase of the current optimizer step, and the finished steps' splits."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.current = {"forward": 0.0, "forward_backward": 0.0, "update": 0.0}
        self.steps: list[dict[str, float]] = []  # one {"epoch", "forward", "backward", "update"} per step
        self.tokens = 0

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    @contextmanager
    def phase(self, name: str):
        start = self.now()
        yield
        self.current[name] += self.now() - start

    def end_step(self, epoch: float) -> None:
        c = self.current
        self.steps.append(
            {
                "epoch": epoch,
                "forward": c["forward"],
                "backward": c["forward_backward"] - c["forward"],
                "update": c["update"],
            }
        )
        self.current = dict.fromkeys(c, 0.0)

    def summary(self, skip: int = 1) -> dict:
        """Mean seconds per step and per-epoch totals. The mean leaves out the first `skip` steps
        (warm-up, and steps slowed by memory tracing) when later steps exist."""
        steps = self.steps[skip:] or self.steps
        phases = ("forward", "backward", "update")
        per_step = {p: sum(s[p] for s in steps) / max(len(steps), 1) for p in phases}
        per_epoch: dict[int, dict[str, float]] = {}
        for s in self.steps:
            epoch = per_epoch.setdefault(max(math.ceil(s["epoch"] - 1e-9), 1), dict.fromkeys(phases, 0.0))
            for p in phases:
                epoch[p] += s[p]
        return {
            "steps_timed": len(self.steps),
            "steps_averaged": len(steps),
            "per_step_seconds": per_step,
            "per_epoch_seconds": [{"epoch": e, **v} for e, v in sorted(per_epoch.items())],
        }


class _TimerCallback(TrainerCallback):
    def __init__(self, timer: StepTimer) -> None:
        self.timer = timer
        self.update_start = 0.0
        self.log_tokens, self.log_time = 0, time.perf_counter()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.update_start = self.timer.now()

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.timer.current["update"] += self.timer.now() - self.update_start

    def on_step_end(self, args, state, control, **kwargs):
        self.timer.end_step(state.epoch)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None:
            return
        logs["train_seconds"] = round(sum(s["forward"] + s["backward"] + s["update"] for s in self.timer.steps), 3)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1]["train_seconds"] = logs["train_seconds"]
        if "loss" not in logs:
            return
        now = time.perf_counter()
        logs["tokens_per_second"] = round((self.timer.tokens - self.log_tokens) / max(now - self.log_time, 1e-9), 1)
        self.log_tokens, self.log_time = self.timer.tokens, now
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1]["tokens_per_second"] = logs["tokens_per_second"]


class SFTTrainer(ResumableTrainerMixin, Trainer):
    """The Trainer with the step timer, atomic checkpoints and a checkpoint on SIGTERM/SIGINT (badam.hf_checkpoint)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        clip_ratio_gradients(self)  # max_grad_norm clips `sparse`'s gathered gradients too
        self.timer = StepTimer(self.args.device)
        self.add_callback(_TimerCallback(self.timer))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        with self.timer.phase("forward"):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.timer.tokens += int(inputs["attention_mask"].sum())
        with self.timer.phase("forward_backward"):
            return super().training_step(model, inputs, num_items_in_batch)
