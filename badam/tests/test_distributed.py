"""BAdam under DDP and FSDP2: 2-process gloo runs on CPU, compared with one process."""

import json
from pathlib import Path

import pytest
import torch
from badam_launch import launch
from badam_tiny import batch, lm_loss, tiny_llama
from distributed_worker import GLOBAL_BATCH, LAYERS, STEPS, block_optimizer

WORKER = Path(__file__).with_name("distributed_worker.py")


def torchrun(case: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{case}.pt"
    launch(WORKER, case, str(out))
    return torch.load(out, weights_only=True)


def single_process_run(**optimizer_kwargs):
    """The reference: the same steps on the whole global batch in this process."""
    model = tiny_llama(layers=LAYERS)
    optimizer = block_optimizer(model, **optimizer_kwargs)
    for step in range(STEPS):
        lm_loss(model, batch(step, size=GLOBAL_BATCH)).backward()
        optimizer.step()
        optimizer.zero_grad()
    return model


@pytest.mark.distributed
def test_ddp_equals_single_process_across_switches(tmp_path):
    result = torchrun("ddp_equals_single", tmp_path)
    assert result["blocks_seen"] >= 3, "the run must cross at least two block switches"
    model = single_process_run()
    for name, param in model.state_dict().items():
        torch.testing.assert_close(result["params"][name], param, rtol=0, atol=1e-6, msg=name)


@pytest.mark.parametrize(
    "case, optimizer_kwargs",
    [
        ("fsdp_equals_single", {}),
        ("fsdp_bread_sgd", {"sgd_mode": "all", "sgd_lr_scaling": 0.5}),
        ("fsdp_adam_mini", {"inner": "adam_mini"}),
    ],
    ids=["adamw", "bread-sgd", "adam-mini"],
)
@pytest.mark.distributed
def test_fsdp2_equals_single_process_across_switches(tmp_path, case, optimizer_kwargs):
    # BREAD's SGD hooks then see the reduce-scattered shard of the gradient, and Adam-mini's per-head
    # and per-row second moments are computed on row shards: both must match one process.
    result = torchrun(case, tmp_path)
    assert result["blocks_seen"] >= 3
    model = single_process_run(**optimizer_kwargs)
    for name, param in model.named_parameters():
        torch.testing.assert_close(result["params"][name], param.detach(), rtol=0, atol=1e-6, msg=name)


@pytest.mark.parametrize("case", ["fsdp_resume", "fsdp_resume_after_switch"])
@pytest.mark.distributed
def test_fsdp2_sharded_checkpoint_resumes_exactly(tmp_path, case):
    result = torchrun(case, tmp_path)
    assert result["masters_sharded"], "the fp32 masters of a sharded bf16 model must be sharded too"
    assert result["identical"]


@pytest.mark.distributed
def test_ddp_resume_equals_straight_run(tmp_path):
    assert torchrun("ddp_resume", tmp_path)["identical"]


@pytest.mark.distributed
def test_trainer_keeps_every_block_synchronised(tmp_path):
    result = torchrun("trainer", tmp_path)
    assert result["switch_hooks"] == 1, "the Trainer's DDP wrapper was not found"
    assert result["layers_moved"] == ["0", "1", "2"]
    assert result["ranks_equal"], "a block trained unsynchronised after a switch"


@pytest.mark.distributed
def test_ratio_mode_is_refused_on_several_processes(tmp_path):
    # Its hooks would take each gradient before DDP averages it; FSDP2 never passes it through them.
    message = torchrun("ratio_refused", tmp_path)["message"]
    assert "runs on one process" in message and "model.embed_tokens.weight" in message and "BlockOptimizer" in message


def test_rebuild_refuses_static_graph():
    from badam.distributed import rebuild_reducer

    class Fake(torch.nn.parallel.DistributedDataParallel):
        def __init__(self):  # no process group needed to reach the check
            self.static_graph = True

    with pytest.raises(ValueError, match="static_graph=False"):
        rebuild_reducer(Fake())


@pytest.mark.distributed
def test_memory_per_rank_script(tmp_path):
    pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install -r requirements.txt)")
    out = tmp_path / "memory.json"
    launch(
        Path(__file__).parents[2] / "scripts" / "bench_distributed_memory.py",
        "--layers",
        "4",
        "--hidden",
        "128",
        "--intermediate",
        "344",
        "--heads",
        "4",
        "--vocab",
        "256",
        "--seq",
        "32",
        "--out",
        str(out),
        deepspeed=True,
    )
    figures = {f["engine"]: f for f in json.loads(out.read_text())["figures"]}
    ddp, fsdp2, zero3 = figures["ddp"], figures["fsdp2"], figures["zero3"]
    # Replicated: every rank holds the bf16 model and 14 bytes per active parameter (bf16 gradient,
    # fp32 master, m and v; Adam's step counters on top); sharded over 2 ranks: half of that.
    head_dim = 128 // 4
    rotary_buffer = head_dim // 2 * 4  # the fp32 rotary inv_freq, which held_bytes counts with the weights
    assert ddp["weights_mb"] * 2**20 == 2 * ddp["M"] + rotary_buffer
    assert ddp["optimizer_held_mb"] * 2**20 == pytest.approx(14 * ddp["active_block_params"], rel=0.01)
    assert fsdp2["max_rank_total_mb"] == pytest.approx(ddp["rank_total_mb"] / 2, rel=0.02)
    assert fsdp2["max_rank_total_mb"] <= fsdp2["formula_per_rank_mb"]
    # ZeRO-3: bf16 weight partitions, and for the active block fp32 master and Adam partitions and
    # bf16 gradient partitions: the same bytes as FSDP2, a tensor's padding aside.
    assert zero3["weights_mb"] == pytest.approx(ddp["weights_mb"] / 2, rel=0.01)
    assert zero3["optimizer_held_mb"] == pytest.approx(ddp["optimizer_held_mb"] / 2, rel=0.01)
    assert zero3["max_rank_total_mb"] <= zero3["formula_per_rank_mb"]
