"""Each template renders exactly the documented strings, with the first answer in the context."""

import pytest

from mt_bench.templates import make_prompter

Q, A = ["What is 2+2?", "And 3+3?"], ["4"]


class Tok:  # the two attributes the string templates read from a tokenizer
    bos_token, eos_token = "<s>", "</s>"


@pytest.mark.parametrize(
    "name, first, second",
    [
        (
            "default",
            "Human: What is 2+2?\nAssistant:",
            "Human: What is 2+2?\nAssistant:4</s>\nHuman: And 3+3?\nAssistant:",
        ),
        (
            "alpaca",
            "Below is an instruction that describes a task. Write a response that appropriately completes the request."
            "\n\n### Instruction:\nWhat is 2+2?\n\n### Response:\n",
            "Below is an instruction that describes a task. Write a response that appropriately completes the request."
            "\n\n### Instruction:\nWhat is 2+2?\n\n### Response:\n4</s>\n\n### Instruction:\nAnd 3+3?\n\n### Response:\n",
        ),
        ("llama2", "[INST] What is 2+2? [/INST]", "[INST] What is 2+2? [/INST] 4 </s><s>[INST] And 3+3? [/INST]"),
        (
            "llama3",
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
            "4<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
        ),
    ],
)
def test_string_templates(name, first, second):
    prompter = make_prompter(name, Tok())
    assert prompter.render(Q[:1], []) == first
    assert prompter.render(Q, A) == second
    assert prompter.add_special_tokens  # the tokenizer adds BOS


def test_system_message_goes_into_the_first_turn_only():
    assert (
        make_prompter("default", Tok(), system="Be brief.").render(Q, A)
        == "Be brief.\nHuman: What is 2+2?\nAssistant:4</s>\nHuman: And 3+3?\nAssistant:"
    )
    assert (
        make_prompter("llama2", Tok(), system="Be brief.").render(Q, A)
        == "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWhat is 2+2? [/INST] 4 </s><s>[INST] And 3+3? [/INST]"
    )


def test_tokenizer_chat_template(tiny_tokenizer):
    prompter = make_prompter("chat_template", tiny_tokenizer)
    assert prompter.render(Q, A) == "<|user|>What is 2+2?\n<|assistant|>4\n<|user|>And 3+3?\n<|assistant|>"
    assert not prompter.add_special_tokens  # a chat template writes its own BOS if it wants one


def test_fschat_template_by_name():
    prompter = make_prompter("fschat:vicuna_v1.1", Tok())
    system = (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
        "helpful, detailed, and polite answers to the user's questions."
    )
    assert prompter.render(Q, A) == system + " USER: What is 2+2? ASSISTANT: 4</s>USER: And 3+3? ASSISTANT:"


def test_unknown_template():
    with pytest.raises(ValueError, match="unknown template 'vicuna'.*alpaca.*chat_template"):
        make_prompter("vicuna", Tok())
    with pytest.raises(ValueError, match="unknown FastChat template 'nope'.*vicuna_v1.1"):
        make_prompter("fschat:nope", Tok())


def test_fschat_template_from_the_model_id():
    # FastChat's own choice, as its gen_model_answer.py makes it from --model-id.
    from fastchat.model import get_conversation_template

    assert get_conversation_template("vicuna-7b-v1.5").name == "vicuna_v1.1"
    assert make_prompter("fschat", Tok(), model_id="vicuna-7b-v1.5").render(Q, A) == make_prompter(
        "fschat:vicuna_v1.1", Tok()
    ).render(Q, A)
