"""BREAD: SGD and LoRA corrections of the blocks BAdam leaves inactive."""

import copy
import re
from pathlib import Path

import pytest
import torch
from badam_tiny import batch, lm_loss, tiny_llama, train
from model_families import build, loss, make_batch
from peft import LoraConfig, get_peft_model

from badam import BlockOptimizer
from badam.bread import is_lora_adapter

LAYERS, ACTIVE, LR, SCALING = 4, 1, 0.05, 0.3


def layer_of(name: str) -> int | None:
    parts = name.split(".")
    return int(parts[parts.index("layers") + 1]) if "layers" in parts else None


def bread(model, sgd_mode="all", scheduler_lr=None, **kwargs):
    base = torch.optim.AdamW(model.parameters(), lr=LR, foreach=False)
    optimizer = BlockOptimizer(
        base,
        list(model.named_parameters()),
        switch_block_every=1000,
        switch_mode="fixed",
        start_block=ACTIVE,
        sgd_mode=sgd_mode,
        sgd_lr_scaling=SCALING,
        verbose=0,
        **kwargs,
    )
    return optimizer


def reference_gradients(model, inputs_list):
    """Gradients of every layer parameter at the model's current weights (the hooks' inputs)."""
    twin = copy.deepcopy(model)
    for param in twin.parameters():
        param.requires_grad_(True)
    for inputs in inputs_list:
        lm_loss(twin, inputs).backward()
    return {n: p.grad for n, p in twin.named_parameters()}


@pytest.mark.parametrize("use_sign", [False, True], ids=["sgd", "signsgd"])
def test_sgd_all_moves_inactive_blocks_exactly_like_sgd(use_sign):
    model = tiny_llama(layers=LAYERS)
    optimizer = bread(model, sgd_use_sign=use_sign)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    for step in range(2):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        grads = reference_gradients(model, [batch(step)])
        lm_loss(model, batch(step)).backward()
        for name, param in model.named_parameters():
            layer = layer_of(name)
            if layer is None or layer == ACTIVE:
                continue
            assert param.grad is None, f"{name}: an inactive block kept its gradient"
            update = grads[name].sign() if use_sign else grads[name]
            expected = before[name] - LR * 0.5**step * SCALING * update
            torch.testing.assert_close(param.detach(), expected, rtol=0, atol=1e-6, msg=name)
        active = [p for n, p in model.named_parameters() if layer_of(n) == ACTIVE]
        assert all(p.grad is not None for p in active), "the active block's gradient is for Adam"
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    frozen = dict(model.named_parameters())["model.embed_tokens.weight"]
    assert torch.equal(frozen, before["model.embed_tokens.weight"]), "a parameter in no block moved"


def test_sgd_partial_touches_only_blocks_after_the_active_one():
    model = tiny_llama(layers=LAYERS)
    bread(model, sgd_mode="partial")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lm_loss(model, batch(0)).backward()
    for name, param in model.named_parameters():
        layer = layer_of(name)
        if layer is None:
            continue
        moved = not torch.equal(param, before[name])
        assert moved == (layer > ACTIVE), f"{name} moved={moved}"
        assert param.requires_grad == (layer >= ACTIVE)


def test_gradient_accumulation_takes_one_sgd_step_per_backward():
    model = tiny_llama(layers=LAYERS)
    bread(model)
    name = "model.layers.3.mlp.down_proj.weight"
    param = dict(model.named_parameters())[name]
    halves = batch(0, size=8).chunk(2)
    w0 = param.detach().clone()
    g1 = reference_gradients(model, [halves[0]])[name] / 2
    (lm_loss(model, halves[0]) / 2).backward()
    torch.testing.assert_close(param.detach(), w0 - LR * SCALING * g1, rtol=0, atol=1e-6)
    g2 = reference_gradients(model, [halves[1]])[name] / 2  # taken at the weights the first step left
    (lm_loss(model, halves[1]) / 2).backward()
    torch.testing.assert_close(param.detach(), w0 - LR * SCALING * (g1 + g2), rtol=0, atol=1e-6)


def test_switch_moves_the_sgd_targets():
    model = tiny_llama(layers=3)
    optimizer = BlockOptimizer(
        torch.optim.AdamW(model.parameters(), lr=LR),
        list(model.named_parameters()),
        switch_block_every=1,
        switch_mode="ascending",
        sgd_mode="partial",
        verbose=0,
    )
    for step in range(3):
        lm_loss(model, batch(step)).backward()
        requires = {layer_of(n) for n, p in model.named_parameters() if p.requires_grad}
        assert requires == set(range(step, 3))
        with_grad = {layer_of(n) for n, p in model.named_parameters() if p.grad is not None}
        assert with_grad == {step}, "only the Adam-trained block may keep its gradient"
        optimizer.step()
        optimizer.zero_grad()


def test_sgd_with_reentrant_checkpointing_reaches_lower_layers():
    from badam import truncate_backward

    model = tiny_llama(layers=LAYERS)
    model.train()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": True})
    bread(model)  # its SGD correction steps the lower layers inside backward
    truncate_backward(model)
    before = dict(model.named_parameters())["model.layers.0.mlp.up_proj.weight"].detach().clone()
    lm_loss(model, batch(0)).backward()
    assert not torch.equal(dict(model.named_parameters())["model.layers.0.mlp.up_proj.weight"], before)


def lora_llama():
    return get_peft_model(
        tiny_llama(layers=LAYERS), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )


@pytest.mark.parametrize("mode", ["all", "partial"])
def test_lora_mode_trains_active_base_weights_and_the_chosen_adapters(mode):
    model = lora_llama()
    optimizer = BlockOptimizer(
        torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0),
        list(model.named_parameters()),
        switch_block_every=1000,
        switch_mode="fixed",
        start_block=ACTIVE,
        lora_mode=mode,
        verbose=0,
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lm_loss(model, batch(0)).backward()
    optimizer.step()
    for name, param in model.named_parameters():
        layer = layer_of(name)
        moved = not torch.equal(param, before[name])
        if is_lora_adapter(name):
            expected = mode == "all" or layer >= ACTIVE
        else:
            expected = layer == ACTIVE
        assert moved == expected, f"{name}: moved={moved}"
    assert len(optimizer.trainable_params) == len(optimizer.blocks[ACTIVE]) + 4 * (
        LAYERS if mode == "all" else LAYERS - ACTIVE
    )


def test_lora_partial_frees_adapter_state_when_it_leaves():
    model = lora_llama()
    optimizer = BlockOptimizer(
        torch.optim.AdamW(model.parameters(), lr=1e-2),
        list(model.named_parameters()),
        switch_block_every=1,
        switch_mode="ascending",
        lora_mode="partial",
        verbose=0,
    )
    for step in range(3):
        lm_loss(model, batch(step)).backward()
        optimizer.step()
        optimizer.zero_grad()
        stepped = {id(p) for p in optimizer.state}
        assert stepped <= {id(optimizer.masters.optimized(p)) for p in optimizer.trainable_params}
    assert optimizer.active_block == 3
    assert all(layer_of(optimizer.name_of[p]) == 3 for p in optimizer.trainable_params)


def test_bread_errors():
    model = tiny_llama()
    named = list(model.named_parameters())
    with pytest.raises(ValueError, match="needs a model with PEFT LoRA adapters"):
        BlockOptimizer(torch.optim.AdamW(model.parameters()), named, lora_mode="all")
    with pytest.raises(ValueError, match="unknown lora_mode 'some'"):
        BlockOptimizer(torch.optim.AdamW(model.parameters()), named, lora_mode="some")
    with pytest.raises(ValueError, match="unknown sgd_mode 'half'"):
        BlockOptimizer(torch.optim.AdamW(model.parameters()), named, sgd_mode="half")
    with pytest.raises(ValueError, match="sgd_lr_scaling must be positive"):
        BlockOptimizer(torch.optim.AdamW(model.parameters()), named, sgd_mode="all", sgd_lr_scaling=0)
    peft_model = lora_llama()
    adapters_only = [p for p in peft_model.parameters() if p.requires_grad]
    with pytest.raises(ValueError, match="build it on all parameters"):
        BlockOptimizer(torch.optim.AdamW(adapters_only), list(peft_model.named_parameters()), lora_mode="all")


def test_exact_resume_with_sgd_correction():
    def build(model):
        return BlockOptimizer(
            torch.optim.AdamW(model.parameters(), lr=LR, foreach=False),
            list(model.named_parameters()),
            switch_block_every=2,
            switch_mode="random",
            seed=3,
            sgd_mode="partial",
            verbose=0,
        )

    straight = tiny_llama(layers=3, dtype=torch.bfloat16)
    train(straight, build(straight), 7)
    first = tiny_llama(layers=3, dtype=torch.bfloat16)
    optimizer = build(first)
    train(first, optimizer, 3)
    state = {"model": first.state_dict(), "optimizer": optimizer.state_dict()}
    resumed = tiny_llama(layers=3, dtype=torch.bfloat16, seed=9)
    resumed.load_state_dict(state["model"])
    optimizer = build(resumed)
    optimizer.load_state_dict(state["optimizer"])
    train(resumed, optimizer, 4, seed0=3)
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), name


def readme_python_block(containing: str) -> str:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    return next(block for block in blocks if containing in block)


def test_the_readme_seq2seq_lora_example_runs_as_written():
    namespace = {"model": build("t5")}
    exec(readme_python_block("TaskType.SEQ_2_SEQ_LM"), namespace)
    model, optimizer = namespace["model"], namespace["optimizer"]
    assert optimizer.block_prefixes == [
        ["base_model.model.encoder.block.0."],
        ["base_model.model.encoder.block.1."],
        ["base_model.model.decoder.block.0."],
        ["base_model.model.decoder.block.1."],
    ]
    params = dict(model.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items()}
    for step in range(2):
        loss(model, make_batch("t5", step)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    changed = {n for n, p in params.items() if not torch.equal(p, before[n])}
    active = optimizer.block_prefixes[optimizer.active_block][0]
    base_changed = {n for n in changed if not is_lora_adapter(n)}
    assert base_changed and all(n.startswith(active) for n in base_changed), "only the active block's base weights"
    for prefix in [p for block in optimizer.block_prefixes for p in block]:
        assert any(n.startswith(prefix) and "lora_B" in n for n in changed), f"{prefix}: its adapters train too"
    assert torch.equal(params["base_model.model.shared.weight"], before["base_model.model.shared.weight"])
