"""scripts/bench_memory_floor.py on a tiny shape: it runs, and the three updates keep their order."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import bench_memory_floor


def test_each_update_holds_less_than_the_one_before():
    tiny = ["--layers", "2", "--hidden", "128", "--intermediate", "344", "--heads", "4", "--seq", "32"]
    figures = bench_memory_floor.main([*tiny, "--vocab", "256", "--memory-steps", "3", "--switch-every", "1"])
    for solver in ("AdamW", "Adam-mini"):
        peaks = [figures[f"{solver}, {update}"]["peak_bytes_per_active_param"] for update in bench_memory_floor.UPDATES]
        assert peaks[0] > peaks[1] > peaks[2] > 0, (solver, peaks)
    # master + m (+ v) is the floor in backward; one tensor's bf16 gradient and a slice come on top
    assert 12 < figures["AdamW, in backward"]["peak_bytes_per_active_param"] < 13
    assert 8 < figures["Adam-mini, in backward"]["peak_bytes_per_active_param"] < 9
