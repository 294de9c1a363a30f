"""Shared fixtures: the real MT-bench data from ../shared, and a tiny random Llama built offline.

The subproject is not installed as a package: its directory goes on sys.path here, as the scripts put
it on PYTHONPATH.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

MT_BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(MT_BENCH))

DATA_DIR = MT_BENCH.parent.parent / "shared" / "data" / "mt_bench"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "question.jsonl").is_file():
        pytest.skip(f"MT-bench data not found at {DATA_DIR} (the repository's ../shared/data/mt_bench)")
    return DATA_DIR


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A byte-level BPE trained here (no download): every string encodes, BOS is added like Llama's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [p.read_text() for p in [DATA_DIR / "question.jsonl"] if p.is_file()] or ["Human: hello\nAssistant: hi"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384, special_tokens=["<s>", "</s>", "<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", chat_template=CHAT_TEMPLATE
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_tokenizer) -> Path:
    """A 2-layer Llama with random weights and its tokenizer, saved to a directory."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_answers(out_dir: Path, data_dir: Path, models: list[str]) -> None:
    """Answers in FastChat's format for every question, <model> answers <id>.<turn>, in out_dir/model_answer."""
    from mt_bench.data import append_jsonl, load_questions

    for model in models:
        append_jsonl(
            out_dir / "model_answer" / f"{model}.jsonl",
            [
                {
                    "question_id": q["question_id"],
                    "answer_id": "x",
                    "model_id": model,
                    "tstamp": 0.0,
                    "choices": [{"index": 0, "turns": [f"{model} answers {q['question_id']}.{t}" for t in (1, 2)]}],
                }
                for q in load_questions(data_dir)
            ],
        )


@pytest.fixture
def answers_in():
    """write_answers, for the tests (conftest's functions are not importable in importlib mode)."""
    return write_answers
