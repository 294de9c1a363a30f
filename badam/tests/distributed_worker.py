"""One rank of the 2-process CPU (gloo) runs that tests/test_distributed.py starts with torchrun.

    torchrun --nproc_per_node 2 distributed_worker.py CASE OUT_FILE

Each case trains a tiny Llama with BAdam across block switches and writes, from rank 0, what the
test compares (parameters, or a verdict) to OUT_FILE with torch.save.
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).parent))
from badam_tiny import batch, lm_loss, tiny_llama

from badam import AdamMini, BlockOptimizer, unwrap
from badam.checkpoint import load_checkpoint, save_checkpoint
from badam.distributed import follow_block_switches, leave

STEPS, RESUME_AT, K, LAYERS, GLOBAL_BATCH = 7, 3, 2, 3, 4
# The Trainer runs compared with one process (eps: see block_optimizer).
TRAINER_ARGS = {"gradient_checkpointing": False, "save_steps": 2, "adam_epsilon": 1e-3}


def badam_trainer_run(args, resume=None, dtype=torch.float32, before_train=None):
    """A tiny Llama trained by the Trainer with BAdam (K blocks steps, ascending) under `args`.

    `before_train(trainer)` runs between `Trainer(...)` and `train()`. Returns (trainer, model).
    """
    from test_hf import RepeatTask
    from transformers import Trainer

    from badam.hf import badam_trainer_kwargs

    model = tiny_llama(layers=LAYERS, dtype=dtype)
    kwargs = badam_trainer_kwargs(model, args, resume, switch_block_every=K, switch_mode="ascending", verbose=0)
    trainer = Trainer(model=model, args=args, train_dataset=RepeatTask(32), **kwargs)
    if before_train is not None:
        before_train(trainer)
    trainer.train(resume_from_checkpoint=resume)
    return trainer, model


def one_process_trainer_run(output_dir):
    """The reference for the Trainer runs on 2 ranks: one process, no engine, the same global batches
    (2 ranks x 2 sequences = 4 per micro-batch)."""
    from test_hf import training_args

    return badam_trainer_run(training_args(output_dir, STEPS, per_device_train_batch_size=4, **TRAINER_ARGS))[1]


def block_optimizer(model, inner="adamw", **kwargs):
    # eps=1e-3: Adam's first steps are lr * sign(g), so with the default eps an entry whose gradient is
    # reduction-order noise (~1e-9) would move by +-lr on one side and the other; a larger eps keeps
    # the comparison about synchronisation, not about the sign of noise.
    if inner == "adam_mini":
        base = AdamMini.from_model(model, lr=1e-3, eps=1e-3)
    else:
        base = torch.optim.AdamW(model.parameters(), lr=1e-3, eps=1e-3, foreach=False)
    return BlockOptimizer(
        base, list(model.named_parameters()), switch_block_every=K, switch_mode="random", seed=1, verbose=0, **kwargs
    )


def train_ddp(model, optimizer, ddp, steps, first_step=0):
    rank, world = dist.get_rank(), dist.get_world_size()
    for step in range(first_step, first_step + steps):
        shard = batch(step, size=GLOBAL_BATCH).chunk(world)[rank]
        lm_loss(ddp, shard).backward()
        optimizer.step()
        optimizer.zero_grad()


def ddp_run(model):
    optimizer = block_optimizer(model)
    ddp = DistributedDataParallel(model)
    follow_block_switches(ddp, optimizer)
    return optimizer, ddp


def case_ddp_equals_single(out):
    model = tiny_llama(layers=LAYERS)
    optimizer, ddp = ddp_run(model)
    train_ddp(model, optimizer, ddp, STEPS)
    if dist.get_rank() == 0:
        torch.save({"params": model.state_dict(), "blocks_seen": optimizer.schedule.global_step // K}, out)


def case_ddp_resume(out):
    straight = tiny_llama(layers=LAYERS)
    optimizer, ddp = ddp_run(straight)
    train_ddp(straight, optimizer, ddp, STEPS)

    first = tiny_llama(layers=LAYERS)
    optimizer, ddp = ddp_run(first)
    train_ddp(first, optimizer, ddp, RESUME_AT)
    checkpoint = {"model": first.state_dict(), "optimizer": optimizer.state_dict()}

    resumed = tiny_llama(layers=LAYERS, seed=7)
    resumed.load_state_dict(checkpoint["model"])
    optimizer = block_optimizer(resumed)
    optimizer.load_state_dict(checkpoint["optimizer"])
    ddp = DistributedDataParallel(resumed)
    follow_block_switches(ddp, optimizer)
    train_ddp(resumed, optimizer, ddp, STEPS - RESUME_AT, first_step=RESUME_AT)
    if dist.get_rank() == 0:
        same = all(torch.equal(a, b) for a, b in zip(straight.parameters(), resumed.parameters()))
        torch.save({"identical": same}, out)


def case_trainer(out):
    from test_hf import training_args

    initial = {n: p.detach().clone() for n, p in tiny_llama(layers=LAYERS).named_parameters()}
    args = training_args(Path(out).parent / "trainer", max_steps=6, gradient_checkpointing=False, save_strategy="no")
    trainer, model = badam_trainer_run(args)
    optimizer = unwrap(trainer.optimizer)
    # Every rank must end with the same weights: a block whose gradients DDP did not all-reduce
    # would have trained on each rank's own data and drifted apart.
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    if dist.get_rank() == 0:
        moved = sorted(
            {n.split(".")[2] for n, p in model.named_parameters() if "layers" in n and not torch.equal(p, initial[n])}
        )
        torch.save(
            {
                "ranks_equal": torch.equal(gathered[0], gathered[1]),
                "layers_moved": moved,
                "switch_hooks": len(optimizer._switch_hooks),
            },
            out,
        )


def sharded(model):
    from torch.distributed.fsdp import fully_shard

    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    return model


def full_params(model):
    return {n: p.full_tensor() if hasattr(p, "full_tensor") else p.detach() for n, p in model.named_parameters()}


def case_fsdp_equals_single(out, **optimizer_kwargs):
    model = sharded(tiny_llama(layers=LAYERS))
    optimizer = block_optimizer(model, **optimizer_kwargs)
    train_ddp(model, optimizer, model, STEPS)
    params = full_params(model)
    if dist.get_rank() == 0:
        torch.save({"params": params, "blocks_seen": optimizer.schedule.global_step // K}, out)


def case_fsdp_bread_sgd(out):
    case_fsdp_equals_single(out, sgd_mode="all", sgd_lr_scaling=0.5)


def case_fsdp_adam_mini(out):
    case_fsdp_equals_single(out, inner="adam_mini")


def case_fsdp_resume(out, resume_at=RESUME_AT):
    # bf16, so the fp32 masters exist and are sharded DTensors; they must survive the checkpoint.
    straight = sharded(tiny_llama(layers=LAYERS, dtype=torch.bfloat16))
    optimizer = block_optimizer(straight)
    train_ddp(straight, optimizer, straight, STEPS)

    first = sharded(tiny_llama(layers=LAYERS, dtype=torch.bfloat16))
    optimizer = block_optimizer(first)
    train_ddp(first, optimizer, first, resume_at)
    masters_sharded = all(type(m).__name__ == "DTensor" for m in optimizer.masters.master_of.values())
    checkpoint = Path(out).parent / "fsdp_checkpoint"
    save_checkpoint(checkpoint, first, optimizer)

    resumed = sharded(tiny_llama(layers=LAYERS, dtype=torch.bfloat16, seed=7))
    optimizer = block_optimizer(resumed)
    load_checkpoint(checkpoint, resumed, optimizer)
    train_ddp(resumed, optimizer, resumed, STEPS - resume_at, first_step=resume_at)
    a, b = full_params(straight), full_params(resumed)
    if dist.get_rank() == 0:
        torch.save({"identical": all(torch.equal(a[n], b[n]) for n in a), "masters_sharded": masters_sharded}, out)


def case_fsdp_resume_after_switch(out):
    # Saved right after a switch: the new block has masters but no Adam state yet.
    case_fsdp_resume(out, resume_at=2 * K)


def case_ratio_refused(out):
    from badam import BlockOptimizerRatio

    model = sharded(tiny_llama(layers=LAYERS))
    try:
        BlockOptimizerRatio(model.parameters(), list(model.named_parameters()))
    except ValueError as error:
        message = str(error)
    else:
        message = ""
    if dist.get_rank() == 0:
        torch.save({"message": message}, out)


if __name__ == "__main__":
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    case, out = sys.argv[1], sys.argv[2]
    globals()[f"case_{case}"](out)
    leave()
