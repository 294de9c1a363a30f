"""BAdam in a plain PyTorch loop on DDP, FSDP2 or DeepSpeed ZeRO-3: the multi-GPU / multi-node recipe.

One process per device, started by any launcher (scripts/launch.sh wraps them):

    torchrun --nproc_per_node 8 scripts/train_distributed.py --engine fsdp2 --model meta-llama/Meta-Llama-3-70B \
        --data alpaca_gpt4_en.json --switch_every 50
    deepspeed --num_gpus 8 scripts/train_distributed.py --engine zero3 --model ...
    torchrun --nproc_per_node 2 scripts/train_distributed.py --engine ddp --model llama-alpaca/configs/tiny_llama.json  # CPU

--model is a hub name, a local model folder, or a config .json (random weights, for smoke tests).
--data is "random" (seeded random tokens) or an Alpaca-format .json/.jsonl file (instruction, input,
output), formatted with the Alpaca prompt, loss on every token; llama-alpaca/ is the full SFT recipe
with prompt masking, templates and the Trainer. Every rank takes its share of each global batch.
Checkpoints (--save_every) go to --output_dir/step-N through badam.checkpoint (each engine's sharded
format, staged and renamed into place whole), and --resume continues from the newest one
exactly. SIGTERM or Ctrl-C finishes the step, writes a checkpoint and exits with 128 + the signal;
an expected error (a missing model, bad data) is one line from rank 0 and exit 2 (BADAM_DEBUG=1: the
traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from badam import BlockOptimizer, truncate_backward
from badam.atomic import atomic_write_text
from badam.checkpoint import load_checkpoint, save_checkpoint
from badam.distributed import follow_block_switches, leave
from badam.preemption import Preempted, StopRequest

ENGINES = ("ddp", "fsdp2", "zero3")
ALPACA_PROMPT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
)


@dataclass
class Args:
    engine: str = "fsdp2"  # ddp, fsdp2 or zero3
    model: str = "meta-llama/Llama-2-7b-hf"  # hub name, local folder, or a config .json (random weights)
    data: str = "random"  # "random" or an Alpaca-format .json/.jsonl file
    steps: int = 100  # optimizer steps
    batch: int = 8  # global batch (sequences per step, split over the ranks)
    seq: int = 512  # tokens per sequence
    lr: float = 1e-5  # AdamW learning rate
    switch_every: int = 50  # K, steps per block
    switch_mode: str = "random"  # block order
    bf16: bool = True  # bf16 weights (fp32 masters for the active block)
    gradient_checkpointing: bool = False  # recompute activations in backward
    output_dir: str = "outputs/train_distributed"  # checkpoints and the loss log
    save_every: int = 0  # checkpoint every N steps (0: only at the end)
    resume: bool = False  # continue from the newest checkpoint in output_dir
    seed: int = 0  # weights of a config model, data order, block order


def parse_args(argv: list[str] | None = None) -> Args:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in asdict(Args()).items():
        kind = (lambda v: v.lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)
        parser.add_argument(f"--{name}", type=kind, default=default)
    args = Args(**vars(parser.parse_args(argv)))
    if args.engine not in ENGINES:
        parser.error(f"--engine {args.engine!r}: choose one of {', '.join(ENGINES)}")
    if args.data != "random" and not Path(args.data).is_file():
        parser.error(f"--data {args.data}: no such file (or use --data random)")
    if args.data != "random" and args.model.endswith(".json"):
        parser.error(f"--data {args.data} needs the model's tokenizer, and --model {args.model} is a bare config")
    return args


def load_model(args: Args) -> torch.nn.Module:
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    if args.model.endswith(".json"):
        torch.manual_seed(args.seed)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(args.model), dtype=dtype)
    elif Path(args.model).exists() or args.model.startswith(("/", ".", "~")) or args.model.count("/") > 1:
        if not (Path(args.model).expanduser() / "config.json").is_file():
            raise FileNotFoundError(f"--model {args.model}: no such model directory (a folder with config.json)")
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
        except OSError as exc:
            raise FileNotFoundError(
                f"--model {args.model}: not found locally and could not be downloaded (no network, "
                f"or no such hub model): pass a local model directory"
            ) from exc
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable()
    return model


def batches(args: Args, vocab: int):
    """Yields (step, input_ids, labels) of this rank for every step: the same global batches on any world size."""
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.batch % world:
        raise ValueError(f"--batch {args.batch} does not split over {world} ranks")
    if args.data == "random":
        for step in range(args.steps):
            ids = torch.randint(
                0, vocab, (args.batch, args.seq), generator=torch.Generator().manual_seed(args.seed + step)
            )
            yield step, ids.chunk(world)[rank], ids.chunk(world)[rank]
        return
    text = Path(args.data).read_text()
    records = (
        json.loads(text)
        if args.data.endswith(".json")
        else [json.loads(line) for line in text.splitlines() if line.strip()]
    )
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(args.seed))
    for step in range(args.steps):
        picked = [records[int(order[(step * args.batch + i) % len(records)])] for i in range(args.batch)]
        texts = [
            f"{ALPACA_PROMPT}### Instruction:\n{r['instruction']}\n\n"
            + (f"### Input:\n{r['input']}\n\n" if r.get("input") else "")
            + f"### Response:\n{r['output']}{tokenizer.eos_token}"
            for r in picked
        ]
        encoded = tokenizer(texts, max_length=args.seq, truncation=True, padding="max_length", return_tensors="pt")
        labels = encoded.input_ids.masked_fill(encoded.attention_mask == 0, -100)
        yield step, encoded.input_ids.chunk(world)[rank], labels.chunk(world)[rank]


def wrap(model, optimizer_fn, args: Args, device: torch.device):
    """Shard or wrap `model` for the engine; returns (the module to call forward on, the BlockOptimizer)."""
    if args.engine == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        # Shard each transformer layer (the classes HF marks unsplittable), then the root.
        for module in model.modules():
            if type(module).__name__ in getattr(model, "_no_split_modules", ()):
                fully_shard(module)
        fully_shard(model)
    optimizer = optimizer_fn(model)
    if args.gradient_checkpointing:
        truncate_backward(model)  # backward and recompute stop at the active block
    if args.engine == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        follow_block_switches(ddp, optimizer)
        return ddp, optimizer
    if args.engine == "zero3":
        import deepspeed

        config = {
            "train_micro_batch_size_per_gpu": args.batch // dist.get_world_size(),
            "gradient_clipping": 0.0,
            "zero_optimization": {"stage": 3},
            "bf16": {"enabled": args.bf16},
            "steps_per_print": 10**9,
            "zero_allow_untested_optimizer": True,
        }
        engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
        follow_block_switches(engine, optimizer)
        return engine, optimizer
    return model, optimizer


def save(forward, optimizer, path: Path) -> None:
    """Write checkpoint `path` (step-N), whole or not at all (badam.checkpoint), then point `latest` at it."""
    save_checkpoint(path, forward, optimizer)
    if dist.get_rank() == 0:
        atomic_write_text(path.parent / "latest", path.name)
    dist.barrier()


def train(args: Args) -> None:
    cuda = torch.cuda.is_available()
    rank = dist.get_rank()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    model = load_model(args).to(device)

    def optimizer_fn(module):
        base = torch.optim.AdamW(module.parameters(), lr=args.lr, weight_decay=0.0)
        return BlockOptimizer(
            base,
            list(module.named_parameters()),
            switch_block_every=args.switch_every,
            switch_mode=args.switch_mode,
            seed=args.seed,
            verbose=int(rank == 0),
            ds_zero3_enabled=args.engine == "zero3",
        )

    forward, optimizer = wrap(model, optimizer_fn, args, device)
    output = Path(args.output_dir)
    first = 0
    if args.resume and (output / "latest").is_file():
        latest = output / (output / "latest").read_text().strip()
        load_checkpoint(latest, forward, optimizer)
        first = int(latest.name.removeprefix("step-"))
    log_file = output / "loss.jsonl"
    if rank == 0:
        # One line per step as it happens; a resumed run drops what the interrupted one logged past its checkpoint.
        output.mkdir(parents=True, exist_ok=True)
        kept = (
            [line for line in log_file.read_text().splitlines() if json.loads(line)["step"] <= first] if first else []
        )
        atomic_write_text(log_file, "".join(line + "\n" for line in kept))
    progress = tqdm(total=args.steps, initial=first, disable=rank != 0, desc=f"BAdam on {args.engine}")
    with StopRequest() as stop:
        for step, input_ids, labels in batches(args, model.config.vocab_size):
            if step < first:
                continue
            train_step(forward, optimizer, input_ids, labels, device, args, step, log_file, progress)
            due = (args.save_every and (step + 1) % args.save_every == 0) or step + 1 == args.steps
            if due or stop.should_stop():
                save(forward, optimizer, output / f"step-{step + 1}")
            if stop.signum is not None and step + 1 < args.steps:  # at the last step the run is complete
                raise Preempted(
                    stop.signum, step + 1, str(output / f"step-{step + 1}"), "the same command and --resume true"
                )
    progress.close()


def train_step(forward, optimizer, input_ids, labels, device, args: Args, step: int, log_file: Path, progress) -> None:
    """One optimizer step; rank 0 appends its loss to the log as it happens."""
    loss = forward(input_ids=input_ids.to(device), labels=labels.to(device)).loss
    block = optimizer.active_block  # after the forward: ZeRO-3 catches up with its switches there
    if args.engine == "zero3":
        forward.backward(loss)
        forward.step()
    else:
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    reduced = loss.detach().float().clone()
    dist.all_reduce(reduced)
    entry = {"step": step + 1, "loss": reduced.item() / dist.get_world_size(), "block": block}
    if dist.get_rank() == 0:
        with open(log_file, "a") as file:
            file.write(json.dumps(entry) + "\n")
    progress.update()
    progress.set_postfix(loss=f"{entry['loss']:.4f}", block=block)


def main(argv: list[str] | None = None) -> None:
    """Every rank runs this; expected errors and preemption end every rank with one line from rank 0."""
    args = parse_args(argv)
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    code = 0
    try:
        train(args)
    except Preempted as exc:
        message, code = f"stopped: {exc}", exc.exit_code
    except (ValueError, OSError) as exc:
        if os.environ.get("BADAM_DEBUG", "") not in ("", "0"):
            raise
        message, code = f"error: {exc} (BADAM_DEBUG=1 shows the traceback)", 2
    if code and dist.get_rank() == 0:
        print(message, file=sys.stderr)
    leave(code)


if __name__ == "__main__":
    main()
