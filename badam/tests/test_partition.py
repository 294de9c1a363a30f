"""Block inference from parameter names for the common model families, and custom partitions."""

import warnings

import pytest
import torch

from badam.partition import assign_blocks, close_names, infer_block_prefixes, named_pairs, normalize_prefix_list

LLAMA = [
    "model.embed_tokens.weight",
    *[
        f"model.layers.{i}.{m}.weight"
        for i in (0, 1, 2, 10, 11)
        for m in ("self_attn.q_proj", "mlp.up_proj", "input_layernorm")
    ],
    "model.norm.weight",
    "lm_head.weight",
]


def test_llama_layers_in_numeric_order():
    blocks = infer_block_prefixes(LLAMA)
    assert blocks == [[f"model.layers.{i}."] for i in (0, 1, 2, 10, 11)]


def test_embedding_and_lm_head_as_extra_blocks():
    blocks = infer_block_prefixes(LLAMA, include_embedding=True, include_lm_head=True)
    # The final norm trains with the head, as in the published package.
    assert blocks[0] == ["model.embed_tokens."] and blocks[-1] == ["model.norm.", "lm_head."]
    assert len(blocks) == 7
    assert infer_block_prefixes(LLAMA, include_lm_head=True)[-1] == ["model.norm.", "lm_head."]


@pytest.mark.parametrize(
    "names, expected",
    [
        (
            ["transformer.wte.weight", "transformer.h.0.attn.c_attn.weight", "transformer.h.1.mlp.c_fc.bias"],
            [["transformer.h.0."], ["transformer.h.1."]],
        ),
        (
            [
                "gpt_neox.embed_in.weight",
                "gpt_neox.layers.0.attention.dense.weight",
                "gpt_neox.layers.1.mlp.dense_h_to_4h.weight",
                "embed_out.weight",
            ],
            [["gpt_neox.layers.0."], ["gpt_neox.layers.1."]],
        ),
        (
            [
                "roberta.embeddings.word_embeddings.weight",
                "roberta.encoder.layer.0.attention.self.query.weight",
                "roberta.encoder.layer.1.output.dense.bias",
                "classifier.dense.weight",
            ],
            [["roberta.encoder.layer.0."], ["roberta.encoder.layer.1."]],
        ),
        (
            [
                "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight",
                "base_model.model.model.layers.1.self_attn.q_proj.base_layer.weight",
            ],
            [["base_model.model.model.layers.0."], ["base_model.model.model.layers.1."]],
        ),
    ],
    ids=["gpt2", "gpt-neox", "roberta", "peft-llama"],
)
def test_families(names, expected):
    assert infer_block_prefixes(names) == expected


def test_gpt2_and_neox_heads():
    neox = ["gpt_neox.embed_in.weight", "gpt_neox.layers.0.x.weight", "embed_out.weight"]
    assert infer_block_prefixes(neox, include_embedding=True, include_lm_head=True) == [
        ["gpt_neox.embed_in."],
        ["gpt_neox.layers.0."],
        ["embed_out."],
    ]
    gpt2 = ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.x.weight"]
    assert infer_block_prefixes(gpt2, include_embedding=True)[0] == ["transformer.wte.", "transformer.wpe."]


def test_no_layers_is_an_error():
    with pytest.raises(ValueError, match="block_prefix_list"):
        infer_block_prefixes(["encoder.weight", "decoder.bias"])


def test_tied_lm_head_is_explained():
    with pytest.raises(ValueError, match="tied"):
        infer_block_prefixes(["model.embed_tokens.weight", "model.layers.0.x.weight"], include_lm_head=True)


def test_custom_prefixes_and_typos():
    blocks = normalize_prefix_list(["model.layers.0.", ["model.layers.1.", "model.norm."]])
    members = assign_blocks(LLAMA, blocks)
    assert members[1][-1] == "model.norm.weight" and len(members[0]) == 3
    with pytest.raises(ValueError, match="'model.layer.0.' .*matches no parameter; close names: 'model.layers.0.'"):
        assign_blocks(LLAMA, [["model.layer.0."]])
    with pytest.raises(
        ValueError,
        match="blocks 0 and 1; 'model.layers.1' also matches 'model.layers.10.': "
        r"end it with a dot \('model.layers.1.'\)",
    ):
        assign_blocks(LLAMA, [["model.layers.1"], ["model.layers.10."]])


def test_a_prefix_without_its_dot_that_takes_in_other_layers_warns_once():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        members = assign_blocks(LLAMA, [["model.layers.1"], ["model.layers.2."]])
    assert len(caught) == 1
    assert str(caught[0].message) == (
        "block prefix 'model.layers.1' also matches 'model.layers.10.', 'model.layers.11.': "
        "end it with a dot ('model.layers.1.') to match that module alone"
    )
    assert len(members[0]) == 9, "the warning changes nothing: the prefix still matches as written"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # A prefix that names no module of its own ('model.embed' for 'model.embed_tokens.') is left alone.
        assign_blocks(LLAMA, [["model.layers.1."], ["model.embed"], ["lm_head.weight"]])


def test_block_prefix_list_must_be_a_list_of_blocks():
    with pytest.raises(
        TypeError,
        match=r"block_prefix_list must be a list of blocks.*\[\['model.layers.0.'\], "
        r"\['model.layers.1.'\]\]; got 'model.layers.0.'",
    ):
        normalize_prefix_list("model.layers.0.")
    with pytest.raises(TypeError, match="got the entry 3"):
        normalize_prefix_list([["model.layers.0."], 3])
    with pytest.raises(ValueError, match=r"entry \[\] must be a non-empty string"):
        normalize_prefix_list([[]])


def test_named_parameters_must_be_name_tensor_pairs():
    model = torch.nn.Linear(2, 2)
    assert [name for name, _ in named_pairs(model.named_parameters())] == ["weight", "bias"]
    with pytest.raises(
        TypeError,
        match=r"\(name, parameter\) pairs.*a bare tensor: model.parameters\(\) instead of "
        r"model.named_parameters\(\)\?",
    ):
        named_pairs(list(model.parameters()))
    with pytest.raises(TypeError, match=r"got a dict: pass list\(its .items\(\)\)"):
        named_pairs(dict(model.named_parameters()))
    with pytest.raises(TypeError, match="got a Linear"):
        named_pairs(model)
    with pytest.raises(ValueError, match="names 'weight' twice"):
        named_pairs([*model.named_parameters(), ("weight", model.weight)])


def test_close_names_look_through_prefixes_and_parts():
    assert close_names("lm_haed", LLAMA)[0] == "lm_head"
    assert "model.layers.10." in close_names("model.layer.10.", LLAMA)
    assert close_names("classifier", LLAMA) == []
