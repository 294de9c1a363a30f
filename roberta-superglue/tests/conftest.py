"""Shared fixtures: the real SuperGLUE files from ../shared, and a tiny random RoBERTa built offline.

The subproject is not installed as a package: its directory goes on sys.path here, as the scripts put
it on PYTHONPATH; so does this one, for the smoke-run helpers (superglue_smoke.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SUBPROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SUBPROJECT))
sys.path.insert(0, str(SUBPROJECT / "tests"))

DATA_DIR = SUBPROJECT.parent.parent / "shared" / "data" / "superglue"
TASK_DIRS = ("BoolQ", "COPA", "MultiRC", "RTE", "WiC", "WSC")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    missing = [t for t in TASK_DIRS if not (DATA_DIR / t / "val.jsonl").is_file()]
    if missing:
        pytest.skip(
            f"SuperGLUE data not found at {DATA_DIR} (the repository's ../shared/data/superglue; "
            f"missing {', '.join(missing)})"
        )
    return DATA_DIR


def task_texts(limit: int = 200) -> list[str]:
    """Some real text of every task, for the tokenizer's vocabulary."""
    texts = []
    for task in TASK_DIRS:
        path = DATA_DIR / task / "val.jsonl"
        if path.is_file():
            with path.open() as f:
                texts += [line for _, line in zip(range(limit), f)]
    return texts or ["The quick brown fox jumps over the lazy dog."]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tokenizer()


def build_tokenizer():
    """A byte-level BPE trained here on the SuperGLUE text (no download), wrapped as RoBERTa's tokenizer:
    jiant reads it as it reads roberta-large's, so inputs can be compared token for token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import RobertaTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's ids 0..4
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(task_texts(), trainer)
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False
    )
    return RobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_tokenizer) -> Path:
    """A 2-layer RoBERTa encoder with random weights and its tokenizer, saved to a directory."""
    import torch
    from transformers import RobertaConfig, RobertaModel

    config = RobertaConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-roberta")
    RobertaModel(config).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path
