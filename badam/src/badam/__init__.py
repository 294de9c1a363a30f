"""BAdam: memory-efficient full-parameter fine-tuning by block coordinate descent with Adam.

    from badam import BlockOptimizer
    optimizer = BlockOptimizer(torch.optim.AdamW(model.parameters(), lr=1e-5),
                               list(model.named_parameters()), switch_block_every=100)
"""

from .adam_mini import AdamMini
from .block import BlockOptimizer
from .ratio import BlockOptimizerRatio
from .schedule import SWITCH_MODES, suggest_switch_every
from .truncation import truncate_backward

__all__ = ["AdamMini", "BlockOptimizer", "BlockOptimizerRatio", "SWITCH_MODES", "suggest_switch_every", "truncate_backward"]
