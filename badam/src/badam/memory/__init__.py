"""Memory accounting for BAdam and its baselines: what an optimizer holds, peaks, and estimates.

Three tools, all usable on CPU:

* `held_bytes(optimizer, model)`: the bytes an optimizer really holds right now (gradients, fp32
  master copies, optimizer states), counted from tensor storages.
* `track_peak(device)`: a context manager measuring the peak of live allocated bytes over a block.
* `estimate(method, model)`: the paper's memory accounting (Table 1 and Table 12 of arXiv
  2404.02827) for Adam, BAdam, LoRA and LOMO, and for Adam-mini alone and as BAdam's inner solver,
  from a model config without loading weights, plus
  the accounting of this implementation of BAdam. New methods register in `METHODS`.

Command line (GB = 1e9 bytes; `--help` for the options):

    python -m badam.memory --model llama2-7b
"""

from .cli import GB, PAPER_TABLE12_GB, format_report, main
from .counts import (
    BUILTIN_MODELS,
    Block,
    BuiltinModel,
    ModelCount,
    PartitionOptions,
    count_module,
    count_parameters,
    load_config,
)
from .estimate import (
    BF16,
    FP32,
    METHODS,
    Breakdown,
    EstimateOptions,
    MemoryEstimate,
    MethodEstimator,
    badam_blocks,
    estimate,
)
from .held import HeldBytes, held_bytes, storage_bytes
from .peak import PeakMemory, enable_cpu_allocation_accounting, track_peak

__all__ = [
    "BF16",
    "BUILTIN_MODELS",
    "FP32",
    "GB",
    "METHODS",
    "PAPER_TABLE12_GB",
    "Block",
    "Breakdown",
    "BuiltinModel",
    "EstimateOptions",
    "HeldBytes",
    "MemoryEstimate",
    "MethodEstimator",
    "ModelCount",
    "PartitionOptions",
    "PeakMemory",
    "badam_blocks",
    "count_module",
    "count_parameters",
    "enable_cpu_allocation_accounting",
    "estimate",
    "format_report",
    "held_bytes",
    "load_config",
    "main",
    "storage_bytes",
    "track_peak",
]
