"""The command lines as a new user meets them: every expected error is one line naming what to fix, exit 2."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from superglue_smoke import smoke_argv

import superglue.aggregate as aggregate
import superglue.train as train
from superglue.cli import run_cli

SUBPROJECT = Path(__file__).resolve().parents[1]
RTE_RECORD = json.dumps({"premise": "a", "hypothesis": "b", "label": "entailment", "idx": 0})


def cli_error(monkeypatch, capsys, main, argv: list[str]) -> str:
    """Run `main` behind the error boundary; assert exit 2, one `error:` line, no traceback; return the line."""
    monkeypatch.delenv("BADAM_DEBUG", raising=False)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        run_cli(main, argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert exit.value.code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].endswith(" (--debug shows the traceback)")
    return lines[0]


@pytest.fixture
def train_error(monkeypatch, capsys, tmp_path, tiny_model, data_dir):
    """The error line of superglue.train on smoke flags, with `changes` {flag: value} applied and `extra` added."""

    def error(*extra, **changes):
        argv = smoke_argv(tmp_path / "out", tiny_model, data_dir, "rte", "adam", *extra)
        for flag, value in changes.items():
            argv[argv.index(f"--{flag}") + 1] = str(value)
        return cli_error(monkeypatch, capsys, train.main, argv)

    return error


def test_unknown_names_and_flags(train_error):
    assert "unknown task 'cb'. The paper's SuperGLUE tasks are: boolq (pair classification" in train_error(task="cb")
    assert "unknown optimizer 'sgd'. Choose one of: adam (full fine-tuning" in train_error(optimizer="sgd")
    assert "error: unknown argument(s) --epochs 3 (--help lists the flags)" in train_error("--epochs", "3")
    assert "--run_name 'a/b': expected a folder name" in train_error("--run_name", "a/b")
    assert "--max_eval_examples 0: expected at least 1" in train_error(max_eval_examples=0)
    assert "--lora_target_modules nothing: No modules were targeted" in train_error(
        "--lora_target_modules", "nothing", optimizer="lora"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="--bf16 is valid with a GPU")
def test_bf16_without_a_gpu(train_error):
    assert "--bf16 needs a CUDA GPU and none is visible" in train_error("--bf16")


def test_data_errors_name_the_directory_file_and_line(train_error, tmp_path):
    assert f"--data_dir {tmp_path / 'none'} does not exist" in train_error(data_dir=tmp_path / "none")
    data = tmp_path / "data"
    (data / "RTE").mkdir(parents=True)
    assert f"no WiC/ (or wic/) directory in --data_dir {data}" in train_error(data_dir=data, task="wic")
    assert f"none of train.jsonl,train32.jsonl in {data / 'RTE'} (it has: no jsonl files)" in train_error(data_dir=data)
    (data / "RTE" / "train.jsonl").write_text(RTE_RECORD + "\n\n" + '{"premise": "a", "hypo\n')
    assert f"{data / 'RTE' / 'train.jsonl'}:3: not valid JSON" in train_error(data_dir=data)
    (data / "RTE" / "train.jsonl").write_bytes(
        (RTE_RECORD + "\n").encode() + '{"premise": "caf\xe9"}\n'.encode("latin-1")
    )
    assert (
        f"{data / 'RTE' / 'train.jsonl'}:2: not UTF-8 text (at byte 17 of the line): save the file as UTF-8"
        in train_error(data_dir=data)
    )
    (data / "RTE" / "train.jsonl").write_text(RTE_RECORD + "\n")
    (data / "RTE" / "val.jsonl").write_text(RTE_RECORD + "\n")
    assert "the validation set has 1 examples, the protocol needs more than the 128" in train_error(data_dir=data)
    (data / "RTE" / "val.jsonl").write_text("\n".join([json.dumps({"premise": "a", "idx": 0})] * 200))
    assert f"{data / 'RTE' / 'val.jsonl'}:1: missing field 'hypothesis'" in train_error(data_dir=data)


def test_config_errors_name_the_file_and_line(train_error, tmp_path):
    config = tmp_path / "bad.yaml"
    assert f"config {config} does not exist" in train_error("--config", str(config))
    config.write_text("learning_rate: 1.0e-5\nbatch_size: [16\n")
    assert f"error: {config}:3: not valid YAML (expected ',' or ']', but got '<stream end>')" in train_error(
        "--config", str(config)
    )
    config.write_text("learning_rate: 1.0e-5\nlearnin_rate: 2\n")
    assert f"error: {config}:2: unknown setting 'learnin_rate' (known: adam_beta1," in train_error(
        "--config", str(config)
    )
    config.write_text("lora_target_modules: query\n")
    assert f"error: {config}:1: expected a list, got 'query'" in train_error("--config", str(config))
    config.write_text("task: rte\n")
    assert f"error: {config}:1: 'task' is set on the command line only (--task)" in train_error("--config", str(config))
    config.write_text("tasks:\n  rte: 3\n")
    assert f"error: {config}:1: tasks.rte: expected a mapping of settings, got 3" in train_error(
        "--config", str(config)
    )
    config.write_bytes("# caf\xe9\nseed: 1\n".encode("latin-1"))
    assert f"error: {config}:1: not UTF-8 text" in train_error("--config", str(config))


def test_model_errors_say_what_to_pass(train_error, tmp_path, tiny_model, monkeypatch):
    assert "--model_name: model directory /no/such/model does not exist" in train_error(model_name="/no/such/model")
    assert (
        f"--model_name: {tmp_path} holds no config.json: pass a model directory saved with save_pretrained"
        in train_error(model_name=tmp_path)
    )
    cut = tmp_path / "cut-model"
    shutil.copytree(tiny_model, cut)
    weights = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    assert f"--model_name: {cut / 'model.safetensors'} is truncated" in train_error(model_name=cut)
    import huggingface_hub.constants

    hint = "pass a local model directory, --model_name DIR (a model saved with save_pretrained)"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert (
        "--model_name: no local model was given: 'someone/no-such-model' is a hub id that is not in the local cache "
        f"and HF_HUB_OFFLINE is set; {hint}"
    ) in train_error(model_name="someone/no-such-model")
    # Without a network: at once, not after the hub client's minute of retries.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    started = time.monotonic()
    line = train_error(model_name="FacebookAI/roberta-large")
    assert time.monotonic() - started < 15
    assert "'FacebookAI/roberta-large' is a hub id that is not in the local cache and the hub (127.0.0.1)" in line
    assert f"cannot be reached (Connection refused); {hint}" in line


def test_hub_data_without_network_says_to_pass_data_dir(monkeypatch, capsys, tmp_path, tiny_model):
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    line = cli_error(
        monkeypatch,
        capsys,
        train.main,
        ["--task", "rte", "--optimizer", "adam", "--output_root", str(tmp_path), "--model_name", str(tiny_model)],
    )
    assert "aps/super_glue/rte:train is not in the local datasets cache and could not be downloaded" in line
    assert "pass --data_dir with the SuperGLUE task directories" in line


def test_aggregate_errors_name_the_directory_and_file(monkeypatch, capsys, tmp_path):
    def error(*argv):
        return cli_error(monkeypatch, capsys, aggregate.main, list(argv))

    assert f"--results_dir {tmp_path / 'none'} does not exist" in error("--results_dir", str(tmp_path / "none"))
    assert f"no results.json under --results_dir {tmp_path}: nothing to tabulate" in error(
        "--results_dir", str(tmp_path)
    )
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "results.json").write_text('{"task": "rte",\n "optimizer": ')
    assert f"error: {tmp_path / 'x' / 'results.json'}:2: not valid JSON" in error("--results_dir", str(tmp_path))
    (tmp_path / "x" / "results.json").write_text('{"task": "rte", "optimizer": "adam", "test": {"score": 1}}')
    config = tmp_path / "table.yaml"
    config.write_text("methods: {adam: Adam}\ncolumns: {rte: score\n")
    assert f"error: {config}:3: not valid YAML" in error("--results_dir", str(tmp_path), "--config", str(config))
    config.write_text("methods: {adam: Adam}\ncolumns: {cb: score}\n")
    assert f"error: {config}: columns: unknown task 'cb'" in error(
        "--results_dir", str(tmp_path), "--config", str(config)
    )


def test_debug_shows_the_traceback(monkeypatch, capsys):
    argv = ["--task", "cb", "--optimizer", "adam"]
    with pytest.raises(ValueError, match="unknown task 'cb'"):
        run_cli(train.main, [*argv, "--debug"])
    monkeypatch.setenv("BADAM_DEBUG", "1")
    with pytest.raises(ValueError, match="unknown task 'cb'"):
        run_cli(train.main, argv)


def test_a_second_ctrl_c_stops_at_once(capsys):
    def impatient(argv):
        raise KeyboardInterrupt  # what StopRequest raises on a second SIGINT, or the default handler outside it

    with pytest.raises(SystemExit) as exit:
        run_cli(impatient, [])
    assert exit.value.code == 130
    assert capsys.readouterr().err.startswith("interrupted: stopped at once, without a checkpoint; rerunning")


def test_python_m_entry_points(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SUBPROJECT)}
    env.pop("BADAM_DEBUG", None)

    def python_m(*argv):
        return subprocess.run([sys.executable, "-m", *argv], env=env, capture_output=True, text=True, timeout=120)

    plain = python_m("superglue.train", "--task", "cb", "--optimizer", "adam")
    assert plain.returncode == 2 and "Traceback" not in plain.stderr, plain.stderr
    assert plain.stderr.strip().startswith("error: unknown task 'cb'")
    debug = python_m("superglue.aggregate", "--results_dir", str(tmp_path), "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert f"FileNotFoundError: no results.json under --results_dir {tmp_path}" in debug.stderr


def test_readme_help_command_runs_as_written():
    readme = (SUBPROJECT / "README.md").read_text()
    (command,) = [line for line in readme.splitlines() if line.endswith("-m superglue.train --help")]
    assert command.startswith("PYTHONPATH=roberta-superglue .venv/bin/python ")
    command = command.replace(".venv/bin/python", sys.executable)  # the interpreter running the tests
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        ["bash", "-c", command], cwd=SUBPROJECT.parent, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m superglue.train") and "--multirc_split" in result.stdout
