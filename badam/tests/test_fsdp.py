"""BAdam on accelerate's FSDP2 (badam.fsdp): the Trainer on 2 gloo ranks, and the optimizer in one."""

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from badam_launch import free_port, launch
from badam_tiny import batch, lm_loss, tiny_llama
from distributed_worker import LAYERS, one_process_trainer_run, sharded
from fsdp_worker import SAVE_STEPS

from badam.fsdp import FSDPBlockOptimizer
from badam.memory import held_bytes

WORKER = Path(__file__).with_name("fsdp_worker.py")
CONFIG = Path(__file__).parents[2] / "scripts" / "configs" / "accelerate_fsdp2.yaml"


def accelerate_launch(case: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{case}.pt"
    launch(WORKER, case, str(out), accelerate_config=CONFIG)
    return torch.load(out, weights_only=True)


def saved_optimizer_keys(checkpoint: Path) -> list[str]:
    return sorted(dcp.FileSystemReader(str(checkpoint / "optimizer_0")).read_metadata().state_dict_metadata)


@pytest.mark.distributed
def test_trainer_on_fsdp2_equals_one_process_and_resumes(tmp_path):
    result = accelerate_launch("trainer", tmp_path)
    assert result["sharded"], "accelerate did not shard the model into DTensors"
    assert result["blocks_seen"] >= 3, "the run must cross at least two block switches"
    assert result["resumed_equal"], f"resuming from checkpoint-{SAVE_STEPS} (mid-block) must reproduce the straight run"
    # The checkpoint holds the state of the block active at its step (ascending, K=2: layer 1) only.
    keys = saved_optimizer_keys(tmp_path / "trainer" / f"checkpoint-{SAVE_STEPS}")
    state_keys = [k for k in keys if k.startswith("optimizer.state.")]
    assert state_keys and all(k.startswith("optimizer.state.model.layers.1.") for k in state_keys)
    assert any(k.endswith(".exp_avg") for k in state_keys)
    model = one_process_trainer_run(tmp_path / "single")
    for name, param in model.named_parameters():
        torch.testing.assert_close(result["params"][name], param.detach(), rtol=0, atol=1e-6, msg=name)


@pytest.mark.distributed
def test_bf16_trainer_on_fsdp2_keeps_sharded_masters_through_a_checkpoint(tmp_path):
    result = accelerate_launch("trainer_bf16", tmp_path)
    assert result["masters_sharded"] and set(result["masters_sharded"]) == {"DTensor"}
    assert result["resumed_equal"], "a resumed bf16 run with gradient checkpointing must reproduce the straight run"
    keys = saved_optimizer_keys(tmp_path / "trainer" / f"checkpoint-{SAVE_STEPS}")
    assert any(k.endswith(".badam_master") for k in keys), "the fp32 masters must be in the checkpoint"


@pytest.fixture
def one_rank():
    """A one-process gloo group, enough for fully_shard."""
    dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"tcp://127.0.0.1:{free_port()}")
    yield
    dist.destroy_process_group()


def fsdp_block_optimizer(model, **kwargs):
    make_base = lambda m: torch.optim.AdamW(m.parameters(), lr=1e-3)  # noqa: E731
    return FSDPBlockOptimizer(model, make_base, switch_block_every=2, switch_mode="ascending", verbose=0, **kwargs)


def train_step(model, optimizer, seed, scheduler=None):
    lm_loss(model, batch(seed)).backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad()


def full(tensor):
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def test_before_sharding_it_holds_hyperparameters_only(one_rank):
    model = tiny_llama(layers=LAYERS, dtype=torch.bfloat16)
    optimizer = fsdp_block_optimizer(model)
    assert optimizer.bind() is None and optimizer.state == {}
    assert [group["params"] for group in optimizer.param_groups] == [[]]
    # accelerate's device-placement round trip, before it shards the model:
    optimizer.load_state_dict(optimizer.state_dict())
    assert optimizer.param_groups[0]["lr"] == 1e-3
    with pytest.raises(RuntimeError, match="cannot step before the model is sharded"):
        optimizer.step()


def test_binds_to_the_sharded_block_and_follows_the_scheduler(one_rank):
    model = tiny_llama(layers=LAYERS, dtype=torch.bfloat16)
    optimizer = fsdp_block_optimizer(model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    sharded(model)
    block_optimizer = optimizer.bind()
    layer0 = [p for n, p in model.named_parameters() if n.startswith("model.layers.0.")]
    assert optimizer.param_groups[0]["params"] == layer0
    assert all(type(m).__name__ == "DTensor" for m in block_optimizer.masters.master_of.values())
    assert set(optimizer.state) == set(layer0) and all("badam_master" in s for s in optimizer.state.values())
    for seed in range(3):
        train_step(model, optimizer, seed, scheduler)
    assert block_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"] == 1e-3 * 0.5**3
    layer1 = [p for n, p in model.named_parameters() if n.startswith("model.layers.1.")]
    assert optimizer.param_groups[0]["params"] == layer1, "the groups must follow the switch to block 1"
    assert set(optimizer.state_dict()["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "badam_master"}
    # Memory reports see the masters as masters, not as optimizer state.
    held = held_bytes(optimizer, model)
    masters = block_optimizer.masters.master_of.values()
    assert held.master_copies == sum(m.to_local().untyped_storage().nbytes() for m in masters)
    assert held.optimizer_states == held_bytes(block_optimizer, model).optimizer_states


def test_loads_a_checkpoint_of_its_block_and_refuses_another(one_rank):
    model = tiny_llama(layers=LAYERS, dtype=torch.bfloat16)
    optimizer = fsdp_block_optimizer(model)
    sharded(model)
    for seed in range(3):  # block 1, one step into it
        train_step(model, optimizer, seed)
    saved = copy.deepcopy(optimizer.state_dict())  # state_dict returns the live tensors, as torch's does
    schedule = json.loads(saved["param_groups"][0]["badam_schedule"])
    assert schedule["active_block"] == 1 and schedule["schedule"]["steps_in_block"] == 1

    fresh = fsdp_block_optimizer(sharded(tiny_llama(layers=LAYERS, dtype=torch.bfloat16, seed=1)))
    with pytest.raises(ValueError, match="saved with block 1 active.*badam_trainer_kwargs\\(resume_from_checkpoint"):
        fresh.load_state_dict(saved)

    resumed = fsdp_block_optimizer(tiny_llama(layers=LAYERS, dtype=torch.bfloat16, seed=1))
    resumed.restore_schedule(schedule["schedule"], schedule["active_block"])
    sharded(resumed.model)
    assert resumed.bind().active_block == 1
    assert set(resumed.state_dict()["state"][0]) == set(saved["state"][0]), "the state a load fills must exist"
    resumed.load_state_dict(saved)
    loaded = resumed.state[resumed.param_groups[0]["params"][0]]
    for key, value in saved["state"][0].items():
        assert torch.equal(full(loaded[key]), full(value)), key
    assert resumed.block_optimizer.schedule.global_step == 3
