"""Model selection: keep the weights that scored best on the selection split, across interruptions.

The Trainer evaluates on the selection split every `eval_steps` (and, through `EvaluateAtEnd`, at
the last step). `BestModel` saves the weights whenever the score beats the best so far, into
`<run>/best/`: first `model-step<N>.safetensors`, then `best.json` pointing at it (both atomic), then
it deletes the older weights, so `best.json` always names a complete file. Selection is decoupled from
the Trainer's full checkpoints (model + optimizer, every `save_steps`, for resuming): evaluating
often does not mean writing the optimizer state as often.

On resume the Trainer replays from its last checkpoint; `best.json` may already hold a later step,
which the replay reaches again with the same weights (training is seeded), so nothing is lost.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn
from transformers import TrainerCallback

from superglue.files import write_json_atomic


class EvaluateAtEnd(TrainerCallback):
    """Evaluate and checkpoint at the last step too, so the final weights are a candidate."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_evaluate = True
            control.should_save = True


class BestModel(TrainerCallback):
    def __init__(self, directory: str | Path, metric: str = "eval_score") -> None:
        self.directory = Path(directory)
        self.metric = metric
        pointer = self.directory / "best.json"
        self.best = json.loads(pointer.read_text()) if pointer.is_file() else None

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        score = metrics[self.metric]
        if self.best is not None and score <= self.best["score"]:
            return  # ties keep the earlier model
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"model-step{state.global_step}.safetensors"
        tmp = self.directory / f".{name}.tmp"
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp))
        os.replace(tmp, self.directory / name)
        self.best = {"step": state.global_step, "score": score, "metrics": metrics, "file": name}
        write_json_atomic(self.directory / "best.json", self.best)
        for old in self.directory.glob("model-step*.safetensors"):
            if old.name != name:
                old.unlink()

    def restore(self, model: nn.Module) -> dict:
        """Load the best weights into `model`; returns the best record (step, score, metrics)."""
        if self.best is None:
            raise RuntimeError(f"no evaluation was recorded in {self.directory}: nothing to select")
        model.load_state_dict(load_file(str(self.directory / self.best["file"])))
        return self.best
