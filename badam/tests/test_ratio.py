"""BlockOptimizerRatio: the update rule, the active shares, memory, mixed precision, resume and errors."""

import copy
import gc
import io

import pytest
import torch
from badam_tiny import assert_accumulation_equals_one_batch, batch, lm_loss, tiny_llama, tiny_llama_config, train
from transformers import LlamaForCausalLM

from badam import BlockOptimizer
from badam.memory import held_bytes
from badam.ratio import BlockOptimizerRatio

# Every construction warns that the ratio mode does not clip; test_inputs.py checks that warning.
pytestmark = pytest.mark.filterwarnings("ignore:BlockOptimizerRatio takes the gradients")


def decay_groups(model, weight_decay=0.1, lr=1e-2):
    """Trainer-style groups: matrices decay, norms (1-d) do not and take a larger lr."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay, "lr": lr},
        {"params": no_decay, "weight_decay": 0.0, "lr": lr * 3},
    ]


def ratio_optimizer(model, **kwargs):
    kwargs.setdefault("lr", 1e-2)
    kwargs.setdefault("include_lm_head", True)
    return BlockOptimizerRatio(kwargs.pop("groups", model.parameters()), list(model.named_parameters()), **kwargs)


def test_ratio_one_follows_adamw_exactly_fp32():
    model = tiny_llama()
    reference = copy.deepcopy(model)
    # No switch within the run: a switch resets Adam's state, which AdamW never does.
    optimizer = ratio_optimizer(
        model, groups=decay_groups(model), update_ratio=1.0, include_embedding=True, switch_every=100, betas=(0.8, 0.99)
    )
    adamw = torch.optim.AdamW(decay_groups(reference), betas=(0.8, 0.99), foreach=False)
    train(model, optimizer, 4)
    train(reference, adamw, 4)
    for (name, ours), theirs in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6, msg=name)
    assert not torch.equal(model.lm_head.weight, tiny_llama().lm_head.weight), "nothing trained"


@pytest.mark.parametrize("mask_mode", ["adjacent", "scatter"])
def test_active_entries_follow_adamw_computed_by_hand(mask_mode):
    model = tiny_llama()
    twin = copy.deepcopy(model)
    beta1, beta2, eps = 0.9, 0.99, 1e-8
    optimizer = ratio_optimizer(
        model,
        groups=decay_groups(model, weight_decay=0.5),
        update_ratio=0.25,
        mask_mode=mask_mode,
        switch_every=10,
        betas=(beta1, beta2),
        eps=eps,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    index = {name: optimizer.active_indices(name) for name in optimizer.entry_of}
    group_of = {name: 0 if p.ndim >= 2 else 1 for name, p in model.named_parameters()}
    m = {name: torch.zeros(len(i)) for name, i in index.items()}
    v = {name: torch.zeros(len(i)) for name, i in index.items()}
    for t in range(1, 4):
        hyper = [(g["lr"], g["weight_decay"]) for g in optimizer.param_groups]
        train(model, optimizer, 1, seed0=t, scheduler=scheduler)
        lm_loss(twin, batch(t)).backward()
        with torch.no_grad():
            for name, param in twin.named_parameters():
                if name not in index:
                    continue
                lr, weight_decay = hyper[group_of[name]]
                grad, x = param.grad.view(-1)[index[name]], param.view(-1)[index[name]]
                m[name] = beta1 * m[name] + (1 - beta1) * grad
                v[name] = beta2 * v[name] + (1 - beta2) * grad**2
                m_hat, v_hat = m[name] / (1 - beta1**t), v[name] / (1 - beta2**t)
                param.view(-1)[index[name]] = x * (1 - lr * weight_decay) - lr * m_hat / (v_hat.sqrt() + eps)
        twin.zero_grad()
    initial = tiny_llama()
    for (name, ours), theirs, before in zip(model.named_parameters(), twin.parameters(), initial.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6, msg=name)
        if name in index:
            moved = ours.detach().view(-1) != before.view(-1)
            assert torch.equal(moved.nonzero().view(-1), index[name]), f"{name}: exactly the active entries move"
        else:
            assert torch.equal(ours, before), f"the frozen {name} moved"
    assert "model.embed_tokens.weight" not in index


def test_adjacent_run_moves_on_and_covers_each_entry_once():
    model = tiny_llama()
    optimizer = ratio_optimizer(model, update_ratio=0.25, switch_every=2)
    name = "model.layers.0.mlp.up_proj.weight"
    param = dict(model.named_parameters())[name]
    n, k = param.numel(), param.numel() // 4
    runs = []
    for switch in range(4):
        active = optimizer.active_indices(name)
        assert torch.equal(active, torch.arange(switch * k, (switch + 1) * k))
        runs.append(active)
        for _ in range(2):
            before = param.detach().clone().view(-1)
            train(model, optimizer, 1)
            moved = param.detach().view(-1) != before
            assert torch.equal(moved.nonzero().view(-1), active), "exactly the active run moves"
        assert optimizer.switch == switch + 1
    assert torch.equal(torch.cat(runs).sort().values, torch.arange(n)), "4 switches cover every entry exactly once"
    assert torch.equal(optimizer.active_indices(name), runs[0]), "the next ratio-epoch starts over"


def test_adjacent_run_wraps_around_the_end():
    model = tiny_llama()
    optimizer = ratio_optimizer(model, update_ratio=0.3, switch_every=1)
    name = "model.layers.0.self_attn.q_proj.weight"
    n, k = 4096, round(0.3 * 4096)
    train(model, optimizer, 3)  # the run of switch 3 starts at 3k and ends past the end
    param = dict(model.named_parameters())[name]
    expected = torch.arange(3 * k, 4 * k) % n
    assert torch.equal(optimizer.active_indices(name), expected.sort().values)
    before = param.detach().clone().view(-1)
    train(model, optimizer, 1)
    moved = (param.detach().view(-1) != before).nonzero().view(-1)
    assert torch.equal(moved, expected.sort().values)


def test_scatter_subsets_are_seeded_and_sized():
    model = tiny_llama()
    named = list(model.named_parameters())

    def build(seed):
        return BlockOptimizerRatio(
            model.parameters(),
            named,
            update_ratio=0.25,
            mask_mode="scatter",
            switch_every=1,
            seed=seed,
            include_lm_head=True,
        )

    first, again, other = build(0), build(0), build(1)
    for name, param in named[1:]:
        active = first.active_indices(name)
        k = round(0.25 * param.numel()) if param.numel() >= 100 else param.numel()
        assert len(active) == k and len(active.unique()) == k and 0 <= active.min() and active.max() < param.numel()
        assert torch.equal(active, again.active_indices(name)), "same seed, same subset"
        if k < param.numel():
            assert not torch.equal(active, other.active_indices(name)), "another seed, another subset"
    name = "model.layers.1.mlp.down_proj.weight"
    subset = first.active_indices(name)
    train(model, first, 1)
    assert not torch.equal(first.active_indices(name), subset), "a new subset after the switch"
    assert first.state[dict(named)[name]]["index"].dtype == torch.int32


def test_param_update_ratios_and_preserve_threshold():
    model = tiny_llama()
    optimizer = ratio_optimizer(
        model,
        update_ratio=0.1,
        preserve_threshold=5000,
        param_update_ratios={"lm_head.": 1.0, "model.layers.": 0.5, "model.layers.1.mlp.": 0.2},
    )
    active = {entry.name: entry.active for entry in optimizer.entries}
    ratio = {entry.name: entry.ratio for entry in optimizer.entries}
    assert ratio["lm_head.weight"] == 1.0 and ratio["model.layers.0.mlp.up_proj.weight"] == 0.5
    assert ratio["model.layers.1.mlp.down_proj.weight"] == 0.2 and ratio["model.norm.weight"] == 1.0
    params = dict(model.named_parameters())
    assert active["lm_head.weight"] == params["lm_head.weight"].numel()
    assert active["model.layers.0.mlp.up_proj.weight"] == 4096, "longest prefix: 0.5 of 8192"
    assert active["model.layers.1.mlp.up_proj.weight"] == round(0.2 * 8192)
    assert active["model.layers.1.self_attn.q_proj.weight"] == 4096, "4096 entries < 5000: fully active"
    assert active["model.norm.weight"] == 64
    train(model, optimizer, 1)
    before = params["lm_head.weight"].detach().clone()
    train(model, optimizer, 1)
    assert (params["lm_head.weight"] != before).all(), "a fully active head moves everywhere"


def test_embedding_frozen_unless_included():
    model = tiny_llama()
    embedding = model.model.embed_tokens.weight
    ratio_optimizer(model)
    assert not embedding.requires_grad
    lm_loss(model, batch(0)).backward()
    assert embedding.grad is None
    model = tiny_llama()
    optimizer = ratio_optimizer(model, include_embedding=True)
    assert "model.embed_tokens.weight" in optimizer.entry_of and "lm_head.weight" in optimizer.entry_of


@pytest.mark.parametrize("mask_mode", ["adjacent", "scatter"])
def test_held_memory_is_proportional_to_ratio_and_no_dense_grad_survives(mask_mode):
    def held_after_backward(ratio):
        model = tiny_llama(dtype=torch.bfloat16)
        optimizer = ratio_optimizer(model, update_ratio=ratio, mask_mode=mask_mode)
        lm_loss(model, batch(0)).backward()
        assert all(p.grad is None for p in model.parameters()), "a dense gradient survived backward"
        held = held_bytes(optimizer, model)
        # bf16 model: fp32 master + m + v + gathered gradient = 16 bytes per active entry, plus a
        # 4-byte int32 index per entry of a partially active tensor in scatter mode.
        partial = [e for e in optimizer.entries if e.active < e.param.numel()]
        index_bytes = 4 * sum(e.active for e in partial) if mask_mode == "scatter" else 0
        assert held.optimizer_held == 16 * sum(e.active for e in optimizer.entries) + index_bytes
        assert held.gradients == 0
        share = sum(e.active for e in optimizer.entries) / sum(e.param.numel() for e in optimizer.entries)
        return held.optimizer_held, share

    small, share = held_after_backward(0.1)
    full, _ = held_after_backward(1.0)
    # The norms (5 x 64 entries) stay fully active below preserve_threshold: 0.35% of the 90k
    # trainable entries, so the share is 0.1 + 0.0032. Scatter adds 4/16 for its indices.
    assert 0.1 < share < 0.104
    expected = share * (1.25 if mask_mode == "scatter" else 1.0)
    assert small / full == pytest.approx(expected, abs=0.001)


def test_bf16_master_accumulates_updates_below_bf16_resolution():
    # A constant gradient moves each active entry by ~lr per Adam step. 1e-4 is far below the bf16
    # spacing near 1 (2**-7), so only an fp32 master can accumulate the steps.
    lr, steps = 1e-4, 60
    weight = torch.nn.Parameter(torch.ones(16, 16, dtype=torch.bfloat16))
    optimizer = BlockOptimizerRatio([weight], [("w", weight)], update_ratio=0.5, lr=lr, switch_every=1000)
    for _ in range(steps):
        weight.sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    master = optimizer.state[weight]["master"]
    active = optimizer.active_indices("w")
    assert master.dtype == torch.float32 and len(master) == 128
    torch.testing.assert_close(master, torch.full_like(master, 1 - steps * lr), rtol=0, atol=5e-6)
    flat = weight.detach().view(-1)
    assert torch.equal(flat[active], master.to(torch.bfloat16)), "the bf16 weight is the rounded master"
    assert (flat[active] < 1).all()
    inactive = torch.ones(256, dtype=torch.bool)
    inactive[active] = False
    assert (flat[inactive] == 1).all()


@pytest.mark.parametrize("mask_mode", ["adjacent", "scatter"])
def test_bf16_model_equals_rounded_masters(mask_mode):
    model = tiny_llama(dtype=torch.bfloat16)
    optimizer = ratio_optimizer(model, update_ratio=0.3, mask_mode=mask_mode, switch_every=2, lr=1e-3)
    train(model, optimizer, 7)  # adjacent: switch 3's run wraps in the 4096-entry tensors
    wraps = 0
    for entry in optimizer.entries:
        master = optimizer.state[entry.param]["master"]
        state = optimizer.state[entry.param]
        gathered = entry.param.detach().view(-1)[optimizer.active_indices(entry.name)]
        if "span" in state and state["span"][1] > entry.param.numel():
            start = state["span"][0]  # the buffers run from start to the end, then from 0
            master = torch.cat((master[entry.param.numel() - start :], master[: entry.param.numel() - start]))
            wraps += 1
        assert torch.equal(gathered, master.to(torch.bfloat16)), entry.name
    assert wraps > 0 or mask_mode == "scatter"


def test_gradient_accumulation_sums_micro_batches_like_autograd():
    assert_accumulation_equals_one_batch(lambda m: ratio_optimizer(m, update_ratio=0.25, switch_every=2))


def save_load(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize(
    ("dtype", "mask_mode"), [(torch.float32, "adjacent"), (torch.bfloat16, "adjacent"), (torch.bfloat16, "scatter")]
)
def test_exact_resume(dtype, mask_mode):
    # Two micro-batches per step; the checkpoint is taken mid switch-period (switch_every=3) and
    # between the two micro-batches, so it carries a gathered gradient. Ratio 0.3 makes adjacent
    # runs wrap at switch 3.
    steps, stop = 11, 4

    def build(model):
        optimizer = ratio_optimizer(
            model, groups=decay_groups(model), update_ratio=0.3, mask_mode=mask_mode, switch_every=3, seed=7
        )
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)

    def run(model, optimizer, scheduler, first, last, skip_first_micro=False):
        for step in range(first, last):
            for micro in range(2):
                if not (skip_first_micro and step == first and micro == 0):
                    lm_loss(model, batch(100 * step + micro)).backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()

    straight = tiny_llama(dtype=dtype)
    run(straight, *build(straight), 0, steps)

    first = tiny_llama(dtype=dtype)
    optimizer, scheduler = build(first)
    run(first, optimizer, scheduler, 0, stop)
    lm_loss(first, batch(100 * stop)).backward()
    checkpoint = save_load(
        {"model": first.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    )
    assert any("grad" in s for s in checkpoint["optimizer"]["state"].values())

    resumed = tiny_llama(dtype=dtype, seed=123)
    resumed.load_state_dict(checkpoint["model"])
    optimizer, scheduler = build(resumed)
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    assert optimizer.global_step == stop
    run(resumed, optimizer, scheduler, stop, steps, skip_first_micro=True)
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), f"{name} differs after resume"


def test_load_state_dict_rejects_another_configuration():
    model = tiny_llama()
    state = ratio_optimizer(model, update_ratio=0.25).state_dict()
    with pytest.raises(ValueError, match="update_ratio=0.25, this optimizer has 0.5"):
        ratio_optimizer(model, update_ratio=0.5).load_state_dict(state)
    with pytest.raises(ValueError, match="seed=0, this optimizer has 1"):
        ratio_optimizer(model, update_ratio=0.25, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="active entries of 'lm_head.weight' differ"):
        ratio_optimizer(model, update_ratio=0.25, param_update_ratios={"lm_head.": 1.0}).load_state_dict(state)
    with pytest.raises(ValueError, match="other parameters"):
        ratio_optimizer(model, update_ratio=0.25, groups=decay_groups(model)).load_state_dict(state)


def test_load_state_dict_refuses_other_models_and_other_optimizers_naming_them():
    state = ratio_optimizer(tiny_llama(layers=3)).state_dict()
    with pytest.raises(
        ValueError, match=r"'model\.layers\.2\..*', which the checkpoint holds but this optimizer does not train"
    ):
        ratio_optimizer(tiny_llama(layers=2)).load_state_dict(state)
    config = tiny_llama_config(layers=3)
    config.intermediate_size = 96
    with pytest.raises(
        ValueError,
        match=r"'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \(128, 64\) in the "
        r"checkpoint and \(96, 64\) here",
    ):
        ratio_optimizer(LlamaForCausalLM(config)).load_state_dict(state)
    model = tiny_llama()
    with pytest.raises(
        ValueError,
        match=r"not a BlockOptimizerRatio state dict \(no 'mask_mode' key\): it was saved "
        "by a plain torch.optim optimizer",
    ):
        ratio_optimizer(model).load_state_dict(torch.optim.AdamW(model.parameters()).state_dict())
    other = tiny_llama()
    block = BlockOptimizer(torch.optim.AdamW(other.parameters()), list(other.named_parameters()), verbose=0)
    with pytest.raises(ValueError, match="it was saved by BlockOptimizer"):
        ratio_optimizer(model).load_state_dict(block.state_dict())


def test_clip_grad_norm_matches_torch_on_the_gathered_gradient():
    model = tiny_llama()
    twin = copy.deepcopy(model)
    twin.model.embed_tokens.weight.requires_grad_(False)
    optimizer = ratio_optimizer(model, update_ratio=1.0)
    lm_loss(model, batch(0)).backward()
    lm_loss(twin, batch(0)).backward()
    norm = optimizer.clip_grad_norm_(0.1)
    expected = torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.1)
    torch.testing.assert_close(norm, expected)
    assert norm > 0.1, "the test must clip"
    for (name, param), entry in zip(list(twin.named_parameters())[1:], optimizer.entries):
        torch.testing.assert_close(optimizer.state[entry.param]["grad"], param.grad.view(-1), msg=name)


def test_step_consumes_gradients_and_zero_grad_discards_them():
    model = tiny_llama()
    optimizer = ratio_optimizer(model)
    lm_loss(model, batch(0)).backward()
    optimizer.zero_grad(set_to_none=False)
    assert all(not optimizer.state[e.param]["grad"].any() for e in optimizer.entries)
    optimizer.zero_grad()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before)), "no gradient, no update"
    lm_loss(model, batch(0)).backward()
    optimizer.step()
    assert not any("grad" in optimizer.state[e.param] for e in optimizer.entries)


def test_hooks_go_with_the_optimizer():
    model = tiny_llama()
    optimizer = ratio_optimizer(model)
    del optimizer
    gc.collect()
    lm_loss(model, batch(0)).backward()
    assert model.lm_head.weight.grad is not None


def test_errors():
    model = tiny_llama()
    named = list(model.named_parameters())

    def build(params=None, named=named, **kwargs):
        return BlockOptimizerRatio(model.parameters() if params is None else params, named, **kwargs)

    for bad in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match=rf"update_ratio must be in \(0, 1\], got {bad}"):
            build(update_ratio=bad)
    with pytest.raises(ValueError, match="unknown mask_mode 'strided'"):
        build(mask_mode="strided")
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match=f"switch_every must be a positive integer, got {bad}"):
            build(switch_every=bad)
    with pytest.raises(ValueError, match="prefix 'lm_hed.' matches no trainable parameter"):
        build(param_update_ratios={"lm_hed.": 1.0})
    with pytest.raises(ValueError, match="prefix 'model.embed_tokens.' matches no trainable parameter"):
        build(param_update_ratios={"model.embed_tokens.": 1.0})  # the embedding is frozen
    with pytest.raises(ValueError, match=r"param_update_ratios\['lm_head.'\] must be in \(0, 1\], got 2"):
        build(param_update_ratios={"lm_head.": 2})
    with pytest.raises(ValueError, match="preserve_threshold must be >= 0, got -1"):
        build(preserve_threshold=-1)
    with pytest.raises(ValueError, match="invalid lr: -1"):
        build(lr=-1)
    with pytest.raises(ValueError, match=r"invalid betas: \(0.9, 1.0\)"):
        build(params=[{"params": list(model.parameters()), "betas": (0.9, 1.0)}])
    with pytest.raises(ValueError, match="'model.layers.1.mlp.up_proj.weight' is missing from param_groups"):
        build(params=[p for n, p in named if n != "model.layers.1.mlp.up_proj.weight"])
    with pytest.raises(ValueError, match="not in named_parameters_list"):
        build(named=named[:-1])
    with pytest.raises(KeyError, match="'model.embed_tokens.weight' is not a trainable parameter"):
        build().active_indices("model.embed_tokens.weight")
    with pytest.raises(NotImplementedError, match="cannot take parameter groups after construction"):
        build().add_param_group({"params": [model.model.embed_tokens.weight]})
    for param in model.parameters():
        param.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build()
