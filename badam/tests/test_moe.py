"""Mixture-of-experts layers split into attention + router, then expert blocks (badam.moe)."""

import pytest
from model_families import build

from badam.memory import PartitionOptions, count_parameters
from badam.moe import split_layer
from badam.partition import infer_block_prefixes


def names_of(family):
    return [n for n, _ in build(family).named_parameters()]


def test_fused_experts_become_one_block_per_fused_tensor():
    assert split_layer("model.layers.0.", names_of("mixtral")) == [
        [
            "model.layers.0.self_attn.",
            "model.layers.0.mlp.gate.",
            "model.layers.0.input_layernorm.",
            "model.layers.0.post_attention_layernorm.",
        ],
        ["model.layers.0.mlp.experts.gate_up_proj"],
        ["model.layers.0.mlp.experts.down_proj"],
    ]


def test_shared_experts_train_with_the_attention_and_dense_layers_stay_whole():
    blocks = infer_block_prefixes(names_of("deepseek-v3"), split_moe=True)
    assert blocks[0] == ["model.layers.0."], "first_k_dense_replace: layer 0 is dense"
    assert "model.layers.1.mlp.shared_experts." in blocks[1]
    assert blocks[2:4] == [["model.layers.1.mlp.experts.gate_up_proj"], ["model.layers.1.mlp.experts.down_proj"]]
    assert len(blocks) == 1 + 2 * 3


def test_experts_kept_as_modules_are_grouped():
    names = [f"model.layers.0.mlp.experts.{e}.{w}.weight" for e in range(5) for w in ("w1", "w2")]
    names += ["model.layers.0.self_attn.q.weight", "model.layers.0.mlp.gate.weight"]
    assert split_layer("model.layers.0.", names, experts_per_block=2) == [
        ["model.layers.0.self_attn.", "model.layers.0.mlp.gate."],
        ["model.layers.0.mlp.experts.0.", "model.layers.0.mlp.experts.1."],
        ["model.layers.0.mlp.experts.2.", "model.layers.0.mlp.experts.3."],
        ["model.layers.0.mlp.experts.4."],
    ]
    assert split_layer("model.layers.0.", names)[1] == ["model.layers.0.mlp.experts."]


def test_a_fused_name_that_begins_another_keeps_the_experts_whole():
    # GPT-OSS: gate_up_proj and gate_up_proj_bias; the first as a prefix would take in the second.
    names = [f"model.layers.0.mlp.experts.{t}" for t in ("gate_up_proj", "gate_up_proj_bias", "down_proj")]
    names.append("model.layers.0.attn.q.weight")
    assert split_layer("model.layers.0.", names)[1:] == [["model.layers.0.mlp.experts."]]


def test_errors():
    with pytest.raises(ValueError, match="experts_per_block=2: 'model.layers.0.mlp.experts.' holds its experts fused"):
        split_layer("model.layers.0.", names_of("qwen3-moe"), experts_per_block=2)
    with pytest.raises(ValueError, match="split_moe=True but no layer holds mixture-of-experts"):
        infer_block_prefixes(names_of("gpt2"), split_moe=True)
    with pytest.raises(ValueError, match="experts_per_block applies with split_moe=True only"):
        infer_block_prefixes(names_of("mixtral"), experts_per_block=2)


def test_the_split_shrinks_the_largest_block_of_mixtral_8x7b():
    whole = count_parameters("mixtral-8x7b")
    split = count_parameters("mixtral-8x7b", PartitionOptions(split_moe=True))
    assert whole.total == split.total == 46_702_792_704
    assert (len(whole.layers), len(split.layers)) == (32, 96)
    largest = [max(b.numel for b in count.layers) for count in (whole, split)]
    attention = 2 * 4096 * 4096 + 2 * 4096 * 1024
    assert largest[0] == attention + 8 * 4096 + 8 * 3 * 4096 * 14336 + 2 * 4096, "attention, router, experts, norms"
    assert largest[1] == 8 * 2 * 14336 * 4096, "the largest block is the fused gate_up_proj"
