"""Block inference from parameter names for the common model families, and custom partitions."""

import pytest

from badam.partition import assign_blocks, infer_block_prefixes, normalize_prefix_list

LLAMA = [
    "model.embed_tokens.weight",
    *[f"model.layers.{i}.{m}.weight" for i in (0, 1, 2, 10, 11) for m in ("self_attn.q_proj", "mlp.up_proj", "input_layernorm")],
    "model.norm.weight",
    "lm_head.weight",
]


def test_llama_layers_in_numeric_order():
    blocks = infer_block_prefixes(LLAMA)
    assert blocks == [[f"model.layers.{i}."] for i in (0, 1, 2, 10, 11)]


def test_embedding_and_lm_head_as_extra_blocks():
    blocks = infer_block_prefixes(LLAMA, include_embedding=True, include_lm_head=True)
    assert blocks[0] == ["model.embed_tokens."] and blocks[-1] == ["lm_head."]
    assert len(blocks) == 7


@pytest.mark.parametrize(
    "names, expected",
    [
        (["transformer.wte.weight", "transformer.h.0.attn.c_attn.weight", "transformer.h.1.mlp.c_fc.bias"],
         [["transformer.h.0."], ["transformer.h.1."]]),
        (["gpt_neox.embed_in.weight", "gpt_neox.layers.0.attention.dense.weight", "gpt_neox.layers.1.mlp.dense_h_to_4h.weight", "embed_out.weight"],
         [["gpt_neox.layers.0."], ["gpt_neox.layers.1."]]),
        (["roberta.embeddings.word_embeddings.weight", "roberta.encoder.layer.0.attention.self.query.weight",
          "roberta.encoder.layer.1.output.dense.bias", "classifier.dense.weight"],
         [["roberta.encoder.layer.0."], ["roberta.encoder.layer.1."]]),
        (["base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight",
          "base_model.model.model.layers.1.self_attn.q_proj.base_layer.weight"],
         [["base_model.model.model.layers.0."], ["base_model.model.model.layers.1."]]),
    ],
    ids=["gpt2", "gpt-neox", "roberta", "peft-llama"],
)
def test_families(names, expected):
    assert infer_block_prefixes(names) == expected


def test_gpt2_and_neox_heads():
    neox = ["gpt_neox.embed_in.weight", "gpt_neox.layers.0.x.weight", "embed_out.weight"]
    assert infer_block_prefixes(neox, include_embedding=True, include_lm_head=True) == [
        ["gpt_neox.embed_in."], ["gpt_neox.layers.0."], ["embed_out."]]
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
    with pytest.raises(ValueError, match="'model.layer.0.' .*matches no parameter"):
        assign_blocks(LLAMA, [["model.layer.0."]])
    with pytest.raises(ValueError, match="blocks 0 and 1"):
        assign_blocks(LLAMA, [["model.layers.1"], ["model.layers.10."]])
