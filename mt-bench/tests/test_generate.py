"""Answer generation with a tiny random Llama on CPU over the real 80 questions, through the CLI entry."""

import json

import pytest

from mt_bench import generate
from mt_bench.data import load_questions, read_jsonl


def run(model, data_dir, out_dir, *extra):
    return generate.main(
        [
            "--model_path",
            str(model),
            "--model_id",
            "tiny",
            "--data_dir",
            str(data_dir),
            "--out_dir",
            str(out_dir),
            "--max_new_tokens",
            "4",
            "--batch_size",
            "8",
            *([] if "--device_map" in extra else ["--device", "cpu"]),  # one or the other
            *extra,
        ]
    )


def test_all_questions_resumable_after_a_crash(tiny_model, data_dir, tmp_path):
    path = run(tiny_model, data_dir, tmp_path, "--question_end", "10")
    first = {a["question_id"]: a["answer_id"] for a in read_jsonl(path)}
    assert len(first) == 10
    with path.open("a") as f:  # a crash in the middle of writing the next batch
        f.write('{"question_id": 91, "answer_id": "trunc')

    with pytest.warns(UserWarning, match="unfinished last line"):
        path = run(tiny_model, data_dir, tmp_path)
    answers = read_jsonl(path)
    questions = load_questions(data_dir)
    assert [a["question_id"] for a in answers] == sorted(q["question_id"] for q in questions)
    assert all(first[a["question_id"]] == a["answer_id"] for a in answers[:10])  # not answered again
    for a in answers:  # FastChat's model_answer format
        assert set(a) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
        assert a["model_id"] == "tiny" and len(a["choices"]) == 1 and a["choices"][0]["index"] == 0
        assert len(a["choices"][0]["turns"]) == 2 and all(isinstance(t, str) for t in a["choices"][0]["turns"])
    assert json.loads(path.read_text().splitlines()[-1])["question_id"] == 160

    # Nothing left to do: the model is not even loaded (this path does not exist).
    assert (
        generate.main(
            [
                "--model_path",
                "/nonexistent",
                "--model_id",
                "tiny",
                "--data_dir",
                str(data_dir),
                "--out_dir",
                str(tmp_path),
            ]
        )
        == path
    )


def test_batching_does_not_change_greedy_answers(tiny_model, data_dir, tmp_path):
    # Reasoning and math (indices 20-40) are answered greedily (temperature 0).
    ids = ["--question_begin", "20", "--question_end", "40"]
    batched = read_jsonl(run(tiny_model, data_dir, tmp_path / "b8", *ids))
    single = read_jsonl(run(tiny_model, data_dir, tmp_path / "b1", *ids, "--batch_size", "1"))
    assert [a["choices"] for a in batched] == [a["choices"] for a in single]


def test_sampling_is_seeded_per_question(tiny_model, data_dir, tmp_path):
    ids = ["--question_end", "6", "--max_new_tokens", "8"]  # writing: temperature 0.7
    a = read_jsonl(run(tiny_model, data_dir, tmp_path / "a", *ids))
    b = read_jsonl(run(tiny_model, data_dir, tmp_path / "b", *ids, "--batch_size", "1"))
    c = read_jsonl(run(tiny_model, data_dir, tmp_path / "c", *ids, "--seed", "1"))
    assert [x["choices"] for x in a] == [x["choices"] for x in b] != [x["choices"] for x in c]
    # Each question has its own seed, as in FastChat: its answer does not depend on the ones before.
    later = read_jsonl(run(tiny_model, data_dir, tmp_path / "d", *ids, "--question_begin", "3"))
    assert [x["choices"] for x in later] == [x["choices"] for x in a[3:]]
    assert a[0]["choices"] != a[1]["choices"]  # not one sample repeated: the questions differ


def test_lora_adapter_dir(tiny_model, data_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    lora = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    )  # B = 0: same function as base
    lora.save_pretrained(tmp_path / "adapter")
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
        tiny_model
    )
    ids = ["--question_begin", "20", "--question_end", "24"]
    merged = read_jsonl(run(tmp_path / "adapter", data_dir, tmp_path / "lora", *ids))
    base = read_jsonl(run(tiny_model, data_dir, tmp_path / "base", *ids))
    assert [a["choices"] for a in merged] == [a["choices"] for a in base]


@pytest.mark.parametrize("template", ["chat_template", "fschat:vicuna_v1.1", "llama3"])
def test_other_templates(tiny_model, data_dir, tmp_path, template):
    answers = read_jsonl(run(tiny_model, data_dir, tmp_path, "--question_end", "2", "--template", template))
    assert len(answers) == 2 and all(len(a["choices"][0]["turns"]) == 2 for a in answers)


GREEDY_16 = ["--question_begin", "20", "--question_end", "36"]  # reasoning and math: batched


def test_ctrl_c_keeps_the_batches_answered(tiny_model, data_dir, tmp_path, monkeypatch):
    real_answer_batch = generate.answer_batch
    calls = []

    def interrupted_in_batch_2(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_answer_batch(*args)

    monkeypatch.setattr(generate, "answer_batch", interrupted_in_batch_2)
    with pytest.raises(
        KeyboardInterrupt,
        match="interrupted: 8 of 16 questions answered now .* a rerun of the same command continues where it stopped",
    ):
        run(tiny_model, data_dir, tmp_path, *GREEDY_16)
    path = tmp_path / "model_answer" / "tiny.jsonl"
    assert [a["question_id"] for a in read_jsonl(path)] == list(range(101, 109))
    monkeypatch.setattr(generate, "answer_batch", real_answer_batch)
    run(tiny_model, data_dir, tmp_path, *GREEDY_16)
    assert [a["question_id"] for a in read_jsonl(path)] == list(range(101, 117))


def test_fschat_template_is_chosen_from_the_model_id(tiny_model, data_dir, tmp_path, monkeypatch):
    prompts = []
    real_complete = generate.complete
    monkeypatch.setattr(
        generate, "complete", lambda m, t, p, batch, *a: prompts.extend(batch) or real_complete(m, t, p, batch, *a)
    )
    ids = ["--question_end", "1", "--template", "fschat", "--model_id", "vicuna-7b-v1.5"]  # the path says nothing
    run(tiny_model, data_dir, tmp_path, *ids)
    assert prompts[0].startswith("A chat between a curious user and an artificial intelligence assistant.")


@pytest.mark.parametrize("placement", [["--device_map", "auto"], ["--device_map", "auto", "--load_8bit"]])
def test_device_map_and_8bit_loading(tiny_model, data_dir, tmp_path, placement):
    args = generate.cli.parse_args(
        generate.GenerateArgs, ["--model_path", str(tiny_model), "--model_id", "t", *placement]
    )
    model, _ = generate.load_model(args)
    assert type(model.model.layers[0].self_attn.q_proj).__name__ == ("Linear8bitLt" if args.load_8bit else "Linear")
    ids = ["--question_begin", "20", "--question_end", "22"]
    placed = read_jsonl(run(tiny_model, data_dir, tmp_path / "placed", *ids, *placement))
    one_device = read_jsonl(run(tiny_model, data_dir, tmp_path / "one", *ids))
    assert len(placed) == 2
    if not args.load_8bit:  # the same weights on the same CPU: the same answers
        assert [a["choices"] for a in placed] == [a["choices"] for a in one_device]
