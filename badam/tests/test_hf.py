"""BAdam through transformers.Trainer: one call to set up, checkpointing, exact resume."""

import logging

import pytest
import torch
from badam_tiny import tiny_llama
from torch.utils.data import Dataset
from transformers import Trainer, TrainingArguments

from badam import BlockOptimizer, unwrap
from badam.hf import badam_trainer_kwargs


class RepeatTask(Dataset):
    """Sequences that repeat their first half: learnable, so the loss must fall."""

    def __init__(self, size: int, length: int = 16, vocab: int = 128) -> None:
        generator = torch.Generator().manual_seed(0)
        half = torch.randint(3, vocab, (size, length // 2), generator=generator)
        self.input_ids = torch.cat([half, half], dim=1)

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[index], "labels": self.input_ids[index]}


def training_args(output_dir, max_steps, **overrides) -> TrainingArguments:
    options = dict(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        gradient_checkpointing=True,
        learning_rate=5e-3,
        lr_scheduler_type="cosine",
        warmup_steps=1,
        weight_decay=0.01,
        logging_steps=1,
        save_strategy="steps",
        save_steps=3,
        report_to=[],
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    return TrainingArguments(**(options | overrides))


def run(output_dir, max_steps, resume=None, seed=0):
    model = tiny_llama(layers=3, dtype=torch.bfloat16, seed=seed)
    args = training_args(output_dir, max_steps)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=RepeatTask(16),
        **badam_trainer_kwargs(model, args, switch_block_every=2, switch_mode="random", verbose=0),
    )
    trainer.train(resume_from_checkpoint=resume)
    return model, trainer


def block_optimizer(trainer: Trainer) -> BlockOptimizer:
    return unwrap(trainer.optimizer)


def test_one_call_sets_up_badam(tmp_path):
    model, trainer = run(tmp_path, max_steps=8)
    optimizer = block_optimizer(trainer)
    assert isinstance(optimizer, BlockOptimizer)
    assert trainer.lr_scheduler.optimizer.optimizer is optimizer
    assert optimizer.base_optimizer.param_groups[0]["lr"] == trainer.lr_scheduler.get_last_lr()[0]
    assert optimizer.global_step == 8 and optimizer.schedule.block_epoch == 1
    decays = {g["weight_decay"] for g in optimizer.base_optimizer.param_groups}
    assert decays == {0.01, 0.0}
    assert not getattr(model, "_require_grads_hooks", None), "backward truncation was not applied"
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < losses[0]
    assert {h["badam_active_block"] for h in trainer.state.log_history if "loss" in h} <= {0, 1, 2}


def test_resume_from_checkpoint_is_exact(tmp_path):
    straight, _ = run(tmp_path / "straight", max_steps=8)
    assert (tmp_path / "straight" / "checkpoint-3" / "optimizer.pt").exists()
    resumed, trainer = run(
        tmp_path / "resumed", max_steps=8, resume=str(tmp_path / "straight" / "checkpoint-3"), seed=1
    )
    assert block_optimizer(trainer).global_step == 8
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), f"{name} differs after resume"


def test_unsupported_base_optimizer_is_explained(tmp_path, monkeypatch):
    # Whole-model optimizers (LOMO, GaLore) come back from the Trainer with the model or the param
    # groups in their kwargs; BAdam cannot use them as a per-parameter inner solver.
    model = tiny_llama()
    monkeypatch.setattr(
        Trainer, "get_optimizer_cls_and_kwargs", staticmethod(lambda args, model: (torch.optim.SGD, {"model": model}))
    )
    with pytest.raises(ValueError, match="not a per-parameter torch optimizer"):
        badam_trainer_kwargs(model, training_args(tmp_path, 1))


def test_trainer_optim_choice_is_the_base_optimizer(tmp_path):
    model = tiny_llama()
    kwargs = badam_trainer_kwargs(model, training_args(tmp_path, 1, optim="sgd", learning_rate=0.3))
    base = kwargs["optimizers"][0].base_optimizer
    assert type(base) is torch.optim.SGD and base.param_groups[0]["lr"] == 0.3


def test_switches_are_logged_on_rank_zero(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="badam"):
        model = tiny_llama()
        badam_trainer_kwargs(model, training_args(tmp_path, 1), switch_mode="ascending")
    assert "block 0/2 active (model.layers.0.)" in caplog.text


def test_engines_badam_cannot_run_on_are_refused(monkeypatch):
    from types import SimpleNamespace

    from badam.hf import _engine

    class Stage:
        def __init__(self, stage):
            self.stage = stage

        def get_value(self, key, default=None):
            return {"zero_optimization.stage": self.stage}.get(key, default)

    def args(**overrides):
        return SimpleNamespace(
            **({"fsdp": "", "fsdp_config": {}, "hf_deepspeed_config": None, "bf16": False, "fp16": False} | overrides)
        )

    with pytest.raises(ValueError, match="needs ZeRO stage 3.*sets stage 2"):
        _engine(args(hf_deepspeed_config=Stage(2), deepspeed="ds_z2.json"))
    assert _engine(args(hf_deepspeed_config=Stage(3))) == "zero3"
    assert _engine(args()) is None
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ValueError, match="pass the DeepSpeed config to the Trainer too"):
        _engine(args())
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED")


def test_fsdp_runs_on_fsdp2_without_mixed_precision(monkeypatch):
    from types import SimpleNamespace

    from badam.hf import _engine

    def args(**overrides):
        return SimpleNamespace(**({"fsdp": "full_shard", "fsdp_config": {}, "bf16": False, "fp16": False} | overrides))

    assert _engine(args()) == "fsdp2", "the Trainer's --fsdp is FSDP2 unless fsdp_config says version 1"
    with pytest.raises(ValueError, match="BAdam runs on FSDP2.*asks for FSDP1"):
        _engine(args(fsdp_config={"version": 1}))
    with pytest.raises(ValueError, match="needs mixed precision off"):
        _engine(args(bf16=True))
    # `accelerate launch` with an FSDP config says it through the environment (FSDP1 unless told).
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ValueError, match="asks for FSDP1"):
        _engine(args(fsdp=""))
    monkeypatch.setenv("FSDP_VERSION", "2")
    assert _engine(args(fsdp="")) == "fsdp2"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    with pytest.raises(ValueError, match="needs mixed precision off"):
        _engine(args(fsdp=""))


def test_ratio_mode_is_the_same_call_with_args_settings_and_a_no_decay_group(tmp_path, monkeypatch):
    from badam import BlockOptimizerRatio
    from badam.hf import BAdamCallback

    model = tiny_llama()
    args = training_args(tmp_path, 1, adam_beta1=0.8, adam_epsilon=1e-6, seed=3)
    kwargs = badam_trainer_kwargs(model, args, badam_mode="ratio", update_ratio=0.25, switch_every=7)
    optimizer = kwargs["optimizers"][0]
    assert isinstance(optimizer, BlockOptimizerRatio) and isinstance(kwargs["callbacks"][0], BAdamCallback)
    assert (optimizer.update_ratio, optimizer.switch_every, optimizer.seed) == (0.25, 7, 3)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 1 for p in no_decay["params"]) and all(p.ndim == 2 for p in decay["params"])
    assert decay["lr"] == 5e-3 and decay["betas"] == (0.8, 0.999) and decay["eps"] == 1e-6

    with pytest.raises(ValueError, match="base_optimizer_fn applies to the layer-wise mode only"):
        badam_trainer_kwargs(model, args, base_optimizer_fn=torch.optim.SGD, badam_mode="ratio")
    with pytest.raises(ValueError, match="unknown badam_mode 'blocks'"):
        badam_trainer_kwargs(model, args, badam_mode="blocks")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    with pytest.raises(ValueError, match="ratio mode .* not on fsdp2"):
        badam_trainer_kwargs(model, args, badam_mode="ratio")


def _in_backward_run(output_dir, in_backward, **overrides):
    model = tiny_llama(layers=3, seed=0)
    args = training_args(output_dir, 6, gradient_accumulation_steps=1, max_grad_norm=0.0, **overrides)
    kwargs = badam_trainer_kwargs(model, args, switch_block_every=2, verbose=0, update_in_backward=in_backward)
    trainer = Trainer(model=model, args=args, train_dataset=RepeatTask(16), **kwargs)
    trainer.train()
    norms = [h["grad_norm"] for h in trainer.state.log_history if "loss" in h]
    return model, block_optimizer(trainer), norms


def test_update_in_backward_is_on_where_nothing_needs_the_whole_gradient(tmp_path):
    model = tiny_llama()
    on = badam_trainer_kwargs(model, training_args(tmp_path, 1, gradient_accumulation_steps=1, max_grad_norm=0.0))
    assert on["optimizers"][0].update_in_backward
    for overrides in ({"gradient_accumulation_steps": 1}, {"max_grad_norm": 0.0}, {"optim": "sgd", "max_grad_norm": 0}):
        off = badam_trainer_kwargs(model, training_args(tmp_path, 1, **overrides))
        assert not off["optimizers"][0].update_in_backward, overrides
    with pytest.raises(ValueError, match="before the Trainer could clip the gradients to max_grad_norm=1.0"):
        badam_trainer_kwargs(model, training_args(tmp_path, 1), update_in_backward=True)
    accumulating = badam_trainer_kwargs(model, training_args(tmp_path, 1, max_grad_norm=0.0), update_in_backward=True)
    assert accumulating["optimizers"][0].holder.in_backward.accumulation_steps == 2


def test_trainer_in_backward_equals_the_step_and_logs_the_true_grad_norm(tmp_path):
    # adamw_torch, not the default fused kernel: fp32 tensors then take torch's single-tensor step in
    # both runs, bit for bit (the fused kernel agrees to about 1e-7 a step; tests/test_tensor_step.py)
    stepped, _, step_norms = _in_backward_run(tmp_path / "step", False, optim="adamw_torch")
    in_backward, optimizer, backward_norms = _in_backward_run(tmp_path / "backward", True, optim="adamw_torch")
    assert optimizer.update_in_backward
    for (name, a), b in zip(stepped.named_parameters(), in_backward.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    assert all(n > 0 for n in backward_norms)
    torch.testing.assert_close(torch.tensor(backward_norms), torch.tensor(step_norms), rtol=1e-5, atol=0)
