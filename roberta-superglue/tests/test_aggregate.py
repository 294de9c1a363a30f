"""The paper's table from hand-made results files."""

import json
from pathlib import Path

import pytest

from superglue.aggregate import CONFIG, main


def write_run(root: Path, name: str, task: str, optimizer: str, test: dict, seed: int = 0) -> None:
    (root / name).mkdir(parents=True)
    run = {
        "task": task,
        "optimizer": optimizer,
        "seed": seed,
        "run_name": Path(name).name,
        "best_step": 10,
        "test": test,
    }
    (root / name / "results.json").write_text(json.dumps(run))


def test_table_averages_seeds_and_sits_next_to_the_paper(tmp_path):
    write_run(tmp_path, "rte-adam-seed0", "rte", "adam", {"accuracy": 0.8, "score": 0.8})
    write_run(tmp_path, "rte-adam-seed1", "rte", "adam", {"accuracy": 0.9, "score": 0.9}, seed=1)
    write_run(tmp_path, "nested/multirc-block-seed0", "multirc", "block", {"f1a": 0.7, "em": 0.3, "score": 0.5})
    write_run(tmp_path, "wsc-sparse-seed0", "wsc", "sparse", {"accuracy": 0.625, "score": 0.625})
    markdown = main(["--results_dir", str(tmp_path)])
    lines = markdown.splitlines()
    assert lines[0] == (
        "| Method | BoolQ | BoolQ (paper) | COPA | COPA (paper) | WSC | WSC (paper) | RTE | RTE (paper) "
        "| MultiRC | MultiRC (paper) | WiC | WiC (paper) |"
    )
    assert lines[2] == "| Adam | - | 0.86 | - | 0.59 | - | 0.68 | 0.850 ± 0.071 (n=2) | 0.87 | - | 0.76 | - | 0.70 |"
    assert lines[3] == "| LoRA | - | 0.81 | - | 0.56 | - | 0.62 | - | 0.79 | - | 0.69 | - | 0.59 |"
    assert lines[4] == "| BAdam | - | 0.85 | - | 0.69 | - | 0.65 | - | 0.76 | 0.500 | 0.77 | - | 0.64 |"
    assert lines[5] == "| BAdam (ratio) | - | - | - | - | 0.625 | - | - | - | - | - | - | - |"
    assert (tmp_path / "table.md").read_text() == markdown
    csv_lines = (tmp_path / "table.csv").read_text().splitlines()
    assert csv_lines[1] == "Adam,,0.86,,0.59,,0.68,0.85,0.87,,0.76,,0.7"
    runs = (tmp_path / "runs.csv").read_text().splitlines()
    assert runs[0] == "task,optimizer,seed,run_name,best_step,test_accuracy,test_em,test_f1a,test_score"
    assert "multirc,block,0,multirc-block-seed0,10,,0.3,0.7,0.5" in runs


def test_multirc_column_can_show_f1a(tmp_path):
    write_run(tmp_path, "multirc-adam-seed0", "multirc", "adam", {"f1a": 0.7, "em": 0.3, "score": 0.5})
    config = tmp_path / "f1a.yaml"
    config.write_text(CONFIG.read_text().replace("multirc: score", "multirc: f1a"))
    out = tmp_path / "tables"
    assert "| Adam | - | 0.86 | - | 0.59 | - | 0.68 | - | 0.87 | 0.700 | 0.76 |" in main(
        ["--results_dir", str(tmp_path), "--config", str(config), "--out_dir", str(out)]
    )
    assert (out / "table.csv").is_file()
    write_run(tmp_path, "rte-adam-seed0", "rte", "adam", {"accuracy": 0.8, "score": 0.8})
    config.write_text(CONFIG.read_text().replace("rte: score", "rte: f1a"))
    with pytest.raises(ValueError, match=r"rte-adam-seed0/results.json: no test metric 'f1a' for the rte column"):
        main(["--results_dir", str(tmp_path), "--config", str(config)])


def test_bad_results_file_is_named(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "results.json").write_text('{"task": "rte",\n "optimizer": ')
    with pytest.raises(ValueError, match=r"x/results.json:2: not valid JSON"):
        main(["--results_dir", str(tmp_path)])
    (tmp_path / "x" / "results.json").write_text('{"task": "rte"}')
    with pytest.raises(ValueError, match=r"x/results.json: not a superglue results file"):
        main(["--results_dir", str(tmp_path)])
