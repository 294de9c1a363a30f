"""Templates: token-exact prompt/answer boundaries, masking, and the same strings as mt-bench's."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from alpaca_sft.templates import IGNORE_INDEX, TEMPLATES, build_example, encode_conversation, get_template, render

MT_BENCH = Path(__file__).resolve().parents[2] / "mt-bench"

TURNS = [("What is 2 + 2?", "It is 4."), ("And {eos} 3 + 3?", "6, see {braces}.")]


def enc(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)


def test_default_template_token_by_token(tokenizer):
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    encoded = encode_conversation(tokenizer, get_template("default"), TURNS)
    assert encoded == [
        ([bos] + enc(tokenizer, "Human: What is 2 + 2?\nAssistant:"), enc(tokenizer, "It is 4.") + [eos]),
        (enc(tokenizer, "\nHuman: And {eos} 3 + 3?\nAssistant:"), enc(tokenizer, "6, see {braces}.") + [eos]),
    ]
    example = build_example(encoded, cutoff_len=10_000)
    (p1, a1), (p2, a2) = encoded
    assert example["input_ids"] == p1 + a1 + p2 + a2
    assert example["labels"] == [IGNORE_INDEX] * len(p1) + a1 + [IGNORE_INDEX] * len(p2) + a2


def test_system_message_and_llama2_separator(tokenizer):
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    (p1, a1), (p2, _) = encode_conversation(tokenizer, get_template("llama2"), TURNS, system="Be brief.")
    assert p1 == [bos] + enc(tokenizer, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWhat is 2 + 2? [/INST]")
    assert a1 == enc(tokenizer, " It is 4. ") + [eos]
    assert p2 == [bos] + enc(tokenizer, "[INST] And {eos} 3 + 3? [/INST]")


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_ids_decode_to_the_rendered_string(tokenizer, name):
    # Content that looks like a marker ({eos}) stays text: the only special ids are the template's.
    example = build_example(encode_conversation(tokenizer, get_template(name), TURNS, system="Sys."), 10_000)
    text = render(get_template(name), TURNS, tokenizer.bos_token, tokenizer.eos_token, system="Sys.")
    assert tokenizer.decode(example["input_ids"]) == tokenizer.bos_token + text
    assert example["input_ids"].count(tokenizer.eos_token_id) == (0 if name == "llama3" else 2)
    answers = [i for i, label in zip(example["input_ids"], example["labels"]) if label != IGNORE_INDEX]
    assert tokenizer.decode(answers).count("It is 4.") == 1 and "What is" not in tokenizer.decode(answers)


def test_cutoff_truncates_and_drops_promptonly(tokenizer):
    encoded = encode_conversation(tokenizer, get_template("default"), TURNS[:1])
    prompt, answer = encoded[0]
    cut = build_example(encoded, len(prompt) + 1)
    assert cut["input_ids"] == prompt + answer[:1] and cut["labels"] == [IGNORE_INDEX] * len(prompt) + answer[:1]
    assert build_example(encoded, len(prompt)) is None


def test_unknown_template():
    with pytest.raises(ValueError, match="unknown template 'vicuna'.*default, alpaca, llama2, llama3"):
        get_template("vicuna")


@pytest.mark.skipif(not (MT_BENCH / "mt_bench" / "templates.py").is_file(), reason=f"mt-bench not found at {MT_BENCH}")
@pytest.mark.parametrize("name", list(TEMPLATES))
@pytest.mark.parametrize("system", [None, "You are helpful."])
def test_same_strings_as_mt_bench(name, system):
    spec = importlib.util.spec_from_file_location("mt_bench_templates", MT_BENCH / "mt_bench" / "templates.py")
    mt = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mt  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mt)
    t = mt.TEMPLATES[name]
    sys_msg = t.system if system is None else system
    queries, answers = [q for q, _ in TURNS], [a for _, a in TURNS]
    # mt-bench renders the prompt for the next answer; ours the conversation, answers included.
    for k in (1, 2):
        prompt = mt.render(t, queries[:k], answers[: k - 1], sys_msg, "<s>", "</s>")
        ours = render(get_template(name), TURNS[:k], "<s>", "</s>", system=system)
        assert ours == prompt + ANSWER[name].format(answers[k - 1])


ANSWER = {"default": "{}</s>", "alpaca": "{}</s>", "llama2": " {} </s>", "llama3": "{}<|eot_id|>"}
