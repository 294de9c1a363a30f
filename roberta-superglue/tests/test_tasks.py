"""Task formulations (jiant's), span mapping, truncation and the paper's split protocol."""

import re

import pytest

from superglue.data import load_examples
from superglue.encoding import Encoder
from superglue.tasks import COPA_QUESTIONS, TASKS, Encoded, get_task, split_validation, word_span

# The paper's selection sizes and, from the shared files, the resulting test sizes (in examples).
PROTOCOL = {
    "boolq": (1270, 2000),
    "copa": (30, 70),
    "multirc": (453, 500),
    "rte": (128, 149),
    "wic": (238, 400),
    "wsc": (44, 60),
}


@pytest.fixture(scope="module")
def encoder(tiny_tokenizer):
    return Encoder(tiny_tokenizer, max_length=256)


def val(data_dir, name):
    return load_examples(get_task(name), "val", data_dir)[0]


def test_template_is_robertas(encoder, tiny_tokenizer):
    ids, _ = encoder.join([["a b"], ["c"], ["d"]])
    tokens = tiny_tokenizer.convert_ids_to_tokens(ids)
    assert tokens[0] == "<s>" and tokens[-1] == "</s>"
    assert tokens.count("</s>") == 5  # <s> A </s></s> B </s></s> C </s>, as jiant's WiC input
    pair = tiny_tokenizer("a b", "c")["input_ids"]
    assert encoder.join([["a b"], ["c"]])[0] == pair  # two segments: exactly the tokenizer's own pair


@pytest.mark.parametrize("name", sorted(PROTOCOL))
def test_split_protocol_on_real_validation_sets(data_dir, name):
    examples = val(data_dir, name)
    selection, test = split_validation(get_task(name), examples)
    assert (len(selection), len(test)) == PROTOCOL[name]
    assert selection + test == examples  # the first N, then the rest, in file order


def test_multirc_split_counts_questions_and_keeps_them_whole(data_dir, encoder):
    task = get_task("multirc")
    selection, test = split_validation(task, val(data_dir, "multirc"))
    assert sum(len(q["answers"]) for q in selection) == 2302
    assert sum(len(q["answers"]) for q in test) == 2546
    # The 453rd question is the 4th of the passage on line 41: that passage's later questions open the
    # test part (a passage may be shared, a question never is).
    assert selection[-1]["_where"].endswith("val.jsonl:41 question 3")
    assert test[0]["_where"].endswith("val.jsonl:41 question 4")
    inputs = Encoded(task, selection[:5], encoder)
    assert len(inputs) == sum(len(q["answers"]) for q in selection[:5])
    assert inputs.groups == [g for g, q in enumerate(selection[:5]) for _ in q["answers"]]


def test_split_needs_more_than_the_selection(data_dir):
    with pytest.raises(ValueError, match="rte: the validation set has 128 examples, the protocol needs more than"):
        split_validation(get_task("rte"), val(data_dir, "rte")[:128])


def test_unknown_task_is_explained():
    with pytest.raises(ValueError, match=r"unknown task 'cb'.*boolq \(pair classification.*wsc \(span comparison"):
        get_task("cb")
    assert get_task("MultiRC") is TASKS["multirc"]


@pytest.mark.parametrize("name", ["boolq", "rte"])
def test_pair_classification(data_dir, encoder, tiny_tokenizer, name):
    examples = val(data_dir, name)[:50]
    data = Encoded(get_task(name), examples, encoder)
    first, second = ("question", "passage") if name == "boolq" else ("premise", "hypothesis")
    labels = {True: 1, False: 0, "entailment": 0, "not_entailment": 1}
    assert [f["labels"] for f in data.features] == [labels[e["label"]] for e in examples]
    for example, feature in zip(examples, data.features):
        assert len(feature["input_ids"]) <= 256
        if len(feature["input_ids"]) < 256:  # untruncated: exactly the tokenizer's pair encoding
            assert feature["input_ids"] == tiny_tokenizer(example[first], example[second])["input_ids"]


def test_long_passage_is_truncated_from_its_end(data_dir, tiny_tokenizer):
    encoder = Encoder(tiny_tokenizer, max_length=64)
    example = next(e for e in val(data_dir, "boolq") if len(e["passage"]) > 2000)
    ids = Encoded(get_task("boolq"), [example], encoder).features[0]["input_ids"]
    question = tiny_tokenizer(example["question"], add_special_tokens=False)["input_ids"]
    passage = tiny_tokenizer(example["passage"], add_special_tokens=False)["input_ids"]
    assert len(ids) == 64
    assert ids[1 : 1 + len(question)] == question  # the short segment is kept whole
    assert ids[1 + len(question) + 2 : -1] == passage[: 64 - len(question) - 4]


def test_copa_is_multiple_choice_with_jiants_question(data_dir, encoder, tiny_tokenizer):
    examples = val(data_dir, "copa")[:10]
    data = Encoded(get_task("copa"), examples, encoder)
    for example, feature in zip(examples, data.features):
        assert feature["labels"] == example["label"]
        prompt = example["premise"] + " " + COPA_QUESTIONS[example["question"]]
        assert feature["input_ids"] == [tiny_tokenizer(prompt, example[c])["input_ids"] for c in ("choice1", "choice2")]
    assert COPA_QUESTIONS == {"cause": "What was the cause of this?", "effect": "What happened as a result?"}


def test_multirc_one_input_per_answer(data_dir, encoder, tiny_tokenizer):
    question = val(data_dir, "multirc")[0]
    data = Encoded(get_task("multirc"), [question], encoder)
    assert [f["labels"] for f in data.features] == [0, 1, 1, 0]
    ids = data.features[1]["input_ids"]
    answer = tiny_tokenizer(question["answers"][1]["text"], add_special_tokens=False)["input_ids"]
    assert ids[-len(answer) - 1 : -1] == answer  # <s> passage question </s></s> answer </s>
    text = tiny_tokenizer.decode(ids)
    assert "Would the mass of a baseball" in text and text.index("What causes") < text.index("Would the mass")


def span_text(tokenizer, ids, span):
    return tokenizer.decode(ids[span[0] : span[1]]).strip()


def test_wic_spans_cover_the_word_in_both_sentences(data_dir, encoder, tiny_tokenizer):
    examples = val(data_dir, "wic")
    data = Encoded(get_task("wic"), examples, encoder)
    assert len(data) == len(examples) == 638
    for example, feature in zip(examples, data.features):
        assert feature["labels"] == int(example["label"])
        for i, span in zip((1, 2), feature["spans"]):
            target = example[f"sentence{i}"][example[f"start{i}"] : example[f"end{i}"]]
            decoded = span_text(tiny_tokenizer, feature["input_ids"], span)
            assert target in decoded and len(decoded) < len(target) + 12, (example["_where"], target, decoded)
    # The spans point into sentence 1 and sentence 2 (after the word and its separators).
    ids, (first, second) = data.features[0]["input_ids"], data.features[0]["spans"]
    assert 0 < first[0] < first[1] <= second[0] < second[1] < len(ids)


def test_wsc_spans_are_the_entity_and_the_pronoun(data_dir, encoder, tiny_tokenizer):
    examples = val(data_dir, "wsc")
    data = Encoded(get_task("wsc"), examples, encoder)
    mismatched = []
    for example, feature in zip(examples, data.features):
        assert feature["labels"] == int(example["label"])
        for i, span in zip((1, 2), feature["spans"]):
            decoded = re.sub(r"\W", "", span_text(tiny_tokenizer, feature["input_ids"], span).lower())
            if decoded != re.sub(r"\W", "", example["target"][f"span{i}_text"].lower()):
                mismatched.append(example["_where"])
    # val.jsonl:43's span2_index points at "use" for "it" in the official file itself (jiant reads it as is).
    assert [m.rsplit("/", 1)[-1] for m in mismatched] == ["val.jsonl:43"]


def test_word_span_and_its_errors():
    assert word_span("Mark told  Pete he lied .", 2, "Pete") == (11, 15)
    assert word_span("Mark told Pete", 1, "told Pete") == (5, 14)
    with pytest.raises(ValueError, match="span 'he' at word 9 is outside the text's 3 words"):
        word_span("Mark told Pete", 9, "he")


def test_bad_records_name_file_line_and_field(tmp_path, encoder):
    where = f"{tmp_path}/WiC/val.jsonl:7"
    record = {
        "word": "bank",
        "sentence1": "The bank.",
        "sentence2": "A river bank.",
        "start1": 4,
        "end1": 8,
        "start2": 8,
        "end2": 12,
        "label": True,
        "_where": where,
    }
    task = get_task("wic")
    assert Encoded(task, [record], encoder).features[0]["labels"] == 1
    cases = [
        ({"label": "yes"}, "label 'yes' is not one of \\[False, True\\]"),
        ({"label": 1}, "label 1 is not one of"),
        ({"start1": 40, "end1": 44}, "character span \\[40, 44\\) covers no token"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=f"^{re.escape(where)}: {message}"):
            Encoded(task, [{**record, **change}], encoder)
    broken = {k: v for k, v in record.items() if k != "start2"}
    with pytest.raises(ValueError, match=f"^{re.escape(where)}: missing field 'start2'"):
        Encoded(task, [broken], encoder)
    copa = {"premise": "p", "choice1": "a", "choice2": "b", "question": "why", "label": 0, "_where": where}
    with pytest.raises(ValueError, match=r"question 'why' is not one of \['cause', 'effect'\]"):
        Encoded(get_task("copa"), [copa], encoder)


def test_span_cut_by_max_length_is_an_error(tiny_tokenizer):
    encoder = Encoder(tiny_tokenizer, max_length=12)
    text = "word " * 30 + "target"
    with pytest.raises(ValueError, match="target span falls beyond max_length 12"):
        encoder.join([[text]], [(0, len(text) - 6, len(text))])
