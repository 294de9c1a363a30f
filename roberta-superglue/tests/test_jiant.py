"""Against jiant 2.2.0 itself: the compatibility layer, inputs on all six validation sets, metrics.

jiant's side is run as jiant runs it: its task reads the file from its path_dict
(`get_val_examples`), its examples are tokenized and featurized with the feature spec of its
RoBERTa model class, and its evaluation scheme scores the logits from its cache of data rows.
"""

from importlib.metadata import version

import numpy as np
import pytest
import transformers
from jiant.proj.main.modeling.primary import JiantTransformersModelFactory
from jiant.shared import model_resolution

from superglue.data import load_examples, task_dir
from superglue.encoding import Featurizer
from superglue.jiant_compat import evaluate, quiet, resolve_model_arch_tokenizer
from superglue.metrics import task_metrics
from superglue.tasks import TASKS, Encoded, get_task


def test_jiant_is_2_2_0_and_the_shim_is_what_it_needs(tiny_tokenizer):
    assert version("jiant") == "2.2.0"
    from transformers.models.bert import tokenization_bert, tokenization_bert_legacy

    assert tokenization_bert.whitespace_tokenize is tokenization_bert_legacy.whitespace_tokenize
    assert transformers.BartTokenizer is transformers.RobertaTokenizer  # why jiant's own lookup fails
    with pytest.raises(AssertionError):
        model_resolution.resolve_model_arch_tokenizer(tiny_tokenizer)
    assert resolve_model_arch_tokenizer(tiny_tokenizer) is model_resolution.ModelArchitectures.ROBERTA
    with pytest.raises(ValueError, match="jiant 2.2.0 has no featurization for GPT2Tokenizer"):
        resolve_model_arch_tokenizer(transformers.GPT2Tokenizer(vocab={"a": 0}, merges=[]))


class Cache:
    """jiant's data cache, as its evaluation reads it."""

    def __init__(self, rows: list) -> None:
        self.rows = rows

    def iter_all(self):
        return ({"data_row": row} for row in self.rows)


@pytest.fixture(scope="module")
def jiant_val(data_dir, tiny_tokenizer):
    """task -> (jiant's examples of val.jsonl, its data rows), made by jiant alone."""
    spec = JiantTransformersModelFactory.build_featurization_spec("roberta", 256)
    made = {}
    for name, task in TASKS.items():
        jiant_task = task.jiant_class(name=name, path_dict={"val": str(task_dir(data_dir, task) / "val.jsonl")})
        examples = jiant_task.get_val_examples()
        with quiet():
            rows = [e.tokenize(tiny_tokenizer).featurize(tiny_tokenizer, spec) for e in examples]
        made[name] = examples, rows
    return made


@pytest.fixture(scope="module")
def our_val(data_dir, tiny_tokenizer):
    featurizer = Featurizer(tiny_tokenizer, 256)
    return {name: Encoded(load_examples(task, "val", data_dir)[0], featurizer) for name, task in TASKS.items()}


# Validation inputs per task (MultiRC: answer options).
SIZES = {"boolq": 3270, "copa": 100, "multirc": 4848, "rte": 277, "wic": 638, "wsc": 104}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_inputs_are_token_identical_to_jiants(jiant_val, our_val, name):
    examples, rows = jiant_val[name]
    ours = our_val[name].features
    assert len(ours) == len(rows) == SIZES[name]
    for row, feature in zip(rows, ours):
        ids, mask = np.asarray(row.input_ids), np.asarray(row.input_mask).astype(bool)
        if ids.ndim == 2:  # COPA: one sequence per choice
            assert feature["input_ids"] == [choice[m].tolist() for choice, m in zip(ids, mask)], row.guid
        else:
            assert feature["input_ids"] == ids[mask].tolist(), row.guid
        assert feature["labels"] == row.label_id
        if hasattr(row, "spans"):  # jiant's inclusive spans, ours [start, end)
            assert feature["spans"] == [[start, end + 1] for start, end in row.spans.tolist()], row.guid
    if name == "multirc":
        assert our_val[name].groups == [e.question_id for e in examples]


@pytest.mark.parametrize("name", sorted(TASKS))
def test_metrics_equal_jiants_evaluation_on_the_same_logits(jiant_val, our_val, name):
    examples, rows = jiant_val[name]
    task = get_task(name).jiant
    scheme = evaluate.get_evaluation_scheme_for_task(task)
    rng = np.random.default_rng(0)
    for trial in range(3):
        logits = rng.normal(size=(len(rows), 2))
        if trial == 2:  # mostly right: EM above zero for MultiRC
            labels = np.array([row.label_id for row in rows])
            logits[np.arange(len(rows)), labels] += rng.random(len(rows)) < 0.9
        accumulator = scheme.get_accumulator()
        for start in range(0, len(rows), 64):  # in batches, as jiant's evaluation loop feeds it
            accumulator.update(logits[start : start + 64], None, None, {})
        labels = scheme.get_labels_from_cache_and_examples(task, Cache(rows), examples)
        expected = scheme.compute_metrics_from_accumulator(task, accumulator, None, labels)
        data = our_val[name]
        ours = task_metrics(name, logits, [f["labels"] for f in data.features], data.groups)
        assert ours["score"] == pytest.approx(expected.major, abs=1e-12)
        if name == "multirc":
            assert (ours["f1a"], ours["em"]) == pytest.approx((expected.minor["f1"], expected.minor["em"]), abs=1e-12)
            assert trial < 2 or ours["em"] > 0.2
        else:
            assert ours["accuracy"] == pytest.approx(expected.minor["acc"], abs=1e-12)
