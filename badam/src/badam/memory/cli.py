"""Command line (GB = 1e9 bytes):

    python -m badam.memory --model llama2-7b [--method all|adam|badam|lora|lomo|adam_mini|badam_adam_mini]
                           [--blocks D] [--include-embedding] [--include-lm-head] [--lora-rank r]
                           [--include-vision-tower] [--split-moe [--experts-per-block N]]
                           [--config path/to/config.json] [--json] [--debug]

A bad model name, config file or option prints one line, `error: ...`, and exits with status 2;
`--debug` (or BADAM_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .counts import BUILTIN_MODELS, ModelCount, PartitionOptions, _valid_models, count_parameters
from .estimate import METHODS, MemoryEstimate, estimate

GB = 10**9
"""The paper's GB: decimal. It reproduces Table 12 for Llama 2-7B (13.4 / 0.8 / 2.4); GiB does not."""

# Table 12 of the paper, BAdam on Llama 2-7B with D = 32 layer blocks, in GB.
PAPER_TABLE12_GB = {"llama2-7b": {"parameters": 13.4, "gradients": 0.8, "optimizer_states": 2.4}}


def _gb(n: int) -> str:
    return f"{n / GB:.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: Sequence[int] = (0,)) -> list[str]:
    """Plain-text columns: numbers right-aligned, the `text_columns` left-aligned."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in text_columns else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def format_report(count: ModelCount, estimates: Sequence[MemoryEstimate], builtin: str | None = None) -> str:
    """The CLI's text: Table 1 rows, the assumptions, and BAdam's Table 12 split."""
    lines = [
        f"{count.name}: M = {count.total:,} parameters, {len(count.layers)} layer blocks; GB = 1e9 bytes; "
        "activations not included",
        "",
        "Table 1 (paper's accounting, mixed precision: bf16 model, fp32 optimizer)",
        *_table(
            ("method", "parameters", "gradient", "optimizer states", "total", "formula"),
            [
                (
                    e.method,
                    _gb(e.table1.parameters),
                    _gb(e.table1.gradients),
                    _gb(e.table1.states),
                    _gb(e.table1.total),
                    e.formula + (f"  (D = {e.num_blocks})" if e.num_blocks else ""),
                )
                for e in estimates
            ],
            text_columns=(0, 5),
        ),
        "formulas in bytes, counts in parameters: M = model, D = BAdam blocks, A = LoRA adapters, T = largest tensor",
        "",
        "Assumptions",
        *(f"  {e.method}: {a}" for e in estimates for a in e.assumptions),
    ]
    for e in estimates:
        if e.ours is None:
            continue
        # BAdam's split sits under the paper's own (Table 12); other methods have only ours.
        rows = []
        if e.table12 is not None:
            rows.append(
                (
                    "paper (mean block)",
                    _gb(e.table12.parameters),
                    _gb(e.table12.gradients),
                    _gb(e.table12.states),
                    "-",
                    _gb(e.table12.total),
                )
            )
        rows.append(
            (
                "ours (peak block)" if e.method == "badam" else f"{e.method} (peak block)",
                _gb(e.ours.parameters),
                _gb(e.ours.gradients),
                _gb(e.ours.states),
                _gb(e.ours.transient),
                _gb(e.ours.total),
            )
        )
        title = "BAdam" if e.method == "badam" else e.method
        lines += [
            "",
            f"Table 12 split for {title} (D = {e.num_blocks} blocks)",
            *_table(("accounting", "parameters", "gradient", "optimizer states", "transient", "total"), rows),
        ]
        paper = PAPER_TABLE12_GB.get(builtin or "")
        if e.table12 is not None and paper is not None and e.num_blocks == len(count.layers):
            lines.append(
                f"paper's Table 12 for {count.name}: parameters {paper['parameters']} GB, gradient "
                f"{paper['gradients']} GB, optimizer states {paper['optimizer_states']} GB"
            )
    return "\n".join(lines)


def _fail(message: str) -> NoReturn:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m badam.memory",
        description="Memory of Adam, BAdam, LoRA, LOMO and Adam-mini (alone and inside BAdam) for a model, "
        "without its weights (GB = 1e9 bytes).",
    )
    parser.add_argument("--model", default="llama2-7b", help=f"one of {_valid_models()} (default llama2-7b)")
    parser.add_argument("--config", help="path to a config.json or a model directory; overrides --model")
    parser.add_argument("--method", default="all", choices=["all", *METHODS])
    parser.add_argument(
        "--blocks",
        type=int,
        help="BAdam: number of blocks of layers (default: one per layer, or per part with --split-moe)",
    )
    parser.add_argument("--include-embedding", action="store_true", help="BAdam: the embedding is an extra block")
    parser.add_argument("--include-lm-head", action="store_true", help="BAdam: the LM head is an extra block")
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument(
        "--include-vision-tower", action="store_true", help="BAdam: a vision-language model's tower is blocks too"
    )
    parser.add_argument(
        "--split-moe", action="store_true", help="BAdam: split MoE layers into attention + router, then experts"
    )
    parser.add_argument("--experts-per-block", type=int, help="BAdam, with --split-moe: experts per block (unfused)")
    parser.add_argument("--json", action="store_true", help="print JSON (bytes) instead of the table")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (also BADAM_DEBUG=1)")
    args = parser.parse_args(argv)

    spec = args.config if args.config is not None else args.model
    if args.config is not None and args.config not in BUILTIN_MODELS and not Path(args.config).exists():
        _fail(f"{args.config}: no such file or directory")
    methods = list(METHODS) if args.method == "all" else [args.method]
    try:
        partition = PartitionOptions(args.include_vision_tower, args.split_moe, args.experts_per_block)
        count = count_parameters(spec, partition)
        estimates = [
            estimate(
                method,
                count,
                blocks=args.blocks,
                include_embedding=args.include_embedding,
                include_lm_head=args.include_lm_head,
                lora_rank=args.lora_rank,
            )
            for method in methods
        ]
    except Exception as exc:
        if args.debug or os.environ.get("BADAM_DEBUG", "0") not in ("", "0"):
            raise
        # Our ValueErrors name what they refuse (a config's errors start with its file); anything else
        # comes from building the model out of the config.
        _fail(str(exc) if isinstance(exc, ValueError) else f"{spec}: {type(exc).__name__}: {exc}")
    if args.json:
        payload = {
            "model": count.name,
            "n_params": count.total,
            "unit": "bytes",
            "estimates": [e.to_dict() for e in estimates],
        }
        print(json.dumps(payload, indent=2))
    else:
        print(format_report(count, estimates, builtin=spec if spec in BUILTIN_MODELS else None))
