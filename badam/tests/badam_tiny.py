"""Tiny models shared by the badam tests: Llamas with hidden size 64 built from configs, and batches."""

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def tiny_llama_config(layers: int = 2, vocab: int = 128) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
    )


def layer_heavy_config() -> LlamaConfig:
    """A Llama whose decoder layers dominate, with Llama's MLP ratio (for bytes per active parameter)."""
    return LlamaConfig(
        vocab_size=256,
        hidden_size=128,
        intermediate_size=344,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
    )


def tiny_llama(layers: int = 2, dtype: torch.dtype = torch.float32, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_llama_config(layers)).to(dtype)


def batch(seed: int = 0, size: int = 4, length: int = 16, vocab: int = 128) -> torch.Tensor:
    return torch.randint(0, vocab, (size, length), generator=torch.Generator().manual_seed(seed))


def lm_loss(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=input_ids, labels=input_ids).loss


def train(model, optimizer, steps: int, seed0: int = 0, scheduler=None) -> None:
    """`steps` optimizer steps on the language-modelling batches seed0, seed0 + 1, ..."""
    for step in range(steps):
        lm_loss(model, batch(seed0 + step)).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)


def assert_accumulation_equals_one_batch(make_optimizer, steps: int = 4) -> None:
    """Two half-loss micro-batches per step must train exactly like their sum in one backward (fp32)."""
    import copy

    model = tiny_llama()
    twin = copy.deepcopy(model)
    optimizers = [make_optimizer(m) for m in (model, twin)]
    inputs = batch(0, size=8)
    for _ in range(steps):
        for micro in inputs.chunk(2):
            (lm_loss(model, micro) / 2).backward()
        optimizers[0].step()
        optimizers[0].zero_grad()
        (lm_loss(twin, inputs[:4]) / 2 + lm_loss(twin, inputs[4:]) / 2).backward()
        optimizers[1].step()
        optimizers[1].zero_grad()
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
