"""Chat prompt templates: the exact strings a model sees, in one place.

A model must be asked in the format it was fine-tuned with. The string templates below are the ones
the `llama-alpaca` subproject trains with (this module is meant to be shared with it):

    default  the paper's (LLaMA-Factory's `default`), used for every Table 2 run:
             "{system}\\n" "Human: {q1}\\nAssistant:" a1 </s> "\\n" "Human: {q2}\\nAssistant:"
    alpaca   "{system}\\n\\n" "### Instruction:\\n{q1}\\n\\n### Response:\\n" a1 </s> "\\n\\n" ...
    llama2   "[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{q1} [/INST]" " a1 </s><s>" "[INST] {q2} [/INST]"
    llama3   "<|start_header_id|>user<|end_header_id|>\\n\\n{q1}<|eot_id|>"
             "<|start_header_id|>assistant<|end_header_id|>\\n\\n" a1 "<|eot_id|>" ...

The tokenizer adds the leading BOS itself; {eos}/{bos} stand for the tokenizer's own tokens. Besides
these names, `chat_template` uses the tokenizer's chat template, `fschat:<name>` FastChat's
conversation template of that name (e.g. `fschat:vicuna_v1.1`), and `fschat` the template FastChat
picks from the model id (the name answers are stored under), as its gen_model_answer.py does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    """A chat format as plain strings; the model writes its answer right after `user`."""

    system: str  # default system message, "" for none
    system_format: str  # how a non-empty system message is written, replacing {system} in `user`
    user: str  # one user turn up to where the answer starts: {system} (first turn only), {query}
    assistant: str  # an earlier answer as it sits in the context: {answer}, {eos}, {bos}
    stop: tuple[str, ...] = ()  # text that ends an answer (the eos token always does)


TEMPLATES: dict[str, Template] = {
    "default": Template(
        system="",
        system_format="{system}\n",
        user="{system}Human: {query}\nAssistant:",  # no space: LLaMA-Factory's `default`
        assistant="{answer}{eos}\n",
        stop=("\nHuman:",),  # a model that never learnt to stop would go on with the next turn
    ),
    "alpaca": Template(
        system="Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.",
        system_format="{system}\n\n",
        user="{system}### Instruction:\n{query}\n\n### Response:\n",
        assistant="{answer}{eos}\n\n",
        stop=("### Instruction:",),
    ),
    "llama2": Template(
        system="",
        system_format="<<SYS>>\n{system}\n<</SYS>>\n\n",
        user="[INST] {system}{query} [/INST]",
        assistant=" {answer} {eos}{bos}",
    ),
    "llama3": Template(
        system="",
        system_format="<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>",
        user="{system}<|start_header_id|>user<|end_header_id|>\n\n{query}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        assistant="{answer}<|eot_id|>",
        stop=("<|eot_id|>",),
    ),
}


@dataclass(frozen=True)
class Prompter:
    """Turns (questions so far, earlier answers) into the prompt text for the next answer."""

    render: Callable[[list[str], list[str]], str]
    stop: tuple[str, ...]  # text that ends an answer
    add_special_tokens: bool  # whether the tokenizer should add BOS (False when the text has it)
    stop_token_ids: tuple[int, ...] = ()  # token ids that end an answer, besides the eos


def render(template: Template, queries: list[str], answers: list[str], system: str, bos: str, eos: str) -> str:
    """The prompt for answering queries[-1], with the earlier turns and answers in the context."""
    assert len(answers) == len(queries) - 1, "one answer for each earlier query"
    sys_text = template.system_format.format(system=system) if system else ""
    parts = []
    for i, query in enumerate(queries):
        parts.append(template.user.format(system=sys_text if i == 0 else "", query=query))
        if i < len(answers):
            parts.append(template.assistant.format(answer=answers[i], bos=bos, eos=eos))
    return "".join(parts)


def check_template(name: str) -> None:
    """A ValueError for a template name make_prompter does not know; needs no tokenizer, so a command
    can say so before it loads a model."""
    kind, _, conv_name = name.partition(":")
    if kind == "fschat" and conv_name:
        from fastchat.conversation import conv_templates

        if conv_name not in conv_templates:
            raise ValueError(
                f"unknown FastChat template {conv_name!r}: use a name of "
                "fastchat.conversation.conv_templates, e.g. vicuna_v1.1 or llama-2"
            )
    elif name not in (*TEMPLATES, "chat_template", "fschat"):
        raise ValueError(
            f"unknown template {name!r}: use one of {sorted(TEMPLATES)}, chat_template, "
            "fschat or fschat:<FastChat template name>"
        )


def make_prompter(name: str, tokenizer, model_id: str = "", system: str | None = None) -> Prompter:
    """The Prompter for a template name (see the module docstring); `system` overrides the default."""
    check_template(name)
    if name in TEMPLATES:
        t = TEMPLATES[name]
        sys_msg = t.system if system is None else system
        bos, eos = tokenizer.bos_token or "", tokenizer.eos_token or ""
        return Prompter(lambda q, a: render(t, q, a, sys_msg, bos, eos), t.stop, add_special_tokens=True)
    if name == "chat_template":
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"--template chat_template: the tokenizer of {model_id} has no chat template")

        def render_chat(queries: list[str], answers: list[str]) -> str:
            messages = [{"role": "system", "content": system}] if system else []
            for i, query in enumerate(queries):
                messages.append({"role": "user", "content": query})
                if i < len(answers):
                    messages.append({"role": "assistant", "content": answers[i]})
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

        return Prompter(render_chat, (), add_special_tokens=False)
    return _fschat_prompter(name.partition(":")[2], model_id, system)


def _fschat_prompter(conv_name: str, model_id: str, system: str | None) -> Prompter:
    if conv_name:
        from fastchat.conversation import conv_templates

        base = conv_templates[conv_name].copy()
    else:
        from fastchat.model import get_conversation_template  # slow import: only when asked for

        base = get_conversation_template(model_id)
    if system is not None:
        base.set_system_message(system)

    def render_conv(queries: list[str], answers: list[str]) -> str:
        conv = base.copy()
        for i, query in enumerate(queries):
            conv.append_message(conv.roles[0], query)
            conv.append_message(conv.roles[1], answers[i] if i < len(answers) else None)
        return conv.get_prompt()

    stop = base.stop_str if isinstance(base.stop_str, list) else [base.stop_str] if base.stop_str else []
    return Prompter(render_conv, tuple(stop), True, tuple(base.stop_token_ids or ()))
