"""Checkpoints for the Hugging Face Trainer that nothing can half-write, and a clean stop on SIGTERM/SIGINT.

    from transformers import Trainer
    from badam.hf_checkpoint import ResumableTrainerMixin, resolve_resume

    class SFTTrainer(ResumableTrainerMixin, Trainer): ...

    trainer = SFTTrainer(model=model, args=args, ..., resume_hint="the same command with --resume_from_checkpoint last")
    trainer.train(resume_from_checkpoint=resolve_resume(args.output_dir, "last"))

With the mixin:
- every `checkpoint-N` is written into `tmp-checkpoint-N/` and renamed into place once every file
  is on disk (badam.atomic), so a kill mid-save leaves the previous checkpoints whole and no
  `checkpoint-N` that cannot be resumed from. Callbacks that add files to a checkpoint (BAdam's
  block schedule under ZeRO-3 and FSDP2) implement `write_checkpoint_files(folder, args, state)`,
  which runs inside the staging folder, before the rename.
- SIGTERM or SIGINT finishes the optimizer step under way, writes a checkpoint and raises
  `badam.preemption.Preempted` (exit status 128 + signal) whose message says how to resume.

`resolve_resume(output_dir, "last")` is the newest complete checkpoint; it logs each newer folder
it skipped, and why.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from .atomic import STAGING_PREFIX, publish
from .checkpoint import newest_complete, trainer_checkpoint_problem
from .preemption import Preempted, StopRequest

logger = logging.getLogger(__name__)

LAST = ("last", "true", "True", True)


def resolve_resume(output_dir: str | os.PathLike, resume: str | os.PathLike | bool | None) -> str | None:
    """`resume_from_checkpoint` as a checked folder: "last"/True is the newest complete checkpoint."""
    if resume in (None, False, "", "false", "False"):
        return None
    if resume in LAST:
        newest, skipped = newest_complete(output_dir)
        for folder, why in skipped:
            logger.warning("skipping %s: %s", folder, why)
        if newest is None:
            raise FileNotFoundError(
                f"--resume_from_checkpoint last: {output_dir} holds no complete checkpoint-N folder"
            )
        logger.info("resuming from %s", newest)
        return str(newest)
    problem = trainer_checkpoint_problem(Path(resume)) if Path(resume).is_dir() else "no such folder"
    if problem is not None:
        raise FileNotFoundError(f"--resume_from_checkpoint {resume}: {problem}")
    return str(resume)


class _StopAtStepEnd(TrainerCallback):
    def __init__(self, stop: StopRequest) -> None:
        self.stop = stop
        self.stopped_at: int | None = None

    def on_step_end(self, args, state, control, **kwargs):
        if self.stop.should_stop():
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step


class ResumableTrainerMixin:
    """Mix into a `transformers.Trainer` subclass (before Trainer) for atomic checkpoints and preemption."""

    def __init__(
        self, *args: Any, resume_hint: str = "trainer.train(resume_from_checkpoint=True)", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.resume_hint = resume_hint
        self.stop_request = StopRequest()
        self._staging_root: Path | None = None
        self._stopper = _StopAtStepEnd(self.stop_request)
        self.add_callback(self._stopper)

    def train(self, *args: Any, **kwargs: Any):
        with self.stop_request:
            result = super().train(*args, **kwargs)
        # A signal after the last step ends nothing early: the run is complete, so it returns as usual.
        if self._stopper.stopped_at is not None:
            step = self._stopper.stopped_at
            checkpoint = Path(self.args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{step}"
            raise Preempted(self.stop_request.signum, step, str(checkpoint), self.resume_hint)
        return result

    def _get_output_dir(self, trial: Any) -> str:
        return str(self._staging_root) if self._staging_root is not None else super()._get_output_dir(trial)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        run_dir = Path(self._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        # The Trainer writes <its output dir>/checkpoint-N: point it at a staging root for the save.
        root = run_dir / f"{STAGING_PREFIX}{name}"
        if self.args.should_save:  # what earlier, killed saves left behind is never coming back
            for stale in run_dir.glob(f"{STAGING_PREFIX}{PREFIX_CHECKPOINT_DIR}-*"):
                shutil.rmtree(stale, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self._staging_root = root
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging_root = None
        staged, final = root / name, run_dir / name
        if self.args.should_save:
            if self.state.best_model_checkpoint == str(staged):
                self.state.best_model_checkpoint = str(final)
                self.state.save_to_json(str(staged / "trainer_state.json"))
            for callback in self.callback_handler.callbacks:
                if hasattr(callback, "write_checkpoint_files"):
                    callback.write_checkpoint_files(staged, self.args, self.state)
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            publish(staged, final)
            shutil.rmtree(root, ignore_errors=True)
            # Broken later checkpoints, left by a killed save before this run resumed, would outrank
            # the one just written in the rotation below: they can never be resumed from.
            for later in run_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
                step = later.name.rpartition("-")[2]
                problem = (
                    trainer_checkpoint_problem(later) if step.isdigit() and int(step) > self.state.global_step else None
                )
                if problem is not None:
                    logger.warning("deleting %s: %s", later, problem)
                    shutil.rmtree(later, ignore_errors=True)
            rotate_checkpoints(
                output_dir=str(run_dir),
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )
        self.accelerator.wait_for_everyone()
