"""Training end to end on real examples with a tiny RoBERTa: every optimizer, selection, resume, config."""

import json
import sys
import types
from pathlib import Path

import pytest
import torch
from superglue_smoke import best_weights, smoke_argv
from transformers import set_seed

import superglue.train as train
from superglue.model import TaskModel
from superglue.selection import EvaluateAtEnd


def run(tmp_path, tiny_model, data_dir, task, optimizer, *extra, name=None):
    return train.main(smoke_argv(tmp_path, tiny_model, data_dir, task, optimizer, *extra, name=name))


def weights(tmp_path, results) -> dict[str, torch.Tensor]:
    return best_weights(tmp_path / results["run_name"])


def initial(tiny_model, head) -> dict[str, torch.Tensor]:
    set_seed(0)  # as train.main does before building the model: the same fresh head
    return TaskModel.from_pretrained(str(tiny_model), head).state_dict()


def changed(before, after, name, after_name=None) -> float:
    """Share of the entries of parameter `name` that moved."""
    return (before[name] != after[after_name or name]).float().mean().item()


def test_adam_trains_everything_and_writes_results(tmp_path, tiny_model, data_dir):
    results = run(tmp_path, tiny_model, data_dir, "rte", "adam")
    assert results["task"] == "rte" and results["optimizer"] == "adam" and results["global_step"] == 2
    assert results["examples"] == {"train": 16, "selection": 8, "test": 8}
    assert results["selection"].keys() == results["test"].keys() == {"accuracy", "score"}
    assert results["score"] == results["test"]["score"] and results["best_step"] == 2
    assert results["sources"]["val"].endswith("RTE/val.jsonl")
    on_disk = json.loads((tmp_path / "rte-adam-seed0" / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    before, after = initial(tiny_model, "classification"), weights(tmp_path, results)
    for name in (
        "encoder.embeddings.LayerNorm.weight",
        "encoder.encoder.layer.0.attention.self.query.weight",
        "encoder.encoder.layer.1.output.dense.weight",
        "encoder.pooler.dense.weight",
        "head.dense.weight",
    ):
        assert changed(before, after, name) > 0.9, name
    # A finished run is not run again (a setting that does not change the numbers may differ; see test_reruns).
    assert run(tmp_path, tiny_model, data_dir, "rte", "adam", "--save_steps", "50") == on_disk


def test_block_trains_one_layer_and_keeps_the_last_layer_active(tmp_path, tiny_model, data_dir):
    # K = 2 and 2 steps, ascending: only layer 0 has trained; the pooler and head train throughout.
    results = run(tmp_path, tiny_model, data_dir, "wic", "block")
    before, after = initial(tiny_model, "span_comparison"), weights(tmp_path, results)
    assert changed(before, after, "encoder.encoder.layer.0.attention.self.query.weight") > 0.9
    assert changed(before, after, "encoder.encoder.layer.1.attention.self.query.weight") == 0
    assert changed(before, after, "encoder.embeddings.word_embeddings.weight") == 0
    assert (
        changed(before, after, "head.classifier.weight") > 0.9 and changed(before, after, "head.attention.weight") > 0.9
    )


def test_block_without_train_last_layer_makes_the_head_a_block(tmp_path, tiny_model, data_dir):
    results = run(tmp_path, tiny_model, data_dir, "rte", "block", "--train_last_layer", "false")
    before, after = initial(tiny_model, "classification"), weights(tmp_path, results)
    assert changed(before, after, "encoder.encoder.layer.0.output.dense.weight") > 0.9
    assert changed(before, after, "head.dense.weight") == 0  # its turn comes after layer 1
    assert changed(before, after, "encoder.pooler.dense.weight") == 0


def test_sparse_trains_a_share_of_every_tensor(tmp_path, tiny_model, data_dir):
    results = run(tmp_path, tiny_model, data_dir, "copa", "sparse", "--update_ratio", "0.25")
    before, after = initial(tiny_model, "multiple_choice"), weights(tmp_path, results)
    for name in (
        "encoder.encoder.layer.0.attention.self.key.weight",
        "encoder.encoder.layer.1.intermediate.dense.weight",
    ):
        assert 0.05 < changed(before, after, name) <= 0.25, name
    assert changed(before, after, "encoder.embeddings.word_embeddings.weight") == 0
    assert changed(before, after, "head.dense.weight") > 0.9  # train_last_layer: ratio 1
    assert changed(before, after, "encoder.pooler.dense.weight") > 0.9


def test_lora_trains_adapters_and_the_head_only(tmp_path, tiny_model, data_dir):
    results = run(tmp_path, tiny_model, data_dir, "multirc", "lora", "--lora_r", "2")
    assert results["selection"].keys() == {"f1a", "em", "score"}
    assert results["inputs"]["selection"] == results["examples"]["selection"] == 8  # one input per answer option
    before, after = initial(tiny_model, "classification"), weights(tmp_path, results)
    base = "base_model.model."
    query = "encoder.encoder.layer.1.attention.self.query"
    assert changed(before, after, f"{query}.weight", f"{base}{query}.base_layer.weight") == 0
    dense = "encoder.encoder.layer.0.output.dense.weight"
    assert changed(before, after, dense, base + dense) == 0
    assert after[f"{base}{query}.lora_B.default.weight"].abs().sum() > 0  # B starts at zero
    assert after[f"{base}{query}.lora_A.default.weight"].shape[0] == 2
    assert changed(before, after, "head.dense.weight", f"{base}head.modules_to_save.default.dense.weight") > 0.9
    # The official code's LoRA: alpha 4 x rank, the pooler frozen; --lora_pooler trains it.
    peft = json.loads((tmp_path / results["run_name"] / "checkpoint-2" / "adapter_config.json").read_text())
    assert (peft["r"], peft["lora_alpha"], peft["lora_dropout"]) == (2, 8, 0.1)
    pooler = "encoder.pooler.dense.weight"
    assert changed(before, after, pooler, base + pooler) == 0
    results = run(tmp_path, tiny_model, data_dir, "multirc", "lora", "--lora_pooler", "true", name="pooler")
    trained = f"{base}encoder.pooler.modules_to_save.default.dense.weight"
    assert changed(before, weights(tmp_path, results), pooler, trained) > 0.9


class Crash(EvaluateAtEnd):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt
        return super().on_step_end(args, state, control, **kwargs)


@pytest.mark.parametrize("optimizer", ["block", "sparse", "lora"])
def test_interrupted_run_resumes_to_the_same_result(tmp_path, tiny_model, data_dir, monkeypatch, capsys, optimizer):
    extra = ("--max_steps", "5", "--eval_steps", "2", "--save_steps", "2")
    straight = run(tmp_path, tiny_model, data_dir, "wsc", optimizer, *extra, name="straight")
    with monkeypatch.context() as patch:
        patch.setattr(train, "EvaluateAtEnd", Crash)
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path, tiny_model, data_dir, "wsc", optimizer, *extra, name="resumed")
    assert not (tmp_path / "resumed" / "results.json").exists()
    assert (tmp_path / "resumed" / "checkpoint-2" / "trainer_state.json").is_file()
    capsys.readouterr()
    resumed = run(tmp_path, tiny_model, data_dir, "wsc", optimizer, *extra, name="resumed")
    assert f"resuming from {tmp_path / 'resumed' / 'checkpoint-2'}" in capsys.readouterr().out
    for key in ("selection", "test", "best_step", "global_step"):
        assert resumed[key] == straight[key], key
    a, b = weights(tmp_path, straight), weights(tmp_path, resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    history = json.loads((tmp_path / "resumed" / "best" / "best.json").read_text())
    assert history["step"] == straight["best_step"]


def test_config_sets_defaults_and_names_bad_lines(tmp_path):
    config = Path(__file__).resolve().parents[1] / "configs" / "paper.yaml"
    args = train.parse_args(["--config", str(config), "--task", "WSC", "--optimizer", "block", "--seed", "3"])
    assert (args.task, args.learning_rate, args.num_train_epochs, args.batch_size) == ("wsc", 1e-5, 32, 16)
    assert (args.switch_every, args.switch_mode, args.train_last_layer) == (100, "ascending", True)
    assert (args.eval_steps, args.save_steps, args.seed) == (100, 200, 3)  # tasks.wsc's save_steps; the flag wins
    assert (args.multirc_split, args.block_list, args.lora_alpha, args.lora_pooler) == (
        "option",
        "official",
        None,
        False,
    )
    ours = Path(__file__).resolve().parents[1] / "configs" / "ours.yaml"  # extends paper.yaml
    args = train.parse_args(["--config", str(ours), "--task", "wsc", "--optimizer", "lora"])
    assert (args.eval_steps, args.save_steps, args.learning_rate, args.num_train_epochs) == (25, 200, 1e-5, 32)
    assert (args.multirc_split, args.block_list, args.lora_alpha, args.lora_pooler) == ("question", "layers", 16, True)
    args = train.parse_args(["--config", str(ours), "--task", "rte", "--optimizer", "lora", "--seed", "-1"])
    assert 0 <= args.seed < 2**31  # drawn, as the official code's -1
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 1e-5\nbatch_size: 16\nlearnin_rate: 2\n")
    with pytest.raises(ValueError, match=rf"^{bad}:3: unknown setting 'learnin_rate'"):
        train.parse_args(["--config", str(bad), "--task", "rte", "--optimizer", "adam"])
    bad.write_text("batch_size: sixteen\n")
    with pytest.raises(ValueError, match=rf"^{bad}:1: expected int, got 'sixteen'"):
        train.parse_args(["--config", str(bad), "--task", "rte", "--optimizer", "adam"])
    bad.write_text("tasks:\n  rte: {eval_step: 3}\n")
    with pytest.raises(ValueError, match=rf"^{bad}:1: tasks.rte: unknown setting 'eval_step'"):
        train.parse_args(["--config", str(bad), "--task", "rte", "--optimizer", "adam"])
    bad.write_text("tasks:\n  rtee: {eval_steps: 3}\n")
    with pytest.raises(ValueError, match=rf"^{bad}:1: tasks.rtee: unknown task \(known: boolq, copa"):
        train.parse_args(["--config", str(bad), "--task", "rte", "--optimizer", "adam"])
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'. Choose one of: adam"):
        train.parse_args(["--task", "rte", "--optimizer", "sgd"])


def test_wandb_reporting(monkeypatch):
    calls = []
    fake = types.SimpleNamespace(
        run=None,
        init=lambda **kw: calls.append(("init", kw)) or setattr(fake, "run", run_),
        log=lambda data: calls.append(("log", data)),
        finish=lambda: calls.append(("finish",)),
    )
    run_ = types.SimpleNamespace(summary={})
    monkeypatch.setitem(sys.modules, "wandb", fake)
    results = {
        "run_name": "rte-block-seed0",
        "config": {"wandb_project": "badam"},
        "best_step": 7,
        "selection": {"score": 0.5},
        "test": {"accuracy": 0.75, "score": 0.75},
    }
    train.report_to_wandb(results)
    assert calls[0] == ("init", {"project": "badam", "name": "rte-block-seed0"})
    assert calls[1] == ("log", {"final/selection/score": 0.5, "final/test/accuracy": 0.75, "final/test/score": 0.75})
    assert run_.summary == {"test_score": 0.75, "best_step": 7} and calls[-1] == ("finish",)


def test_wandb_project_without_wandb_is_explained(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # not importable, installed or not
    monkeypatch.setattr(train.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="--wandb_project needs the wandb package: pip install wandb"):
        train.main(["--task", "rte", "--optimizer", "adam", "--output_root", str(tmp_path), "--wandb_project", "x"])


def test_crash_after_training_only_redoes_the_testing(tmp_path, tiny_model, data_dir, capsys):
    first = run(tmp_path, tiny_model, data_dir, "rte", "block")
    (tmp_path / "rte-block-seed0" / "results.json").unlink()
    capsys.readouterr()
    again = run(tmp_path, tiny_model, data_dir, "rte", "block")
    assert "training finished at" in capsys.readouterr().out
    assert {k: again[k] for k in ("selection", "test", "best_step", "global_step")} == {
        k: first[k] for k in ("selection", "test", "best_step", "global_step")
    }
