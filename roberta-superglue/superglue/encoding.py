"""Token ids from text segments, with character spans mapped to token spans, for any fast tokenizer.

jiant builds RoBERTa inputs as `<s> A </s></s> B </s>` and, for WiC, three segments
`<s> word </s></s> sentence1 </s></s> sentence2 </s>`. The special tokens around and between
segments are read off the tokenizer itself (it encodes a dummy pair once), so a BERT-style encoder
gets its own `[CLS] A [SEP] B [SEP]`. Each text piece is tokenized on its own, as jiant does, which
keeps every piece's character offsets relative to its own text.

    encoder = Encoder(tokenizer, max_length=256)
    ids, spans = encoder.join([["word"], [sentence1], [sentence2]], spans=[(1, 3, 8), (2, 0, 5)])

Segments are lists of pieces glued without a separator (MultiRC's passage and question). When the
whole is too long, tokens are dropped from the end of the longest piece until it fits (jiant's
truncation); a span that would lose a token is an error rather than a silently wrong target.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase


@dataclass
class Piece:
    ids: list[int]
    offsets: list[tuple[int, int]]  # character [start, end) of each token in the piece's text


class Encoder:
    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int) -> None:
        if not tokenizer.is_fast:
            raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer: span tasks need its offset mapping")
        self.tokenizer = tokenizer
        self.max_length = max_length
        pair = tokenizer("a", "b")
        which = pair.sequence_ids()
        ids = pair["input_ids"]
        first = [i for i, s in enumerate(which) if s == 0]
        second = [i for i, s in enumerate(which) if s == 1]
        self.prefix = ids[: first[0]]
        self.middle = ids[first[-1] + 1 : second[0]]
        self.suffix = ids[second[-1] + 1 :]

    def piece(self, text: str) -> Piece:
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return Piece(list(encoded["input_ids"]), [tuple(o) for o in encoded["offset_mapping"]])

    def join(
        self, segments: list[list[str]], spans: list[tuple[int, int, int]] = ()
    ) -> tuple[list[int], list[list[int]]]:
        """Token ids of the segments and, for each (piece index, char start, char end), its token span.

        Pieces are numbered across segments in order. Token spans are [start, end) in the ids.
        """
        pieces = [self.piece(text) for segment in segments for text in segment]
        specials = len(self.prefix) + len(self.suffix) + len(self.middle) * (len(segments) - 1)
        budget = self.max_length - specials
        if budget <= 0:
            raise ValueError(
                f"max_length {self.max_length} leaves no room for text after {specials} special tokens; "
                "raise --max_seq_length"
            )
        targets = [(index, self._token_span(pieces[index], start, end)) for index, start, end in spans]
        lengths = [len(p.ids) for p in pieces]
        while sum(lengths) > budget:
            lengths[max(range(len(lengths)), key=lengths.__getitem__)] -= 1
        for index, (_, end) in targets:
            if end > lengths[index]:
                raise ValueError(f"a target span falls beyond max_length {self.max_length}; raise --max_seq_length")

        ids, starts, piece_index = list(self.prefix), [], 0
        for number, segment in enumerate(segments):
            if number:
                ids += self.middle
            for _ in segment:
                starts.append(len(ids))
                ids += pieces[piece_index].ids[: lengths[piece_index]]
                piece_index += 1
        ids += self.suffix
        return ids, [[starts[index] + start, starts[index] + end] for index, (start, end) in targets]

    @staticmethod
    def _token_span(piece: Piece, start: int, end: int) -> tuple[int, int]:
        """The tokens overlapping characters [start, end) of the piece's text."""
        inside = [i for i, (a, b) in enumerate(piece.offsets) if b > a and a < end and b > start]
        if start >= end or not inside:
            raise ValueError(f"character span [{start}, {end}) covers no token")
        return inside[0], inside[-1] + 1
