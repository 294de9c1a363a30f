"""BAdam on the distributed engines: DDP, FSDP2, and (through badam.zero3) DeepSpeed ZeRO-3.

DDP: every block switch tells DDP what trains now.

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
wrapper is found on its first forward by `follow_wrapping`). The same two functions take a ZeRO-3
DeepSpeedEngine, for which badam.zero3 rebuilds DeepSpeed's optimizer wrapper at each switch.
FSDP2 sharded by accelerate (the Trainer's FSDP) goes through badam.fsdp.

FSDP2 (`torch.distributed.fsdp.fully_shard`) needs nothing at switch time: the parameters are
DTensors, so the fp32 masters and optimizer states of the active block are sharded like them, and
FSDP2 reduce-scatters only the gradients that exist. Build the optimizer after sharding.

Checkpoints of every engine go through badam.checkpoint (`save_checkpoint(folder, model, optimizer)`).
`leave()` ends a torchrun program without the teardown that can abort a gloo rank.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .zero3 import follow_engine, is_deepspeed_engine

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


def follow_block_switches(engine: nn.Module, optimizer: BlockOptimizer) -> None:
    """Keep `engine` (DDP, or a ZeRO-3 DeepSpeedEngine) training exactly the block `optimizer` trains."""
    if isinstance(engine, DistributedDataParallel):
        optimizer.register_switch_hook(lambda _: rebuild_reducer(engine))
        return
    if is_deepspeed_engine(engine):
        follow_engine(engine, optimizer)
        return
    raise TypeError(f"expected DistributedDataParallel or a DeepSpeedEngine, got {type(engine).__name__}")


def follow_wrapping(model: nn.Module, optimizer: BlockOptimizer) -> None:
    """Find the DDP or DeepSpeed wrapper of `model` on its first forward, then `follow_block_switches` it.

    For wrappers made out of our sight (Trainer/accelerate): a global forward pre-hook looks at
    each module until a wrapper whose module is `model` runs, or `model` itself runs unwrapped (no
    such engine then: FSDP2, or one process), then removes itself.
    """

    def find(module: nn.Module, args: Any) -> None:
        wrapper = isinstance(module, DistributedDataParallel) or is_deepspeed_engine(module)
        if wrapper and module.module is model:
            handle.remove()
            follow_block_switches(module, optimizer)
        elif module is model:
            handle.remove()

    handle = torch.nn.modules.module.register_module_forward_pre_hook(find)


def leave(code: int = 0) -> NoReturn:
    """End a distributed program once its work is written: barrier, destroy the group, exit.

    Interpreter teardown can abort a gloo rank now and then ("terminate called without an active
    exception": a native thread destroyed with the statics), which fails a launch whose work was
    done. Leaving with os._exit skips that teardown.
    """
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
