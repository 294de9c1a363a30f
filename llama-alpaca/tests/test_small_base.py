"""scripts/small_base.py: the small pretrained bases are built once, record their recipe, and have learnt."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from alpaca_sft.args import read_yaml
from alpaca_sft.data import load_records, split
from alpaca_sft.model import load_model_and_tokenizer

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import small_base  # noqa: E402  (a script, not a package)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    for path, what in ((small_base.ALPACA, "Alpaca-GPT4 sample"), (small_base.SUPERGLUE, "SuperGLUE tasks")):
        if not path.exists():
            pytest.skip(f"{what} not found at {path} (the repository's ../shared/data)")
    return tmp_path_factory.mktemp("cache")


def test_llama_base_has_learnt_and_records_its_recipe(cache):
    out = small_base.ensure_base("llama", "minimal", cache)
    recorded = json.loads((out / "recipe.json").read_text())
    assert recorded["recipe"] == asdict(small_base.PRESETS["minimal"]["llama"]) and recorded["recipe"]["seed"] == 0
    assert len(recorded["data_sha256"]) == 16 and recorded["data"].endswith("alpaca_gpt4_en_sample.json")
    # Pretraining on the responses lowers the loss on the held-out responses it never saw.
    assert recorded["heldout_loss_pretrained"] < recorded["heldout_loss_untrained"] - 0.3
    model, tokenizer = load_model_and_tokenizer(str(out), torch.float32)  # what alpaca_sft.train loads
    assert (
        type(model).__name__ == "LlamaForCausalLM" and tokenizer("Human: hi")["input_ids"][0] == tokenizer.bos_token_id
    )
    assert tokenizer.decode(tokenizer("Human: Name a colour.\nAssistant:")["input_ids"], skip_special_tokens=True) == (
        "Human: Name a colour.\nAssistant:"
    )


def test_base_is_reused_then_rebuilt_when_the_recipe_changes(cache, monkeypatch):
    out = small_base.ensure_base("llama", "minimal", cache)
    weights = out / "model.safetensors"
    built = weights.stat().st_mtime_ns
    assert small_base.ensure_base("llama", "minimal", cache) == out and weights.stat().st_mtime_ns == built
    changed = replace(small_base.PRESETS["minimal"]["llama"], steps=5)
    monkeypatch.setitem(small_base.PRESETS["minimal"], "llama", changed)
    assert small_base.ensure_base("llama", "minimal", cache) == out
    assert json.loads((out / "recipe.json").read_text())["recipe"]["steps"] == 5 and weights.stat().st_mtime_ns != built
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) == ["small-llama-minimal"]


def test_fine_tuning_validation_records_were_held_out_of_pretraining():
    """The demo's and the CPU reproduction's val split is the split the base left out."""
    if not small_base.ALPACA.is_file():
        pytest.skip(f"Alpaca-GPT4 sample not found at {small_base.ALPACA}")
    _, pretrain, heldout = small_base.alpaca_texts()
    for config in ("demo.yaml", "cpu_paper.yaml"):
        common = read_yaml(str(ROOT / "llama-alpaca" / "configs" / config))["common"]
        assert common["dataset"] == "alpaca_gpt4_en_sample" and "max_samples" not in common
        # The split alpaca_sft.train makes (load_splits) with the config's val_size and seed.
        train, val = split(list(enumerate(load_records(common["dataset"]), 1)), common["val_size"], common["seed"])
        assert [r["output"] for _, r in val] == heldout and [r["output"] for _, r in train] == pretrain
    assert len(heldout) == 100


def test_roberta_base_has_learnt_and_encodes_pairs_like_roberta(cache):
    from transformers import AutoModel, AutoTokenizer

    out = small_base.ensure_base("roberta", "minimal", cache)
    recorded = json.loads((out / "recipe.json").read_text())
    assert recorded["heldout_loss_pretrained"] < recorded["heldout_loss_untrained"] - 0.3
    tokenizer = AutoTokenizer.from_pretrained(out)
    pair = tokenizer("A cat.", "A dog.", return_offsets_mapping=True)
    tokens = tokenizer.convert_ids_to_tokens(pair["input_ids"])
    assert tokens[0] == "<s>" and tokens.count("</s>") == 3 and tokens[-1] == "</s>"
    assert AutoModel.from_pretrained(out).config.model_type == "roberta"  # what roberta-superglue loads


def test_superglue_pretraining_text_is_from_training_files_only():
    if not small_base.SUPERGLUE.is_dir():
        pytest.skip(f"SuperGLUE tasks not found at {small_base.SUPERGLUE}")
    texts, pretrain, heldout = small_base.superglue_texts()
    assert set(pretrain) | set(heldout) == set(texts) and not set(pretrain) & set(heldout)

    def premises(name: str) -> set[str]:
        return {json.loads(line)["premise"] for line in (small_base.SUPERGLUE / "RTE" / name).open()}

    val_only = premises("val.jsonl") - premises("train.jsonl")
    assert len(val_only) > 200 and not val_only & set(texts)
