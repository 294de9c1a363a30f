"""badam.in_backward: the active block steps inside backward, with the same result as step()."""

import copy

import pytest
import torch
from badam_tiny import assert_accumulation_equals_one_batch, batch, lm_loss, tiny_llama, train

from badam import AdamMini, BlockOptimizer


def block_optimizer(model, in_backward: bool, base=None, **kwargs):
    base = base or torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1, foreach=False)
    kwargs = {"switch_block_every": 2, "switch_mode": "random", "verbose": 0, **kwargs}
    return BlockOptimizer(base, list(model.named_parameters()), update_in_backward=in_backward, **kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("inner", ["adamw", "adam_mini"])
def test_in_backward_equals_the_step_across_switches(dtype, inner):
    models = [tiny_llama(layers=3, dtype=dtype) for _ in range(2)]
    bases = [
        AdamMini.from_model(m, lr=1e-2, weight_decay=0.1)
        if inner == "adam_mini"
        else torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1, foreach=False)
        for m in models
    ]
    optimizers = [block_optimizer(m, flag, base) for m, flag, base in zip(models, (False, True), bases)]
    for model, optimizer in zip(models, optimizers):
        train(model, optimizer, 7)  # three switches
    assert optimizers[1].global_step == 7 and optimizers[1].active_block == optimizers[0].active_block
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        assert torch.equal(a, b), name


def test_backward_moves_the_block_and_leaves_no_gradient():
    model = tiny_llama(layers=2, dtype=torch.bfloat16)
    optimizer = block_optimizer(model, True, switch_mode="ascending")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lm_loss(model, batch(0)).backward()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved == {optimizer.name_of[p] for p in optimizer.trainable_params}
    assert all(p.grad is None for p in model.parameters())
    assert all(m.grad is None for m in optimizer.masters.master_of.values())
    optimizer.step()
    assert optimizer.global_step == 1
    assert optimizer.holder.in_backward.last_grad_norm > 0


def test_accumulation_steps_on_the_last_micro_batch_and_ends_short_windows_in_step():
    # One optimizer steps two half-loss micro-batches in backward, the other one backward whose window
    # (of 2) ends short: step() finishes it. Both must equal each other, and the plain step (fp32).
    assert_accumulation_equals_one_batch(lambda m: block_optimizer(m, True, gradient_accumulation_steps=2))


def test_accumulated_bf16_gradients_stay_in_fp32_until_the_step():
    model = tiny_llama(layers=2, dtype=torch.bfloat16)
    optimizer = block_optimizer(model, True, gradient_accumulation_steps=2)
    lm_loss(model, batch(0)).backward()
    masters = optimizer.masters.master_of
    assert masters and all(m.grad is not None and m.grad.dtype == torch.float32 for m in masters.values())
    assert all(p.grad is None for p in masters)
    lm_loss(model, batch(1)).backward()
    assert all(m.grad is None for m in masters.values()), "the second micro-batch steps and frees"
    optimizer.step()
    lm_loss(model, batch(2)).backward()
    optimizer.zero_grad()  # drops the half-gathered step: the next window starts empty
    assert all(m.grad is None for m in masters.values()) and not any(optimizer.holder.in_backward.arrived.values())


def test_resume_in_the_middle_of_a_block_equals_the_straight_run():
    straight = tiny_llama(layers=3, dtype=torch.bfloat16)
    optimizer = block_optimizer(straight, True)
    train(straight, optimizer, 7)
    first = tiny_llama(layers=3, dtype=torch.bfloat16)
    optimizer = block_optimizer(first, True)
    train(first, optimizer, 3)
    saved = copy.deepcopy((first.state_dict(), optimizer.state_dict()))
    resumed = tiny_llama(layers=3, dtype=torch.bfloat16, seed=5)
    resumed.load_state_dict(saved[0])
    optimizer = block_optimizer(resumed, True)
    optimizer.load_state_dict(saved[1])
    train(resumed, optimizer, 4, seed0=3)
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), name


def test_what_cannot_step_in_backward_is_refused(monkeypatch):
    model = tiny_llama()
    with pytest.raises(ValueError, match="SGD with param group 0"):
        block_optimizer(model, True, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="amsgrad"):
        block_optimizer(model, True, torch.optim.AdamW(model.parameters(), amsgrad=True))
    with pytest.raises(ValueError, match="gradient_accumulation_steps must be a positive integer"):
        block_optimizer(model, True, gradient_accumulation_steps=0)
    with pytest.raises(ValueError, match="ZeRO-3"):
        block_optimizer(model, True, ds_zero3_enabled=True)
    optimizer = block_optimizer(model, True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    with pytest.raises(RuntimeError, match="one process only"):
        lm_loss(model, batch(0)).backward()
    assert optimizer.update_in_backward
