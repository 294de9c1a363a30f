"""The published package's calls (its README, LLaMA-Factory's use_badam) run unchanged on this one.

LLaMA-Factory 0.9.5 checks `badam>=1.2.1`, imports BAdamCallback and clip_grad_norm_old_version from
the top level, adds the callback class to its Trainer and patches the accelerator's clipping with
the latter; it builds BlockOptimizer and BlockOptimizerRatio with the keywords used below.
"""

from importlib.metadata import version
from types import MethodType

import pytest
import torch
from badam_tiny import batch, tiny_llama, train
from packaging.version import Version
from peft import LoraConfig, get_peft_model
from test_hf import RepeatTask, training_args
from transformers import Trainer

import badam
from badam import BAdamCallback, BlockOptimizer, BlockOptimizerRatio, clip_grad_norm_old_version


def test_version_and_names_of_the_published_package():
    assert Version(version("badam")) >= Version("1.2.1") and badam.__version__ == version("badam")
    from badam.utils import BAdamCallback as from_utils
    from badam.utils import clip_grad_norm_old_version as clip

    assert from_utils is BAdamCallback and clip is clip_grad_norm_old_version


def readme_optimizer(model, **kwargs):
    original_optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return BlockOptimizer(
        base_optimizer=original_optimizer, named_parameters_list=list(model.named_parameters()), **kwargs
    )


def test_readme_one_line_change_prints_the_trainable_parameters_at_verbose_2(capsys):
    model = tiny_llama()
    optimizer = readme_optimizer(model, switch_block_every=100, switch_mode="random", verbose=2)
    printed = capsys.readouterr().out
    block = optimizer.active_block
    assert f"BAdam: block {block}/2 active (model.layers.{block}.)" in printed
    assert f"  model.layers.{block}.self_attn.q_proj.weight" in printed
    train(model, optimizer, 2)


@pytest.mark.parametrize("per, blocks", [("module", 4), ("matrix", 14)])
def test_readme_block_prefix_lists(per, blocks):
    modules = (
        ["self_attn.", "mlp."]
        if per == "module"
        else [
            f"{m}."
            for m in (
                "self_attn.q_proj",
                "self_attn.k_proj",
                "self_attn.v_proj",
                "self_attn.o_proj",
                "mlp.gate_proj",
                "mlp.up_proj",
                "mlp.down_proj",
            )
        ]
    )
    block_prefix_list = []
    for i in range(2):
        block_prefix_list.extend([[f"model.layers.{i}.{m}"] for m in modules])
    model = tiny_llama()
    optimizer = readme_optimizer(
        model, switch_block_every=1, switch_mode="ascending", verbose=0, block_prefix_list=block_prefix_list
    )
    assert optimizer.num_blocks == blocks
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train(model, optimizer, blocks)
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved == {n for n, _ in model.named_parameters() if ".layers." in n and "layernorm" not in n}


def test_readme_embedding_lm_head_and_active_modules():
    model = tiny_llama()
    optimizer = readme_optimizer(
        model, include_embedding=True, include_lm_head=True, switch_block_every=1, switch_mode="ascending", verbose=0
    )
    assert optimizer.block_prefixes == [
        ["model.embed_tokens."],
        ["model.layers.0."],
        ["model.layers.1."],
        ["model.norm.", "lm_head."],
    ]
    model = tiny_llama()
    head = model.lm_head.weight.detach().clone()
    optimizer = readme_optimizer(model, active_modules=["lm_head."], switch_block_every=1, verbose=0)
    train(model, optimizer, 1)
    assert not torch.equal(model.lm_head.weight, head), "an active module trains from the first step"


def test_readme_ratio_mode_and_bread_keywords():
    model = tiny_llama()
    param_groups = [
        {"params": [p for p in model.parameters() if p.ndim >= 2], "weight_decay": 0.0},
        {"params": [p for p in model.parameters() if p.ndim < 2], "weight_decay": 0.0},
    ]
    optimizer = BlockOptimizerRatio(
        param_groups=param_groups,
        named_parameters_list=list(model.named_parameters()),
        switch_every=100,
        update_ratio=0.1,
        mask_mode="adjacent",
        lr=1e-6,
        betas=(0.9, 0.999),
        eps=1e-8,
        verbose=1,
    )
    train(model, optimizer, 2)
    assert optimizer.global_step == 2
    sgd = tiny_llama(layers=3)
    readme_optimizer(sgd, sgd_mode="partial", sgd_lr_scaling=0.5, sgd_use_sign=True, switch_block_every=2, verbose=0)
    lora = get_peft_model(tiny_llama(), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    optimizer = BlockOptimizer(
        torch.optim.AdamW(lora.parameters(), lr=1e-3), list(lora.named_parameters()), lora_mode="all", verbose=0
    )
    train(lora, optimizer, 1)


class LlamaFactoryStyleTrainer(Trainer):
    """What LLaMA-Factory's CustomSeq2SeqTrainer does under use_badam."""

    def __init__(self, *args, patch_clipping=True, **kwargs):
        super().__init__(*args, **kwargs)
        if patch_clipping:
            self.accelerator.clip_grad_norm_ = MethodType(clip_grad_norm_old_version, self.accelerator)
        self.add_callback(BAdamCallback)


def llamafactory_run(tmp_path, mode, steps=3, patch_clipping=True):
    model = tiny_llama(layers=2)
    args = training_args(
        tmp_path,
        steps,
        gradient_accumulation_steps=1,
        per_device_train_batch_size=4,
        gradient_checkpointing=False,
        save_strategy="no",
        max_grad_norm=1.0,
    )
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    param_groups = [dict(params=no_decay, weight_decay=0.0), dict(params=decay, weight_decay=args.weight_decay)]
    if mode == "layer":
        optimizer = BlockOptimizer(
            base_optimizer=torch.optim.AdamW(param_groups, lr=args.learning_rate),
            named_parameters_list=list(model.named_parameters()),
            block_prefix_list=None,
            switch_block_every=2,
            start_block=None,
            switch_mode="ascending",
            verbose=0,
            ds_zero3_enabled=False,
        )
    else:
        optimizer = BlockOptimizerRatio(
            param_groups=param_groups,
            named_parameters_list=list(model.named_parameters()),
            update_ratio=0.5,
            mask_mode="adjacent",
            verbose=0,
            include_embedding=False,
            lr=args.learning_rate,
            betas=(0.9, 0.999),
            eps=1e-8,
        )
    trainer = LlamaFactoryStyleTrainer(
        model=model, args=args, train_dataset=RepeatTask(4), optimizers=(optimizer, None), patch_clipping=patch_clipping
    )
    trainer.train()
    return model, optimizer, trainer


@pytest.mark.parametrize("mode", ["layer", "ratio"])
def test_llamafactory_use_badam_trains_and_logs_the_true_grad_norm(tmp_path, mode):
    model, optimizer, trainer = llamafactory_run(tmp_path, mode)
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 3 and all(h["grad_norm"] > 0 for h in logs)
    if mode == "layer":
        assert {h["badam_active_block"] for h in logs} == {0, 1}
        return
    # Step 1's grad_norm is the norm of the active entries of a plain backward on the same batch.
    reference = tiny_llama(layers=2)
    inputs = RepeatTask(4).input_ids
    reference(input_ids=inputs, labels=inputs).loss.backward()
    dense = dict(reference.named_parameters())
    active = [
        dense[e.name].grad.reshape(-1)[optimizer.active_indices(e.name) if e.active < e.param.numel() else slice(None)]
        for e in optimizer.entries
    ]
    # The adjacent runs of step 1 are those of any step before the first switch.
    expected = torch.linalg.vector_norm(torch.cat(active)).item()
    assert logs[0]["grad_norm"] == pytest.approx(expected, rel=1e-5)
    assert "lm_head.weight" not in optimizer.entry_of, "the head is frozen by default, as in the published package"


def test_ratio_mode_without_the_clipping_patch_says_grad_norm_0_is_wrong(tmp_path):
    with pytest.warns(UserWarning, match="grad_norm is 0: the Trainer's clipping did not see ratio mode's gradients"):
        llamafactory_run(tmp_path, "ratio", steps=2, patch_clipping=False)


def test_ratio_clipping_scales_the_gathered_gradients_to_the_max_norm():
    model = tiny_llama()
    optimizer = BlockOptimizerRatio(model.parameters(), list(model.named_parameters()), update_ratio=0.5)
    inputs = batch()
    model(input_ids=inputs, labels=inputs).loss.backward()
    assert all(p.grad is None for p in model.parameters()), "the dense gradients are gone"
    total = badam.clipping.clip_grad_norm_(model.parameters(), 1e-3)
    assert total > 1e-3
    after = torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in optimizer.gathered_grads()]))
    assert after.item() == pytest.approx(1e-3, rel=1e-4)


def test_the_published_positional_order_and_keyword_only_rest():
    model = tiny_llama()
    base = torch.optim.AdamW(model.parameters())
    named = list(model.named_parameters())
    # base_optimizer, named_parameters_list, block_prefix_list, switch_block_every, start_block,
    # switch_mode, active_modules, include_embedding, include_lm_head, verbose, log_fn, ds_zero3_enabled
    optimizer = BlockOptimizer(base, named, None, 3, 1, "ascending", [], False, True, 0, None, False)
    assert (optimizer.num_blocks, optimizer.active_block, optimizer.schedule.switch_every) == (3, 1, 3)
    with pytest.raises(TypeError):
        BlockOptimizer(base, named, None, 3, 1, "ascending", [], False, True, 0, None, False, 7)  # seed
    ratio = BlockOptimizerRatio(model.parameters(), named, 0.25, 0, 10, 100, None, "scatter")
    assert (ratio.update_ratio, ratio.verbose, ratio.switch_every, ratio.mask_mode) == (0.25, 0, 10, "scatter")
    assert badam.SWITCH_MODES == ("random", "ascending", "descending", "fixed")
    assert badam.MASK_MODES == ("adjacent", "scatter") and badam.SGD_MODES == ("disabled", "all", "partial")
