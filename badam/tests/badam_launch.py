"""Starting 2-process CPU (gloo) jobs for the distributed tests: `launch(script, *args)` runs torchrun,
or `accelerate launch` with a config file."""

import functools
import os
import socket
import subprocess
import sys
from pathlib import Path

# DeepSpeed on CPU; the other engines ignore it.
ENV = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@functools.cache
def build_deepspeed_comm_op() -> None:
    """Build DeepSpeed's shared-memory comm op once, before two ranks would race to JIT-build it."""
    build = "from deepspeed.accelerator import get_accelerator; get_accelerator().create_op_builder('ShareMemCommBuilder').load()"
    result = subprocess.run([sys.executable, "-c", build], env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"building deepspeed_shm_comm failed:\n{result.stderr[-3000:]}"


def launch(script: Path, *args: str, deepspeed: bool = False, accelerate_config: Path | None = None) -> None:
    """Run `script` on 2 local gloo processes under torchrun, or under `accelerate launch --config_file
    accelerate_config`; `deepspeed`: the script uses DeepSpeed."""
    if deepspeed:
        build_deepspeed_comm_op()
    port = str(free_port())
    if accelerate_config is None:
        launcher = [
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            port,
        ]
    else:
        launcher = [
            "accelerate.commands.launch",
            "--config_file",
            str(accelerate_config),
            "--num_processes",
            "2",
            "--main_process_ip",
            "127.0.0.1",
            "--main_process_port",
            port,
        ]
    command = [sys.executable, "-m", *launcher, str(script), *args]
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"{launcher[0]} {script.name} {args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
