"""Every BAdam checkpoint: save and resume exactly on any engine, and find the newest complete one.

    from badam.checkpoint import save_checkpoint, load_checkpoint
    save_checkpoint("ckpt/step-100", model, optimizer)    # on every rank
    load_checkpoint("ckpt/step-100", model, optimizer)    # into a freshly built model and optimizer

`model` is what the training loop calls: the module itself (one process, FSDP2's `fully_shard`),
a DistributedDataParallel wrapper, or a ZeRO-3 DeepSpeedEngine; `optimizer` a BlockOptimizer or a
BlockOptimizerRatio (or a wrapper around one). Load the model's weights, masters and states into a
model and optimizer built as for the saved run; the block that was active becomes active first,
since the engines hold state for the active block only.

On-disk contract. A checkpoint is one folder, published whole or not at all (badam.atomic.staged):

    <folder>/
      badam_schedule.json   {"schedule": BlockSchedule.state_dict(), "active_block": i}
                            (layer-wise BAdam; read first on resume: which block to set up)
      dcp/                  one process, DDP, FSDP2: torch.distributed.checkpoint, each rank its shards
        model.<name>              the model's state_dict (DDP's "module." prefix stripped)
        badam.param_groups        the base optimizer's hyperparameters per group (torch.save bytes)
        badam.masters.<name>      fp32 master of each bf16/fp16 parameter of the active block
        badam.state.<name>.<key>  the base optimizer's state of each trained parameter (exp_avg, ...)
        badam.optimizer           ratio mode: its whole state_dict() (torch.save bytes) instead
      deepspeed/            ZeRO-3: DeepSpeed's own checkpoint (engine.save_checkpoint, tag "deepspeed")

The Hugging Face Trainer writes its own `checkpoint-N` folders (badam.hf_checkpoint stages them):
its optimizer.pt holds `BlockOptimizer.state_dict()` (one process, DDP), or, under ZeRO-3 and
FSDP2, DeepSpeed's or accelerate's files, with `badam_schedule.json` beside them.
`newest_complete(output_dir)` is the newest of those a run can resume from.
"""

from __future__ import annotations

import io
import json
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .atomic import STAGING_PREFIX, atomic_write_json, file_problem, staged
from .block import BlockOptimizer
from .ratio import BlockOptimizerRatio
from .unwrap import unwrap_bound
from .zero3 import catch_up, is_deepspeed_engine

SCHEDULE_FILE = "badam_schedule.json"
DCP_FOLDER = "dcp"
DEEPSPEED_TAG = "deepspeed"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def _is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def write_schedule(folder: str | os.PathLike, optimizer: BlockOptimizer) -> None:
    """Write the block schedule a resumed run must start from into `folder`, atomically."""
    state = {"schedule": optimizer.schedule.state_dict(), "active_block": optimizer.active_block}
    atomic_write_json(Path(folder) / SCHEDULE_FILE, state)


def read_schedule(folder: str | os.PathLike) -> tuple[dict[str, Any], int]:
    """(schedule, active block) that write_schedule left in `folder`."""
    path = Path(folder) / SCHEDULE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: {folder} was not saved by BAdam's layer-wise optimizer, or the run stopped "
            "while saving it"
        )
    saved = json.loads(path.read_text())
    return saved["schedule"], saved["active_block"]


def _optimizer(optimizer: Any) -> BlockOptimizer | BlockOptimizerRatio:
    found = unwrap_bound(optimizer)
    if found is None:
        raise TypeError(
            f"badam.checkpoint saves BAdam optimizers; {type(optimizer).__name__} is none (and wraps none): save a "
            "plain torch optimizer with torch.save(optimizer.state_dict())"
        )
    return found


@contextmanager
def _one_process_is_intended() -> Iterator[None]:
    # DCP warns on every call without a process group that it assumes one process: here it is meant.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield


def _module(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def _dcp_state(model: nn.Module, optimizer: BlockOptimizer | BlockOptimizerRatio) -> dict[str, Any]:
    """What torch.distributed.checkpoint saves and loads in place, keyed by parameter name."""
    if isinstance(optimizer, BlockOptimizerRatio):
        return {"model": _module(model).state_dict(), "badam": {"optimizer": io.BytesIO()}}
    name_of = {id(optimizer.masters.optimized(p)): optimizer.name_of[p] for p in optimizer.trainable_params}
    return {
        "model": _module(model).state_dict(),
        "badam": {
            "param_groups": io.BytesIO(),
            "masters": {optimizer.name_of[p]: m for p, m in optimizer.masters.master_of.items()},
            "state": {name_of[id(t)]: state for t, state in optimizer.state.items()},
        },
    }


def _hyperparameters(optimizer: BlockOptimizer) -> list[dict[str, Any]]:
    return [{k: v for k, v in group.items() if k != "params"} for group in optimizer.base_optimizer.param_groups]


def save_checkpoint(folder: str | os.PathLike, model: nn.Module, optimizer: Any) -> None:
    """Save `model` and `optimizer` into `folder` (the on-disk contract above); call it on every rank."""
    optimizer = _optimizer(optimizer)
    layer_wise = isinstance(optimizer, BlockOptimizer)
    if is_deepspeed_engine(model):
        catch_up(model, optimizer)
    with staged(folder) as staging:
        if layer_wise and _is_main():
            write_schedule(staging, optimizer)
        _barrier()
        if is_deepspeed_engine(model):
            model.save_checkpoint(str(staging), tag=DEEPSPEED_TAG, save_latest=False)
        else:
            state = _dcp_state(model, optimizer)
            blob = state["badam"]["param_groups" if layer_wise else "optimizer"]
            torch.save(_hyperparameters(optimizer) if layer_wise else optimizer.state_dict(), blob)
            with _one_process_is_intended():
                dcp.save(state, checkpoint_id=str(staging / DCP_FOLDER), no_dist=not dist.is_initialized())


def load_checkpoint(folder: str | os.PathLike, model: nn.Module, optimizer: Any) -> None:
    """Resume from what `save_checkpoint` wrote: the saved block first, then weights, masters and states."""
    folder = Path(folder)
    optimizer = _optimizer(optimizer)
    layer_wise = isinstance(optimizer, BlockOptimizer)
    if layer_wise:
        optimizer.restore_schedule(*read_schedule(folder))
    if is_deepspeed_engine(model):
        if not (folder / DEEPSPEED_TAG).is_dir():
            raise FileNotFoundError(f"{folder / DEEPSPEED_TAG} does not exist: {folder} was not saved under DeepSpeed")
        model.load_checkpoint(str(folder), tag=DEEPSPEED_TAG)
        return
    if not (folder / DCP_FOLDER).is_dir():
        raise FileNotFoundError(
            f"{folder / DCP_FOLDER} does not exist: {folder} was saved under DeepSpeed, or is no BAdam checkpoint"
        )
    if layer_wise:
        # DCP loads in place, into state tensors that must exist first.
        optimizer.materialise_state()
    state = _dcp_state(model, optimizer)
    with _one_process_is_intended():
        dcp.load(state, checkpoint_id=str(folder / DCP_FOLDER), no_dist=not dist.is_initialized())
    blob = state["badam"]["param_groups" if layer_wise else "optimizer"]
    blob.seek(0)
    saved = torch.load(blob, weights_only=True)
    if not layer_wise:
        optimizer.load_state_dict(saved)
        return
    for group, hyperparameters in zip(optimizer.base_optimizer.param_groups, saved):
        group.update(hyperparameters)


def trainer_checkpoint_problem(folder: Path) -> str | None:
    """Why a Hugging Face Trainer `checkpoint-N` folder cannot be resumed from, or None if it can.

    Folders published by `staged` are whole; this catches those written by other tools or older
    versions that a kill cut short: no or unreadable trainer_state.json, a step that is not N, or an
    empty file.
    """
    match = CHECKPOINT_PATTERN.match(folder.name)
    if match is None:
        return "not a checkpoint-N folder"
    state_file = folder / "trainer_state.json"
    if not state_file.is_file():
        return "no trainer_state.json (the save did not finish)"
    try:
        step = json.loads(state_file.read_text(encoding="utf-8"))["global_step"]
    except (ValueError, KeyError, UnicodeDecodeError):
        return "trainer_state.json is empty or not valid JSON (the save did not finish)"
    if step != int(match.group(1)):
        return f"trainer_state.json says step {step}, the folder's name step {match.group(1)}"
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        problem = file_problem(path)
        if problem is not None:
            return f"{path.relative_to(folder)} {problem} (the save did not finish)"
    return None


def newest_complete(output_dir: str | os.PathLike) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest resumable `checkpoint-N` in `output_dir`, and the newer folders skipped, with why."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None, []
    candidates = sorted(
        (p for p in output_dir.iterdir() if p.is_dir() and CHECKPOINT_PATTERN.match(p.name)),
        key=lambda p: int(p.name.split("-")[1]),
        reverse=True,
    )
    skipped = [(p, "an interrupted save (never published)") for p in sorted(output_dir.glob(STAGING_PREFIX + "*"))]
    for folder in candidates:
        problem = trainer_checkpoint_problem(folder)
        if problem is None:
            return folder, skipped
        skipped.append((folder, problem))
    return None, skipped
