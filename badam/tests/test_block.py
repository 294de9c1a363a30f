"""BlockOptimizer: the update rule, block switching, mixed precision, resume and the error paths."""

import copy
import io

import pytest
import torch
from badam_tiny import assert_accumulation_equals_one_batch, batch, lm_loss, tiny_llama, tiny_llama_config, train
from peft import LoraConfig, get_peft_model
from transformers import LlamaForCausalLM

from badam import BlockOptimizer, BlockOptimizerRatio


def decay_groups(model, weight_decay=0.1, lr=1e-2):
    """Trainer-style groups: matrices decay, norms (1-d) do not."""
    decay = [p for _, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for _, p in model.named_parameters() if p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay, "lr": lr},
        {"params": no_decay, "weight_decay": 0.0, "lr": lr * 3},
    ]


def test_active_block_follows_adamw_exactly_fp32():
    model = tiny_llama(layers=3)
    reference = copy.deepcopy(model)
    k = 4
    optimizer = BlockOptimizer(
        torch.optim.AdamW(decay_groups(model), foreach=False),
        list(model.named_parameters()),
        switch_block_every=k,
        switch_mode="ascending",
        start_block=1,
    )
    block = [p for n, p in reference.named_parameters() if n.startswith("model.layers.1.")]
    for p in reference.parameters():
        p.requires_grad_(p in set(block))
    groups = decay_groups(reference)
    for group in groups:
        group["params"] = [p for p in group["params"] if p.requires_grad]
    adamw = torch.optim.AdamW(groups, foreach=False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train(model, optimizer, k)
    train(reference, adamw, k)
    for (name, ours), theirs in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6, msg=name)
        if not name.startswith("model.layers.1."):
            assert torch.equal(ours, before[name]), f"inactive {name} moved"
    assert optimizer.active_block == 2


def test_bf16_master_accumulates_updates_below_bf16_resolution():
    # A constant gradient makes each Adam step move the weight by ~lr. 1e-4 is far below the bf16
    # spacing of weights near 1 (2**-7), so pure bf16 AdamW never moves, while the fp32 master must
    # accumulate every step and the bf16 weight follow once the sum crosses a bf16 step.
    lr, steps = 1e-4, 60
    weight = torch.nn.Parameter(torch.ones(8, 8, dtype=torch.bfloat16))
    named = [("model.layers.0.w", weight)]
    optimizer = BlockOptimizer(torch.optim.Adam([weight], lr=lr, foreach=False), named, switch_block_every=1000)
    plain = torch.nn.Parameter(torch.ones(8, 8, dtype=torch.bfloat16))
    plain_adam = torch.optim.Adam([plain], lr=lr, foreach=False)
    full = torch.nn.Parameter(torch.ones(8, 8))
    full_adam = torch.optim.Adam([full], lr=lr, foreach=False)
    for _ in range(steps):
        for param, opt in ((weight, optimizer), (plain, plain_adam), (full, full_adam)):
            param.sum().backward()
            opt.step()
            opt.zero_grad()
    master = optimizer.masters.master_of[weight]
    assert master.dtype == torch.float32
    torch.testing.assert_close(master, full.detach(), rtol=0, atol=0)
    torch.testing.assert_close(master, torch.full_like(master, 1 - steps * lr), rtol=0, atol=5e-6)
    assert torch.equal(weight, master.to(torch.bfloat16))
    assert weight.float().max() < 1, "the bf16 weight must follow the master"
    assert torch.equal(plain, torch.ones_like(plain)), "control: pure bf16 Adam loses these updates"


def test_switch_frees_old_block_and_keeps_gradients_off_inactive_blocks():
    model = tiny_llama(layers=3, dtype=torch.bfloat16)
    optimizer = BlockOptimizer(
        torch.optim.AdamW(model.parameters(), lr=1e-3),
        list(model.named_parameters()),
        switch_block_every=2,
        switch_mode="ascending",
    )
    for step in range(6):
        lm_loss(model, batch(step)).backward()
        active = set(optimizer.trainable_params)
        with_grad = {p for p in model.parameters() if p.grad is not None}
        assert with_grad == active, "only the active block may hold gradients"
        assert set(optimizer.masters.master_of) == active
        assert all(m.dtype == torch.float32 for m in optimizer.masters.master_of.values())
        optimizer.step()
        optimizer.zero_grad()
        masters = {id(m) for m in optimizer.masters.master_of.values()}
        assert {id(p) for p in optimizer.state} <= masters, "states of an old block survived the switch"
        requires = {n for n, p in model.named_parameters() if p.requires_grad}
        assert requires == {n for n, p in model.named_parameters() if p in set(optimizer.trainable_params)}


def test_fp32_model_has_no_duplicate_copy():
    model = tiny_llama()
    optimizer = BlockOptimizer(torch.optim.AdamW(model.parameters(), lr=1e-3), list(model.named_parameters()))
    train(model, optimizer, 2)
    assert optimizer.masters.master_of == {}
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {id(p) for p in optimizer.trainable_params}


def test_weight_decay_stays_per_group():
    # With a zero loss gradient Adam's step is 0, so only decoupled weight decay moves weights:
    # decay-group weights shrink by (1 - lr * wd) per step, no-decay ones stay put.
    model = tiny_llama(dtype=torch.bfloat16)
    groups = decay_groups(model, weight_decay=0.5, lr=0.1)
    optimizer = BlockOptimizer(
        torch.optim.AdamW(groups), list(model.named_parameters()), switch_block_every=10, start_block=0
    )
    block = {n: p.detach().float().clone() for n, p in model.named_parameters() if n.startswith("model.layers.0.")}
    for _ in range(3):
        (0 * sum(p.sum() for p in model.parameters() if p.requires_grad)).backward()
        optimizer.step()
        optimizer.zero_grad()
    for name, initial in block.items():
        master = optimizer.masters.master_of[dict(model.named_parameters())[name]]
        expected = initial * (1 - 0.1 * 0.5) ** 3 if initial.ndim >= 2 else initial
        torch.testing.assert_close(master, expected, rtol=1e-6, atol=1e-6, msg=name)


def test_scheduler_lr_reaches_the_inner_step():
    model = tiny_llama()
    base = torch.optim.SGD(model.parameters(), lr=1.0)
    optimizer = BlockOptimizer(base, list(model.named_parameters()), switch_block_every=2, switch_mode="ascending")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    weight = dict(model.named_parameters())["model.layers.0.mlp.up_proj.weight"]
    for step in range(2):
        before = weight.detach().clone()
        lm_loss(model, batch(step)).backward()
        grad = weight.grad.clone()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        torch.testing.assert_close(weight, before - 0.5**step * grad)
    assert optimizer.param_groups[0]["initial_lr"] == 1.0
    assert optimizer.active_block == 1


def test_gradient_accumulation_equals_one_big_step():
    assert_accumulation_equals_one_batch(
        lambda m: BlockOptimizer(
            torch.optim.AdamW(m.parameters(), lr=1e-2, foreach=False), list(m.named_parameters()), switch_block_every=3
        )
    )


def test_active_modules_train_throughout_and_keep_their_state():
    model = tiny_llama(dtype=torch.bfloat16)
    optimizer = BlockOptimizer(
        torch.optim.AdamW(model.parameters(), lr=1e-3),
        list(model.named_parameters()),
        switch_block_every=1,
        switch_mode="ascending",
        active_modules=["model.norm."],
    )
    norm = dict(model.named_parameters())["model.norm.weight"]
    for step in range(4):
        lm_loss(model, batch(step)).backward()
        assert norm.grad is not None
        optimizer.step()
        optimizer.zero_grad()
    master = optimizer.masters.master_of[norm]
    assert optimizer.state[master]["step"].item() == 4, "the always-active module's Adam state was reset"
    assert all(p is not norm for block in optimizer.blocks for p in block)


def test_embedding_and_lm_head_blocks():
    model = tiny_llama()
    optimizer = BlockOptimizer(
        torch.optim.AdamW(model.parameters()),
        list(model.named_parameters()),
        include_embedding=True,
        include_lm_head=True,
        switch_mode="ascending",
        switch_block_every=1,
    )
    assert optimizer.num_blocks == 4
    # The final norm trains with the head, as in the published package.
    assert optimizer.block_prefixes[0] == ["model.embed_tokens."]
    assert optimizer.block_prefixes[-1] == ["model.norm.", "lm_head."]
    norm = dict(model.named_parameters())["model.norm.weight"]
    before = norm.detach().clone()
    train(model, optimizer, 4)
    assert not torch.equal(norm, before)


def test_a_parameter_in_no_block_stays_frozen():
    model = tiny_llama()
    optimizer = BlockOptimizer(
        torch.optim.AdamW(model.parameters()),
        list(model.named_parameters()),
        include_lm_head=True,
        switch_mode="ascending",
        switch_block_every=1,
    )
    embedding = model.model.embed_tokens.weight
    before = embedding.detach().clone()
    train(model, optimizer, 3)
    assert not embedding.requires_grad and torch.equal(embedding, before)


def test_lora_only_active_block_adapters_train():
    model = get_peft_model(tiny_llama(layers=3), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    optimizer = BlockOptimizer(
        torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0),
        list(model.named_parameters()),
        switch_block_every=2,
        switch_mode="ascending",
    )
    assert optimizer.num_blocks == 3
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lm_loss(model, batch(0)).backward()
    optimizer.step()
    for name, param in model.named_parameters():
        moved = not torch.equal(param, before[name])
        should_move = "lora_B" in name and ".layers.0." in name  # lora_B starts at zero: only its grad is nonzero
        assert moved == should_move, name
        assert param.requires_grad == ("lora_" in name and ".layers.0." in name)


def save_load(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_exact_resume(dtype):
    steps, stop = 11, 5  # stop inside a block (K=3), with random order crossing a block-epoch

    def build(model):
        base = torch.optim.AdamW(decay_groups(model), foreach=False)
        optimizer = BlockOptimizer(
            base, list(model.named_parameters()), switch_block_every=3, switch_mode="random", seed=5
        )
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)

    straight = tiny_llama(layers=3, dtype=dtype)
    optimizer, scheduler = build(straight)
    train(straight, optimizer, steps, scheduler=scheduler)

    first = tiny_llama(layers=3, dtype=dtype)
    optimizer, scheduler = build(first)
    train(first, optimizer, stop, scheduler=scheduler)
    checkpoint = save_load(
        {"model": first.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    )

    resumed = tiny_llama(layers=3, dtype=dtype, seed=123)
    resumed.load_state_dict(checkpoint["model"])
    optimizer, scheduler = build(resumed)
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    assert optimizer.global_step == stop
    train(resumed, optimizer, steps - stop, seed0=stop, scheduler=scheduler)
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), f"{name} differs after resume"


def test_errors():
    model = tiny_llama()
    named = list(model.named_parameters())
    adamw = lambda: torch.optim.AdamW(model.parameters())  # noqa: E731
    with pytest.raises(ValueError, match="positive integer"):
        BlockOptimizer(adamw(), named, switch_block_every=0)
    with pytest.raises(ValueError, match="unknown switch_mode 'zigzag'"):
        BlockOptimizer(adamw(), named, switch_mode="zigzag")
    with pytest.raises(ValueError, match="start_block=7 is out of range"):
        BlockOptimizer(adamw(), named, start_block=7)
    with pytest.raises(ValueError, match="'model.layer.1.' .*matches no parameter"):
        BlockOptimizer(adamw(), named, block_prefix_list=[["model.layers.0."], ["model.layer.1."]])
    with pytest.raises(ValueError, match="'model.layers.1.* is missing from the base optimizer"):
        partial = torch.optim.AdamW([p for n, p in named if not n.startswith("model.layers.1.")])
        BlockOptimizer(partial, named)
    with pytest.raises(ValueError, match="not in named_parameters_list"):
        BlockOptimizer(adamw(), named[:-1])
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        BlockOptimizer("adam", named)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        BlockOptimizer(adamw(), named)


def test_zero_grad_without_set_to_none_keeps_zeroed_buffers():
    model = tiny_llama()
    optimizer = BlockOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), list(model.named_parameters()))
    lm_loss(model, batch(0)).backward()
    optimizer.zero_grad(set_to_none=False)
    grads = [p.grad for p in optimizer.trainable_params]
    assert all(g is not None and not g.any() for g in grads)
    optimizer.zero_grad()
    assert all(p.grad is None for p in optimizer.trainable_params)


def test_log_fn_sees_every_switch():
    model = tiny_llama(layers=3)
    events = []
    optimizer = BlockOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.1),
        list(model.named_parameters()),
        switch_block_every=2,
        switch_mode="descending",
        log_fn=events.append,
        verbose=0,
    )
    train(model, optimizer, 6)
    assert [e["block"] for e in events] == [2, 1, 0, 2]
    assert [e["global_step"] for e in events] == [0, 2, 4, 6]
    assert events[-1]["block_epoch"] == 1


# --- state dicts are matched by parameter name -----------------------------------------------------

LAYERS = [[f"model.layers.{i}."] for i in range(3)]


def layer_optimizer(model, block_prefix_list=LAYERS, groups=None, **kwargs):
    base = torch.optim.AdamW(model.parameters() if groups is None else groups, lr=1e-2, foreach=False)
    return BlockOptimizer(
        base,
        list(model.named_parameters()),
        block_prefix_list=block_prefix_list,
        switch_block_every=3,
        switch_mode="ascending",
        verbose=0,
        **kwargs,
    )


def adam_state_by_name(optimizer):
    return {optimizer.name_of[p]: optimizer.state[optimizer.masters.optimized(p)] for p in optimizer.trainable_params}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_reordered_blocks_load_each_layer_its_own_state(dtype):
    first = tiny_llama(layers=3, dtype=dtype)
    optimizer = layer_optimizer(first)
    train(first, optimizer, 4)  # layer 0 had its K=3 steps; layer 1 (block 1) has taken one
    saved = save_load({"model": first.state_dict(), "optimizer": optimizer.state_dict()})
    expected = adam_state_by_name(optimizer)

    resumed = tiny_llama(layers=3, dtype=dtype, seed=9)
    resumed.load_state_dict(saved["model"])
    # Layer 1 is block 2 here; block 1 is layer 0, which positional loading would have handed layer 1's state.
    reordered = layer_optimizer(resumed, [LAYERS[2], LAYERS[0], LAYERS[1]])
    reordered.load_state_dict(saved["optimizer"])
    assert reordered.active_block == 2
    got = adam_state_by_name(reordered)
    assert set(got) == set(expected) and all(name.startswith("model.layers.1.") for name in got)
    for name, state in expected.items():
        assert torch.equal(got[name]["exp_avg"], state["exp_avg"]), name
        assert torch.equal(got[name]["exp_avg_sq"], state["exp_avg_sq"]), name
    # The rest of the block-epoch visits the same layers: the runs stay identical through it.
    train(first, optimizer, 5, seed0=4)
    train(resumed, reordered, 5, seed0=4)
    for (name, a), b in zip(first.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), name


def test_another_models_state_is_refused_naming_the_parameter():
    saved = save_load(layer_optimizer(tiny_llama(layers=3)).state_dict())
    with pytest.raises(ValueError, match=r"it holds 'model\.layers\.2\..*, which this optimizer does not train"):
        layer_optimizer(tiny_llama(layers=2), LAYERS[:2]).load_state_dict(saved)
    config = tiny_llama_config(layers=3)
    config.intermediate_size = 96
    wider = LlamaForCausalLM(config)
    with pytest.raises(
        ValueError,
        match=r"'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \(128, 64\) "
        r"in the state dict and \(96, 64\) here",
    ):
        layer_optimizer(wider).load_state_dict(saved)


def test_other_partitions_and_groups_are_refused():
    # Each optimizer on a model of its own: a BlockOptimizer freezes the blocks that are not active.
    saved = save_load(layer_optimizer(tiny_llama(layers=3)).state_dict())
    with pytest.raises(ValueError, match="'model.layers.1.* group the parameters the same way"):
        layer_optimizer(tiny_llama(layers=3), [LAYERS[0] + LAYERS[1], LAYERS[2]]).load_state_dict(saved)
    model = tiny_llama(layers=3)
    with pytest.raises(ValueError, match="it lacks 'model.norm.weight', which this optimizer trains"):
        layer_optimizer(model, active_modules=["model.norm."]).load_state_dict(saved)
    model = tiny_llama(layers=3)
    with pytest.raises(ValueError, match="the state dict's base optimizer has 1 param groups, this one 2"):
        layer_optimizer(model, groups=decay_groups(model)).load_state_dict(saved)
    model = tiny_llama(layers=3)
    saved = save_load(layer_optimizer(model, groups=decay_groups(model)).state_dict())
    model = tiny_llama(layers=3)
    with pytest.raises(
        ValueError,
        match="'model.layers.0.input_layernorm.weight' is in param group 0 of this optimizer but not of the state dict",
    ):
        layer_optimizer(model, groups=decay_groups(model)[::-1]).load_state_dict(saved)


@pytest.mark.filterwarnings("ignore:BlockOptimizerRatio takes the gradients")
def test_a_state_dict_that_is_not_a_block_optimizers_is_refused():
    model = tiny_llama()
    optimizer = BlockOptimizer(torch.optim.AdamW(model.parameters()), list(model.named_parameters()), verbose=0)
    with pytest.raises(
        ValueError,
        match=r"not a BlockOptimizer state dict \(no 'schedule' key\): it was saved by "
        "a plain torch.optim optimizer",
    ):
        optimizer.load_state_dict(torch.optim.AdamW(tiny_llama().parameters()).state_dict())
    ratio = BlockOptimizerRatio(model.parameters(), list(model.named_parameters()))
    with pytest.raises(ValueError, match="it was saved by BlockOptimizerRatio"):
        optimizer.load_state_dict(ratio.state_dict())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_state_dict_without_names_loads_by_position_with_a_warning(dtype):
    model = tiny_llama(layers=3, dtype=dtype)
    optimizer = layer_optimizer(model)
    train(model, optimizer, 4)
    names = ("param_names", "blocks", "param_shapes")
    old = {key: value for key, value in optimizer.state_dict().items() if key not in names}
    resumed = layer_optimizer(tiny_llama(layers=3, dtype=dtype))
    with pytest.warns(UserWarning, match="no parameter names.*loads by position"):
        resumed.load_state_dict(save_load(old))
    assert resumed.active_block == 1 and resumed.global_step == 4
    expected, got = adam_state_by_name(optimizer), adam_state_by_name(resumed)
    assert all(torch.equal(got[name]["exp_avg"], state["exp_avg"]) for name, state in expected.items())


def test_an_idle_block_is_dropped_or_kept_as_a_slot_for_the_active_modules():
    prefixes = [["model.layers.0."], ["model.layers.1."], ["lm_head."]]

    def run(keep_idle_blocks):
        model = tiny_llama()
        base = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
        optimizer = BlockOptimizer(
            base,
            list(model.named_parameters()),
            prefixes,
            switch_block_every=2,
            switch_mode="ascending",
            active_modules=["lm_head"],
            verbose=0,
            keep_idle_blocks=keep_idle_blocks,
        )
        return model, optimizer

    _, dropped = run(False)
    assert dropped.block_prefixes == prefixes[:2]
    model, kept = run(True)
    assert kept.block_prefixes == prefixes and kept.blocks[2] == []
    params = dict(model.named_parameters())
    moved = []
    for step in range(6):
        before = {n: p.detach().clone() for n, p in params.items()}
        train(model, kept, 1, seed0=step)
        moved.append({n.split(".weight")[0] for n, p in params.items() if not torch.equal(p, before[n])})

    def layer(i):
        return {n.split(".weight")[0] for n in params if n.startswith(f"model.layers.{i}.")}

    assert moved[0] == moved[1] == layer(0) | {"lm_head"}
    assert moved[2] == moved[3] == layer(1) | {"lm_head"}
    assert moved[4] == moved[5] == {"lm_head"}, "the idle slot trains the active modules alone for its K steps"
    assert kept.active_block == 0

    # A resume inside the idle slot continues exactly: idle blocks match by their order.
    model, optimizer = run(True)
    train(model, optimizer, 5)
    twin, resumed = run(True)
    twin.load_state_dict(model.state_dict())
    resumed.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    assert resumed.active_block == 2
    train(model, optimizer, 3, seed0=5)
    train(twin, resumed, 3, seed0=5)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
