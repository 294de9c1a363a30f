"""BAdam's default partition on every model family: encoder-decoders, vision-language models,
mixtures of experts, GPT-2 and RoBERTa, built from tiny configs.

For each: every block trains exactly its K steps, in depth order, and a step changes exactly the
active block's parameters that got a gradient; what no block holds (a vision tower by default)
never changes; backward truncation under activation checkpointing gives the gradients of a plain
backward.
"""

from __future__ import annotations

import copy

import pytest
import torch
from model_families import FAMILIES, build, loss, make_batch

from badam import BlockOptimizer, truncate_backward
from badam.partition import assign_blocks

K = 2
OPTIONS = {
    **{family: {} for family in FAMILIES},
    "llava+tower": {"include_vision_tower": True},
    "qwen3-moe+split": {"split_moe": True},
    "mixtral+split": {"split_moe": True},
    "deepseek-v3+split": {"split_moe": True},
}


def _block_optimizer(model, **kwargs) -> BlockOptimizer:
    base = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    return BlockOptimizer(base, list(model.named_parameters()), switch_mode="ascending", verbose=0, **kwargs)


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_every_block_trains_its_k_steps_and_nothing_else_moves(case):
    family = case.split("+")[0]
    model = build(family)
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = _block_optimizer(model, switch_block_every=K, **OPTIONS[case])
    names = list(initial)
    members = assign_blocks(names, optimizer.block_prefixes)
    params = dict(model.named_parameters())
    for step in range(optimizer.num_blocks * K):
        block = optimizer.active_block
        assert block == step // K, f"step {step}: block {block} active, expected {step // K}"
        before = {n: p.detach().clone() for n, p in params.items()}
        loss(model, make_batch(family, step)).backward()
        got_gradient = {n for n in members[block] if params[n].grad is not None and params[n].grad.any()}
        assert got_gradient, f"block {block} ({optimizer.block_prefixes[block]}) got no gradient"
        assert all(params[n].grad is None for n in names if n not in members[block]), "an inactive block has a gradient"
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        changed = {n for n in names if not torch.equal(params[n], before[n])}
        assert changed == got_gradient, f"step {step}: changed {sorted(changed ^ got_gradient)[:4]} unexpectedly"
    assert optimizer.schedule.block_epoch == 1 and optimizer.active_block == 0
    in_blocks = {n for block in members for n in block}
    frozen = [n for n in names if n not in in_blocks]
    assert all(torch.equal(params[n], initial[n]) for n in frozen)
    if family in ("llava", "qwen2-vl", "gemma3") and not OPTIONS[case]:
        assert any(".vision_tower." in n or ".visual." in n for n in frozen), "the tower is frozen by default"


# (family, options, block to activate): an encoder block under a frozen decoder, a decoder block,
# a vision-tower block below the language model, an expert tensor of a split MoE layer.
TRUNCATION_CASES = {
    "t5-encoder": ("t5", {}, 1),
    "t5-decoder": ("t5", {}, 2),
    "bart-encoder": ("bart", {}, 0),
    "llava-tower": ("llava", {"include_vision_tower": True}, 2),
    "qwen3-moe-experts": ("qwen3-moe", {"split_moe": True}, 4),
    "roberta": ("roberta", {}, 1),
}


@pytest.mark.parametrize("reentrant", [True, False], ids=["reentrant", "non-reentrant"])
@pytest.mark.parametrize("case", sorted(TRUNCATION_CASES))
def test_truncated_backward_under_checkpointing_gives_the_plain_gradients(case, reentrant):
    family, options, block = TRUNCATION_CASES[case]
    plain = build(family)
    checkpointed = copy.deepcopy(plain)
    optimizers = [_block_optimizer(m, start_block=block, **options) for m in (plain, checkpointed)]
    checkpointed.train()
    checkpointed.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": reentrant})
    truncate_backward(checkpointed)
    batch = make_batch(family, 0)
    plain.train()
    for model in (plain, checkpointed):
        loss(model, batch).backward()
    active = optimizers[0].block_prefixes[block]
    grads = {}
    for model in (plain, checkpointed):
        grads[model] = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert grads[plain], f"{case}: the active block {active} got no gradient"
    assert grads[plain].keys() == grads[checkpointed].keys()
    for name, grad in grads[plain].items():
        torch.testing.assert_close(grads[checkpointed][name], grad, rtol=1e-5, atol=1e-6, msg=name)


def test_frozen_decoder_layers_above_a_training_encoder_layer_stay_checkpointed():
    # They pass the encoder's gradient back through the cross-attention: run plainly, they would
    # keep every activation for backward; checkpointed, they recompute in backward instead.
    model = build("t5")
    _block_optimizer(model, start_block=0)
    model.train()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    truncate_backward(model)
    calls = {"encoder": 0, "decoder": 0}
    for stack in calls:
        for layer in getattr(model, stack).block:
            # A sub-module's hook: the layer's own hooks sit outside its checkpoint and never see a recompute.
            layer.layer[0].register_forward_hook(lambda *_, stack=stack: calls.__setitem__(stack, calls[stack] + 1))
    out = loss(model, make_batch("t5", 0))
    forward = dict(calls)
    out.backward()
    assert forward == {"encoder": 2, "decoder": 2}
    assert calls == {"encoder": 4, "decoder": 4}, "every layer from the active one (encoder 0) up recomputes"
