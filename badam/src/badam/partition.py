"""Partition a model's parameters into BAdam blocks.

BAdam trains one block at a time. The paper's layer-wise partition makes every transformer layer a
block (D = number of layers); the embedding and the LM head can join as extra blocks. Blocks are
found from parameter names, so the same rules hold for a bare model and for one inside a PEFT or
DDP wrapper (whose names only gain a prefix).

    from badam.partition import infer_block_prefixes, assign_blocks
    prefixes = infer_block_prefixes([n for n, _ in model.named_parameters()])
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# A repeated layer is "<stack>.<index>." where the stack name is one of the families' own:
# Llama/Mistral/Qwen/NeoX `layers`, GPT-2 `h`, BERT/RoBERTa `layer`, others `blocks`.
_LAYER = re.compile(r"^(.*?(?:^|\.)(?:layers|layer|h|blocks)\.(\d+)\.)")
_EMBEDDING_NAMES = ("embed_tokens.", "wte.", "wpe.", "embed_in.", "embeddings.", "word_embeddings.")
_LM_HEAD_NAMES = ("lm_head.", "embed_out.")


def _first_prefix(names: Sequence[str], markers: Sequence[str]) -> list[str]:
    """Module prefixes (up to and including the marker) of the names that contain a marker."""
    found: list[str] = []
    for name in names:
        for marker in markers:
            at = name.find(marker)
            if at == 0 or (at > 0 and name[at - 1] == "."):
                prefix = name[: at + len(marker)]
                if prefix not in found:
                    found.append(prefix)
    return found


def embedding_prefixes(param_names: Sequence[str]) -> list[str]:
    """Module prefixes of the input embeddings (token and, for GPT-2, position) among the names."""
    return _first_prefix(param_names, _EMBEDDING_NAMES)


def infer_block_prefixes(
    param_names: Sequence[str], include_embedding: bool = False, include_lm_head: bool = False
) -> list[list[str]]:
    """The layer-wise partition: one block per transformer layer, in depth order.

    Returns a list of blocks, each a list of name prefixes. The embedding block comes first and the
    LM head block last when asked for.
    """
    layers: dict[str, int] = {}
    for name in param_names:
        match = _LAYER.match(name)
        if match and match.group(1) not in layers:
            layers[match.group(1)] = int(match.group(2))
    if not layers:
        raise ValueError(
            "could not infer BAdam blocks: no parameter name contains a repeated layer such as "
            "'model.layers.0.', 'transformer.h.0.' or 'encoder.layer.0.'; pass block_prefix_list"
        )
    stacks = {prefix.rsplit(".", 2)[0] for prefix in layers}
    if len(stacks) > 1:
        raise ValueError(
            f"could not infer BAdam blocks: several layer stacks found ({sorted(stacks)}); "
            "pass block_prefix_list to say how to partition this model"
        )
    blocks = [[prefix] for prefix in sorted(layers, key=layers.get)]
    if include_embedding:
        embedding = embedding_prefixes(param_names)
        if not embedding:
            raise ValueError("include_embedding=True but no embedding parameters were found")
        blocks.insert(0, embedding)
    if include_lm_head:
        lm_head = _first_prefix(param_names, _LM_HEAD_NAMES)
        if not lm_head:
            raise ValueError(
                "include_lm_head=True but no separate LM head was found (tied to the embedding?)"
            )
        blocks.append(lm_head)
    return blocks


def normalize_prefix_list(block_prefix_list: Sequence[str | Sequence[str]]) -> list[list[str]]:
    """Accept the published package's list-of-lists form and a flat list of one prefix per block."""
    blocks = []
    for entry in block_prefix_list:
        blocks.append([entry] if isinstance(entry, str) else list(entry))
        if not blocks[-1] or not all(isinstance(p, str) and p for p in blocks[-1]):
            raise ValueError(f"block_prefix_list entry {entry!r} must be a non-empty string or list of them")
    return blocks


def assign_blocks(param_names: Sequence[str], blocks: Sequence[Sequence[str]]) -> list[list[str]]:
    """The parameter names of each block, in the model's order.

    Every prefix must match at least one parameter (a typo would otherwise silently freeze a part of
    the model), and no parameter may fall in two blocks.
    """
    owner: dict[str, int] = {}
    for index, prefixes in enumerate(blocks):
        for prefix in prefixes:
            matched = [name for name in param_names if name.startswith(prefix)]
            if not matched:
                raise ValueError(f"block prefix {prefix!r} (block {index}) matches no parameter")
            for name in matched:
                if owner.setdefault(name, index) != index:
                    raise ValueError(f"parameter {name!r} matches prefixes of blocks {owner[name]} and {index}")
    members: list[list[str]] = [[] for _ in blocks]
    for name in param_names:
        if name in owner:
            members[owner[name]].append(name)
    return members
