"""Model and tokenizer: a hub name or local dir, or a config .json built offline with a tokenizer of our own.

`--model_name_or_path configs/tiny_llama.json` builds a randomly initialised model from that config
(no download) with a byte-level BPE tokenizer trained on the shipped demo data at first use and
cached under llama-alpaca/.cache/. Anything else goes to `AutoModelForCausalLM.from_pretrained`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from .data import DATASETS, read_file, turns_of
from .templates import TEMPLATES, render

CACHE = Path(__file__).resolve().parents[1] / ".cache"
SPECIAL_TOKENS = ["<s>", "</s>", "<pad>", "<unk>"]


def train_tokenizer(vocab_size: int, texts: list[str]) -> PreTrainedTokenizerFast:
    """Byte-level BPE: every string encodes; BOS is added like Llama's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def demo_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """The tokenizer of config-built models, trained on the demo data in every template's format; cached."""
    data = DATASETS["demo"].files[0]
    texts = [render(t, turns_of(r), "<s>", "</s>") for r in read_file(data) for t in TEMPLATES.values()]
    # Keyed by what it is trained on, so a template added later cannot reuse a stale cached tokenizer.
    key = hashlib.sha256("\0".join(texts).encode() + str(vocab_size).encode()).hexdigest()[:12]
    path = CACHE / f"tokenizer-{key}"
    if (path / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(path)
    tokenizer = train_tokenizer(vocab_size, texts)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tokenizer.save_pretrained(tmp)
    try:
        tmp.replace(path)  # atomic: a concurrent run sees either no tokenizer or a whole one
    except OSError:  # another process won the race: keep theirs
        shutil.rmtree(tmp)
    return tokenizer


def _check_local_or_hub(name_or_path: str) -> None:
    """A model path meant to be local (a hub id is `org/name`) must be a saved model directory."""
    path = Path(name_or_path).expanduser()
    if not path.exists() and (name_or_path.startswith(("/", ".", "~")) or name_or_path.count("/") > 1):
        raise FileNotFoundError(f"model directory {name_or_path} does not exist")
    if path.is_dir() and not (path / "config.json").is_file():
        raise FileNotFoundError(f"{name_or_path} holds no config.json: pass a model directory saved by save_pretrained")


def load_model_and_tokenizer(name_or_path: str, dtype: torch.dtype, seed: int = 42):
    """(model, tokenizer); the tokenizer always has a pad token (the EOS when it has none of its own)."""
    if name_or_path.endswith(".json"):
        if not Path(name_or_path).is_file():
            raise FileNotFoundError(f"model config {name_or_path} does not exist")
        config = AutoConfig.from_pretrained(name_or_path)
        tokenizer = demo_tokenizer(config.vocab_size)
        config.vocab_size = len(tokenizer)
        config.bos_token_id, config.eos_token_id, config.pad_token_id = (
            tokenizer.bos_token_id,
            tokenizer.eos_token_id,
            tokenizer.pad_token_id,
        )
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    else:
        _check_local_or_hub(name_or_path)
        try:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path)
            model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype)
        except OSError as exc:  # what transformers raises for a hub id it cannot reach or find
            raise FileNotFoundError(
                f"model {name_or_path!r} was not found locally and could not be downloaded (no network, or no such "
                f"hub model): pass a local model directory ({str(exc).splitlines()[0]})"
            ) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
