"""Heads and the collator: shapes, losses, and the span pooling computed by hand."""

import torch

from superglue.model import Collator, SpanComparisonHead, TaskModel


def test_span_head_pools_each_span_by_attention_within_it():
    torch.manual_seed(0)
    head = SpanComparisonHead(hidden=4, dropout=0.0)
    hidden = torch.randn(2, 6, 4)
    spans = torch.tensor([[[1, 3], [4, 5]], [[0, 1], [2, 6]]])
    logits = head(hidden, spans)
    expected = []
    for b in range(2):
        pooled = []
        for start, end in spans[b].tolist():
            scores = head.attention(hidden[b, start:end]).squeeze(-1)
            pooled.append(scores.softmax(0) @ hidden[b, start:end])
        expected.append(head.classifier(torch.cat(pooled)))
    assert torch.allclose(logits, torch.stack(expected), atol=1e-6)
    assert logits.shape == (2, 2)


def test_collator_pads_sequences_and_choices():
    collate = Collator(pad_token_id=1)
    batch = collate(
        [
            {"input_ids": [0, 5, 2], "labels": 1, "spans": [[1, 2], [1, 2]]},
            {"input_ids": [0, 2], "labels": 0, "spans": [[0, 1], [1, 2]]},
        ]
    )
    assert batch["input_ids"].tolist() == [[0, 5, 2], [0, 2, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["spans"].shape == (2, 2, 2) and batch["labels"].tolist() == [1, 0]
    choices = collate(
        [{"input_ids": [[0, 7, 2], [0, 2]], "labels": 1}, {"input_ids": [[0, 2], [0, 8, 9, 2]], "labels": 0}]
    )
    assert choices["input_ids"].shape == (2, 2, 4)
    assert choices["input_ids"][1, 1].tolist() == [0, 8, 9, 2] and choices["input_ids"][0, 1].tolist() == [0, 2, 1, 1]
    assert "spans" not in choices


def test_every_head_gives_logits_and_loss(tiny_model):
    collate = Collator(pad_token_id=1)
    cases = {
        "classification": [{"input_ids": [0, 10, 11, 2], "labels": 1}, {"input_ids": [0, 12, 2], "labels": 0}],
        "multiple_choice": [{"input_ids": [[0, 10, 2], [0, 11, 12, 2]], "labels": 1}] * 3,
        "span_comparison": [{"input_ids": [0, 10, 11, 12, 2], "spans": [[1, 2], [2, 4]], "labels": 0}] * 2,
    }
    for head, features in cases.items():
        model = TaskModel.from_pretrained(str(tiny_model), head)
        output = model(**collate(features))
        assert output.logits.shape == (len(features), 2), head
        assert output.loss.ndim == 0 and torch.isfinite(output.loss)
        output.loss.backward()
        assert (
            model.head.classifier.weight.grad is not None
            if head == "span_comparison"
            else model.head.out_proj.weight.grad is not None
        )
        assert model.last_layer_prefixes() == ["encoder.pooler.", "head."]
