"""Find a model's layer stacks from its parameter names, and the part each plays.

A layer stack is a module list of layers: names `<path>.<i>.<module>.<parameter>`. Decoder-only
models have one. Encoder-decoders (T5, BART, Whisper) have an encoder and a decoder stack;
vision-language models (Llava, Qwen2-VL, Gemma 3) a vision tower's stack besides the language
model's. `find_stacks` finds them and `model_stacks` tells which is which, refusing a model whose
stacks cannot be told apart with the partition that would work.

    stacks = model_stacks([n for n, _ in model.named_parameters()])
    stacks.language    # the stacks that train by default, in depth order
    stacks.towers      # vision/audio towers, frozen unless asked for
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# A module path is a tower's (or a tower's projector into the language model) when one of its
# components names one of these; the language model's own modules name none.
_TOWER_MARKERS = ("vision", "visual", "image", "audio", "speech", "video")
_PROJECTOR_MARKERS = ("projector", "connector", "merger", "mm_proj")


@dataclass
class Stack:
    """One module list of layers: `path`, and the prefix of each of its layers in depth order."""

    path: str
    layers: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"{self.path!r} ({len(self.layers)} layers)"


@dataclass
class ModelStacks:
    """The stacks of a model by role; `language` holds the encoder before the decoder."""

    language: list[Stack]
    towers: list[Stack]

    def layer_prefixes(self) -> set[str]:
        return {prefix for stack in self.language + self.towers for prefix in stack.layers}


# Module-list names the families use for their layers: Llama/BART/NeoX `layers`, BERT `layer`,
# GPT-2 `h`, ViT-style `blocks`, T5 `block`. Other lists count as stacks when their elements hold modules.
_STACK_NAMES = ("layers", "layer", "h", "blocks", "block")


def _numbered(name: str) -> list[tuple[str, int, bool]]:
    """(list path, index, whether the element holds modules here) for each numbered part of a name."""
    parts = name.split(".")
    return [
        (".".join(parts[:at]), int(parts[at]), len(parts) - at > 2)
        for at in range(1, len(parts) - 1)
        if parts[at].isdigit()
    ]


def find_stacks(param_names: Sequence[str]) -> list[Stack]:
    """Every layer stack among the names, in the order the model registers them.

    The outermost numbered module list that is a stack holds the layers: T5's
    `encoder.block.0.layer.1.DenseReluDense.wi.weight` is in layer 0 of `encoder.block` (its
    `layer.1` is a sub-layer), and a Sequential of bare Linears (`merger.mlp.0.weight`) is no stack.
    """
    numbered = [_numbered(name) for name in param_names]
    stacks = {path for found in numbered for path, _, deep in found if deep}
    stacks |= {path for found in numbered for path, _, _ in found if path.rsplit(".", 1)[-1] in _STACK_NAMES}
    indices: dict[str, set[int]] = {}
    for found in numbered:
        layer = next(((path, index) for path, index, _ in found if path in stacks), None)
        if layer is not None:
            indices.setdefault(layer[0], set()).add(layer[1])
    return [Stack(path, [f"{path}.{i}." for i in sorted(found)]) for path, found in indices.items()]


def _components(path: str) -> list[str]:
    return path.lower().split(".")


def is_tower(path: str) -> bool:
    """Whether a module path lies in a vision or audio tower."""
    return any(marker in part for part in _components(path) for marker in _TOWER_MARKERS)


def is_projector(path: str) -> bool:
    """Whether a module path is a tower's projector into the language model (Llava's
    `multi_modal_projector`, Idefics' `connector`, Qwen2-VL's `merger`)."""
    return any(marker in part for part in _components(path) for marker in _PROJECTOR_MARKERS)


def _has_part(stack: Stack, part: str) -> bool:
    return part in _components(stack.path)


def model_stacks(param_names: Sequence[str]) -> ModelStacks:
    """The stacks by role, or a ValueError that lists them and shows a block_prefix_list that works."""
    stacks = find_stacks(param_names)
    if not stacks:
        raise ValueError(
            "could not infer BAdam blocks: no parameter name lies in a stack of layers such as "
            "'model.layers.0.', 'transformer.h.0.' or 'encoder.layer.0.'; pass block_prefix_list"
        )
    towers = [s for s in stacks if is_tower(s.path)]
    language = [s for s in stacks if not is_tower(s.path)]
    if len(language) == 2:
        encoder = next((s for s in language if _has_part(s, "encoder") and not _has_part(s, "decoder")), None)
        decoder = next((s for s in language if _has_part(s, "decoder") and not _has_part(s, "encoder")), None)
        if encoder is not None and decoder is not None:
            return ModelStacks(language=[encoder, decoder], towers=towers)
    if len(language) == 1:
        return ModelStacks(language=language, towers=towers)
    if not language and len(towers) == 1:
        return ModelStacks(language=towers, towers=[])  # a vision or audio model alone
    raise ValueError(_ambiguous(stacks))


def _ambiguous(stacks: list[Stack]) -> str:
    shown = " + ".join(f'[[f"{s.path}.{{i}}."] for i in range({len(s.layers)})]' for s in stacks)
    return (
        f"could not infer BAdam blocks: {len(stacks)} layer stacks found ({', '.join(map(repr, stacks))}) whose "
        "parts cannot be told from their names (one language model, or one encoder and one decoder, beside "
        "vision/audio towers); pass block_prefix_list to say which train and in what order, e.g. every layer "
        f"of each, input side first: block_prefix_list={shown}"
    )


def cover(names: Sequence[str], under: str, excluded: Sequence[str]) -> list[str]:
    """The coarsest module prefixes below `under` that take in all `names` and none of `excluded`.

    For the non-expert part of an MoE layer 'model.layers.0.' with the experts excluded:
    ['model.layers.0.self_attn.', 'model.layers.0.mlp.gate.', 'model.layers.0.input_layernorm.', ...].
    """
    prefixes: list[str] = []
    for name in names:
        parts = name[len(under) :].split(".")
        for depth in range(1, len(parts) + 1):
            # A whole parameter name, when even its parent module holds something excluded.
            candidate = under + ".".join(parts[:depth]) + ("." if depth < len(parts) else "")
            if not any(other.startswith(candidate) for other in excluded):
                break
        if candidate not in prefixes:
            prefixes.append(candidate)
    return prefixes


def tower_root(stack: Stack) -> str:
    """The tower module a tower's stack lies in: 'model.vision_tower.' for 'model.vision_tower.encoder.layers'."""
    parts = stack.path.split(".")
    end = next(i for i, part in enumerate(parts) if is_tower(part))
    return ".".join(parts[: end + 1]) + "."


def tower_blocks(param_names: Sequence[str], stacks: ModelStacks) -> list[list[str]]:
    """The towers as blocks, input side first: for each tower its stem (patch embedding, ...), its
    layers, then its head; the projectors into the language model train with the last tower's head."""
    layers = tuple(stacks.layer_prefixes())
    roots = [tower_root(stack) for stack in stacks.towers]
    position = {name: i for i, name in enumerate(param_names)}
    blocks: list[list[str]] = []
    for index, (stack, root) in enumerate(zip(stacks.towers, roots)):
        outside = [n for n in param_names if n.startswith(root) and not n.startswith(layers)]
        first = next(i for i, n in enumerate(param_names) if n.startswith(stack.layers[0]))
        stem = [n for n in outside if position[n] < first]
        head = [n for n in outside if position[n] > first]
        if index == len(stacks.towers) - 1:
            head += [
                n for n in param_names if is_projector(n.rsplit(".", 1)[0]) and not n.startswith((*layers, *roots))
            ]
        excluded = [p for p in (*layers, *roots) if p != root]
        blocks += [cover(stem, root, [stack.path + "."])] if stem else []
        blocks += [[layer] for layer in stack.layers]
        blocks += [cover(head, "", [stack.path + ".", *excluded])] if head else []
    return blocks
