"""badam.tensor_step: the chunked step equals torch's AdamW/Adam and AdamMini's, state included."""

import pytest
import torch

from badam.adam_mini import AdamMini
from badam.tensor_step import MIN_SLICE, chunked_step_supported, slice_numel, step_tensor

SHAPE = (700, 600)  # 420k elements: slices of MIN_SLICE alone, of 8204 in a block 5 times its size


def _grads(steps: int, shape=SHAPE, dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=generator).to(dtype) for _ in range(steps)]


def test_slices_are_sized_by_what_is_stepped_and_not_too_small():
    numel = SHAPE[0] * SHAPE[1]
    assert slice_numel(numel) == MIN_SLICE, "a tensor stepped alone: 1/256 of it is under the minimum"
    assert slice_numel(5 * numel) == 8204 and slice_numel(100) == MIN_SLICE


@pytest.mark.parametrize(
    "make",
    [
        lambda p: torch.optim.AdamW([p], lr=1e-2, weight_decay=0.1, foreach=False),
        lambda p: torch.optim.Adam([p], lr=1e-2, weight_decay=0.1, foreach=False),  # L2, not decoupled
        lambda p: torch.optim.AdamW([p], lr=3e-3, betas=(0.8, 0.95), eps=1e-6, foreach=True),
        lambda p: torch.optim.AdamW([p], lr=1e-2, weight_decay=0.1, fused=True),  # the Trainer's default
    ],
    ids=["adamw", "adam-l2", "adamw-foreach", "adamw-fused"],
)
@pytest.mark.parametrize("size", [None, 8204, 10**7], ids=["alone", "in-a-block", "one-slice"])
def test_fp32_equals_torch_and_continues_its_state(make, size):
    torch.manual_seed(0)
    reference = torch.nn.Parameter(torch.randn(SHAPE))
    ours = torch.nn.Parameter(reference.detach().clone())
    reference_opt, our_opt = make(reference), make(ours)
    for index, grad in enumerate(_grads(6)):
        reference.grad = grad.clone()
        reference_opt.step()
        if index < 2:  # torch's own step first: the chunked one continues from its state
            ours.grad = grad.clone()
            our_opt.step()
            ours.grad = None
        else:
            with torch.no_grad():
                step_tensor(our_opt, our_opt.param_groups[0], ours, grad, size=size)
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)
    for key in ("exp_avg", "exp_avg_sq", "step"):
        torch.testing.assert_close(our_opt.state[ours][key], reference_opt.state[reference][key], rtol=0, atol=1e-6)


def test_bf16_weight_through_its_master_equals_the_upcast_step():
    torch.manual_seed(0)
    weight = torch.randn(SHAPE).bfloat16()
    master_ref, master = weight.float(), weight.float()
    param = weight.clone()
    reference_opt = torch.optim.AdamW([master_ref], lr=1e-2, weight_decay=0.1, foreach=False)
    our_opt = torch.optim.AdamW([master], lr=1e-2, weight_decay=0.1, foreach=False)
    for grad in _grads(4, dtype=torch.bfloat16):
        master_ref.grad = grad.float()
        reference_opt.step()
        step_tensor(our_opt, our_opt.param_groups[0], master, grad, param)
    assert torch.equal(master, master_ref)
    assert torch.equal(param, master_ref.bfloat16())


@pytest.mark.parametrize("name", ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.up_proj.weight"])
@pytest.mark.parametrize("size", [None, 8204, 10**7], ids=["alone", "in-a-block", "one-slice"])
def test_adam_mini_equals_its_own_step(name, size):
    torch.manual_seed(0)
    reference = torch.nn.Parameter(torch.randn(SHAPE))
    ours = torch.nn.Parameter(reference.detach().clone())
    kwargs = dict(lr=1e-2, weight_decay=0.1, n_heads=7)
    reference_opt, our_opt = AdamMini([(name, reference)], **kwargs), AdamMini([(name, ours)], **kwargs)
    for grad in _grads(4):
        reference.grad = grad.clone()
        reference_opt.step()
        with torch.no_grad():
            step_tensor(our_opt, our_opt.param_groups[0], ours, grad, size=size)
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)
    torch.testing.assert_close(our_opt.state[ours]["v"], reference_opt.state[reference]["v"], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "make, supported",
    [
        (lambda p: torch.optim.AdamW([p]), True),
        (lambda p: torch.optim.AdamW([p], amsgrad=True), False),
        (lambda p: torch.optim.AdamW([p], maximize=True), False),
        (lambda p: torch.optim.AdamW([p], fused=True), True),
        (lambda p: torch.optim.AdamW([p], lr=torch.tensor(1e-3)), False),
        (lambda p: torch.optim.SGD([p], lr=0.1), False),
        (lambda p: AdamMini([("w", p)]), True),
    ],
    ids=["adamw", "amsgrad", "maximize", "fused", "tensor-lr", "sgd", "adam-mini"],
)
def test_what_is_supported(make, supported):
    optimizer = make(torch.nn.Parameter(torch.zeros(4, 4)))
    assert chunked_step_supported(optimizer, optimizer.param_groups[0]) is supported


@pytest.mark.parametrize("inner", ["adamw", "adam_mini"])
def test_with_norm_returns_the_squared_norm_of_the_gradient(inner):
    master = torch.nn.Parameter(torch.zeros(SHAPE))
    optimizer = torch.optim.AdamW([master]) if inner == "adamw" else AdamMini([("w", master)])
    grad = _grads(1, dtype=torch.bfloat16)[0]
    with torch.no_grad():
        square = step_tensor(optimizer, optimizer.param_groups[0], master, grad, with_norm=True)
        torch.testing.assert_close(square, grad.float().square().sum(), rtol=1e-5, atol=0)
        assert step_tensor(optimizer, optimizer.param_groups[0], master, grad) is None
