"""Model inputs of a jiant example, made by jiant itself: its tokenize(), then its featurize().

jiant tokenizes each text on its own, joins the pieces with the model's special tokens
(`<s> A </s></s> B </s>` for RoBERTa; `<s> word </s></s> sentence1 </s></s> sentence2 </s>` for
WiC), truncates each task its own way, and maps WiC's character spans and WSC's word spans to token
spans. This module only turns jiant's padded, fixed-length DataRow into what the collator takes:

    featurizer = Featurizer(tokenizer, max_length=256)
    feature = featurizer(example.jiant)   # {"input_ids": [...], "labels": 1, "spans": [[s, e), ...]}

input_ids without jiant's padding (the collator pads each batch), a list per choice for COPA, and
spans as [start, end) where jiant's are inclusive. A span that truncation cut off is an error.
"""

from __future__ import annotations

import numpy as np
from jiant.tasks.core import BaseExample

from superglue.jiant_compat import feat_spec, quiet


class Featurizer:
    def __init__(self, tokenizer, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.spec = feat_spec(tokenizer, max_length)

    def __call__(self, example: BaseExample) -> dict:
        with quiet():
            tokenized = example.tokenize(self.tokenizer)
        try:
            row = tokenized.featurize(self.tokenizer, self.spec)
        except AssertionError:  # WSC's template miscounts its segment ids once it has to truncate
            raise ValueError(f"the input is longer than max_length {self.max_length}; raise --max_seq_length") from None
        lengths = np.asarray(row.input_mask).sum(-1)
        ids = np.asarray(row.input_ids)
        if ids.ndim == 2:  # multiple choice: one sequence per choice
            input_ids = [choice[:n].tolist() for choice, n in zip(ids, lengths)]
        else:
            input_ids = ids[:lengths].tolist()
        feature = {"input_ids": input_ids, "labels": int(row.label_id)}
        if hasattr(row, "spans"):
            spans = [[int(start), int(end) + 1] for start, end in row.spans]
            # The last token is the closing separator: a span reaching it was cut by truncation.
            if any(end >= len(input_ids) or start >= end for start, end in spans):
                raise ValueError(f"a target span falls beyond max_length {self.max_length}; raise --max_seq_length")
            feature["spans"] = spans
        return feature
