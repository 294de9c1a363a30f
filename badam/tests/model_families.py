"""Tiny Hugging Face models of the families BAdam's default partition covers, and a batch for each.

Every model is built from a config (hidden size 64 or less, two layers per stack) with fixed seeds
and no dropout (a checkpointed and a plain run must see the same function), so the tests run on CPU
in seconds and need no download.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import transformers as T

VOCAB = 128


def _llama_text(**extra):
    return dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        **extra,
    )


def t5():
    return T.T5ForConditionalGeneration(
        T.T5Config(
            vocab_size=VOCAB,
            d_model=64,
            d_kv=16,
            d_ff=128,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=4,
            decoder_start_token_id=0,
            dropout_rate=0.0,
            pad_token_id=0,
        )
    )


def bart():
    return T.BartForConditionalGeneration(
        T.BartConfig(
            vocab_size=VOCAB,
            d_model=64,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=128,
            decoder_ffn_dim=128,
            max_position_embeddings=64,
            dropout=0.0,
        )
    )


# Llava's CLIP tower: 32x32 images in 8x8 patches give 16 image tokens (the class token is dropped).
LLAVA_IMAGE_TOKEN = VOCAB - 1
LLAVA_IMAGE_TOKENS = 16


def llava():
    vision = T.CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8
    )
    # vision_feature_layer=-1: the tower's last layer feeds the projector, so every tower layer trains.
    config = T.LlavaConfig(
        vision_config=vision,
        text_config=T.LlamaConfig(**_llama_text()),
        image_token_index=LLAVA_IMAGE_TOKEN,
        vision_feature_layer=-1,
    )
    return T.LlavaForConditionalGeneration(config)


def qwen2_vl():
    text = _llama_text(rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3]})
    vision = dict(depth=2, embed_dim=32, hidden_size=64, num_heads=4, mlp_ratio=2, patch_size=4, spatial_merge_size=2)
    return T.Qwen2VLForConditionalGeneration(T.Qwen2VLConfig(text_config=text, vision_config=vision))


def gemma3():
    text = _llama_text(head_dim=16)
    vision = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8
    )
    return T.Gemma3ForConditionalGeneration(
        T.Gemma3Config(
            text_config=text,
            vision_config=vision,
            mm_tokens_per_image=4,
            image_token_index=VOCAB - 1,
            boi_token_index=VOCAB - 3,
            eoi_token_index=VOCAB - 2,
        )
    )


def qwen3_moe():
    return T.Qwen3MoeForCausalLM(
        T.Qwen3MoeConfig(**_llama_text(moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2, head_dim=16))
    )


def mixtral():
    return T.MixtralForCausalLM(T.MixtralConfig(**_llama_text(num_local_experts=4, num_experts_per_tok=2)))


def deepseek_v3():
    config = _llama_text(
        moe_intermediate_size=32,
        first_k_dense_replace=1,
        n_routed_experts=4,
        num_experts_per_tok=2,
        n_shared_experts=1,
        q_lora_rank=16,
        kv_lora_rank=16,
        qk_rope_head_dim=8,
        qk_nope_head_dim=8,
        v_head_dim=16,
        n_group=1,
        topk_group=1,
    )
    config.update(num_hidden_layers=3, num_key_value_heads=4)
    return T.DeepseekV3ForCausalLM(T.DeepseekV3Config(**config))


def gpt2():
    return T.GPT2LMHeadModel(
        T.GPT2Config(
            vocab_size=VOCAB,
            n_embd=64,
            n_layer=2,
            n_head=4,
            n_positions=64,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    )


def roberta():
    return T.RobertaForMaskedLM(
        T.RobertaConfig(
            vocab_size=VOCAB,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            max_position_embeddings=80,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
    )


FAMILIES: dict[str, Callable[[], torch.nn.Module]] = {
    "t5": t5,
    "bart": bart,
    "llava": llava,
    "qwen2-vl": qwen2_vl,
    "gemma3": gemma3,
    "qwen3-moe": qwen3_moe,
    "mixtral": mixtral,
    "deepseek-v3": deepseek_v3,
    "gpt2": gpt2,
    "roberta": roberta,
}
SEQ2SEQ = {"t5", "bart"}


def build(family: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return FAMILIES[family]()


def make_batch(family: str, seed: int, size: int = 2, length: int = 24) -> dict[str, torch.Tensor]:
    """A training batch (inputs and labels) for `family`; Llava's carries an image, the other
    vision-language models' are text only."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB - 3, (size, length), generator=generator)
    if family in SEQ2SEQ:
        return {"input_ids": ids, "labels": torch.randint(3, VOCAB - 1, (size, length // 2), generator=generator)}
    if family == "llava":
        ids[:, 1 : 1 + LLAVA_IMAGE_TOKENS] = LLAVA_IMAGE_TOKEN
        pixels = torch.randn(size, 3, 32, 32, generator=generator)
        return {"input_ids": ids, "pixel_values": pixels, "labels": ids}
    return {"input_ids": ids, "labels": ids}


def loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**batch).loss
