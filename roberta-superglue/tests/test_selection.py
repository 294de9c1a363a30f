"""Model selection's tie rule, and the block lists BAdam cycles through."""

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from transformers import TrainingArguments

from superglue.model import TaskModel
from superglue.optim import prepare
from superglue.selection import BestModel


def test_a_tie_keeps_the_earlier_model(tmp_path):
    # The official rule (jiant's metarunner: `score > best`): an equal score later does not replace it.
    model, best = nn.Linear(2, 1), BestModel(tmp_path)
    for step, score in [(100, 0.5), (200, 0.7), (300, 0.7), (400, 0.6), (500, 0.7)]:
        with torch.no_grad():
            model.weight.fill_(step)
        best.on_evaluate(None, SimpleNamespace(global_step=step), None, metrics={"eval_score": score}, model=model)
    assert (best.best["step"], best.best["score"]) == (200, 0.7)
    assert json.loads((tmp_path / "best.json").read_text())["file"] == "model-step200.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json", "model-step200.safetensors"]
    restored = nn.Linear(2, 1)
    BestModel(tmp_path).restore(restored)  # as a rerun reads it back
    assert torch.all(restored.weight == 200)


def settings(**changes):
    return SimpleNamespace(
        **{
            "train_last_layer": True,
            "switch_every": 100,
            "switch_mode": "ascending",
            "block_list": "official",
            **changes,
        }
    )


@pytest.mark.parametrize(
    ("block_list", "train_last_layer", "blocks"),
    [
        # The official list: every layer, then the pooler and the head, one block each (26 for RoBERTa-large).
        (
            "official",
            False,
            [["encoder.encoder.layer.0."], ["encoder.encoder.layer.1."], ["encoder.pooler."], ["head."]],
        ),
        ("layers", False, [["encoder.encoder.layer.0."], ["encoder.encoder.layer.1."], ["encoder.pooler.", "head."]]),
        # Pooler and head always active: the official list keeps their blocks as slots in which only
        # they train (26 slots for RoBERTa-large); the layers list drops them.
        (
            "official",
            True,
            [["encoder.encoder.layer.0."], ["encoder.encoder.layer.1."], ["encoder.pooler."], ["head."]],
        ),
        ("layers", True, [["encoder.encoder.layer.0."], ["encoder.encoder.layer.1."]]),
    ],
)
def test_block_lists(tiny_model, tmp_path, block_list, train_last_layer, blocks):
    model = TaskModel.from_pretrained(str(tiny_model), "classification")
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    _, extra = prepare("block", model, args, settings(block_list=block_list, train_last_layer=train_last_layer))
    optimizer = extra["optimizers"][0]
    assert optimizer.block_prefixes == blocks
    active = {optimizer.name_of[p] for p in optimizer.always_active}
    assert (active == {n for n, _ in model.named_parameters() if n.startswith(("encoder.pooler.", "head."))}) is (
        train_last_layer
    )
