"""An encoder from the hub (or a local dir) with a jiant task head, and the batch collator.

Heads, as in jiant:
- classification: dropout, dense, tanh, dropout, linear to 2 classes, on the pooled output (RoBERTa's
  pooler, which the MLM checkpoint does not have: it starts fresh, like the head).
- multiple_choice: the same head with one output, scoring each choice; softmax over choices.
- span_comparison: each token span becomes one vector by self-attentive pooling (a learnt score per
  token, softmax-normalised within the span, weighted sum), the two span vectors are concatenated,
  dropped out and classified.

The head is `model.head` and the pooler `model.encoder.pooler`: `last_layer_prefixes()` names them
for the optimizers that keep them trainable throughout (--train_last_layer).

`check_model` says at once when `--model_name` cannot be loaded (a missing or incomplete directory,
a hub id that is neither cached nor reachable) and what to pass; `load_pretrained` reads the encoder
or its tokenizer after that check.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import torch
from torch import nn
from transformers import AutoModel
from transformers.modeling_outputs import SequenceClassifierOutput

from badam.atomic import file_problem

Loaded = TypeVar("Loaded")


def check_model(name_or_path: str) -> None:
    """Fail at once, saying what to pass, when `--model_name` names no model that can be loaded: a
    missing or incomplete directory, or a hub id that is not cached while the hub cannot be reached
    (otherwise the hub client retries for about a minute before it gives up)."""
    path = Path(name_or_path).expanduser()
    # A hub id is `name` or `org/name`; anything else that does not exist was meant as a local path.
    if not path.exists() and (name_or_path.startswith(("/", ".", "~")) or name_or_path.count("/") > 1):
        raise FileNotFoundError(f"--model_name: model directory {name_or_path} does not exist")
    if path.is_dir() and not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"--model_name: {name_or_path} holds no config.json: pass a model directory saved with save_pretrained"
        )
    for weights in sorted(path.glob("*.safetensors")) if path.is_dir() else []:
        problem = file_problem(weights)  # safetensors' own error for a cut file names neither file nor fix
        if problem is not None:
            raise ValueError(f"--model_name: {weights} {problem}: save or download the model again")
    if path.exists():
        return
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name_or_path, "config.json"), str):
        return
    endpoint = urlparse(constants.ENDPOINT)
    if constants.HF_HUB_OFFLINE:
        why = "HF_HUB_OFFLINE is set"
    else:
        try:
            socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=5).close()
            return
        except OSError as e:
            why = f"the hub ({endpoint.hostname}) cannot be reached ({e.strerror or e})"
    raise FileNotFoundError(
        f"--model_name: no local model was given: {name_or_path!r} is a hub id that is not in the local cache and "
        f"{why}; pass a local model directory, --model_name DIR (a model saved with save_pretrained)"
    )


def load_pretrained(load: Callable[..., Loaded], name_or_path: str) -> Loaded:
    """`load(name_or_path)` (AutoModel.from_pretrained, AutoTokenizer.from_pretrained) with clear errors."""
    check_model(name_or_path)
    try:
        return load(name_or_path)
    except OSError as e:  # what transformers raises for a file it cannot read, or a hub id it cannot get
        first_line = str(e).splitlines()[0]
        if Path(name_or_path).expanduser().exists():
            raise OSError(f"--model_name: cannot load {name_or_path} ({first_line})") from None
        raise FileNotFoundError(
            f"--model_name: model {name_or_path!r} could not be loaded from the hub ({first_line}): pass a local "
            "model directory, --model_name DIR"
        ) from None


class PooledHead(nn.Module):
    def __init__(self, hidden: int, dropout: float, outputs: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, outputs)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout(torch.tanh(self.dense(self.dropout(pooled)))))


class SpanComparisonHead(nn.Module):
    def __init__(self, hidden: int, dropout: float, num_spans: int = 2, outputs: int = 2) -> None:
        super().__init__()
        self.attention = nn.Linear(hidden, 1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden * num_spans, outputs)

    def forward(self, hidden: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
        """hidden [batch, tokens, hidden], spans [batch, num_spans, 2] (start, end exclusive)."""
        position = torch.arange(hidden.shape[1], device=hidden.device)
        inside = (position >= spans[..., :1]) & (position < spans[..., 1:])  # [batch, spans, tokens]
        scores = self.attention(hidden).squeeze(-1).unsqueeze(1)  # [batch, 1, tokens]
        weights = scores.masked_fill(~inside, torch.finfo(scores.dtype).min).softmax(-1)
        pooled = (weights @ hidden).flatten(1)  # [batch, spans * hidden]
        return self.classifier(self.dropout(pooled))


class TaskModel(nn.Module):
    def __init__(self, encoder: nn.Module, head: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.head_kind = head
        config = encoder.config
        hidden, dropout = config.hidden_size, getattr(config, "hidden_dropout_prob", 0.1)
        if head == "span_comparison":
            self.head = SpanComparisonHead(hidden, dropout)
        else:
            self.head = PooledHead(hidden, dropout, 1 if head == "multiple_choice" else 2)

    @classmethod
    def from_pretrained(cls, name_or_path: str, head: str) -> TaskModel:
        return cls(load_pretrained(AutoModel.from_pretrained, name_or_path), head)

    def last_layer_prefixes(self) -> list[str]:
        """Parameter-name prefixes of the freshly initialised part: the pooler (if any) and the head."""
        pooler = ["encoder.pooler."] if getattr(self.encoder, "pooler", None) is not None else []
        return pooler + ["head."]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        spans: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        choices = input_ids.shape[1] if self.head_kind == "multiple_choice" else None
        if choices:  # [batch, choices, tokens]: every choice is encoded as its own sequence
            input_ids, attention_mask = input_ids.flatten(0, 1), attention_mask.flatten(0, 1)
        output = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        if self.head_kind == "span_comparison":
            logits = self.head(output.last_hidden_state, spans)
        else:
            pooled = getattr(output, "pooler_output", None)
            logits = self.head(output.last_hidden_state[:, 0] if pooled is None else pooled)
            if choices:
                logits = logits.view(-1, choices)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


class Collator:
    """Pads a list of features (input_ids of one sequence, or one per choice) into a batch."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        sequences = [f["input_ids"] for f in features]
        nested = isinstance(sequences[0][0], list)
        flat = [s for seqs in sequences for s in seqs] if nested else sequences
        width = max(len(s) for s in flat)
        ids = torch.full((len(flat), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(flat), width), dtype=torch.long)
        for row, sequence in enumerate(flat):
            ids[row, : len(sequence)] = torch.tensor(sequence)
            mask[row, : len(sequence)] = 1
        if nested:
            ids, mask = ids.view(len(features), -1, width), mask.view(len(features), -1, width)
        batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([f["labels"] for f in features])}
        if "spans" in features[0]:
            batch["spans"] = torch.tensor([f["spans"] for f in features])
        return batch
