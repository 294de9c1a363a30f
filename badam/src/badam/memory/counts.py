"""Parameter counts without weights: built-in configs, config paths, configs or modules, layer by layer."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..partition import assign_blocks, infer_block_prefixes

if TYPE_CHECKING:
    from transformers import PretrainedConfig


@dataclass(frozen=True)
class BuiltinModel:
    title: str
    config: dict[str, Any]


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "llama2-7b": BuiltinModel(
        "Llama 2-7B",
        dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
             num_key_value_heads=32, vocab_size=32000),
    ),
    "llama3-8b": BuiltinModel(
        "Llama 3-8B",
        dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
             num_key_value_heads=8, vocab_size=128256),
    ),
    "llama2-13b": BuiltinModel(
        "Llama 2-13B",
        dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40,
             num_key_value_heads=40, vocab_size=32000),
    ),
    "llama2-70b": BuiltinModel(
        "Llama 2-70B",
        dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
             num_key_value_heads=8, vocab_size=32000),
    ),
}


@dataclass(frozen=True)
class Block:
    """A group of parameters that trains together (a decoder layer, the embedding, the LM head).

    `lora_dims` is the sum of in + out features over its nn.Linear modules: rank-r LoRA on all of
    them adds r * lora_dims parameters.
    """

    name: str
    numel: int
    tensors: int
    largest_tensor: int
    lora_dims: int


@dataclass(frozen=True)
class ModelCount:
    """Parameter counts of a model, per decoder layer; shared (tied) parameters counted once."""

    name: str
    total: int
    layers: tuple[Block, ...]
    embedding: Block | None
    lm_head: Block | None  # None when tied to the embedding
    largest_tensor: int


def _block(name: str, params: Sequence[nn.Parameter], linears: Sequence[nn.Linear]) -> Block:
    return Block(
        name=name,
        numel=sum(p.numel() for p in params),
        tensors=len(params),
        largest_tensor=max((p.numel() for p in params), default=0),
        lora_dims=sum(m.in_features + m.out_features for m in linears),
    )


def _module_block(model: nn.Module, module: nn.Module | None) -> Block | None:
    if module is None:
        return None
    name = next(n for n, m in model.named_modules() if m is module)
    return _block(f"{name}.", list(module.parameters()), [])


def count_module(model: nn.Module, name: str | None = None) -> ModelCount:
    """Count an instantiated model (real or on the meta device) layer by layer.

    Layers are found by the same rule as BlockOptimizer's default partition (`badam.partition`).
    """
    named = list(model.named_parameters())
    names = [n for n, _ in named]
    params = dict(named)
    layer_prefixes = infer_block_prefixes(names)
    members = assign_blocks(names, layer_prefixes)
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    layers = tuple(
        _block(
            prefixes[0],
            [params[n] for n in member],
            [m for n, m in linears if any(n.startswith(p) for p in prefixes)],
        )
        for prefixes, member in zip(layer_prefixes, members)
    )
    embedding = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    lm_head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if lm_head is not None and embedding is not None and lm_head.weight is embedding.weight:
        lm_head = None
    return ModelCount(
        name=name or type(model).__name__,
        total=sum(p.numel() for _, p in named),
        layers=layers,
        embedding=_module_block(model, embedding),
        lm_head=_module_block(model, lm_head),
        largest_tensor=max(p.numel() for _, p in named),
    )


def _valid_models() -> str:
    return ", ".join(BUILTIN_MODELS) + ", or a path to a config.json or a model directory"


def load_config(spec: str | os.PathLike | PretrainedConfig) -> tuple[PretrainedConfig, str]:
    """A transformers config and a display name, from a built-in name, a config path or a config."""
    # transformers is imported here, not at the top: held_bytes and track_peak need only torch.
    from transformers import AutoConfig, LlamaConfig, PretrainedConfig

    if isinstance(spec, PretrainedConfig):
        return spec, getattr(spec, "name_or_path", "") or type(spec).__name__
    if isinstance(spec, str) and spec in BUILTIN_MODELS:
        builtin = BUILTIN_MODELS[spec]
        return LlamaConfig(**builtin.config, tie_word_embeddings=False), builtin.title
    path = Path(spec)
    if path.exists():
        return AutoConfig.from_pretrained(str(path)), str(path)
    raise ValueError(f"unknown model {str(spec)!r}: choose one of {_valid_models()}")


@functools.cache
def _count_builtin(name: str) -> ModelCount:
    config, title = load_config(name)
    return _count_config(config, title)


def _count_config(config: PretrainedConfig, name: str) -> ModelCount:
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        try:
            model = AutoModelForCausalLM.from_config(config)
        except ValueError as exc:
            raise ValueError(
                f"cannot build a causal LM from the {config.model_type!r} config {name}; "
                "build the model yourself (the meta device needs no memory) and pass the module"
            ) from exc
    return count_module(model, name)


def count_parameters(model_or_config: str | os.PathLike | PretrainedConfig | nn.Module | ModelCount) -> ModelCount:
    """Count a built-in model, a config path, a transformers config or a module, without weights."""
    if isinstance(model_or_config, ModelCount):
        return model_or_config
    if isinstance(model_or_config, nn.Module):
        return count_module(model_or_config)
    if isinstance(model_or_config, str) and model_or_config in BUILTIN_MODELS:
        return _count_builtin(model_or_config)
    return _count_config(*load_config(model_or_config))
