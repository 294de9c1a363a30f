"""scripts/table2.sh end to end (generate, judge, show) with tiny models and the local fake judge."""

import os
import subprocess
import sys

import yaml
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from mt_bench.data import read_jsonl
from mt_bench.fake_judge import FakeJudge

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")


def test_table2_script(tiny_model, data_dir, tmp_path):
    adapter = tmp_path / "adapter"
    get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model),
        LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False),
    ).save_pretrained(adapter)
    run = dict(template="default", column="Tiny", paper=None)
    config = tmp_path / "table2.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "runs": [
                    dict(model_id="tiny-base", path=str(tiny_model), row="Pretrained", **run),
                    dict(model_id="tiny-lora", path=str(adapter), row="LoRA", **run),
                    dict(model_id="tiny-badam", path="llama-alpaca/outputs/not-trained-yet", row="BAdam", **run),
                ]
            }
        )
    )
    out = tmp_path / "out"
    with FakeJudge() as judge:
        env = {
            **os.environ,
            "PYTHON": sys.executable,
            "DATA_DIR": str(data_dir),
            "OUT_DIR": str(out),
            "TABLE2_CONFIG": str(config),
            "API_BASE": judge.api_base,
            "OPENAI_API_KEY": "sk-test",
            "GEN_ARGS": "--max_new_tokens 4 --batch_size 16 --device cpu",
            "OMP_NUM_THREADS": "1",
        }  # a tiny model: extra threads only spin
        result = subprocess.run(
            ["bash", os.path.join(SCRIPTS, "table2.sh")], env=env, capture_output=True, text=True, timeout=300
        )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipping tiny-badam: llama-alpaca/outputs/not-trained-yet does not exist" in result.stderr
    assert len(judge.log) == 2 * 160
    for model in ("tiny-base", "tiny-lora"):
        assert len(read_jsonl(out / "model_answer" / f"{model}.jsonl")) == 80
    assert len(read_jsonl(out / "model_judgment" / "gpt-4_single.jsonl")) == 320
    table2 = (out / "results" / "table2.md").read_text().splitlines()
    assert table2[0] == "| Method | Tiny | Tiny (paper) |"
    assert [line.split(" | ")[0] for line in table2[2:]] == ["| Pretrained", "| LoRA", "| BAdam"]
    assert table2[4] == "| BAdam | - | - |"
    assert (out / "results" / "radar.png").is_file()


def test_api_answer_script(data_dir, tmp_path):
    with FakeJudge() as endpoint:
        env = {**os.environ, "PYTHON": sys.executable, "DATA_DIR": str(data_dir), "OUT_DIR": str(tmp_path)}
        env.update(API_BASE=endpoint.api_base, OPENAI_API_KEY="sk-test")
        result = subprocess.run(
            ["bash", os.path.join(SCRIPTS, "api_answer.sh"), "gpt-3.5-turbo", "--question_end", "4"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = read_jsonl(tmp_path / "model_answer" / "gpt-3.5-turbo.jsonl")
    assert [a["question_id"] for a in answers] == [81, 82, 83, 84] and len(endpoint.log) == 8
    assert endpoint.requests[0]["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}
