"""Chat templates and piecewise tokenization: the exact token ids a conversation trains on.

Each message is tokenized on its own and the ids concatenated (as LLaMA-Factory does), so the
boundary between a prompt and its answer is exact: prompt tokens get label -100, answer tokens are
learnt. The first four templates' strings equal those of `mt-bench/mt_bench/templates.py`, the
format the model is asked in at evaluation time (a test checks it); the last reproduces a
LLaMA-Factory 0.9.5 run token for token:

    default  "{system}\\n" "Human: {q1}\\nAssistant:" a1 </s> | "\\n" "Human: {q2}\\nAssistant:" a2 </s>
    alpaca   "{system}\\n\\n" "### Instruction:\\n{q1}\\n\\n### Response:\\n" a1 </s> | "\\n\\n" ...
    llama2   "[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{q1} [/INST]" " a1 </s>" | "<s>" "[INST] {q2} [/INST]" ...
    llama3   "<|start_header_id|>user<|end_header_id|>\\n\\n{q1}<|eot_id|><|start_header_id|>assistant..." a1 "<|eot_id|>"
    llamafactory_default  "System: {system}</s>\\n" "Human: {q1}</s>\\nAssistant:" a1 "</s>\\n" | "Human: {q2}..."
                          (LLaMA-Factory 0.9.5's `default`: no BOS; instruction and input joined by "\\n")

"|" marks the separator, which belongs to the next (masked) prompt. The tokenizer's own leading
special tokens (Llama's BOS) start the first prompt, as they do when mt-bench tokenizes a prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100  # the label PyTorch's cross-entropy skips


@dataclass(frozen=True)
class Template:
    """A chat format; {eos}/{bos} stand for the tokenizer's special tokens, inserted as ids."""

    system: str  # default system message, "" for none
    system_format: str  # how a non-empty system message is written into the first prompt ({system})
    user: str  # one user turn up to where the answer starts: {system} (first turn), {query}
    answer: str  # what the model learns to write: {answer} and the end-of-answer marker
    separator: str  # between an answer and the next user turn (masked, part of the next prompt)
    bos_prefix: bool = True  # the tokenizer's leading special tokens (Llama's BOS) start the first prompt
    input_separator: str = "\n\n"  # between a record's instruction and its input


TEMPLATES: dict[str, Template] = {
    "default": Template(
        system="",
        system_format="{system}\n",
        user="{system}Human: {query}\nAssistant:",  # no space after "Assistant:", as in LLaMA-Factory
        answer="{answer}{eos}",
        separator="\n",
    ),
    "alpaca": Template(
        system="Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.",
        system_format="{system}\n\n",
        user="{system}### Instruction:\n{query}\n\n### Response:\n",
        answer="{answer}{eos}",
        separator="\n\n",
    ),
    "llama2": Template(
        system="",
        system_format="<<SYS>>\n{system}\n<</SYS>>\n\n",
        user="[INST] {system}{query} [/INST]",
        answer=" {answer} {eos}",
        separator="{bos}",
    ),
    "llama3": Template(
        system="",
        system_format="<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>",
        user="{system}<|start_header_id|>user<|end_header_id|>\n\n{query}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        answer="{answer}<|eot_id|>",
        separator="",
    ),
    # LLaMA-Factory 0.9.5's `default` (the paper used 0.8-0.9.0's, above): EOS after each query, a
    # trained "\n" after each answer, no BOS, and instruction and input joined by one "\n".
    "llamafactory_default": Template(
        system="",
        system_format="System: {system}{eos}\n{cut}",
        user="{system}Human: {query}{eos}\nAssistant:",
        answer="{answer}{eos}\n",
        separator="",
        bos_prefix=False,
        input_separator="\n",
    ),
}

# {eos}/{bos}: the special token; {cut}: a boundary between separately tokenized strings, no token.
_MARKER = re.compile(r"(\{eos\}|\{bos\}|\{cut\})")


class Special(str):
    """A special token (its marker text "eos" or "bos"), kept apart from text so content never becomes one."""


EOS, BOS = Special("eos"), Special("bos")
Chunks = list[str]  # text, and Special tokens


def get_template(name: str) -> Template:
    if name not in TEMPLATES:
        raise ValueError(f"unknown template {name!r}: use one of {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def _fill(fmt: str, **fields: str) -> Chunks:
    """The format string with its fields filled, split into text and special tokens."""
    out: Chunks = []
    for part in _MARKER.split(fmt):
        if part in ("{eos}", "{bos}"):
            out.append(EOS if part == "{eos}" else BOS)
        elif part and part != "{cut}":
            out.append(part.format(**fields))
    return out


def pieces(template: Template, turns: list[tuple[str, str]], system: str | None = None) -> list[tuple[Chunks, Chunks]]:
    """(prompt, answer) chunks per turn."""
    system = template.system if system is None else system
    out = []
    for i, (query, answer) in enumerate(turns):
        # The system format goes into the first prompt's format, so that its markers count as markers.
        prompt = (template.separator if i else "") + template.user.replace(
            "{system}", template.system_format if system and i == 0 else ""
        )
        out.append((_fill(prompt, system=system, query=query), _fill(template.answer, answer=answer)))
    return out


def render(template: Template, turns: list[tuple[str, str]], bos: str, eos: str, system: str | None = None) -> str:
    """The conversation as one string, special tokens written as their text."""
    text = {EOS: eos, BOS: bos}
    return "".join(
        text[c] if type(c) is Special else c for p in pieces(template, turns, system) for piece in p for c in piece
    )


def encode_piece(tokenizer: PreTrainedTokenizerBase, piece: Chunks) -> list[int]:
    ids = []
    for chunk in piece:
        if type(chunk) is not Special:
            ids.extend(tokenizer.encode(chunk, add_special_tokens=False))
        elif chunk == EOS:
            ids.append(tokenizer.eos_token_id)
        elif tokenizer.bos_token_id is not None:
            ids.append(tokenizer.bos_token_id)
    return ids


def encode_conversation(
    tokenizer: PreTrainedTokenizerBase, template: Template, turns: list[tuple[str, str]], system: str | None = None
) -> list[tuple[list[int], list[int]]]:
    """Token ids of (prompt, answer) per turn; the first prompt starts with the tokenizer's prefix (BOS)
    unless the template has none."""
    prefix = tokenizer("", add_special_tokens=True)["input_ids"] if template.bos_prefix else []
    encoded = [(encode_piece(tokenizer, p), encode_piece(tokenizer, a)) for p, a in pieces(template, turns, system)]
    encoded[0] = (prefix + encoded[0][0], encoded[0][1])
    return encoded


TRUNCATIONS = ("tail", "proportional")


def build_example(
    encoded: list[tuple[list[int], list[int]]], cutoff_len: int, truncation: str = "tail"
) -> dict[str, list[int]] | None:
    """input_ids and labels (prompts masked) within `cutoff_len`; None if no answer token fits.

    `tail` keeps the first cutoff_len tokens. `proportional` is LLaMA-Factory 0.9.5's rule: turn by
    turn, the room left is shared between prompt and answer (`infer_seqlen`), each cut at its end.
    """
    input_ids: list[int] = []
    labels: list[int] = []
    for prompt, answer in encoded:
        if truncation == "proportional":
            if len(input_ids) >= cutoff_len:
                break
            prompt_len, answer_len = infer_seqlen(len(prompt), len(answer), cutoff_len - len(input_ids))
            prompt, answer = prompt[:prompt_len], answer[:answer_len]
        input_ids += prompt + answer
        labels += [IGNORE_INDEX] * len(prompt) + answer
    input_ids, labels = input_ids[:cutoff_len], labels[:cutoff_len]
    if all(label == IGNORE_INDEX for label in labels):
        return None
    return {"input_ids": input_ids, "labels": labels}


def infer_seqlen(prompt_len: int, answer_len: int, room: int) -> tuple[int, int]:
    """(prompt, answer) lengths kept in `room` tokens: a short answer is kept whole, else a short
    prompt, else both in proportion to their lengths (LLaMA-Factory's rule)."""
    if answer_len * 2 < room:
        max_answer = room
    elif prompt_len * 2 < room:
        max_answer = room - prompt_len
    else:
        max_answer = int(room * (answer_len / (prompt_len + answer_len)))
    answer_len = min(max_answer, answer_len)
    return min(max(room - answer_len, 0), prompt_len), answer_len
