"""Split mixture-of-experts layers into smaller BAdam blocks: attention and router, then the experts.

The active block costs 16 bytes per parameter (fp32 gradient, master, Adam m and v in the paper's
accounting), so a block's size sets the memory BAdam adds to the bf16 model. A Mixtral 8x7B layer
holds 1.45B parameters, 97% of them in its eight experts. With `split_moe` a layer becomes one block
for its attention, norms, router and shared experts, then blocks of routed experts:

* experts kept as modules of their own (`experts.0.`, `experts.1.`, ...) form blocks of
  `experts_per_block` experts (all of the layer's experts in one block when None);
* transformers 5 stores them fused, one tensor per projection over all experts
  (`experts.gate_up_proj` [experts, 2 x intermediate, hidden]). A block holds whole tensors, so
  each fused tensor is a block: Mixtral's largest block falls from the layer's 1.45B to 0.94B
  parameters (`python -m badam.memory --config DIR --split-moe` shows the effect).

    blocks = split_layer("model.layers.3.", param_names, experts_per_block=None)
"""

from __future__ import annotations

from collections.abc import Sequence

from .stacks import cover


def experts_modules(layer: str, names: Sequence[str]) -> list[str]:
    """The prefixes of the routed-expert modules ('<...>.experts.') inside one layer."""
    found: list[str] = []
    for name in names:
        if not name.startswith(layer):
            continue
        parts = name[len(layer) :].split(".")
        if "experts" in parts[:-1]:
            prefix = layer + ".".join(parts[: parts.index("experts") + 1]) + "."
            if prefix not in found:
                found.append(prefix)
    return found


def _expert_blocks(experts: str, names: Sequence[str], experts_per_block: int | None) -> list[list[str]]:
    inside = [name[len(experts) :] for name in names if name.startswith(experts)]
    heads = {rest.split(".")[0] for rest in inside}
    fused = [rest for rest in inside if "." not in rest]
    if not fused and all(head.isdigit() for head in heads):
        if experts_per_block is None:
            return [[experts]]
        indices, per = sorted(map(int, heads)), experts_per_block
        return [[f"{experts}{i}." for i in indices[at : at + per]] for at in range(0, len(indices), per)]
    if experts_per_block is not None:
        raise ValueError(
            f"experts_per_block={experts_per_block}: {experts!r} holds its experts fused into tensors of all "
            f"experts ({', '.join(fused)}), and a BAdam block holds whole tensors; split_moe=True alone makes "
            "each fused tensor a block"
        )
    # A fused name that begins another (GPT-OSS's gate_up_proj and gate_up_proj_bias) would take the
    # other in as a prefix: such experts train as one block.
    if len(fused) != len(inside) or any(a != b and b.startswith(a) for a in fused for b in fused):
        return [[experts]]
    return [[experts + rest] for rest in fused]


def split_layer(layer: str, names: Sequence[str], experts_per_block: int | None = None) -> list[list[str]]:
    """The blocks of one layer: itself when it holds no experts, else its non-expert modules, then the experts."""
    experts = experts_modules(layer, names)
    if not experts:
        return [[layer]]
    if experts_per_block is not None and experts_per_block < 1:
        raise ValueError(f"experts_per_block must be a positive number of experts, got {experts_per_block}")
    rest = [n for n in names if n.startswith(layer) and not n.startswith(tuple(experts))]
    blocks = [cover(rest, layer, experts)] if rest else []
    for module in experts:
        blocks += _expert_blocks(module, names, experts_per_block)
    return blocks
