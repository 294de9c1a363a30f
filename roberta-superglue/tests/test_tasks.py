"""jiant's task formulations as this project sees them, its truncation, and the paper's split protocol."""

import re

import pytest

from superglue.data import load_examples
from superglue.encoding import Featurizer
from superglue.tasks import TASKS, Encoded, get_task, read_examples, split_validation

# The official code's selection sizes N and the test sizes they leave, in jiant's examples
# (MultiRC: answer options).
PROTOCOL = {
    "boolq": (1270, 2000),
    "copa": (30, 70),
    "multirc": (453, 4395),
    "rte": (128, 149),
    "wic": (238, 400),
    "wsc": (44, 60),
}


@pytest.fixture(scope="module")
def featurizer(tiny_tokenizer):
    return Featurizer(tiny_tokenizer, max_length=256)


def val(data_dir, name):
    return load_examples(get_task(name), "val", data_dir)[0]


def tokens(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("name", sorted(PROTOCOL))
def test_official_split_on_real_validation_sets(data_dir, name):
    examples = val(data_dir, name)
    selection, test = split_validation(get_task(name), examples)
    assert (len(selection), len(test)) == PROTOCOL[name]
    assert selection + test == examples  # the first N, then the rest, in file order
    # Every task but MultiRC: the same with the question rule.
    assert name == "multirc" or split_validation(get_task(name), examples, "question") == (selection, test)


def test_multirc_split_by_option_and_by_question(data_dir):
    task, examples = get_task("multirc"), val(data_dir, "multirc")
    selection, test = split_validation(task, examples, "option")  # the official code's
    assert len({e.question for e in test}) == 853
    assert selection[-1].question == test[0].question == 100  # the 101st question is cut in two
    assert test[0].where.endswith("val.jsonl:11 question 0 answer 2")  # its options 0-1 select, 2- test
    selection, test = split_validation(task, examples, "question")
    assert (len(selection), len(test)) == (2302, 2546)
    assert (len({e.question for e in selection}), len({e.question for e in test})) == (453, 500)
    assert not {e.question for e in selection} & {e.question for e in test}
    # The 453rd question is the 4th of the passage on line 41: that passage's later questions open the test part.
    assert selection[-1].where.endswith("val.jsonl:41 question 3 answer 9")
    assert test[0].where.endswith("val.jsonl:41 question 4 answer 0")
    with pytest.raises(ValueError, match=r"--multirc_split 'passage': choose one of option \(N answer options"):
        split_validation(task, examples, "passage")


def test_split_needs_more_than_the_selection(data_dir):
    with pytest.raises(ValueError, match="rte: the validation set has 128 examples, the protocol needs more than"):
        split_validation(get_task("rte"), val(data_dir, "rte")[:128])


def test_unknown_task_is_explained():
    with pytest.raises(ValueError, match=r"unknown task 'cb'.*boolq \(pair classification.*wsc \(span comparison"):
        get_task("cb")
    assert get_task("MultiRC") is TASKS["multirc"]


@pytest.mark.parametrize("name", ["boolq", "rte"])
def test_pair_classification_is_the_tokenizers_own_pair(data_dir, featurizer, tiny_tokenizer, name):
    examples = val(data_dir, name)[:50]
    data = Encoded(examples, featurizer)
    first, second = ("input_question", "input_passage") if name == "boolq" else ("input_premise", "input_hypothesis")
    labels = {True: 1, False: 0, "entailment": 0, "not_entailment": 1}
    assert [f["labels"] for f in data.features] == [labels[e.jiant.label] for e in examples]
    for example, feature in zip(examples, data.features):
        if len(feature["input_ids"]) < 256:  # untruncated: <s> A </s></s> B </s>
            pair = tiny_tokenizer(getattr(example.jiant, first), getattr(example.jiant, second))
            assert feature["input_ids"] == pair["input_ids"]


def test_multirc_question_is_tokenized_as_is_and_only_the_passage_truncated(data_dir, tiny_tokenizer):
    option = val(data_dir, "multirc")[1]
    passage, question, answer = (
        tokens(tiny_tokenizer, option.jiant.__dict__[k]) for k in ("paragraph", "question", "answer")
    )
    ids = Featurizer(tiny_tokenizer, 1024)(option.jiant)["input_ids"]
    assert ids == [0, *passage, *question, 2, 2, *answer, 2]  # no space put before the question
    short = Featurizer(tiny_tokenizer, 64)(option.jiant)["input_ids"]
    assert len(short) == 64
    assert short == [0, *passage[: 64 - 4 - len(question) - len(answer)], *question, 2, 2, *answer, 2]


def test_copa_is_jiants_multiple_choice_truncated_from_the_start(data_dir, tiny_tokenizer):
    examples = val(data_dir, "copa")[:10]
    data = Encoded(examples, Featurizer(tiny_tokenizer, 256))
    questions = ("What was the cause of this?", "What happened as a result?")
    for example, feature in zip(examples, data.features):
        prompt, choices = example.jiant.prompt, example.jiant.choice_list
        assert prompt.endswith(questions) and feature["labels"] == example.jiant.label
        assert feature["input_ids"] == [tiny_tokenizer(prompt, choice)["input_ids"] for choice in choices]
    prompt, choice = (
        tokens(tiny_tokenizer, text) for text in (examples[0].jiant.prompt, examples[0].jiant.choice_list[0])
    )
    length = 4 + 2 * len(choice) + 2  # room for the choice and two tokens more of the prompt
    assert len(prompt) > len(choice) + 2
    short = Featurizer(tiny_tokenizer, length)(examples[0].jiant)["input_ids"][0]
    assert short == [0, *prompt[-(len(choice) + 2) :], 2, 2, *choice, 2]  # the prompt loses its start


def span_text(tokenizer, ids, span):
    return tokenizer.decode(ids[span[0] : span[1]]).strip()


def test_wic_spans_are_jiants_from_the_start_of_the_word(data_dir, featurizer, tiny_tokenizer):
    examples = val(data_dir, "wic")
    data = Encoded(examples, featurizer)
    whole = part = 0
    for example, feature in zip(examples, data.features):
        for i, span in zip((1, 2), feature["spans"]):
            char = getattr(example.jiant, f"span{i}")
            word = getattr(example.jiant, f"sentence{i}")[char.start : char.end]
            decoded = span_text(tiny_tokenizer, feature["input_ids"], span)
            assert word.startswith(decoded), (example.where, word, decoded)  # "": the span is a lone "Ġ"
            whole, part = whole + (decoded == word), part + (decoded != word)
    # jiant's span ends early for a word of several tokens (its character offsets are on a tagged string).
    assert (whole, part) == (53, 1223)
    ids, (first, second) = data.features[0]["input_ids"], data.features[0]["spans"]
    assert 0 < first[0] < first[1] <= second[0] < second[1] < len(ids)


def test_wsc_spans_are_the_entity_and_the_pronoun(data_dir, featurizer, tiny_tokenizer):
    examples = val(data_dir, "wsc")
    data = Encoded(examples, featurizer)
    mismatched = []
    for example, feature in zip(examples, data.features):
        for i, span in zip((1, 2), feature["spans"]):
            decoded = re.sub(r"\W", "", span_text(tiny_tokenizer, feature["input_ids"], span).lower())
            if decoded != re.sub(r"\W", "", getattr(example.jiant, f"span{i}_text").lower()):
                mismatched.append(example.where)
    # val.jsonl:43's span2_index points at "use" for "it" in the official file itself (jiant reads it as is).
    assert [m.rsplit("/", 1)[-1] for m in mismatched] == ["val.jsonl:43"]


def test_bad_records_name_file_line_and_field(tmp_path, featurizer):
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
        "idx": 0,
        "_where": where,
    }
    task = get_task("wic")
    assert Encoded(read_examples(task, [record], "val"), featurizer).features[0]["labels"] == 1
    cases = [
        ({"label": "yes"}, "label 'yes' is not one of \\[False, True\\]"),
        ({"label": 1}, "label 1 is not one of"),
        ({"start1": "four"}, "invalid literal for int"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=f"^{re.escape(where)}: {message}"):
            read_examples(task, [{**record, **change}], "val")
    broken = {k: v for k, v in record.items() if k != "start2"}
    with pytest.raises(ValueError, match=f"^{re.escape(where)}: missing field 'start2'"):
        read_examples(task, [broken], "val")
    copa = {"premise": "p", "choice1": "a", "choice2": "b", "question": "why", "label": 0, "idx": 0, "_where": where}
    with pytest.raises(ValueError, match=f"^{re.escape(where)}: question 'why' is not one jiant's copa reader knows"):
        read_examples(get_task("copa"), [copa], "val")
    answers = [{"idx": 0, "text": "a", "label": 1}, {"idx": 1, "text": "b"}]
    multirc = {"idx": 0, "passage": {"text": "t", "questions": [{"idx": 0, "question": "q", "answers": answers}]}}
    with pytest.raises(ValueError, match=f"^{re.escape(where)} question 0 answer 1: missing field 'label'"):
        read_examples(get_task("multirc"), [{**multirc, "_where": where}], "val")


def test_span_cut_by_max_length_is_an_error(tiny_tokenizer):
    sentence = "word " * 30 + "bank"
    record = {"word": "bank", "sentence1": sentence, "sentence2": "bank", "start1": 150, "end1": 154, "start2": 0,
              "end2": 4, "label": True, "idx": 0, "_where": "x:1"}  # fmt: skip
    (example,) = read_examples(get_task("wic"), [record], "val")
    with pytest.raises(ValueError, match="^x:1: a target span falls beyond max_length 16; raise --max_seq_length"):
        Encoded([example], Featurizer(tiny_tokenizer, 16))
