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
    prefix = tokenizer.bos_token if get_template(name).bos_prefix else ""
    assert tokenizer.decode(example["input_ids"]) == prefix + text
    assert example["input_ids"].count(tokenizer.eos_token_id) == EOS_COUNT.get(name, 2)
    answers = [i for i, label in zip(example["input_ids"], example["labels"]) if label != IGNORE_INDEX]
    assert tokenizer.decode(answers).count("It is 4.") == 1 and "What is" not in tokenizer.decode(answers)


EOS_COUNT = {"llama3": 0, "llamafactory_default": 5}  # the system message's, and one after each query and answer


def test_llamafactory_default_template_token_by_token(tokenizer):
    """LLaMA-Factory 0.9.5's `default`: each slot tokenized on its own, EOS after the system message and
    each query, a trained "\\n" after each answer, no BOS."""
    eos = tokenizer.eos_token_id
    (p1, a1), (p2, a2) = encode_conversation(tokenizer, get_template("llamafactory_default"), TURNS, system="Be brief.")
    assert p1 == (
        enc(tokenizer, "System: Be brief.")
        + [eos]
        + enc(tokenizer, "\n")
        + enc(tokenizer, "Human: What is 2 + 2?")
        + [eos]
        + enc(tokenizer, "\nAssistant:")
    )
    assert a1 == enc(tokenizer, "It is 4.") + [eos] + enc(tokenizer, "\n")
    assert p2 == enc(tokenizer, "Human: And {eos} 3 + 3?") + [eos] + enc(tokenizer, "\nAssistant:")
    assert a2 == enc(tokenizer, "6, see {braces}.") + [eos] + enc(tokenizer, "\n")


def test_llamafactory_joins_instruction_and_input_with_one_newline():
    from alpaca_sft.data import turns_of

    record = {"instruction": "Sort:", "input": "b a", "output": "a b"}
    assert turns_of(record, get_template("llamafactory_default").input_separator) == [("Sort:\nb a", "a b")]
    assert turns_of(record, get_template("default").input_separator) == [("Sort:\n\nb a", "a b")]


@pytest.mark.parametrize(
    "prompt_len, answer_len, room, kept",
    [
        (10, 3, 8, (5, 3)),  # a short answer is kept whole, the prompt cut
        (3, 10, 8, (3, 5)),  # a short prompt is kept whole, the answer cut
        (30, 10, 20, (15, 5)),  # both long: cut in proportion
        (4, 4, 100, (4, 4)),  # room for both
    ],
)
def test_proportional_truncation_is_llamafactorys_rule(prompt_len, answer_len, room, kept):
    from alpaca_sft.templates import infer_seqlen

    assert infer_seqlen(prompt_len, answer_len, room) == kept
    encoded = [(list(range(prompt_len)), list(range(100, 100 + answer_len)))]
    example = build_example(encoded, room, "proportional")
    assert example["input_ids"] == encoded[0][0][: kept[0]] + encoded[0][1][: kept[1]]
    assert example["labels"] == [IGNORE_INDEX] * kept[0] + encoded[0][1][: kept[1]]


def test_proportional_truncation_turn_by_turn():
    turns = [(list(range(6)), list(range(10, 14))), (list(range(20, 26)), list(range(30, 36)))]
    example = build_example(turns, 14, "proportional")
    # Turn 1 fits whole (10 tokens); turn 2 shares the 4 left: its 6-token answer is not short, its
    # prompt neither, so each keeps its share (2 and 2).
    assert example["input_ids"] == list(range(6)) + list(range(10, 14)) + [20, 21] + [30, 31]
    assert build_example(turns, 14, "tail")["input_ids"] == list(range(6)) + list(range(10, 14)) + [20, 21, 22, 23]


def test_cutoff_truncates_and_drops_promptonly(tokenizer):
    encoded = encode_conversation(tokenizer, get_template("default"), TURNS[:1])
    prompt, answer = encoded[0]
    cut = build_example(encoded, len(prompt) + 1)
    assert cut["input_ids"] == prompt + answer[:1] and cut["labels"] == [IGNORE_INDEX] * len(prompt) + answer[:1]
    assert build_example(encoded, len(prompt)) is None


def test_unknown_template():
    with pytest.raises(
        ValueError, match="unknown template 'vicuna'.*default, alpaca, llama2, llama3, llamafactory_default"
    ):
        get_template("vicuna")


@pytest.mark.skipif(not (MT_BENCH / "mt_bench" / "templates.py").is_file(), reason=f"mt-bench not found at {MT_BENCH}")
@pytest.mark.parametrize("name", [name for name in TEMPLATES if name != "llamafactory_default"])
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
