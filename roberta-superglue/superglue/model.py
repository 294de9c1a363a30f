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
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel
from transformers.modeling_outputs import SequenceClassifierOutput


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
        return cls(AutoModel.from_pretrained(name_or_path), head)

    def last_layer_prefixes(self) -> list[str]:
        """Parameter-name prefixes of the freshly initialised part: the pooler (if any) and the head."""
        pooler = ["encoder.pooler."] if getattr(self.encoder, "pooler", None) is not None else []
        return pooler + ["head."]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None,
                spans: torch.Tensor | None = None) -> SequenceClassifierOutput:
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
