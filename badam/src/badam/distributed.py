"""BAdam on PyTorch DDP: every block switch tells DDP what trains now.

DDP builds its reducer once, at wrap time, over the parameters that require grad then, and only
those are ever all-reduced. Under BAdam that is the first block: after a switch the new block's
gradients would silently stay local and the ranks drift apart (the published package warns that DDP
skips blocks). Here the reducer is rebuilt after every switch, over exactly the parameters that
train now, so inactive blocks never cost communication and DDP keeps its own semantics (bucketing,
overlap with backward, `no_sync` for gradient accumulation, gradients averaged before clipping).

Plain PyTorch loop, under `torchrun`:

    optimizer = BlockOptimizer(AdamW(model.parameters()), list(model.named_parameters()), ...)
    ddp_model = DistributedDataParallel(model)
    follow_block_switches(ddp_model, optimizer)

Hugging Face Trainer: `badam.hf` does it by itself (the Trainer wraps the model out of sight; the
wrapper is found on its first forward by `follow_ddp_wrapping`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

if TYPE_CHECKING:
    from .block import BlockOptimizer


def rebuild_reducer(ddp: DistributedDataParallel) -> None:
    """Rebuild `ddp`'s reducer over the parameters that require grad now.

    This goes through DDP's own construction helpers, which are private: a torch release that
    changes them gets a clear error here rather than silently unsynchronised blocks.
    """
    if getattr(ddp, "static_graph", False):
        raise ValueError("BAdam changes the trained parameters at every block switch: wrap with static_graph=False")
    try:
        parameters, expect_sparse = ddp._build_params_for_reducer()
        names = ddp._build_debug_param_to_name_mapping(parameters)
        ddp._ddp_init_helper(parameters, expect_sparse, names, ddp.static_graph)
    except (AttributeError, TypeError) as error:
        raise RuntimeError(
            f"cannot rebuild the DDP reducer with torch {torch.__version__} ({error}); BAdam's DDP support "
            "is tested with torch 2.13"
        ) from error


def follow_block_switches(ddp: DistributedDataParallel, optimizer: BlockOptimizer) -> None:
    """Keep `ddp` all-reducing exactly the parameters `optimizer` trains, across block switches."""
    if not isinstance(ddp, DistributedDataParallel):
        raise TypeError(f"expected a DistributedDataParallel wrapper, got {type(ddp).__name__}")
    optimizer.register_switch_hook(lambda _: rebuild_reducer(ddp))


def follow_ddp_wrapping(model: nn.Module, optimizer: BlockOptimizer) -> None:
    """Find the DDP wrapper of `model` on its first forward, then `follow_block_switches` it.

    For wrappers made out of our sight (Trainer/accelerate): a global forward pre-hook looks at
    each module until the DDP whose module is `model` runs, or `model` itself runs unwrapped (no
    DDP then: another engine, or one process), then removes itself.
    """

    def find(module: nn.Module, args: Any) -> None:
        if isinstance(module, DistributedDataParallel) and module.module is model:
            handle.remove()
            follow_block_switches(module, optimizer)
        elif module is model:
            handle.remove()

    handle = torch.nn.modules.module.register_module_forward_pre_hook(find)
