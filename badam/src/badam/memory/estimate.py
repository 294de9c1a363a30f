"""The paper's memory accounting (Table 1 and Table 12 of arXiv 2404.02827) for Adam, BAdam, LoRA and
LOMO, the same accounting for Adam-mini alone and as BAdam's inner solver, plus the accounting of
this implementation of BAdam. New methods register in `METHODS`."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from ..tensor_step import slice_numel
from .counts import Block, ModelCount, PartitionOptions, count_parameters

if TYPE_CHECKING:
    from transformers import PretrainedConfig

# Bytes per parameter in the mixed-precision setting of the paper: the model is kept in bf16, the
# optimizer works in fp32.
BF16 = 2
FP32 = 4


@dataclass(frozen=True)
class Breakdown:
    """Bytes by kind. The paper's "optimizer states" column is `master_copies + optimizer_states`."""

    parameters: int
    gradients: int
    master_copies: int
    optimizer_states: int
    transient: int = 0  # short-lived buffers of one update, on top of everything else

    @property
    def states(self) -> int:
        return self.master_copies + self.optimizer_states

    @property
    def optimizer_held(self) -> int:
        """The persistent bytes beyond the model, comparable to `HeldBytes.optimizer_held`."""
        return self.gradients + self.master_copies + self.optimizer_states

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.states + self.transient

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "states": self.states, "optimizer_held": self.optimizer_held, "total": self.total}


@dataclass(frozen=True)
class EstimateOptions:
    blocks: int | None = None  # BAdam: groups of the default partition's blocks; None = those blocks
    include_embedding: bool = False
    include_lm_head: bool = False
    lora_rank: int = 8


@dataclass(frozen=True)
class MemoryEstimate:
    """One method's memory on one model; activations and framework buffers are not included.

    `table1` is the paper's closed-form accounting (Table 1), `formula` its expression in M, the
    number of model parameters. For BAdam, `table12` is the paper's accounting on the real blocks
    (their mean size, as in Table 12) and `ours` the accounting of this implementation on the block
    where it peaks (the largest block, for a model of equal layers).
    """

    method: str
    model: str
    n_params: int
    formula: str
    table1: Breakdown
    assumptions: tuple[str, ...]
    num_blocks: int | None = None
    table12: Breakdown | None = None
    ours: Breakdown | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "model": self.model,
            "n_params": self.n_params,
            "formula": self.formula,
            "num_blocks": self.num_blocks,
            "assumptions": list(self.assumptions),
            "table1": self.table1.to_dict(),
        }
        for name in ("table12", "ours"):
            breakdown = getattr(self, name)
            out[name] = None if breakdown is None else breakdown.to_dict()
        return out


def badam_blocks(count: ModelCount, options: EstimateOptions) -> list[Block]:
    """BAdam's blocks: the decoder layers in `options.blocks` contiguous groups (default one per
    layer, sizes differing by at most one layer), then the embedding and LM head if included."""
    layers = count.layers
    groups = len(layers) if options.blocks is None else options.blocks
    if not 1 <= groups <= len(layers):
        raise ValueError(f"blocks must be between 1 and the {len(layers)} decoder layers, got {groups}")
    blocks = []
    start = 0
    for index in range(groups):
        stop = start + len(layers) // groups + (index < len(layers) % groups)
        members = layers[start:stop]
        blocks.append(
            Block(
                name=members[0].name if len(members) == 1 else f"{members[0].name} .. {members[-1].name}",
                numel=sum(b.numel for b in members),
                tensors=sum(b.tensors for b in members),
                largest_tensor=max(b.largest_tensor for b in members),
                lora_dims=sum(b.lora_dims for b in members),
            )
        )
        start = stop
    for wanted, extra, what in (
        (options.include_embedding, count.embedding, "embedding"),
        (options.include_lm_head, count.lm_head, "separate LM head (is it tied to the embedding?)"),
    ):
        if wanted:
            if extra is None:
                raise ValueError(f"{count.name} has no {what} to make a block of")
            blocks.append(extra)
    return blocks


def _adam(count: ModelCount, options: EstimateOptions) -> MemoryEstimate:
    m = count.total
    return MemoryEstimate(
        method="adam",
        model=count.name,
        n_params=m,
        formula="18M",
        table1=Breakdown(
            parameters=BF16 * m, gradients=FP32 * m, master_copies=FP32 * m, optimizer_states=2 * FP32 * m
        ),
        assumptions=("bf16 model 2M; fp32 gradient 4M; fp32 master copy 4M + Adam m 4M + v 4M = 12M",),
    )


def _badam(count: ModelCount, options: EstimateOptions) -> MemoryEstimate:
    m = count.total
    blocks = badam_blocks(count, options)
    d = len(blocks)
    mean = sum(b.numel for b in blocks) / d
    # Our step runs in slices of 1/256 of the block (badam.tensor_step): one fp32 slice is the whole
    # transient, so the peak block is the largest.
    peak = max(blocks, key=lambda b: b.numel)
    return MemoryEstimate(
        method="badam",
        model=count.name,
        n_params=m,
        formula="2M + 16M/D",
        num_blocks=d,
        table1=Breakdown(
            parameters=BF16 * m,
            gradients=round(FP32 * m / d),
            master_copies=round(FP32 * m / d),
            optimizer_states=round(2 * FP32 * m / d),
        ),
        table12=Breakdown(
            parameters=BF16 * m,
            gradients=round(FP32 * mean),
            master_copies=round(FP32 * mean),
            optimizer_states=round(2 * FP32 * mean),
        ),
        ours=Breakdown(
            parameters=BF16 * m,
            gradients=BF16 * peak.numel,
            master_copies=FP32 * peak.numel,
            # m and v, plus torch Adam's 4-byte step counter per tensor
            optimizer_states=2 * FP32 * peak.numel + FP32 * peak.tensors,
            transient=FP32 * slice_numel(peak.numel),
        ),
        assumptions=(
            f"Table 1: D = {d} equal blocks of M/D; per active parameter fp32 gradient 4 + fp32 master 4 "
            "+ Adam m 4 + v 4 bytes",
            f"Table 12 (paper): the same 16 bytes per parameter of the mean real block ({mean:,.0f} parameters; "
            "parameters outside every block stay frozen in bf16)",
            f"ours: peak block {peak.name} ({peak.numel:,} parameters): bf16 gradient 2 + fp32 master 4 "
            f"+ m 4 + v 4 bytes per parameter; transient one fp32 slice of the update ({slice_numel(peak.numel):,} "
            "elements, 1/256 of the block)",
        ),
    )


def _lora(count: ModelCount, options: EstimateOptions) -> MemoryEstimate:
    if options.lora_rank < 1:
        raise ValueError(f"lora rank must be positive, got {options.lora_rank}")
    m = count.total
    adapters = options.lora_rank * sum(b.lora_dims for b in count.layers)
    return MemoryEstimate(
        method="lora",
        model=count.name,
        n_params=m,
        formula="2M + 16A",
        table1=Breakdown(
            parameters=BF16 * m + FP32 * adapters,
            gradients=FP32 * adapters,
            master_copies=0,
            optimizer_states=2 * FP32 * adapters,
        ),
        assumptions=(
            f"rank {options.lora_rank} on every linear layer of the decoder layers (q, k, v, o, gate, up, down): "
            f"A = {adapters:,} adapter parameters",
            "frozen bf16 model 2M; adapters kept in fp32 with fp32 gradients and Adam m, v: 16 bytes per adapter "
            "parameter",
        ),
    )


def _lomo(count: ModelCount, options: EstimateOptions) -> MemoryEstimate:
    m, largest = count.total, count.largest_tensor
    return MemoryEstimate(
        method="lomo",
        model=count.name,
        n_params=m,
        formula="2M + 2T",
        table1=Breakdown(parameters=BF16 * m, gradients=BF16 * largest, master_copies=0, optimizer_states=0),
        assumptions=(
            "bf16 model 2M; the SGD update is fused into the backward pass, so only one bf16 gradient lives "
            f"at a time, at most the largest tensor T = {largest:,} parameters; no optimizer states",
        ),
    )


# Adam-mini's v has one value per Hessian block: 1.16M values for Llama 2-7B's 6.7G parameters
# (0.02%). A ModelCount has no per-tensor row counts to count it from, so the estimates leave it out.
_ADAM_MINI_V = "Adam-mini's v (one fp32 value per head, output row or norm) is not counted: < 0.1% of M on LLMs"


def _adam_mini(count: ModelCount, options: EstimateOptions) -> MemoryEstimate:
    m = count.total
    return MemoryEstimate(
        method="adam_mini",
        model=count.name,
        n_params=m,
        formula="14M",
        table1=Breakdown(parameters=BF16 * m, gradients=FP32 * m, master_copies=FP32 * m, optimizer_states=FP32 * m),
        assumptions=(
            "as adam, with Adam-mini for AdamW: bf16 model 2M; fp32 gradient 4M; fp32 master copy 4M + m 4M = 8M",
            _ADAM_MINI_V,
        ),
    )


def _badam_adam_mini(count: ModelCount, options: EstimateOptions) -> MemoryEstimate:
    m = count.total
    blocks = badam_blocks(count, options)
    d = len(blocks)
    # As for AdamW, the step runs in slices (of whole rows or heads): one fp32 slice is the transient.
    peak = max(blocks, key=lambda b: b.numel)
    return MemoryEstimate(
        method="badam_adam_mini",
        model=count.name,
        n_params=m,
        formula="2M + 12M/D",
        num_blocks=d,
        table1=Breakdown(
            parameters=BF16 * m,
            gradients=round(FP32 * m / d),
            master_copies=round(FP32 * m / d),
            optimizer_states=round(FP32 * m / d),
        ),
        ours=Breakdown(
            parameters=BF16 * m,
            gradients=BF16 * peak.numel,
            master_copies=FP32 * peak.numel,
            optimizer_states=FP32 * peak.numel,
            transient=FP32 * slice_numel(peak.numel),
        ),
        assumptions=(
            f"Table 1: D = {d} equal blocks of M/D; per active parameter fp32 gradient 4 + fp32 master 4 "
            "+ Adam-mini m 4 bytes",
            f"ours: peak block {peak.name} ({peak.numel:,} parameters): bf16 gradient 2 + fp32 master 4 + m 4 "
            f"bytes per parameter; transient one fp32 slice of the update ({slice_numel(peak.numel):,} elements, "
            "1/256 of the block)",
            _ADAM_MINI_V,
        ),
    )


MethodEstimator = Callable[[ModelCount, EstimateOptions], MemoryEstimate]

METHODS: dict[str, MethodEstimator] = {
    "adam": _adam,
    "badam": _badam,
    "lora": _lora,
    "lomo": _lomo,
    "adam_mini": _adam_mini,
    "badam_adam_mini": _badam_adam_mini,
}
"""The methods `estimate` and the CLI know; register a new one by adding it here."""


def estimate(
    method: str,
    model_or_config: str | os.PathLike | PretrainedConfig | nn.Module | ModelCount,
    *,
    blocks: int | None = None,
    include_embedding: bool = False,
    include_lm_head: bool = False,
    lora_rank: int = 8,
    partition: PartitionOptions | None = None,
) -> MemoryEstimate:
    """Memory of `method` for a model given by built-in name, config path, config, module or count.

    The accounting is the paper's mixed-precision setting (bf16 model, fp32 optimizer); a module
    contributes only its parameter counts and structure, whatever its dtype. `partition` draws
    BAdam's blocks as BlockOptimizer's options of the same names do (towers, MoE split).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    options = EstimateOptions(blocks, include_embedding, include_lm_head, lora_rank)
    return METHODS[method](count_parameters(model_or_config, partition), options)
