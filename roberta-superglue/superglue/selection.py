"""Model selection: keep the weights that scored best on the selection split, across interruptions.

The Trainer evaluates on the selection split every `eval_steps` (and, through `EvaluateAtEnd`, at
the last step). `BestModel` saves the weights whenever the score beats the best so far, into
`<run>/best/`: first `model-step<N>.safetensors`, then `best.json` pointing at it (both atomic and
fsynced, superglue.files), then it deletes the older weights, so `best.json` always names a complete
file; a kill between these steps leaves an extra weights file, or a temporary one, which the next
start deletes. Selection is decoupled from the Trainer's full checkpoints (model + optimizer, every
`save_steps`, for resuming): evaluating often does not mean writing the optimizer state as often.

On resume the Trainer replays from its last checkpoint; `best.json` may already hold a later step,
which the replay reaches again with the same weights (training is seeded), so nothing is lost.
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn
from transformers import TrainerCallback

from badam.atomic import atomic_file, file_problem
from superglue.files import read_json, write_json_atomic


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
        self.best = read_json(pointer) if pointer.is_file() else None
        self._tidy()

    def _tidy(self) -> None:
        """Delete weights that best.json does not name: older ones, and those a kill left behind."""
        keep = self.best["file"] if self.best else None
        for path in self.directory.glob("*model-step*.safetensors*"):
            if path.name != keep:
                path.unlink()

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        score = metrics[self.metric]
        if self.best is not None and score <= self.best["score"]:
            return  # ties keep the earlier model
        name = f"model-step{state.global_step}.safetensors"
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        with atomic_file(self.directory / name) as tmp:
            save_file(weights, tmp)
        self.best = {"step": state.global_step, "score": score, "metrics": metrics, "file": name}
        write_json_atomic(self.directory / "best.json", self.best)
        self._tidy()

    def restore(self, model: nn.Module) -> dict:
        """Load the best weights into `model`; returns the best record (step, score, metrics)."""
        redo = "delete the run directory (or pass --overwrite) to redo the run"
        if self.best is None:
            raise FileNotFoundError(f"{self.directory}/best.json is missing: no selection was recorded; {redo}")
        path = self.directory / self.best["file"]
        problem = file_problem(path) if path.is_file() else "is missing"
        if problem is not None:
            raise ValueError(f"{path} (the selected model) {problem}; {redo}")
        model.load_state_dict(load_file(str(path)))
        return self.best
