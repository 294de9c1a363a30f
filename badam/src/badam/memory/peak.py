"""Peak tracking: the most memory a block of code has live at once, on CUDA or CPU."""

from __future__ import annotations

import ctypes
import functools
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class PeakMemory:
    """Filled in when `track_peak` exits: bytes relative to the live bytes at entry."""

    device: torch.device
    peak_delta_bytes: int = 0
    end_delta_bytes: int = 0


@functools.cache
def enable_cpu_allocation_accounting() -> bool:
    """Make the CPU allocator remember the size of every allocation from now on.

    The profiler reports a CPU free only if it knows the block's size, which by default it learns
    only for blocks allocated while a profiler runs, so `track_peak` would miss the frees of memory
    allocated before it (an optimizer step frees the gradients of the backward before it) and
    overstate the peak. c10's `caffe2_report_cpu_memory_usage` flag keeps the sizes of all
    allocations. Call this before building the model for exact CPU peaks from the first
    `track_peak`; `track_peak` calls it too. Returns False (with a warning) where the flag cannot be
    reached in this build of torch.
    """
    lib_dir = Path(torch.__file__).parent / "lib"
    for name in ("libc10.so", "libc10.dylib", "c10.dll"):
        if (lib_dir / name).exists():
            try:
                flag = ctypes.c_bool.in_dll(ctypes.CDLL(str(lib_dir / name)), "FLAGS_caffe2_report_cpu_memory_usage")
            except (OSError, ValueError):
                break
            flag.value = True
            return True
    warnings.warn(
        "cannot enable CPU allocation accounting in this torch build: track_peak on CPU will not see "
        "frees of memory allocated before the tracked block and may overstate the peak",
        RuntimeWarning,
        stacklevel=2,
    )
    return False


def _cpu_allocation_sizes(prof: torch.profiler.profile) -> list[int]:
    """Signed sizes of the CPU allocator events, in time order."""
    from torch._C._profiler import _EventType

    try:
        roots = prof.profiler.kineto_results.experimental_event_tree()
    except AttributeError as exc:
        raise RuntimeError(
            f"torch {torch.__version__} has no profiler event tree; track_peak on CPU cannot read allocations"
        ) from exc
    events = []
    pending = list(roots)
    while pending:
        event = pending.pop()
        pending.extend(event.children)
        if event.tag == _EventType.Allocation and event.extra_fields.device.type == "cpu":
            events.append((event.start_time_ns, event.extra_fields.alloc_size))
    events.sort(key=lambda e: e[0])
    return [size for _, size in events]


@contextmanager
def track_peak(device: str | torch.device = "cpu") -> Iterator[PeakMemory]:
    """Measure the peak of (live allocated bytes - live bytes at entry) over the `with` block.

        with track_peak("cpu") as peak:
            optimizer.step()
        print(peak.peak_delta_bytes, peak.end_delta_bytes)

    CUDA: the caching allocator's statistics (`memory_allocated`, `max_memory_allocated`), after a
    synchronize at both ends. CPU: the allocator events of `torch.profiler` with `profile_memory`,
    summed in time order; the profiler adds a little time per operator, fine for wrapping an
    optimizer step, and its first use in a process takes about a second to start. A CPU free is
    seen only for memory allocated after `enable_cpu_allocation_accounting()` (called here, so
    call it earlier to see the frees of what the block inherits); an unseen free makes the CPU
    peak an overestimate, never an underestimate.
    """
    device = torch.device(device)
    result = PeakMemory(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        yield result
        torch.cuda.synchronize(device)
        result.peak_delta_bytes = torch.cuda.max_memory_allocated(device) - start
        result.end_delta_bytes = torch.cuda.memory_allocated(device) - start
    elif device.type == "cpu":
        from torch.profiler import ProfilerActivity, profile

        enable_cpu_allocation_accounting()
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            yield result
        live = peak = 0
        for size in _cpu_allocation_sizes(prof):
            live += size
            peak = max(peak, live)
        result.peak_delta_bytes = peak
        result.end_delta_bytes = live
    else:
        raise ValueError(f"track_peak supports cpu and cuda devices, got {device}")
