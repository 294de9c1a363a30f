"""One rank of the 2-process CPU DeepSpeed ZeRO-3 runs that tests/test_zero3.py starts with torchrun.

    DS_ACCELERATOR=cpu torchrun --nproc_per_node 2 zero3_worker.py CASE OUT_FILE

Same model, batches, base optimizer and block order as distributed_worker.py, so the results
compare with the single-process reference of test_distributed.py.
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
import deepspeed
from badam_tiny import batch, lm_loss, tiny_llama
from distributed_worker import (
    GLOBAL_BATCH,
    LAYERS,
    RESUME_AT,
    STEPS,
    TRAINER_ARGS,
    K,
    badam_trainer_run,
    block_optimizer,
)

from badam import truncate_backward, unwrap
from badam.checkpoint import load_checkpoint, save_checkpoint
from badam.distributed import follow_block_switches, leave

CONFIG = {
    "train_micro_batch_size_per_gpu": GLOBAL_BATCH // 2,
    "gradient_accumulation_steps": 1,
    "gradient_clipping": 0.0,  # DeepSpeed clips at 1.0 unless told; the reference loop does not clip
    "zero_optimization": {"stage": 3},
    "zero_allow_untested_optimizer": True,
    "steps_per_print": 10**9,
}


def zero3_run(model, checkpointing=False):
    optimizer = block_optimizer(model, ds_zero3_enabled=True)
    if checkpointing:
        model.activation_checkpointing_enable()
        truncate_backward(model)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=CONFIG)
    follow_block_switches(engine, optimizer)
    return engine, optimizer


def train(engine, steps, first_step=0, seen=None):
    rank, world = dist.get_rank(), dist.get_world_size()
    for step in range(first_step, first_step + steps):
        shard = batch(step, size=GLOBAL_BATCH).chunk(world)[rank]
        engine.backward(lm_loss(engine, shard))
        engine.step()
        if seen is not None:
            seen.append((unwrap(engine.optimizer).active_block, partition_numel(engine)))


def partition_numel(engine):
    """Elements of this rank's fp32 master partitions: what DeepSpeed's wrapper holds now."""
    return sum(flat.numel() for flat in engine.optimizer.fp32_partitioned_groups_flat)


def full_params(model):
    with deepspeed.zero.GatheredParameters(list(model.parameters())):
        return {n: p.detach().clone() for n, p in model.named_parameters()}


def case_equals_single(out, checkpointing=False):
    model = tiny_llama(layers=LAYERS)
    engine, optimizer = zero3_run(model, checkpointing)
    seen = []
    train(engine, STEPS, seen=seen)
    params = full_params(model)
    # Each rank's share of a block: every tensor is split into world-size parts, the last one padded.
    block_share = [sum(p.partition_numel() for p in block) for block in optimizer.blocks]
    if dist.get_rank() == 0:
        torch.save(
            {
                "params": params,
                "blocks_seen": optimizer.schedule.global_step // K,
                "partition_numel": seen,
                "block_share": block_share,
            },
            out,
        )


def case_checkpointing_equals_single(out):
    # Recomputation in backward must see the weights gathered, also after DeepSpeed's wrapper is rebuilt.
    case_equals_single(out, checkpointing=True)


def case_resume(out):
    straight = tiny_llama(layers=LAYERS)
    engine, _ = zero3_run(straight)
    train(engine, STEPS)
    expected = full_params(straight)

    first = tiny_llama(layers=LAYERS)
    engine, optimizer = zero3_run(first)
    train(engine, RESUME_AT)
    checkpoint = Path(out).parent / "zero3_checkpoint"
    save_checkpoint(checkpoint, engine, optimizer)

    resumed = tiny_llama(layers=LAYERS, seed=7)
    engine, optimizer = zero3_run(resumed)
    load_checkpoint(checkpoint, engine, optimizer)
    train(engine, STEPS - RESUME_AT, first_step=RESUME_AT)
    got = full_params(resumed)
    if dist.get_rank() == 0:
        torch.save({"identical": all(torch.equal(expected[n], got[n]) for n in expected)}, out)


def trainer_run(output_dir, max_steps, resume=None):
    from test_hf import training_args

    config = {
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "zero_optimization": {"stage": 3},
        "steps_per_print": 10**9,
    }
    return badam_trainer_run(training_args(output_dir, max_steps, deepspeed=config, **TRAINER_ARGS), resume)


def case_trainer(out):
    output_dir = Path(out).parent / "trainer"
    trainer, model = trainer_run(output_dir, STEPS)
    straight = full_params(model)
    optimizer = unwrap(trainer.optimizer)
    layers_moved = sorted(
        {n.split(".")[2] for n, p in straight.items() if "layers" in n and not torch.equal(p, INITIAL[n])}
    )
    _, resumed_model = trainer_run(output_dir, STEPS, resume=str(output_dir / "checkpoint-4"))
    resumed = full_params(resumed_model)
    if dist.get_rank() == 0:
        torch.save(
            {
                "layers_moved": layers_moved,
                "zero3": optimizer.ds_zero3_enabled,
                "params": straight,
                "resumed_equal": all(torch.equal(straight[n], resumed[n]) for n in straight),
            },
            out,
        )


INITIAL = {n: p.detach().clone() for n, p in tiny_llama(layers=LAYERS).named_parameters()}


if __name__ == "__main__":
    torch.set_num_threads(1)
    deepspeed.init_distributed("gloo")
    case, out = sys.argv[1], sys.argv[2]
    globals()[f"case_{case}"](out)
    leave()
