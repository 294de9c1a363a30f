"""Partition a model's parameters into BAdam blocks.

BAdam trains one block at a time. The paper's layer-wise partition makes every transformer layer a
block (D = number of layers); the embedding and the LM head can join as extra blocks. Blocks are
found from parameter names, so the same rules hold for a bare model and for one inside a PEFT or
DDP wrapper (whose names only gain a prefix). Models with several layer stacks (badam.stacks):

* encoder-decoders (T5, BART, Whisper): the encoder's layers, then the decoder's, in depth order;
* vision-language models (Llava, Qwen2-VL, Gemma 3): the language model's layers; the vision
  tower and its projector stay frozen unless `include_vision_tower` makes them blocks too;
* mixture-of-experts layers can be split further with `split_moe` (badam.moe).

    from badam.partition import infer_block_prefixes, assign_blocks
    prefixes = infer_block_prefixes([n for n, _ in model.named_parameters()])
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable, Mapping, Sequence

import torch

from .moe import split_layer
from .stacks import is_projector, is_tower, model_stacks, tower_blocks

_EMBEDDING_NAMES = ("embed_tokens.", "wte.", "wpe.", "embed_in.", "embeddings.", "word_embeddings.", "shared.")
_LM_HEAD_NAMES = ("lm_head.", "embed_out.")


def _first_prefix(names: Sequence[str], markers: Sequence[str]) -> list[str]:
    """Module prefixes (up to and including the marker) of the names that contain a marker,
    outside vision/audio towers (whose patch embeddings are not the model's input embedding)."""
    found: list[str] = []
    for name in names:
        for marker in markers:
            at = name.find(marker)
            if at == 0 or (at > 0 and name[at - 1] == "."):
                prefix = name[: at + len(marker)]
                if prefix not in found and not is_tower(prefix) and not is_projector(prefix):
                    found.append(prefix)
    return found


def embedding_prefixes(param_names: Sequence[str]) -> list[str]:
    """Module prefixes of the input embeddings (token and, for GPT-2, position) among the names."""
    return _first_prefix(param_names, _EMBEDDING_NAMES)


def lm_head_prefixes(param_names: Sequence[str]) -> list[str]:
    """Module prefixes of an untied LM head among the names."""
    return _first_prefix(param_names, _LM_HEAD_NAMES)


def infer_block_prefixes(
    param_names: Sequence[str],
    include_embedding: bool = False,
    include_lm_head: bool = False,
    *,
    include_vision_tower: bool = False,
    split_moe: bool = False,
    experts_per_block: int | None = None,
) -> list[list[str]]:
    """The layer-wise partition: one block per layer, in depth order (encoder before decoder).

    Returns a list of blocks, each a list of name prefixes. The embedding block comes first and the
    LM head block last when asked for; the head's block also holds the final norms (and any other
    module outside the layers, the embedding and the towers). `include_vision_tower` puts the
    vision/audio towers' blocks (stem, layers, head with the projector) before the language
    model's; `split_moe` splits each mixture-of-experts layer (badam.moe).
    """
    names = list(param_names)
    stacks = model_stacks(names)
    blocks = tower_blocks(names, stacks) if include_vision_tower else []
    if include_vision_tower and not stacks.towers:
        raise ValueError("include_vision_tower=True but the model has no vision or audio tower")
    layers = [layer for stack in stacks.language for layer in stack.layers]
    if split_moe:
        split = [split_layer(layer, names, experts_per_block) for layer in layers]
        if all(len(parts) == 1 for parts in split):
            raise ValueError("split_moe=True but no layer holds mixture-of-experts modules ('experts')")
        blocks += [block for parts in split for block in parts]
    else:
        if experts_per_block is not None:
            raise ValueError("experts_per_block applies with split_moe=True only")
        blocks += [[layer] for layer in layers]
    if include_embedding:
        embedding = embedding_prefixes(names)
        if not embedding:
            raise ValueError("include_embedding=True but no embedding parameters were found")
        blocks.insert(0, embedding)
    if include_lm_head:
        lm_head = lm_head_prefixes(names)
        if not lm_head:
            raise ValueError("include_lm_head=True but no separate LM head was found (tied to the embedding?)")
        blocks.append(_outside_layers(names, lm_head, tuple(stacks.layer_prefixes())))
    return blocks


def _outside_layers(param_names: Sequence[str], lm_head: list[str], layers: tuple[str, ...]) -> list[str]:
    """The LM head's block: the head and every other module outside the layers, the embedding and
    the towers, the final norm above all, which the published package trains with the head too."""
    embedding = tuple(embedding_prefixes(param_names))
    prefixes: list[str] = []
    for name in param_names:
        module = name.rsplit(".", 1)[0]
        if name.startswith(layers + embedding) or is_tower(module) or is_projector(module):
            continue
        head = next((p for p in lm_head if name.startswith(p)), None)
        prefix = head or (module + "." if "." in name else name)
        if prefix not in prefixes:
            prefixes.append(prefix)
    return prefixes


def named_pairs(named_parameters_list: Iterable[tuple[str, torch.Tensor]]) -> list[tuple[str, torch.Tensor]]:
    """`named_parameters_list` as a list (a generator such as model.named_parameters() is fine),
    refusing anything but (name, tensor) pairs with distinct names."""
    expected = "named_parameters_list must hold (name, parameter) pairs, e.g. list(model.named_parameters())"
    if isinstance(named_parameters_list, Mapping):
        raise TypeError(f"{expected}; got a {type(named_parameters_list).__name__}: pass list(its .items())")
    if isinstance(named_parameters_list, (str, torch.Tensor)) or not isinstance(named_parameters_list, Iterable):
        raise TypeError(f"{expected}; got a {type(named_parameters_list).__name__}")
    named: dict[str, torch.Tensor] = {}
    for item in named_parameters_list:
        if not (
            isinstance(item, (tuple, list))
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], torch.Tensor)
        ):
            what = (
                "a bare tensor: model.parameters() instead of model.named_parameters()?"
                if isinstance(item, torch.Tensor)
                else f"a {type(item).__name__}"
            )
            raise TypeError(f"{expected}; one element is {what}")
        if item[0] in named:
            raise ValueError(f"named_parameters_list names {item[0]!r} twice")
        named[item[0]] = item[1]
    return list(named.items())


def close_names(wanted: str, names: Sequence[str], n: int = 3) -> list[str]:
    """Parameter names, their module prefixes and name parts that look like `wanted` (for typo hints)."""
    candidates = set(names)
    for name in names:
        parts = name.split(".")
        candidates.update(parts)
        candidates.update(".".join(parts[:i]) + "." for i in range(1, len(parts)))
    return difflib.get_close_matches(wanted, sorted(candidates), n=n, cutoff=0.6)


def did_you_mean(wanted: str, names: Sequence[str]) -> str:
    close = close_names(wanted, names)
    return f"; close names: {', '.join(map(repr, close))}" if close else ""


def normalize_prefix_list(block_prefix_list: Sequence[str | Sequence[str]]) -> list[list[str]]:
    """Accept the published package's list-of-lists form and a flat list of one prefix per block."""
    expected = (
        "block_prefix_list must be a list of blocks, each a name prefix or a list of them, "
        "e.g. [['model.layers.0.'], ['model.layers.1.']]"
    )
    if isinstance(block_prefix_list, str) or not isinstance(block_prefix_list, Iterable):
        raise TypeError(f"{expected}; got {block_prefix_list!r}")
    blocks = []
    for entry in block_prefix_list:
        if not isinstance(entry, (str, list, tuple)) or not all(isinstance(p, str) for p in entry):
            raise TypeError(f"{expected}; got the entry {entry!r}")
        blocks.append([entry] if isinstance(entry, str) else list(entry))
        if not blocks[-1] or not all(blocks[-1]):
            raise ValueError(f"block_prefix_list entry {entry!r} must be a non-empty string or list of them")
    return blocks


def _cut_module(name: str, prefix: str) -> str | None:
    """The module `prefix` ends inside of, in `name` ('model.layers.10.' for 'model.layers.1'), or
    None when the prefix ends at a module boundary there."""
    rest = name[len(prefix) :]
    if prefix.endswith(".") or not rest or rest.startswith("."):
        return None
    end = rest.find(".")
    return name if end < 0 else name[: len(prefix) + end + 1]


def _swallowed(prefix: str, matched: Sequence[str]) -> list[str]:
    """The other modules a prefix without its trailing dot takes in besides the one it names:
    'model.layers.1' names layer 1 but also matches 'model.layers.10.', 'model.layers.11.', ..."""
    cut = sorted({module for name in matched if (module := _cut_module(name, prefix))})
    return cut if any(_cut_module(name, prefix) is None for name in matched) else []


def assign_blocks(param_names: Sequence[str], blocks: Sequence[Sequence[str]]) -> list[list[str]]:
    """The parameter names of each block, in the model's order.

    Every prefix must match at least one parameter (a typo would otherwise silently freeze a part of
    the model), and no parameter may fall in two blocks. A prefix such as 'model.layers.1' that also
    takes in other modules ('model.layers.10.', ...) gets a warning.
    """
    owner: dict[str, tuple[int, str]] = {}
    swallowing: dict[str, list[str]] = {}
    for index, prefixes in enumerate(blocks):
        for prefix in prefixes:
            matched = [name for name in param_names if name.startswith(prefix)]
            if not matched:
                raise ValueError(
                    f"block prefix {prefix!r} (block {index}) matches no parameter{did_you_mean(prefix, param_names)}"
                )
            if swallowed := _swallowed(prefix, matched):
                swallowing[prefix] = swallowed
            for name in matched:
                first, first_prefix = owner.setdefault(name, (index, prefix))
                if first != index:
                    hint = next(
                        (
                            f"; {p!r} also matches {_cut_module(name, p)!r}: end it with a dot ({p + '.'!r})"
                            for p in (first_prefix, prefix)
                            if _cut_module(name, p)
                        ),
                        "",
                    )
                    raise ValueError(f"parameter {name!r} matches prefixes of blocks {first} and {index}{hint}")
    if swallowing:
        warnings.warn(
            "; ".join(
                f"block prefix {prefix!r} also matches {', '.join(map(repr, cut[:3]))}"
                + (f" and {len(cut) - 3} more" if len(cut) > 3 else "")
                + f": end it with a dot ({prefix + '.'!r}) to match that module alone"
                for prefix, cut in swallowing.items()
            ),
            stacklevel=2,
        )
    members: list[list[str]] = [[] for _ in blocks]
    for name in param_names:
        if name in owner:
            members[owner[name][0]].append(name)
    return members
