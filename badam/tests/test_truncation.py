"""Backward truncation: backward stops at the active block and its gradients stay exact."""

import pytest
import torch
from badam_tiny import batch, lm_loss, tiny_llama

from badam import BlockOptimizer, truncate_backward

LAYERS, ACTIVE = 4, 2


def count_layer_forwards(model):
    # Checkpointing re-runs a layer's forward directly (not its hooks), so count on a submodule.
    calls = [0] * LAYERS
    for index, layer in enumerate(model.model.layers):
        layer.mlp.register_forward_pre_hook(
            lambda module, args, index=index: calls.__setitem__(index, calls[index] + 1)
        )
    return calls


def block_optimizer(model):
    return BlockOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.0),
        list(model.named_parameters()),
        switch_block_every=10,
        switch_mode="fixed",
        start_block=ACTIVE,
        verbose=0,
    )


def active_grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("reentrant", [False, True], ids=["non-reentrant", "reentrant"])
def test_checkpointed_backward_skips_layers_below_active_block(reentrant):
    model = tiny_llama(layers=LAYERS)
    model.train()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": reentrant})
    optimizer = block_optimizer(model)

    calls = count_layer_forwards(model)
    lm_loss(model, batch(0)).backward()
    # Without truncation every layer is recomputed in backward (2 forwards each).
    assert calls == [2] * LAYERS
    full = active_grads(model)
    assert set(full) == {n for n, p in model.named_parameters() if f"layers.{ACTIVE}." in n}
    optimizer.zero_grad()

    truncate_backward(model)
    calls[:] = [0] * LAYERS
    lm_loss(model, batch(0)).backward()
    assert calls == [1] * ACTIVE + [2] * (LAYERS - ACTIVE), "layers below the active block ran in backward"
    truncated = active_grads(model)
    assert truncated.keys() == full.keys()
    for name, grad in full.items():
        torch.testing.assert_close(truncated[name], grad, rtol=0, atol=1e-6, msg=name)


def test_without_checkpointing_lower_layers_build_no_graph():
    model = tiny_llama(layers=LAYERS)
    model.enable_input_require_grads()  # what PEFT does; forces backward down to the embedding
    optimizer = block_optimizer(model)
    requires = {}
    for index, layer in enumerate(model.model.layers):
        layer.register_forward_hook(
            lambda m, a, out, index=index: requires.__setitem__(
                index, out[0].requires_grad if isinstance(out, tuple) else out.requires_grad
            )
        )
    lm_loss(model, batch(0)).backward()
    full = active_grads(model)
    assert all(requires.values())
    optimizer.zero_grad()

    truncate_backward(model)
    lm_loss(model, batch(0)).backward()
    assert [requires[i] for i in range(LAYERS)] == [False] * ACTIVE + [True] * (LAYERS - ACTIVE)
    for name, grad in active_grads(model).items():
        torch.testing.assert_close(grad, full[name], rtol=0, atol=1e-6, msg=name)


def test_reentrant_follows_the_active_block_across_switches_and_is_idempotent():
    model = tiny_llama(layers=LAYERS)
    model.train()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": True})
    optimizer = BlockOptimizer(
        torch.optim.AdamW(model.parameters(), lr=1e-3),
        list(model.named_parameters()),
        switch_block_every=1,
        switch_mode="ascending",
        verbose=0,
    )
    truncate_backward(model)
    truncate_backward(model)
    for step in range(LAYERS):
        lm_loss(model, batch(step)).backward()
        with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
        assert with_grad and all(f"layers.{step}." in n for n in with_grad), f"step {step}: {sorted(with_grad)[:2]}"
        optimizer.step()
        optimizer.zero_grad()
