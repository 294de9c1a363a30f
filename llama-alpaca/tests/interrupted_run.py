"""A training run that is interrupted on cue, for the resume tests (run as a subprocess).

    python interrupted_run.py kill-during-save STEP <alpaca_sft.train flags>   # SIGKILL while checkpoint-STEP is written
    python interrupted_run.py sigterm-during STEP <flags>                     # SIGTERM while step STEP computes

The kill lands after the model weights of checkpoint-STEP are on disk and before its optimizer
state, the middle of a save. The SIGTERM comes from inside the step, as a scheduler's would.
"""

import os
import signal
import sys

import torch
from transformers import Trainer

from alpaca_sft.train import main


def kill_during_save(step: int) -> None:
    save = Trainer._save_optimizer_and_scheduler

    def killed(self, output_dir):
        if self.state.global_step == step:
            os.kill(os.getpid(), signal.SIGKILL)
        return save(self, output_dir)

    Trainer._save_optimizer_and_scheduler = killed


def sigterm_during(step: int) -> None:
    training_step = Trainer.training_step

    def signalled(self, *args, **kwargs):
        if self.state.global_step == step - 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return training_step(self, *args, **kwargs)

    Trainer.training_step = signalled


if __name__ == "__main__":
    # One thread, as in the tests' own process (conftest.py): sums must round the same in both.
    torch.set_num_threads(1)
    how, step, *flags = sys.argv[1:]
    {"kill-during-save": kill_during_save, "sigterm-during": sigterm_during}[how](int(step))
    sys.argv = ["alpaca_sft.train", *flags]
    main()
