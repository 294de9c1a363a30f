"""The run directory `<output_root>/<run_name>/`: whose it is, and where a rerun continues.

A run directory belongs to the run that started it. `run_identity.json`, in the directory and in each
of its checkpoints, records what makes the run the run: every setting that changes the optimisation
or the model selection (an optimizer's own settings only for that optimizer), and a fingerprint of
the examples of each part (train, selection, test). A rerun with the same identity resumes from the
newest complete checkpoint, or is skipped when finished; one with another identity is refused with
each difference named, so that it neither continues nor reports another run's training. Settings
that do not change the numbers are free to differ (FREE_SETTINGS): where the files are (the data is
compared by content), how often checkpoints and logs are written, the evaluation batch size, W&B.

`--overwrite` deletes the run directory first, to redo a run or to reuse its name for other settings.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from badam.checkpoint import newest_complete
from superglue.files import read_json, write_json_atomic
from superglue.optim import OPTIMIZER_SETTINGS
from superglue.tasks import Example

IDENTITY_FILE = "run_identity.json"
FREE_SETTINGS = (
    "config",
    "data_dir",
    "train_file",
    "output_root",
    "run_name",
    "eval_batch_size",
    "save_steps",
    "logging_steps",
    "wandb_project",
    "overwrite",
)
START_AFRESH = "use another --run_name, or pass --overwrite to delete it and start afresh"


def run_directory(output_root: str, run_name: str) -> Path:
    # A plain folder name, so that the run (and what --overwrite deletes) stays inside output_root.
    if run_name in ("", ".", "..") or Path(run_name).name != run_name:
        raise ValueError(
            f"--run_name {run_name!r}: expected a folder name (no '/'); the run goes to <output_root>/<run_name>"
        )
    return Path(output_root) / run_name


def fingerprint(examples: list[Example]) -> dict[str, Any]:
    """How many examples, and a hash of their content (jiant's examples, not where they were read from)."""
    content = json.dumps([e.content() for e in examples], sort_keys=True)
    return {"examples": len(examples), "sha256": hashlib.sha256(content.encode()).hexdigest()}


def run_identity(args: Any, parts: dict[str, list[Example]], sources: dict[str, str]) -> dict[str, Any]:
    """What two runs must share for one to continue the other (args: superglue.train.RunArgs)."""
    others = {k for name, keys in OPTIMIZER_SETTINGS.items() if name != args.optimizer for k in keys}
    others -= set(OPTIMIZER_SETTINGS[args.optimizer])
    settings = {k: v for k, v in asdict(args).items() if k not in FREE_SETTINGS and k not in others}
    data = {part: {**fingerprint(examples), "source": sources[part]} for part, examples in parts.items()}
    return json.loads(json.dumps({"settings": settings, "data": data}))  # as it reads back from the file


def differences(saved: dict[str, Any], identity: dict[str, Any]) -> list[str]:
    found = [
        f"{key}: {saved['settings'].get(key)!r} in the run, {value!r} now"
        for key, value in identity["settings"].items()
        if saved["settings"].get(key) != value
    ]
    for part, now in identity["data"].items():
        then = saved["data"].get(part, {})
        if (then.get("examples"), then.get("sha256")) != (now["examples"], now["sha256"]):
            found.append(f"{part} data: {describe(then)} in the run, {describe(now)} now")
    return found


def describe(data: dict[str, Any]) -> str:
    if not data:
        return "none"
    return f"{data['examples']} examples of {data['source']} (sha256 {data['sha256'][:12]})"


def read_identity(folder: Path) -> dict[str, Any]:
    saved = read_json(folder / IDENTITY_FILE)
    if not (isinstance(saved, dict) and all(isinstance(saved.get(key), dict) for key in ("settings", "data"))):
        raise ValueError(f"{folder / IDENTITY_FILE}: not a run identity (settings and data); {START_AFRESH}")
    return saved


def claim(run_dir: Path, identity: dict[str, Any], overwrite: bool) -> None:
    """Check that `run_dir` is absent, empty, or this run's; with `overwrite`, delete it first."""
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
        print(f"[superglue] --overwrite: deleted {run_dir}")
    if (run_dir / IDENTITY_FILE).is_file():
        found = differences(read_identity(run_dir), identity)
        if found:
            raise ValueError(f"{run_dir} holds a run with other settings ({'; '.join(found)}): {START_AFRESH}")
        return
    # Hidden files are temporaries a kill can leave behind; anything else is some run's work.
    held = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".")) if run_dir.is_dir() else []
    if held:
        raise ValueError(
            f"{run_dir} holds files ({', '.join(held[:4])}{', ...' if len(held) > 4 else ''}) but no "
            f"{IDENTITY_FILE}, so its settings cannot be checked (an older superglue.train, or "
            f"another program, wrote it): {START_AFRESH}"
        )


def record(run_dir: Path, identity: dict[str, Any]) -> None:
    """Write the identity into the run directory: from here on the directory is this run's."""
    write_json_atomic(run_dir / IDENTITY_FILE, identity)


def check_checkpoint(checkpoint: Path, identity: dict[str, Any]) -> None:
    """Refuse a checkpoint written by another run (one copied in, or from an older version)."""
    if not (checkpoint / IDENTITY_FILE).is_file():
        raise ValueError(
            f"{checkpoint} has no {IDENTITY_FILE}, so it cannot be checked to belong to this run: {START_AFRESH}"
        )
    found = differences(read_identity(checkpoint), identity)
    if found:
        raise ValueError(f"{checkpoint} was written by a run with other settings ({'; '.join(found)}): {START_AFRESH}")


def resume_point(run_dir: Path) -> Path | None:
    """The newest complete checkpoint-N. The newer folders that cannot be resumed from (interrupted saves)
    are reported, with why; the first checkpoint the run writes deletes them (badam.hf_checkpoint)."""
    newest, skipped = newest_complete(run_dir)
    for folder, why in skipped:
        print(f"[superglue] skipping {folder}: {why}")
    if skipped and newest is None:
        print(f"[superglue] no complete checkpoint in {run_dir}: training from step 0")
    return newest


class RunIdentity(TrainerCallback):
    """Writes the run's identity into every checkpoint before it is published (badam.hf_checkpoint)."""

    def __init__(self, identity: dict[str, Any]) -> None:
        self.identity = identity

    def write_checkpoint_files(self, folder: Path, args, state) -> None:
        write_json_atomic(folder / IDENTITY_FILE, self.identity)
