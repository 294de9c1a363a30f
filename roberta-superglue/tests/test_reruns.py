"""Interrupted runs and reruns: kill -9 mid-save, SIGTERM/SIGINT, incomplete checkpoints, other settings."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from superglue_smoke import assert_same, best_weights, final_weights, smoke_argv

import superglue.train as train
from superglue.selection import EvaluateAtEnd

# 5 steps, a selection evaluation and a checkpoint every 2 (and at the end: checkpoint-5).
STEPS = ("--max_steps", "5", "--eval_steps", "2", "--save_steps", "2")
SAME = ("score", "selection", "test", "best_step", "global_step", "examples", "inputs", "sources")


@pytest.fixture(scope="module")
def straight(tmp_path_factory, tiny_model, data_dir):
    """The uninterrupted run of each optimizer (WSC, STEPS), run once: {optimizer: (run dir, results)}."""
    root, runs = tmp_path_factory.mktemp("straight"), {}

    def get(optimizer):
        if optimizer not in runs:
            results = train.main(smoke_argv(root, tiny_model, data_dir, "wsc", optimizer, *STEPS))
            runs[optimizer] = (root / results["run_name"], results)
        return runs[optimizer]

    return get


def losses(run_dir: Path) -> list[tuple[int, float]]:
    """(step, training loss) of the whole run, from its last checkpoint's trainer_state.json."""
    (state,) = run_dir.glob("checkpoint-*/trainer_state.json")
    return [(h["step"], h["loss"]) for h in json.loads(state.read_text())["log_history"] if "loss" in h]


def assert_same_run(resumed: dict, run_dir: Path, straight: tuple[Path, dict]) -> None:
    """The same results, the same selected and final weights, the same losses at every step."""
    straight_dir, expected = straight
    assert {k: resumed[k] for k in SAME} == {k: expected[k] for k in SAME}
    assert json.loads((run_dir / "results.json").read_text())["test"] == expected["test"]
    assert_same(best_weights(run_dir), best_weights(straight_dir))
    assert_same(final_weights(run_dir), final_weights(straight_dir))
    assert losses(run_dir) == losses(straight_dir)


def interrupted(how: list[str], argv: list[str]) -> subprocess.CompletedProcess:
    """superglue.train in a subprocess that interrupted_run.py stops on cue (see there)."""
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)]), "OMP_NUM_THREADS": "1"}
    env.pop("BADAM_DEBUG", None)
    return subprocess.run(
        [sys.executable, str(tests / "interrupted_run.py"), *how, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("optimizer", ["block", "lora"])
def test_kill_during_a_save_resumes_from_the_previous_checkpoint(
    tmp_path, tiny_model, data_dir, straight, capsys, optimizer
):
    argv = smoke_argv(tmp_path, tiny_model, data_dir, "wsc", optimizer, *STEPS)
    run_dir = tmp_path / f"wsc-{optimizer}-seed0"
    killed = interrupted(["kill-during-save", "4"], argv)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    # checkpoint-4 was cut short: it never became a checkpoint-N folder; checkpoint-2 is whole.
    assert (run_dir / "tmp-checkpoint-4").is_dir() and not (run_dir / "checkpoint-4").exists()
    assert (run_dir / "checkpoint-2" / "trainer_state.json").is_file()
    capsys.readouterr()
    resumed = train.main(argv)  # the same command
    out = capsys.readouterr().out
    assert f"skipping {run_dir / 'tmp-checkpoint-4'}: an interrupted save (never published)" in out
    assert f"resuming from {run_dir / 'checkpoint-2'}" in out
    assert_same_run(resumed, run_dir, straight(optimizer))
    assert sorted(p.name for p in run_dir.iterdir()) == ["best", "checkpoint-5", "results.json", "run_identity.json"]


@pytest.mark.parametrize(
    "signum, optimizer", [(signal.SIGTERM, "sparse"), (signal.SIGINT, "block")], ids=["SIGTERM-sparse", "SIGINT-block"]
)
def test_a_signal_finishes_the_step_checkpoints_and_resumes_exactly(
    tmp_path, tiny_model, data_dir, straight, capsys, signum, optimizer
):
    argv = smoke_argv(tmp_path, tiny_model, data_dir, "wsc", optimizer, *STEPS)
    run_dir = tmp_path / f"wsc-{optimizer}-seed0"
    stopped = interrupted(["signal-during", signum.name, "3"], argv)
    assert stopped.returncode == 128 + signum, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1] == (
        f"stopped by {signum.name} after step 3; checkpoint {run_dir / 'checkpoint-3'} written. Resume with the same "
        "command (a rerun continues from the newest complete checkpoint)"
    )
    assert (run_dir / "checkpoint-3" / "run_identity.json").is_file() and not (run_dir / "results.json").exists()
    capsys.readouterr()
    resumed = train.main(argv)
    assert f"resuming from {run_dir / 'checkpoint-3'}" in capsys.readouterr().out
    assert_same_run(resumed, run_dir, straight(optimizer))


class CrashAtStep5(EvaluateAtEnd):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 5:
            raise KeyboardInterrupt
        return super().on_step_end(args, state, control, **kwargs)


def test_incomplete_checkpoints_are_skipped_saying_why(tmp_path, tiny_model, data_dir, straight, monkeypatch, capsys):
    argv = smoke_argv(tmp_path, tiny_model, data_dir, "wsc", "block", *STEPS)
    run_dir = tmp_path / "wsc-block-seed0"
    with monkeypatch.context() as patch:
        patch.setattr(train, "EvaluateAtEnd", CrashAtStep5)
        with pytest.raises(KeyboardInterrupt):
            train.main(argv)
    # What a power loss (files named but not flushed) or a tool without staging can leave: a truncated
    # weights file with a whole trainer_state.json, an empty trainer_state.json, no trainer_state.json.
    cut = run_dir / "checkpoint-5"
    shutil.copytree(run_dir / "checkpoint-4", cut)
    state = json.loads((cut / "trainer_state.json").read_text())
    (cut / "trainer_state.json").write_text(json.dumps({**state, "global_step": 5}))
    weights = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    (run_dir / "checkpoint-6").mkdir()
    (run_dir / "checkpoint-6" / "trainer_state.json").write_text("")
    (run_dir / "checkpoint-7").mkdir()
    capsys.readouterr()
    resumed = train.main(argv)
    out = capsys.readouterr().out
    assert f"skipping {run_dir / 'checkpoint-7'}: no trainer_state.json (the save did not finish)" in out
    assert f"skipping {run_dir / 'checkpoint-6'}: trainer_state.json is empty or not valid JSON" in out
    assert f"skipping {cut}: model.safetensors is truncated" in out
    assert f"resuming from {run_dir / 'checkpoint-4'}" in out
    for broken in ("checkpoint-6", "checkpoint-7"):  # the save of checkpoint-5 rotated them away
        assert not (run_dir / broken).exists()
    assert_same_run(resumed, run_dir, straight("block"))


def test_a_rerun_with_other_settings_is_refused_naming_them(tmp_path, tiny_model, data_dir):
    other_model = shutil.copytree(tiny_model, tmp_path / "other-model")

    def argv(*extra, optimizer="adam"):
        return smoke_argv(tmp_path, tiny_model, data_dir, "rte", optimizer, *extra, name="rte-run")

    first = train.main(argv())
    run_dir = tmp_path / "rte-run"
    before = (run_dir / "results.json").read_bytes()
    refusals = {
        ("--max_steps", "3"): "max_steps: 2 in the run, 3 now",
        (
            "--learning_rate",
            "2e-3",
            "--seed",
            "1",
        ): "seed: 0 in the run, 1 now; learning_rate: 0.001 in the run, 0.002 now",
        ("--model_name", str(other_model)): f"model_name: '{tiny_model}' in the run, '{other_model}' now",
        ("--max_train_examples", "12"): "max_train_examples: 16 in the run, 12 now; train data: 16 examples of ",
    }
    for extra, named in refusals.items():
        with pytest.raises(ValueError, match="holds a run with other settings") as refused:
            train.main(argv(*extra))
        assert named in str(refused.value)
        assert str(refused.value).endswith("use another --run_name, or pass --overwrite to delete it and start afresh")
    with pytest.raises(ValueError, match="optimizer: 'adam' in the run, 'lora' now"):
        train.main(argv(optimizer="lora"))
    assert (run_dir / "results.json").read_bytes() == before  # nothing was touched

    # What does not change the numbers may differ: the data's path (compared by content), how often
    # checkpoints and logs are written, the evaluation batch, another optimizer's settings.
    (tmp_path / "data").symlink_to(data_dir)
    same = [
        "--data_dir",
        str(tmp_path / "data"),
        "--save_steps",
        "7",
        "--logging_steps",
        "5",
        "--eval_batch_size",
        "4",
        "--lora_r",
        "4",
    ]
    assert train.main(argv(*same)) == json.loads(before)

    # --overwrite deletes the run and starts afresh with the new settings.
    redone = train.main(argv("--max_steps", "3", "--overwrite"))
    assert redone["global_step"] == 3 and redone["config"]["max_steps"] == 3 != first["config"]["max_steps"]
    assert sorted(p.name for p in run_dir.glob("checkpoint-*")) == ["checkpoint-3"]


def test_a_checkpoint_of_another_run_is_refused(tmp_path, tiny_model, data_dir):
    def argv(name, *extra):
        return smoke_argv(tmp_path, tiny_model, data_dir, "rte", "block", *extra, name=name)

    train.main(argv("a"))
    train.main(argv("b", "--switch_every", "1"))
    (tmp_path / "b" / "results.json").unlink()
    shutil.rmtree(tmp_path / "b" / "checkpoint-2")
    shutil.copytree(tmp_path / "a" / "checkpoint-2", tmp_path / "b" / "checkpoint-2")
    with pytest.raises(
        ValueError,
        match=r"b/checkpoint-2 was written by a run with other settings \(switch_every: "
        r"2 in the run, 1 now\)",
    ):
        train.main(argv("b", "--switch_every", "1"))


def test_a_directory_without_identity_is_not_reused(tmp_path, tiny_model, data_dir):
    (tmp_path / "rte-adam-seed0" / "checkpoint-100").mkdir(parents=True)  # as an older version left it
    with pytest.raises(
        ValueError,
        match=r"rte-adam-seed0 holds files \(checkpoint-100\) but no run_identity.json, "
        "so its settings cannot be checked",
    ):
        train.main(smoke_argv(tmp_path, tiny_model, data_dir, "rte", "adam"))
    with pytest.raises(ValueError, match=r"--run_name '\.\./x': expected a folder name"):
        train.main(smoke_argv(tmp_path, tiny_model, data_dir, "rte", "adam", name="../x"))
