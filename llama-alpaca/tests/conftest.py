"""Shared fixtures: the real Alpaca-GPT4 sample from ../shared, a tiny Llama config and its offline tokenizer.

The subproject is not installed as a package: its directory goes on sys.path here, as the scripts put
it on PYTHONPATH.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

ALPACA_SAMPLE = PROJECT.parent.parent / "shared" / "data" / "alpaca_gpt4" / "alpaca_gpt4_en_sample.json"
MT_BENCH = PROJECT.parent / "mt-bench"


@pytest.fixture(scope="session")
def alpaca_sample() -> Path:
    if not ALPACA_SAMPLE.is_file():
        pytest.skip(f"Alpaca-GPT4 sample not found at {ALPACA_SAMPLE} (the repository's ../shared/data/alpaca_gpt4)")
    return ALPACA_SAMPLE


@pytest.fixture(scope="session")
def base_cache(tmp_path_factory) -> Path:
    """Where the scripts' tests build the minimal small bases (scripts/small_base.py), once per session."""
    return tmp_path_factory.mktemp("bases")


@pytest.fixture(scope="session")
def tokenizer():
    from alpaca_sft.model import demo_tokenizer

    return demo_tokenizer(512)


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory) -> Path:
    """A 2-layer Llama config, smaller than the demo's, for fast tests."""
    config = json.loads((PROJECT / "configs" / "tiny_llama.json").read_text())
    config.update(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    )
    path = tmp_path_factory.mktemp("config") / "tiny.json"
    path.write_text(json.dumps(config))
    return path
