"""Smoke runs of superglue.train (a tiny RoBERTa, real examples, a few steps) and what to read back from them.

Shared by the tests and by interrupted_run.py, which runs them in a subprocess.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file


def smoke_argv(
    output_root, model, data_dir, task: str, optimizer: str, *extra: str, name: str | None = None
) -> list[str]:
    """superglue.train flags: 2 steps of batch 4 on 16 training examples, 8 of each validation part."""
    argv = [
        "--task",
        task,
        "--optimizer",
        optimizer,
        "--model_name",
        str(model),
        "--data_dir",
        str(data_dir),
        "--output_root",
        str(output_root),
        "--max_steps",
        "2",
        "--batch_size",
        "4",
        "--eval_batch_size",
        "16",
        "--max_train_examples",
        "16",
        "--max_eval_examples",
        "8",
        "--learning_rate",
        "1e-3",
        "--warmup_ratio",
        "0",
        "--switch_every",
        "2",
        "--eval_steps",
        "100",
        "--save_steps",
        "100",
        "--logging_steps",
        "1",
        *extra,
    ]
    return argv + (["--run_name", name] if name else [])


def best_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The selected model's weights (best/best.json names the file)."""
    best = Path(run_dir) / "best"
    return load_file(str(best / json.loads((best / "best.json").read_text())["file"]))


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The weights of the last step: the model (or LoRA adapter) of the one checkpoint left."""
    (checkpoint,) = Path(run_dir).glob("checkpoint-*")
    (weights,) = [p for p in checkpoint.glob("*.safetensors")]
    return load_file(str(weights))


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
