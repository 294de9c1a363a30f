"""Small pretrained bases for the CPU-scale runs: a Llama pretrained on Alpaca-GPT4 responses, a RoBERTa on SuperGLUE.

    .venv/bin/python scripts/small_base.py llama     # prints the model dir, .cache/small-llama
    .venv/bin/python scripts/small_base.py roberta   # .cache/small-roberta
    .venv/bin/python scripts/small_base.py llama --preset minimal --cache /tmp/c   # seconds, for tests

Fine-tuning from random weights says nothing about the paper (a low-rank correction of random
weights cannot learn), so the demo and the CPU reproductions start from these. Each base is a
byte-level BPE tokenizer trained here (`tokenizers`) and a model pretrained on real text that ships
in ../shared/data: causal LM on the responses of the Alpaca-GPT4 sample, masked LM (15 %) on the
training files of the SuperGLUE tasks. The dir is reused while `recipe.json` in it (the recipe, its
seed, the data's hash) matches; otherwise it is rebuilt in a staging dir and renamed into place
(badam.atomic.staged), so a crash never leaves a half-written base. `recipe.json` also records the held-out loss before and
after pretraining.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from badam.atomic import staged

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "llama-alpaca"))

from alpaca_sft.data import DATASETS, load_records, split, turns_of  # noqa: E402  (the fine-tuning runs' own)
from alpaca_sft.templates import TEMPLATES, render  # noqa: E402

ALPACA = DATASETS["alpaca_gpt4_en_sample"].files[0]
SUPERGLUE = ROOT.parent / "shared" / "data" / "superglue"
# The fine-tuning runs' validation split (configs/demo.yaml, configs/cpu_*.yaml: val_size 100, seed 0):
# the Llama never sees those responses, so their eval loss is on unseen text.
HELDOUT_VAL_SIZE, HELDOUT_SEED = 100, 0


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the base's weights; a change rebuilds it."""

    arch: str  # llama or roberta
    vocab_size: int = 2048  # BPE vocabulary (specials included)
    hidden_size: int = 192  # model width
    layers: int = 4  # decoder / encoder layers (BAdam's D)
    heads: int = 6  # attention heads
    kv_heads: int = 2  # Llama: key/value heads (grouped-query attention)
    intermediate_size: int = 512  # MLP width
    seq_len: int = 128  # tokens per packed training sequence
    batch_size: int = 16  # sequences per step
    steps: int = 500  # optimizer steps
    lr: float = 2e-3  # AdamW peak learning rate (linear warm-up, cosine decay)
    warmup_steps: int = 30  # warm-up steps
    seed: int = 0  # initialisation, data order and masks


PRESETS = {
    "default": {"llama": Recipe("llama"), "roberta": Recipe("roberta", steps=300)},
    # Seconds, for the tests of the scripts: the same architecture, barely trained.
    "minimal": {
        "llama": Recipe("llama", vocab_size=512, hidden_size=64, layers=2, heads=4, intermediate_size=128, steps=30),
        "roberta": Recipe(
            "roberta", vocab_size=512, hidden_size=64, layers=2, heads=4, intermediate_size=128, steps=30
        ),
    },
}
SPECIALS = {"llama": ["<s>", "</s>", "<pad>", "<unk>"], "roberta": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]}


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise SystemExit(f"error: {what} not found at {path} (the repository's ../shared/data)")
    return path


def alpaca_texts() -> tuple[list[str], list[str], list[str]]:
    """(tokenizer texts, pretraining responses, held-out responses) of the Alpaca-GPT4 sample."""
    _require(ALPACA, "the Alpaca-GPT4 sample")
    records = load_records("alpaca_gpt4_en_sample")
    # The tokenizer learns the chat templates' strings too, so "Human:" or "Assistant:" are a few tokens.
    tokenizer_texts = [render(t, turns_of(r), "<s>", "</s>") for r in records[:200] for t in TEMPLATES.values()]
    tokenizer_texts += [r["instruction"] + "\n" + r["input"] + "\n" + r["output"] for r in records]
    train, heldout = split(list(enumerate(records, 1)), HELDOUT_VAL_SIZE, HELDOUT_SEED)
    return tokenizer_texts, [r["output"] for _, r in train], [r["output"] for _, r in heldout]


def _strings(value) -> Iterator[str]:
    """Every text of a SuperGLUE record (passages, questions, sentences), whatever the task's fields."""
    if isinstance(value, str):
        if len(value.split()) >= 4:
            yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def superglue_texts() -> tuple[list[str], list[str], list[str]]:
    """(tokenizer texts, pretraining texts, held-out texts): the tasks' training files only, never val."""
    files = sorted(_require(SUPERGLUE, "the SuperGLUE tasks").glob("*/train*.jsonl"))
    texts = sorted(
        {s for f in files for line in f.read_text(encoding="utf-8").splitlines() for s in _strings(json.loads(line))}
    )
    random.Random(HELDOUT_SEED).shuffle(texts)
    cut = len(texts) // 20
    return texts, texts[cut:], texts[:cut]


def train_tokenizer(arch: str, vocab_size: int, texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, RobertaTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS[arch],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    specials = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    if arch == "llama":  # BOS first, as Llama's tokenizer does
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
        )
        return PreTrainedTokenizerFast(tokenizer_object=tok, **specials)
    # RoBERTa's pairs (<s> A </s></s> B </s>) and offsets, which roberta-superglue's span heads need.
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>"))
    )
    return RobertaTokenizerFast(
        tokenizer_object=tok, mask_token="<mask>", sep_token="</s>", cls_token="<s>", **specials
    )


def build_model(recipe: Recipe, tokenizer) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM, RobertaConfig, RobertaForMaskedLM

    torch.manual_seed(recipe.seed)
    shared = dict(vocab_size=len(tokenizer), hidden_size=recipe.hidden_size, num_hidden_layers=recipe.layers)
    shared.update(num_attention_heads=recipe.heads, intermediate_size=recipe.intermediate_size)
    ids = dict(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    if recipe.arch == "llama":
        config = LlamaConfig(
            **shared, **ids, num_key_value_heads=recipe.kv_heads, max_position_embeddings=512, tie_word_embeddings=False
        )
        return LlamaForCausalLM(config)
    # 258 positions: roberta-superglue's 256 tokens plus RoBERTa's offset of the padding index.
    return RobertaForMaskedLM(RobertaConfig(**shared, **ids, max_position_embeddings=258, type_vocab_size=1))


def pack(tokenizer, texts: list[str], seq_len: int, arch: str) -> torch.Tensor:
    """The texts' tokens, each text ended by EOS (Llama) or framed <s> .. </s> (RoBERTa), in rows of seq_len."""
    ids: list[int] = []
    for encoded in tokenizer(texts)["input_ids"]:
        ids += encoded + [tokenizer.eos_token_id] if arch == "llama" else encoded
    rows = len(ids) // seq_len
    if rows == 0:
        raise SystemExit(f"error: {len(ids)} tokens of text, fewer than one sequence of {seq_len}")
    return torch.tensor(ids[: rows * seq_len]).view(rows, seq_len)


def mlm_batch(tokenizer, rows: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """BERT's masking: 15 % of the non-special tokens are predicted; of those 80 % <mask>, 10 % random, 10 % kept."""
    labels = rows.clone()
    special = (rows == tokenizer.bos_token_id) | (rows == tokenizer.eos_token_id)
    chosen = (torch.rand(rows.shape, generator=generator) < 0.15) & ~special
    labels[~chosen] = -100
    inputs = rows.clone()
    draw = torch.rand(rows.shape, generator=generator)
    inputs[chosen & (draw < 0.8)] = tokenizer.mask_token_id
    randomised = chosen & (draw >= 0.8) & (draw < 0.9)
    inputs[randomised] = torch.randint(len(tokenizer), rows.shape, generator=generator)[randomised]
    return {"input_ids": inputs, "labels": labels}


def batch_of(recipe: Recipe, tokenizer, rows: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
    if recipe.arch == "llama":
        return {"input_ids": rows, "labels": rows}
    return mlm_batch(tokenizer, rows, generator)


@torch.no_grad()
def heldout_loss(model, batches: list[dict[str, torch.Tensor]]) -> float:
    model.eval()
    losses = [model(**b).loss.item() for b in batches]
    model.train()
    return sum(losses) / len(losses)


def pretrain(recipe: Recipe, texts: tuple[list[str], list[str], list[str]], out: Path) -> dict:
    """Train the tokenizer and the model, save both to `out`; returns the losses and timing."""
    tokenizer_texts, train_texts, heldout_texts = texts
    tokenizer = train_tokenizer(recipe.arch, recipe.vocab_size, tokenizer_texts)
    model = build_model(recipe, tokenizer)
    rows = pack(tokenizer, train_texts, recipe.seq_len, recipe.arch)
    generator = torch.Generator().manual_seed(recipe.seed)
    held_rows = pack(tokenizer, heldout_texts, recipe.seq_len, recipe.arch)[:64]
    heldout = [batch_of(recipe, tokenizer, held_rows[i : i + 16], generator) for i in range(0, len(held_rows), 16)]
    untrained = heldout_loss(model, heldout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.01)

    def lr_factor(step: int) -> float:
        if step < recipe.warmup_steps:
            return (step + 1) / recipe.warmup_steps
        return 0.5 * (1 + math.cos(math.pi * (step - recipe.warmup_steps) / max(recipe.steps - recipe.warmup_steps, 1)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    start = time.perf_counter()
    progress = tqdm(range(recipe.steps), desc=f"pretraining small-{recipe.arch}", unit="step", mininterval=2.0)
    for step in progress:
        picked = torch.randint(len(rows), (recipe.batch_size,), generator=generator)
        loss = model(**batch_of(recipe, tokenizer, rows[picked], generator)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 20 == 0:
            progress.set_postfix(loss=f"{loss.item():.3f}")
    trained = heldout_loss(model, heldout)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {
        "heldout_loss_untrained": untrained,
        "heldout_loss_pretrained": trained,
        "train_tokens": rows.numel(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "pretrain_seconds": round(time.perf_counter() - start, 1),
    }


def data_hash(texts: tuple[list[str], list[str], list[str]]) -> str:
    digest = hashlib.sha256()
    for part in texts:
        digest.update(json.dumps(part).encode())
    return digest.hexdigest()[:16]


def ensure_base(arch: str, preset: str = "default", cache: Path | None = None) -> Path:
    """The base's dir, built first when it is absent or was built from another recipe or data."""
    recipe = PRESETS[preset][arch]
    cache = Path(cache or os.environ.get("BADAM_CACHE") or ROOT / ".cache")
    out = cache / (f"small-{arch}" if preset == "default" else f"small-{arch}-{preset}")
    texts = alpaca_texts() if arch == "llama" else superglue_texts()
    wanted = {
        "recipe": asdict(recipe),
        "data": str(ALPACA if arch == "llama" else SUPERGLUE),
        "data_sha256": data_hash(texts),
    }
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second builder waits, then finds the base built
        if _recorded(out) == wanted:
            return out
        print(f"[small_base] building {out} (recipe or data changed, or first run): a few minutes", file=sys.stderr)
        with staged(out) as folder:  # a kill leaves the old base, or none, never half a new one
            measured = pretrain(recipe, texts, folder)
            (folder / "recipe.json").write_text(json.dumps({**wanted, **measured}, indent=1) + "\n")
    return out


def _recorded(out: Path) -> dict | None:
    try:
        recorded = json.loads((out / "recipe.json").read_text())
    except (OSError, ValueError):
        return None
    return {k: recorded.get(k) for k in ("recipe", "data", "data_sha256")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("arch", choices=("llama", "roberta"))
    parser.add_argument("--preset", choices=tuple(PRESETS), default="default", help="default, or minimal for tests")
    parser.add_argument("--cache", type=Path, default=None, help="cache root (default $BADAM_CACHE or .cache/)")
    args = parser.parse_args(argv)
    print(ensure_base(args.arch, args.preset, args.cache))


if __name__ == "__main__":
    main()
