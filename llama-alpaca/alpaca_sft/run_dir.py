"""The output directory of a run: never reused by accident, resumed only from a checkpoint of the same run.

A run refuses an `--output_dir` that already holds files unless it resumes (`--resume_from_checkpoint`)
or is told to replace them (`--overwrite_output_dir`, which deletes the earlier run's checkpoints so
that `last` cannot pick one of them). Each checkpoint carries `run_identity.json`: what must be the
same for a resume to continue the same optimisation (finetuning type and its settings, the model's
parameter names, shapes and dtypes, the BAdam partition). A resume compares it with the new run and
refuses, naming each difference.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import nn
from transformers import TrainerCallback

from badam.atomic import STAGING_PREFIX, atomic_write_json
from badam.checkpoint import CHECKPOINT_PATTERN

from .args import FinetuningArguments

logger = logging.getLogger(__name__)

IDENTITY_FILE = "run_identity.json"
# Settings that change how a run is observed, not what it optimises.
FREE_SETTINGS = ("plot_loss", "memory_sample_steps", "overwrite_output_dir")


def prepare_output_dir(output_dir: Path, resuming: bool, overwrite: bool) -> None:
    if not output_dir.is_dir() or resuming:
        return
    entries = sorted(p.name for p in output_dir.iterdir())
    if not entries:
        return
    if not overwrite:
        shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
        raise ValueError(
            f"--output_dir {output_dir} already holds a run ({shown}): pass --overwrite_output_dir to "
            "replace it, or --resume_from_checkpoint last to continue it"
        )
    for entry in output_dir.iterdir():
        if entry.is_dir() and (CHECKPOINT_PATTERN.match(entry.name) or entry.name.startswith(STAGING_PREFIX)):
            shutil.rmtree(entry, ignore_errors=True)  # every rank runs this; one of them wins
    logger.warning("--overwrite_output_dir: deleted the earlier run's checkpoints in %s", output_dir)


def _architecture(model: nn.Module) -> str:
    described = "\n".join(f"{name} {tuple(p.shape)} {p.dtype}" for name, p in model.named_parameters())
    return hashlib.sha256(described.encode()).hexdigest()[:16]


def _partition(optimizer: Any) -> list[list[str]] | None:
    """The BAdam blocks as parameter names, for the optimizers that have them."""
    blocks, name_of = getattr(optimizer, "blocks", None), getattr(optimizer, "name_of", None)
    if blocks is None or name_of is None:
        return None
    return [[name_of[p] for p in block] for block in blocks]


def run_identity(model_name: str, ft: FinetuningArguments, model: nn.Module, optimizer: Any) -> dict[str, Any]:
    settings = {k: v for k, v in asdict(ft).items() if k not in FREE_SETTINGS}
    return {
        "model": model_name,
        "architecture": _architecture(model),
        "settings": settings,
        "partition": _partition(optimizer),
    }


def check_resumable(checkpoint: str, identity: dict[str, Any]) -> None:
    """Refuse a checkpoint that another run (type, settings, model, partition) wrote, naming what differs."""
    path = Path(checkpoint) / IDENTITY_FILE
    if not path.is_file():
        raise ValueError(
            f"{checkpoint} has no {IDENTITY_FILE}: it was not written by alpaca_sft.train, so it cannot "
            "be checked to belong to this run; start the run afresh in another --output_dir"
        )
    saved = json.loads(path.read_text(encoding="utf-8"))
    differences = [
        f"{key}: {saved['settings'].get(key)!r} in the checkpoint, {value!r} now"
        for key, value in identity["settings"].items()
        if saved["settings"].get(key) != value
    ]
    if saved["architecture"] != identity["architecture"]:
        differences.append(
            f"model: {saved['model']} in the checkpoint, {identity['model']} now (other parameter "
            "names, shapes or dtypes)"
        )
    if saved["partition"] != identity["partition"]:
        differences.append("BAdam partition: the blocks hold other parameters")
    if differences:
        raise ValueError(f"cannot resume from {checkpoint}, written by a different run: " + "; ".join(differences))


class RunIdentity(TrainerCallback):
    """Writes the run's identity into every checkpoint before it is published (badam.hf_checkpoint)."""

    def __init__(self, identity: dict[str, Any]) -> None:
        self.identity = identity

    def write_checkpoint_files(self, folder: Path, args, state) -> None:
        atomic_write_json(folder / IDENTITY_FILE, self.identity)
