"""badam.checkpoint, badam.preemption and badam.hf_checkpoint: checkpoints appear whole or not at all,
the newest complete one is found (and the skipped ones explained), a signal stops at a step boundary."""

import json
import os
import signal

import pytest
import torch
from badam_tiny import tiny_llama
from safetensors.torch import save_file
from test_hf import RepeatTask, training_args
from transformers import Trainer

from badam.atomic import atomic_write_json, file_problem, staged
from badam.checkpoint import newest_complete
from badam.hf import badam_trainer_kwargs
from badam.hf_checkpoint import ResumableTrainerMixin, resolve_resume
from badam.preemption import Preempted, StopRequest


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "sub" / "state.json"
    atomic_write_json(path, {"step": 1})
    atomic_write_json(path, {"step": 2})
    assert json.loads(path.read_text()) == {"step": 2}
    assert os.listdir(path.parent) == ["state.json"]
    assert path.stat().st_mode & 0o044 == 0o044 & ~_umask() & 0o044  # readable as the umask allows


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_staged_folder_is_published_only_when_complete(tmp_path):
    final = tmp_path / "checkpoint-2"
    with pytest.raises(RuntimeError):
        with staged(final) as folder:
            (folder / "weights").write_text("half")
            raise RuntimeError("killed mid-save")
    assert not final.exists() and (tmp_path / "tmp-checkpoint-2" / "weights").is_file()
    with staged(final) as folder:
        assert list(folder.iterdir()) == [], "a stale staging folder is cleared first"
        (folder / "weights").write_text("whole")
    assert (final / "weights").read_text() == "whole" and sorted(os.listdir(tmp_path)) == ["checkpoint-2"]
    with staged(final) as folder:  # saving the same step again replaces it whole
        (folder / "other").write_text("new")
    assert os.listdir(final) == ["other"]


def trainer_checkpoint(folder, step, **files):
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    for name, data in files.items():
        (folder / name.replace("_", ".")).write_bytes(data)


def test_newest_complete_skips_what_a_kill_left_and_says_why(tmp_path):
    weights = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(64)}, weights)
    whole = weights.read_bytes()
    trainer_checkpoint(tmp_path / "checkpoint-2", 2, model_safetensors=whole)
    trainer_checkpoint(tmp_path / "checkpoint-4", 4, model_safetensors=whole[:-10])
    trainer_checkpoint(tmp_path / "checkpoint-6", 6, optimizer_pt=b"PK\x03\x04 cut")
    trainer_checkpoint(tmp_path / "checkpoint-8", 8, scheduler_pt=b"")
    trainer_checkpoint(tmp_path / "checkpoint-10", 9)
    (tmp_path / "checkpoint-12").mkdir()
    (tmp_path / "checkpoint-14").mkdir()
    (tmp_path / "checkpoint-14" / "trainer_state.json").write_text("")
    (tmp_path / "tmp-checkpoint-16").mkdir()
    newest, skipped = newest_complete(tmp_path)
    assert newest == tmp_path / "checkpoint-2"
    reasons = {path.name: why for path, why in skipped}
    assert reasons == {
        "tmp-checkpoint-16": "an interrupted save (never published)",
        "checkpoint-14": "trainer_state.json is empty or not valid JSON (the save did not finish)",
        "checkpoint-12": "no trainer_state.json (the save did not finish)",
        "checkpoint-10": "trainer_state.json says step 9, the folder's name step 10",
        "checkpoint-8": "scheduler.pt is empty (the save did not finish)",
        "checkpoint-6": "optimizer.pt is truncated (not a whole torch.save archive) (the save did not finish)",
        "checkpoint-4": f"model.safetensors is truncated ({len(whole) - 10} bytes of {len(whole)}) (the save did not finish)",
    }
    assert file_problem(weights) is None


def test_resolve_resume_names_the_problem(tmp_path, caplog):
    with pytest.raises(FileNotFoundError, match="holds no complete checkpoint-N folder"):
        resolve_resume(tmp_path, "last")
    trainer_checkpoint(tmp_path / "checkpoint-3", 3, optimizer_pt=b"")
    with pytest.raises(FileNotFoundError, match="checkpoint-3: optimizer.pt is empty"):
        resolve_resume(tmp_path, str(tmp_path / "checkpoint-3"))
    trainer_checkpoint(tmp_path / "checkpoint-1", 1)
    with caplog.at_level("WARNING"):
        assert resolve_resume(tmp_path, True) == str(tmp_path / "checkpoint-1")
    assert "skipping" in caplog.text and "checkpoint-3" in caplog.text
    assert resolve_resume(tmp_path, None) is None


def test_a_signal_only_asks_to_stop_and_a_second_ctrl_c_interrupts():
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        assert not stop.should_stop()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.should_stop() and stop.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before
    with StopRequest() as stop, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signum == signal.SIGINT
        os.kill(os.getpid(), signal.SIGINT)


class ResumableTrainer(ResumableTrainerMixin, Trainer):
    pass


def badam_trainer(output_dir, max_steps, eval_dataset=None, **overrides):
    model = tiny_llama(layers=3, dtype=torch.bfloat16)
    args = training_args(output_dir, max_steps, **overrides)
    return ResumableTrainer(
        model=model,
        args=args,
        train_dataset=RepeatTask(16),
        eval_dataset=eval_dataset,
        resume_hint="rerun with --resume",
        **badam_trainer_kwargs(model, args, switch_block_every=2, verbose=0),
    )


def test_a_save_cut_short_leaves_no_checkpoint_and_a_sigterm_checkpoints(tmp_path, monkeypatch):
    save = Trainer._save_optimizer_and_scheduler

    def killed_at_step_6(self, output_dir):
        if self.state.global_step == 6:
            raise KeyboardInterrupt  # dies mid-save, after the weights
        save(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", killed_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        badam_trainer(tmp_path, 8).train()
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-3", "tmp-checkpoint-6"]
    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", save)

    trainer = badam_trainer(tmp_path, 8)
    step_end = trainer.callback_handler.on_step_end

    def signalled(args, state, control):
        if state.global_step == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return step_end(args, state, control)

    trainer.callback_handler.on_step_end = signalled
    with pytest.raises(
        Preempted, match="stopped by SIGTERM after step 5; checkpoint .*checkpoint-5 written. Resume with rerun"
    ):
        trainer.train(resume_from_checkpoint=resolve_resume(tmp_path, "last"))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-3", "checkpoint-5"]
    assert json.loads((tmp_path / "checkpoint-5" / "trainer_state.json").read_text())["global_step"] == 5


def test_best_checkpoint_and_rotation_point_at_published_folders(tmp_path):
    trainer = badam_trainer(
        tmp_path,
        8,
        save_steps=2,
        save_total_limit=2,
        eval_strategy="steps",
        eval_steps=2,
        load_best_model_at_end=True,
        metric_for_best_model="loss",
        eval_dataset=RepeatTask(4),
    )
    trainer.train()
    best = trainer.state.best_model_checkpoint
    assert "tmp-" not in best and os.path.isdir(best)
    kept = sorted(p for p in os.listdir(tmp_path) if p.startswith("checkpoint-"))
    assert len(kept) <= 3 and "checkpoint-8" in kept and os.path.basename(best) in kept


def test_a_broken_later_checkpoint_does_not_outrank_the_fresh_one(tmp_path):
    badam_trainer(tmp_path, 3).train()
    (tmp_path / "checkpoint-12").mkdir()  # what a save killed before this resume left behind
    (tmp_path / "checkpoint-12" / "trainer_state.json").write_text("")
    badam_trainer(tmp_path, 6, save_total_limit=1).train(resume_from_checkpoint=resolve_resume(tmp_path, "last"))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-6"]


def _layer_wise(model):
    from badam import BlockOptimizer

    base = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    return BlockOptimizer(base, list(model.named_parameters()), switch_block_every=2, switch_mode="random", verbose=0)


def _ratio(model):
    from badam import BlockOptimizerRatio

    return BlockOptimizerRatio(model.parameters(), list(model.named_parameters()), update_ratio=0.5, lr=1e-3)


@pytest.mark.parametrize("make_optimizer", [_layer_wise, _ratio], ids=["layer", "ratio"])
def test_one_process_checkpoint_resumes_exactly_and_follows_the_contract(tmp_path, make_optimizer):
    from badam_tiny import train

    from badam.checkpoint import load_checkpoint, save_checkpoint

    straight = tiny_llama(layers=3, dtype=torch.bfloat16)
    optimizer = make_optimizer(straight)
    train(straight, optimizer, 7)

    first = tiny_llama(layers=3, dtype=torch.bfloat16)
    optimizer = make_optimizer(first)
    train(first, optimizer, 3)  # mid-block, in the second block of the random order
    save_checkpoint(tmp_path / "step-3", first, optimizer)
    layer_wise = make_optimizer is _layer_wise
    assert (tmp_path / "step-3" / "badam_schedule.json").is_file() == layer_wise
    assert (tmp_path / "step-3" / "dcp" / ".metadata").is_file()

    resumed = tiny_llama(layers=3, dtype=torch.bfloat16, seed=7)
    optimizer = make_optimizer(resumed)
    load_checkpoint(tmp_path / "step-3", resumed, optimizer)
    train(resumed, optimizer, 4, seed0=3)
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), name


def test_checkpoint_refuses_what_it_cannot_save_or_load(tmp_path):
    from badam.checkpoint import load_checkpoint, save_checkpoint

    model = tiny_llama()
    with pytest.raises(TypeError, match="torch.save\\(optimizer.state_dict\\(\\)\\)"):
        save_checkpoint(tmp_path / "x", model, torch.optim.AdamW(model.parameters()))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="badam_schedule.json does not exist"):
        load_checkpoint(tmp_path / "empty", model, _layer_wise(model))
    with pytest.raises(FileNotFoundError, match="dcp does not exist"):
        load_checkpoint(tmp_path / "empty", model, _ratio(model))
