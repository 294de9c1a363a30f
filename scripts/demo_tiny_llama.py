"""Demo: BAdam trains a tiny bf16 Llama on CPU, then prints what the optimizer holds in memory.

The task is learnable in a few hundred steps: each sequence counts from a random start with a
random stride (1, 2 or 3, modulo the vocabulary), so once the model reads the stride off the
context every next token is determined and the loss can fall towards 0. The demo
prints the loss falling, then the optimizer-held bytes it measured next to badam.memory's estimate
for the same model, and the paper's Table 1 for Llama 2-7B. Run (about a minute on 2 cores):

    .venv/bin/python scripts/demo_tiny_llama.py [--steps 300] [--switch-every 25]
"""

from __future__ import annotations

import argparse

import torch
from tqdm import tqdm
from transformers import LlamaConfig, LlamaForCausalLM

from badam import BlockOptimizer
from badam.memory import GB, estimate, held_bytes


def counting_batch(
    generator: torch.Generator, batch: int, length: int, vocab: int
) -> tuple[torch.Tensor, torch.Tensor]:
    start = torch.randint(0, vocab, (batch, 1), generator=generator)
    stride = torch.randint(1, 4, (batch, 1), generator=generator)
    inputs = (start + stride * torch.arange(length)) % vocab
    labels = inputs.clone()
    labels[:, :2] = -100  # the start and the stride are random: the first two targets are not learnable
    return inputs, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--switch-every", type=int, default=25, help="K: optimizer steps per block")
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args()

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=128,
        intermediate_size=344,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    base = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    optimizer = BlockOptimizer(
        base,
        list(model.named_parameters()),
        switch_block_every=args.switch_every,
        switch_mode="random",
        include_embedding=True,
        include_lm_head=True,
        verbose=0,
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps)
    print(
        f"BAdam on a {sum(p.numel() for p in model.parameters()):,}-parameter bf16 Llama: "
        f"{optimizer.num_blocks} blocks, K={args.switch_every}, random order"
    )

    generator = torch.Generator().manual_seed(0)
    measured = None
    progress = tqdm(range(args.steps), desc="training", unit="step", disable=None, mininterval=1.0)
    for step in progress:
        inputs, labels = counting_batch(generator, batch=16, length=32, vocab=config.vocab_size)
        loss = model(input_ids=inputs, labels=labels).loss
        loss.backward()
        # A decoder layer's second step: its Adam states exist and its gradients are fresh.
        if measured is None and optimizer.active_block == 1 and optimizer.schedule.steps_in_block == 1:
            measured = held_bytes(optimizer, model), sum(p.numel() for p in optimizer.trainable_params)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        progress.set_postfix(loss=f"{loss.item():.3f}", block=optimizer.active_block)
        if step % 25 == 0 or step == args.steps - 1:
            tqdm.write(f"step {step:4d}  loss {loss.item():.4f}  active block {optimizer.active_block}")

    if measured is not None:
        held, n_active = measured
        ours = estimate("badam", model, include_embedding=True, include_lm_head=True).ours
        print(f"\nOptimizer-held bytes with one decoder layer active ({n_active:,} parameters):")
        print(f"{'':<26}{'measured':>12}{'estimate':>12}")
        for label, got, want in (
            ("bf16 gradients", held.gradients, None),
            ("fp32 master copies", held.master_copies, None),
            ("Adam states (m, v)", held.optimizer_states, None),
            (
                "bytes / active parameter",
                held.optimizer_held / n_active,
                ours.optimizer_held / ours_block_params(model),
            ),
        ):
            print(f"{label:<26}{got:>12,.1f}" + (f"{want:>12,.1f}" if want is not None else ""))

    print("\nThe paper's Table 1 for Llama 2-7B (GB = 1e9 bytes):")
    for method in ("adam", "badam"):
        row = estimate(method, "llama2-7b").table1
        print(
            f"  {method:<6} parameters {row.parameters / GB:6.1f}  gradient {row.gradients / GB:6.1f}  "
            f"optimizer states {row.states / GB:6.1f}  total {row.total / GB:6.1f}"
        )


def ours_block_params(model: torch.nn.Module) -> int:
    """Parameters of the largest decoder layer, the block the estimate's `ours` accounts for."""
    return max(sum(p.numel() for p in layer.parameters()) for layer in model.model.layers)


if __name__ == "__main__":
    main()
