"""BAdam on DeepSpeed ZeRO-3: 2-process gloo runs on CPU (DS_ACCELERATOR=cpu), and what is refused."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from badam_launch import launch
from badam_tiny import batch, lm_loss, tiny_llama
from distributed_worker import one_process_trainer_run
from test_distributed import single_process_run

from badam import AdamMini, BlockOptimizer, BlockOptimizerRatio

pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install -r requirements.txt)")

WORKER = Path(__file__).with_name("zero3_worker.py")


def torchrun(case: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{case}.pt"
    launch(WORKER, case, str(out), deepspeed=True)
    return torch.load(out, weights_only=True)


@pytest.mark.parametrize("case", ["equals_single", "checkpointing_equals_single"])
@pytest.mark.distributed
def test_zero3_equals_single_process_across_switches(tmp_path, case):
    result = torchrun(case, tmp_path)
    assert result["blocks_seen"] >= 3, "the run must cross at least two block switches"
    model = single_process_run()
    for name, param in model.named_parameters():
        torch.testing.assert_close(result["params"][name], param.detach(), rtol=0, atol=1e-6, msg=name)
    # DeepSpeed's fp32 masters cover this rank's share of the active block and nothing else.
    blocks = [block for block, _ in result["partition_numel"]]
    assert len(set(blocks)) == 3
    for block, numel in result["partition_numel"]:
        assert numel == result["block_share"][block]


@pytest.mark.distributed
def test_zero3_resume_equals_straight_run(tmp_path):
    assert torchrun("resume", tmp_path)["identical"]


@pytest.mark.distributed
def test_trainer_with_a_zero3_config_equals_one_process_and_resumes(tmp_path):
    result = torchrun("trainer", tmp_path)
    assert result["zero3"], "the Trainer's DeepSpeed ZeRO-3 config did not put BAdam in ZeRO-3 mode"
    assert result["layers_moved"] == ["0", "1", "2"]
    assert result["resumed_equal"], "resuming from checkpoint-4 must reproduce the straight run"
    model = one_process_trainer_run(tmp_path / "single")
    for name, param in model.named_parameters():
        torch.testing.assert_close(result["params"][name], param.detach(), rtol=0, atol=1e-6, msg=name)


def zero3_optimizer(model, **kwargs):
    base = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return BlockOptimizer(base, list(model.named_parameters()), verbose=0, ds_zero3_enabled=True, **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"active_modules": ["lm_head"]}, "active_modules"), ({"sgd_mode": "all"}, "BREAD")],
)
def test_modes_that_train_across_switches_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        zero3_optimizer(tiny_llama(), **kwargs)


def test_adam_mini_inner_solver_is_refused():
    model = tiny_llama()
    with pytest.raises(ValueError, match="AdamMini"):
        BlockOptimizer(AdamMini.from_model(model), list(model.named_parameters()), ds_zero3_enabled=True)


def test_partitioned_parameters_need_zero3_mode():
    model = tiny_llama()
    model.model.layers[0].mlp.up_proj.weight.ds_id = 0
    with pytest.raises(ValueError, match="ds_zero3_enabled=True"):
        BlockOptimizer(torch.optim.AdamW(model.parameters()), list(model.named_parameters()), verbose=0)
    with pytest.raises(ValueError, match="one process.*up_proj"):
        BlockOptimizerRatio(model.parameters(), list(model.named_parameters()))


def test_zero3_mode_outside_deepspeed_is_refused_at_the_first_step():
    """The published package ran such a run without switching blocks, with bf16 Adam states."""
    model = tiny_llama()
    optimizer = BlockOptimizer(
        torch.optim.AdamW(model.parameters()), list(model.named_parameters()), ds_zero3_enabled=True
    )
    lm_loss(model, batch()).backward()
    with pytest.raises(RuntimeError, match="ds_zero3_enabled=True, but this model is not under DeepSpeed ZeRO-3"):
        optimizer.step()
    assert not BlockOptimizer(
        torch.optim.AdamW(model.parameters()), list(model.named_parameters()), ds_zero3_enabled=None
    ).ds_zero3_enabled


def test_groups_keep_every_parameter_and_only_the_block_trains():
    """DeepSpeed drops empty groups for good, so no group may be empty at any switch."""
    model = tiny_llama(layers=3)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    base = torch.optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}])
    optimizer = BlockOptimizer(
        base,
        list(model.named_parameters()),
        switch_block_every=1,
        switch_mode="ascending",
        verbose=0,
        ds_zero3_enabled=True,
    )
    for block in range(3):
        assert optimizer.active_block == block
        trainable = {p for p in model.parameters() if p.requires_grad}
        assert trainable == set(optimizer.blocks[block])
        assert [len(g["params"]) for g in base.param_groups] == [
            len([p for p in group if p in set(optimizer.managed)]) for group in (decay, no_decay)
        ]
        assert not optimizer.masters.master_of, "DeepSpeed holds the fp32 masters under ZeRO-3"
        optimizer.count_step()


def test_checkpoint_of_another_block_is_refused_with_the_way_out():
    optimizer = zero3_optimizer(tiny_llama(layers=3), switch_block_every=1, switch_mode="ascending")
    saved = optimizer.state_dict()
    optimizer.count_step()
    with pytest.raises(ValueError, match="badam.checkpoint.load_checkpoint"):
        optimizer.load_state_dict(saved)


def test_engine_checks():
    from badam.zero3 import follow_engine

    model = tiny_llama()
    optimizer = zero3_optimizer(model)
    stage2 = SimpleNamespace(zero_optimization_stage=lambda: 2, basic_optimizer=optimizer)
    with pytest.raises(ValueError, match="stage 3"):
        follow_engine(stage2, optimizer)
    other = SimpleNamespace(zero_optimization_stage=lambda: 3, basic_optimizer=torch.optim.SGD(model.parameters()))
    with pytest.raises(ValueError, match="deepspeed.initialize"):
        follow_engine(other, optimizer)


def test_schedule_round_trip_and_a_folder_without_one(tmp_path):
    from badam.checkpoint import read_schedule, write_schedule

    saved, resumed = (
        zero3_optimizer(tiny_llama(layers=4), switch_block_every=1, switch_mode="random") for _ in range(2)
    )
    for _ in range(5):  # into the second block-epoch, whose order comes from the saved random state
        saved.count_step()
    write_schedule(tmp_path / "checkpoint-5", saved)
    resumed.restore_schedule(*read_schedule(tmp_path / "checkpoint-5"))
    assert resumed.active_block == saved.active_block and resumed.global_step == 5
    for _ in range(6):
        saved.count_step()
        resumed.count_step()
        assert resumed.active_block == saved.active_block
    with pytest.raises(FileNotFoundError, match="not saved by BAdam.s layer-wise optimizer"):
        read_schedule(tmp_path)
