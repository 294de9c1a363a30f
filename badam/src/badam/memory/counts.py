"""Parameter counts without weights: built-in configs, config paths, configs or modules, layer by layer."""

from __future__ import annotations

import functools
import json
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
    model_type: str = "llama"  # the transformers config class it builds (CONFIG_MAPPING key)


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "llama2-7b": BuiltinModel(
        "Llama 2-7B",
        dict(
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            vocab_size=32000,
        ),
    ),
    "llama3-8b": BuiltinModel(
        "Llama 3-8B",
        dict(
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            vocab_size=128256,
        ),
    ),
    "llama2-13b": BuiltinModel(
        "Llama 2-13B",
        dict(
            hidden_size=5120,
            intermediate_size=13824,
            num_hidden_layers=40,
            num_attention_heads=40,
            num_key_value_heads=40,
            vocab_size=32000,
        ),
    ),
    "llama2-70b": BuiltinModel(
        "Llama 2-70B",
        dict(
            hidden_size=8192,
            intermediate_size=28672,
            num_hidden_layers=80,
            num_attention_heads=64,
            num_key_value_heads=8,
            vocab_size=32000,
        ),
    ),
    "mixtral-8x7b": BuiltinModel(
        "Mixtral 8x7B",
        dict(
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            num_local_experts=8,
            num_experts_per_tok=2,
            vocab_size=32000,
        ),
        "mixtral",
    ),
    "qwen3-30b-a3b": BuiltinModel(
        "Qwen3-30B-A3B",
        dict(
            hidden_size=2048,
            intermediate_size=6144,
            moe_intermediate_size=768,
            num_hidden_layers=48,
            num_attention_heads=32,
            num_key_value_heads=4,
            head_dim=128,
            num_experts=128,
            num_experts_per_tok=8,
            vocab_size=151936,
        ),
        "qwen3_moe",
    ),
    "flan-t5-xl": BuiltinModel(
        "Flan-T5-XL",
        dict(
            d_model=2048,
            d_ff=5120,
            d_kv=64,
            num_heads=32,
            num_layers=24,
            num_decoder_layers=24,
            vocab_size=32128,
            feed_forward_proj="gated-gelu",
        ),
        "t5",
    ),
}
BUILTIN_MODELS["llava-1.5-7b"] = BuiltinModel(
    "LLaVA-1.5-7B",
    dict(
        # Vicuna-7B: Llama 2-7B's shape with 64 more token ids
        text_config=dict(BUILTIN_MODELS["llama2-7b"].config, model_type="llama", vocab_size=32064),
        vision_config=dict(
            model_type="clip_vision_model",
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=336,
            patch_size=14,
            projection_dim=768,
        ),
        image_token_index=32000,
    ),
    "llava",
)


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
    """Parameter counts of a model, per block of BAdam's default partition (a layer, or a part of
    one with split_moe); shared (tied) parameters counted once."""

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


@dataclass(frozen=True)
class PartitionOptions:
    """How BAdam's default partition is drawn (badam.partition.infer_block_prefixes)."""

    include_vision_tower: bool = False  # the vision/audio towers and projector are blocks too
    split_moe: bool = False  # each mixture-of-experts layer is split: attention and router, then experts
    experts_per_block: int | None = None  # with split_moe: experts per block, for experts kept as modules


def _block_name(prefixes: Sequence[str]) -> str:
    return prefixes[0] if len(prefixes) == 1 else f"{prefixes[0]} (+{len(prefixes) - 1} more)"


def count_module(model: nn.Module, name: str | None = None, partition: PartitionOptions | None = None) -> ModelCount:
    """Count an instantiated model (real or on the meta device) block by block.

    Blocks are drawn by the same rule as BlockOptimizer's default partition (`badam.partition`):
    one per layer of the language model, or finer/wider as `partition` says.
    """
    partition = partition or PartitionOptions()
    named = list(model.named_parameters())
    names = [n for n, _ in named]
    params = dict(named)
    layer_prefixes = infer_block_prefixes(
        names,
        include_vision_tower=partition.include_vision_tower,
        split_moe=partition.split_moe,
        experts_per_block=partition.experts_per_block,
    )
    members = assign_blocks(names, layer_prefixes)
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    layers = tuple(
        _block(
            _block_name(prefixes),
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


# Sizes a config file must state when its architecture has them: for a missing one transformers
# would take the architecture's default (Llama's hidden size 4096, say) and count another model.
_SIZES = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "intermediate_size")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _is_size_key(key: str) -> bool:
    return key.endswith(("_size", "_dim", "_embeddings")) or key.startswith(("num_", "n_"))


def _check_sizes(raw: dict[str, Any], config_class: type) -> str | None:
    """What is wrong with the sizes a config file states, or None."""
    for key, value in raw.items():
        if _is_size_key(key) and isinstance(value, int) and not isinstance(value, bool) and value < 0:
            return f"{key} is {value}: a size cannot be negative"
    aliases = config_class.attribute_map
    sizes = {}
    for key in (k for k in _SIZES if hasattr(config_class, k) or k in aliases):
        value = raw.get(key, raw.get(aliases.get(key, key)))
        if value is None:
            return f"no {key!r} key: transformers would use its default and count another model"
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return f"{key} must be a positive integer, got {value!r}"
        sizes[key] = value
    hidden, heads, kv_heads = sizes.get("hidden_size"), sizes.get("num_attention_heads"), raw.get("num_key_value_heads")
    if hidden and heads and "head_dim" not in raw and hidden % heads:
        return f"hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
    if heads and isinstance(kv_heads, int) and kv_heads > 0 and heads % kv_heads:
        return f"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"
    return None


def _read_config(path: Path) -> PretrainedConfig:
    """The config of a config.json or a model directory, refusing a file that would count another model.

    Errors are ValueErrors that start with the file's path.
    """
    from transformers import CONFIG_MAPPING, AutoConfig

    file = path / "config.json" if path.is_dir() else path
    try:
        raw = json.loads(file.read_text())
    except FileNotFoundError as exc:
        raise ValueError(f"{file}: no such file") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file}: invalid JSON: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file}: cannot read it: {_one_line(exc)}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{file}: expected a JSON object of config keys, got a JSON {type(raw).__name__}")
    model_type = raw.get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        what = "no 'model_type' key" if model_type is None else f"unknown model_type {model_type!r}"
        raise ValueError(f"{file}: {what}: cannot tell which architecture it describes")
    problem = _check_sizes(raw, CONFIG_MAPPING[model_type])
    if problem is not None:
        raise ValueError(f"{file}: {problem}")
    try:
        return AutoConfig.from_pretrained(str(path))
    except Exception as exc:  # transformers' and huggingface_hub's validation errors share no base class
        raise ValueError(f"{file}: {_one_line(exc)}") from exc


def load_config(spec: str | os.PathLike | PretrainedConfig) -> tuple[PretrainedConfig, str]:
    """A transformers config and a display name, from a built-in name, a config path or a config."""
    # transformers is imported here, not at the top: held_bytes and track_peak need only torch.
    from transformers import CONFIG_MAPPING, PretrainedConfig

    if isinstance(spec, PretrainedConfig):
        return spec, getattr(spec, "name_or_path", "") or type(spec).__name__
    if isinstance(spec, str) and spec in BUILTIN_MODELS:
        builtin = BUILTIN_MODELS[spec]
        return CONFIG_MAPPING[builtin.model_type](**builtin.config, tie_word_embeddings=False), builtin.title
    path = Path(spec)
    if path.exists():
        return _read_config(path), str(path)
    raise ValueError(f"unknown model {str(spec)!r}: choose one of {_valid_models()}")


@functools.cache
def _count_builtin(name: str, partition: PartitionOptions) -> ModelCount:
    config, title = load_config(name)
    return _count_config(config, title, partition)


def _build_on_meta(config: PretrainedConfig) -> nn.Module:
    """The model a config describes, with its LM head: the class its `architectures` name, else the
    first Auto class that takes the config (causal LM, seq2seq, image-text-to-text, masked LM)."""
    import transformers

    named = [getattr(transformers, a, None) for a in getattr(config, "architectures", None) or ()]
    if named and named[0] is not None:
        return named[0](config)
    for auto in (
        "AutoModelForCausalLM",
        "AutoModelForSeq2SeqLM",
        "AutoModelForImageTextToText",
        "AutoModelForMaskedLM",
    ):
        try:
            return getattr(transformers, auto).from_config(config)
        except ValueError:
            continue
    raise ValueError(f"no language-model class of transformers takes a {config.model_type!r} config")


def _count_config(config: PretrainedConfig, name: str, partition: PartitionOptions) -> ModelCount:
    with torch.device("meta"):
        try:
            model = _build_on_meta(config)
        except ValueError as exc:
            raise ValueError(
                f"{name}: cannot build a model from this {config.model_type!r} config ({_one_line(exc)}); "
                "build the model yourself (the meta device needs no memory) and pass the module"
            ) from exc
    return count_module(model, name, partition)


def count_parameters(
    model_or_config: str | os.PathLike | PretrainedConfig | nn.Module | ModelCount,
    partition: PartitionOptions | None = None,
) -> ModelCount:
    """Count a built-in model, a config path, a transformers config or a module, without weights."""
    partition = partition or PartitionOptions()
    if isinstance(model_or_config, ModelCount):
        return model_or_config
    if isinstance(model_or_config, nn.Module):
        return count_module(model_or_config, partition=partition)
    if isinstance(model_or_config, str) and model_or_config in BUILTIN_MODELS:
        return _count_builtin(model_or_config, partition)
    return _count_config(*load_config(model_or_config), partition)
