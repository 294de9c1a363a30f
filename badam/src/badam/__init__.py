"""BAdam: memory-efficient full-parameter fine-tuning by block coordinate descent with Adam.

    from badam import BlockOptimizer
    optimizer = BlockOptimizer(torch.optim.AdamW(model.parameters(), lr=1e-5),
                               list(model.named_parameters()), switch_block_every=100)

This package replaces the published `badam` (1.4): its names (BlockOptimizer, BlockOptimizerRatio,
BAdamCallback, clip_grad_norm_old_version) are here with the same meaning; the README's "Migrating
from the published package" lists what differs.
"""

from typing import Any

from .adam_mini import AdamMini
from .block import BlockOptimizer
from .bread import LORA_MODES, SGD_MODES, LoraMode, SgdMode
from .clipping import clip_grad_norm_old_version
from .ratio import MASK_MODES, BlockOptimizerRatio, MaskMode
from .schedule import SWITCH_MODES, SwitchMode, suggest_switch_every
from .truncation import truncate_backward
from .unwrap import unwrap

__version__ = "1.5.0"  # the published package's successor, so that `badam>=1.2.1` checks pass

__all__ = [
    "LORA_MODES",
    "MASK_MODES",
    "SGD_MODES",
    "SWITCH_MODES",
    "AdamMini",
    "BAdamCallback",
    "BlockOptimizer",
    "BlockOptimizerRatio",
    "LoraMode",
    "MaskMode",
    "SgdMode",
    "SwitchMode",
    "__version__",
    "clip_grad_norm_old_version",
    "suggest_switch_every",
    "truncate_backward",
    "unwrap",
]


def __getattr__(name: str) -> Any:
    # BAdamCallback needs transformers, which the optimizer itself does not: import it on first use.
    if name == "BAdamCallback":
        from .hf import BAdamCallback

        return BAdamCallback
    raise AttributeError(f"module 'badam' has no attribute {name!r}")
