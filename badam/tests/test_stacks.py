"""Layer stacks found from parameter names, their roles, and the error for stacks that cannot be told apart."""

import pytest
from model_families import build

from badam.partition import assign_blocks, infer_block_prefixes
from badam.stacks import find_stacks, model_stacks


def names_of(family):
    return [n for n, _ in build(family).named_parameters()]


def test_t5_layers_are_its_blocks_not_their_sub_layers():
    stacks = find_stacks(names_of("t5"))
    assert [(s.path, s.layers) for s in stacks] == [
        ("encoder.block", ["encoder.block.0.", "encoder.block.1."]),
        ("decoder.block", ["decoder.block.0.", "decoder.block.1."]),
    ]


def test_a_sequential_of_bare_linears_is_no_stack():
    names = ["model.visual.merger.mlp.0.weight", "model.visual.merger.mlp.2.weight", "model.layers.0.mlp.w.weight"]
    assert [s.path for s in find_stacks(names)] == ["model.layers"]


def test_a_known_stack_name_counts_even_with_parameters_directly_on_its_layers():
    assert [s.path for s in find_stacks(["model.layers.0.scale", "model.layers.1.scale"])] == ["model.layers"]


@pytest.mark.parametrize(
    "family, language, towers",
    [
        ("t5", ["encoder.block", "decoder.block"], []),
        ("bart", ["model.encoder.layers", "model.decoder.layers"], []),
        ("llava", ["model.language_model.layers"], ["model.vision_tower.encoder.layers"]),
        ("qwen2-vl", ["model.language_model.layers"], ["model.visual.blocks"]),
        ("gemma3", ["model.language_model.layers"], ["model.vision_tower.encoder.layers"]),
        ("roberta", ["roberta.encoder.layer"], []),
    ],
)
def test_roles(family, language, towers):
    stacks = model_stacks(names_of(family))
    assert [s.path for s in stacks.language] == language
    assert [s.path for s in stacks.towers] == towers


def test_encoder_before_decoder_whatever_the_registration_order():
    names = ["dec.decoder.layers.0.a.weight", "enc.encoder.layers.0.a.weight"]
    assert infer_block_prefixes(names) == [["enc.encoder.layers.0."], ["dec.decoder.layers.0."]]


def test_stacks_that_cannot_be_told_apart_list_themselves_and_a_partition_that_works():
    names = [f"{stack}.{i}.mlp.weight" for stack in ("left.layers", "right.layers") for i in range(3)]
    with pytest.raises(ValueError) as error:
        infer_block_prefixes(names)
    message = str(error.value)
    assert "2 layer stacks found ('left.layers' (3 layers), 'right.layers' (3 layers))" in message
    suggested = message.split("block_prefix_list=", 1)[1]
    blocks = eval(suggested)  # the message shows Python to paste
    assert blocks == [[f"left.layers.{i}."] for i in range(3)] + [[f"right.layers.{i}."] for i in range(3)]
    assert all(assign_blocks(names, blocks))


def test_vision_tower_blocks_in_depth_order_with_the_projector_on_top():
    names = names_of("llava")
    blocks = infer_block_prefixes(names, include_vision_tower=True)
    assert blocks == [
        ["model.vision_tower.embeddings.", "model.vision_tower.pre_layrnorm."],
        ["model.vision_tower.encoder.layers.0."],
        ["model.vision_tower.encoder.layers.1."],
        ["model.vision_tower.post_layernorm.", "model.multi_modal_projector."],
        ["model.language_model.layers.0."],
        ["model.language_model.layers.1."],
    ]
    members = assign_blocks(names, blocks)
    left_out = {n for n in names} - {n for block in members for n in block}
    assert left_out == {
        "model.language_model.embed_tokens.weight",
        "model.language_model.norm.weight",
        "lm_head.weight",
    }


def test_embedding_and_head_of_a_vision_language_model_are_the_language_model_s():
    blocks = infer_block_prefixes(names_of("qwen2-vl"), include_embedding=True, include_lm_head=True)
    assert blocks[0] == ["model.language_model.embed_tokens."]
    assert blocks[-1] == ["model.language_model.norm.", "lm_head."], "the tower's norms stay out of the head block"


def test_tower_option_errors():
    with pytest.raises(ValueError, match="include_vision_tower=True but the model has no vision or audio tower"):
        infer_block_prefixes(names_of("gpt2"), include_vision_tower=True)
