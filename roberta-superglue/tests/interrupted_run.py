"""superglue.train, interrupted on cue, for the interruption tests (run as a subprocess).

    python interrupted_run.py kill-during-save STEP <superglue.train flags>   # SIGKILL while checkpoint-STEP is written
    python interrupted_run.py signal-during SIGNAL STEP <flags>              # SIGTERM/SIGINT while step STEP computes

The kill lands after the weights of checkpoint-STEP are on disk and before its optimizer state: the
middle of a save. The signal comes from inside the step, as a scheduler's (or a Ctrl-C) would.
"""

import os
import signal
import sys

from transformers import Trainer

from superglue.cli import run_cli
from superglue.train import main


def kill_during_save(step: str) -> None:
    save = Trainer._save_optimizer_and_scheduler

    def killed(self, output_dir):
        if self.state.global_step == int(step):
            os.kill(os.getpid(), signal.SIGKILL)
        return save(self, output_dir)

    Trainer._save_optimizer_and_scheduler = killed


def signal_during(name: str, step: str) -> None:
    training_step = Trainer.training_step

    def signalled(self, *args, **kwargs):
        if self.state.global_step == int(step) - 1:
            os.kill(os.getpid(), signal.Signals[name])
        return training_step(self, *args, **kwargs)

    Trainer.training_step = signalled


if __name__ == "__main__":
    how, *rest = sys.argv[1:]
    if how == "kill-during-save":
        (step, *flags) = rest
        kill_during_save(step)
    else:
        (name, step, *flags) = rest
        signal_during(name, step)
    run_cli(main, flags)
