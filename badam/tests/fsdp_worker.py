"""One rank of the 2-process CPU runs of BAdam on accelerate's FSDP2 that tests/test_fsdp.py starts.

    accelerate launch --config_file scripts/configs/accelerate_fsdp2.yaml --num_processes 2 fsdp_worker.py CASE OUT_FILE

accelerate runs FSDP on GPUs only and ignores the config's FSDP on CPU, so on these ranks the
Trainer's accelerator is switched to FSDP2 after `Trainer(...)`, with the plugin the config's
environment describes: the state a GPU run has from the start. Same model, batches and block order
as distributed_worker.py.
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from distributed_worker import STEPS, TRAINER_ARGS, K, badam_trainer_run, full_params

from badam import unwrap
from badam.distributed import leave

# Saved in the middle of a block (K=2), so the resumed run needs the Adam states and masters restored.
SAVE_STEPS = 3


def switch_to_fsdp2(trainer):
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    trainer.accelerator.state.distributed_type = DistributedType.FSDP
    trainer.accelerator.state.fsdp_plugin = (
        FullyShardedDataParallelPlugin()
    )  # from accelerate launch's FSDP_* variables
    trainer.is_fsdp_enabled = True


def trainer_run(output_dir, resume=None, dtype=torch.float32, **overrides):
    from test_hf import training_args

    args = training_args(output_dir, STEPS, **(TRAINER_ARGS | {"save_steps": SAVE_STEPS} | overrides))
    return badam_trainer_run(args, resume, dtype, before_train=switch_to_fsdp2)


def case_trainer(out, dtype=torch.float32, **overrides):
    output_dir = Path(out).parent / "trainer"
    trainer, model = trainer_run(output_dir, dtype=dtype, **overrides)
    straight = full_params(model)
    block_optimizer = unwrap(trainer.optimizer).block_optimizer
    masters = list(block_optimizer.masters.master_of.values())
    _, resumed_model = trainer_run(
        output_dir, resume=str(output_dir / f"checkpoint-{SAVE_STEPS}"), dtype=dtype, **overrides
    )
    resumed = full_params(resumed_model)
    if dist.get_rank() == 0:
        torch.save(
            {
                "params": straight,
                "resumed_equal": all(torch.equal(straight[n], resumed[n]) for n in straight),
                "sharded": all(type(p).__name__ == "DTensor" for p in model.parameters()),
                "masters_sharded": [type(m).__name__ for m in masters],
                "blocks_seen": block_optimizer.schedule.global_step // K,
            },
            out,
        )


def case_trainer_bf16(out):
    case_trainer(out, dtype=torch.bfloat16, gradient_checkpointing=True)


if __name__ == "__main__":
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    case, out = sys.argv[1], sys.argv[2]
    globals()[f"case_{case}"](out)
    leave()
