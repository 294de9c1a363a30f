"""scripts/gpu_suite.sh --dry-run: the GPU suite runs end to end on a tiny shape on CPU."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_writes_every_table(tmp_path):
    out = tmp_path / "gpu.md"
    env_python = str(Path(sys.executable).parent.parent)
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_suite.sh"), "--dry-run", "--out", str(out)],
        capture_output=True,
        text=True,
        env={"VENV": env_python, "PATH": "/usr/bin:/bin"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    assert "Dry run" in text and "`bash scripts/gpu_suite.sh --dry-run`" in text
    rows = {
        line.split("|")[1].strip(): line
        for line in text.splitlines()
        if line.startswith("| BAdam") or line.startswith("| LoRA") or line.startswith("| AdamW")
    }
    for variant in ("BAdam, chunked update (default)", "BAdam, update in backward", "BAdam + Adam-mini, in backward"):
        peak = float(rows[variant].split("|")[2])
        assert peak > 0, variant
    in_backward_gradients = float(rows["BAdam, update in backward"].split("|")[4])
    chunked_gradients = float(rows["BAdam, chunked update (default)"].split("|")[4])
    assert in_backward_gradients == 0 < chunked_gradients, "in backward, no gradient is left for the step"
    assert re.search(r"\| LoRA \| [\d.]+ \| [\d.]+ \| [\d.]+ \| 1\.000 \|", text)
