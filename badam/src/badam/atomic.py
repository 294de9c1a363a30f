"""Writes that a kill cannot leave half done: one file (`atomic_file`) or a whole folder (`staged`).

A folder is written into a staging folder beside its final name (`tmp-<name>`), every file and
folder fsynced, then renamed into place; rename is atomic, so a kill at any moment leaves the old
folder as it was and the new one either whole or absent. A staging folder left behind by a killed
save is never mistaken for a checkpoint (its name does not match `checkpoint-N`), and the next save
of the same name clears it.

    with atomic_file("out/best.safetensors") as tmp:   # one file: write it at `tmp`
        save_file(weights, tmp)
    with staged("out/checkpoint-500") as folder:   # a folder: write everything into `folder`
        torch.save(state, folder / "state.pt")
    file_problem(path)                             # why a file is cut short, or None

On several processes every rank writes into the same staging folder (a shared file system, as
torch.distributed.checkpoint and DeepSpeed assume) and rank 0 publishes it between two barriers.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch.distributed as dist

STAGING_PREFIX = "tmp-"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file and folder under `root` (and `root` itself) to disk."""
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` to write to; once the block completes it is fsynced and renamed
    over `path`, so a reader sees the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from the user's group
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def staging_path(final: str | os.PathLike) -> Path:
    final = Path(final)
    return final.with_name(STAGING_PREFIX + final.name)


def publish(staging: Path, final: Path) -> None:
    """Flush `staging` to disk and rename it to `final`, replacing an older `final` if there is one."""
    fsync_tree(staging)
    old = final.with_name(f"{STAGING_PREFIX}old-{final.name}")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(staging, final)
    _fsync(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def _is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


@contextmanager
def staged(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder for `final`; publish it as `final` when the block completes.

    An exception inside the block leaves `final` untouched (and the staging folder for inspection).
    """
    final = Path(final)
    staging = staging_path(final)
    if _is_main():
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    _barrier()
    yield staging
    _barrier()
    if _is_main():
        publish(staging, final)
    _barrier()


def file_problem(path: Path) -> str | None:
    """Why a checkpoint file is cut short, read from its own framing: empty, a torch.save zip without its
    central directory, or a safetensors file shorter than its header says."""
    size = path.stat().st_size
    if size == 0:
        return "is empty"
    if path.suffix in (".pt", ".pth", ".bin") and not zipfile.is_zipfile(path):
        return "is truncated (not a whole torch.save archive)"
    if path.suffix == ".safetensors":
        with path.open("rb") as f:
            header_size = int.from_bytes(f.read(8), "little")
            try:
                header = json.loads(f.read(header_size)) if 8 + header_size <= size else None
            except ValueError:
                header = None
        if header is None:
            return "is truncated (its header is cut short)"
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        if 8 + header_size + end > size:
            return f"is truncated ({size} bytes of {8 + header_size + end})"
    return None
