"""jiant 2.2.0 on transformers 5: the two fixes it needs, applied once, before jiant is imported.

jiant 2.2.0 is installed without its dependencies (its pins are transformers 4.5, numpy 1.18, ...;
see README.md). Its SuperGLUE task modules, templates and evaluation schemes run on the current
stack as they are, except for two things this module fixes:

1. `jiant.tasks.evaluate.core` imports (through its SQuAD-style templates) `BasicTokenizer` and
   `whitespace_tokenize` from `transformers.models.bert.tokenization_bert`; transformers 5 moved
   them to `tokenization_bert_legacy`. They are put back where jiant looks for them.
2. WiC and WSC align spans through `resolve_model_arch_tokenizer`, which looks the tokenizer's
   class up in a class -> architecture table and asserts that the class names one architecture.
   transformers 5 made `BartTokenizer` an alias of `RobertaTokenizer`, so the assertion fails for
   RoBERTa. The lookup is wrapped: an unambiguous class resolves as before, and one that names
   several architectures resolves to the one whose name is the tokenizer's model family (RoBERTa
   for RobertaTokenizer).

Nothing of jiant is copied or edited; `import superglue.jiant_compat` is all the other modules do.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

import transformers.models.bert.tokenization_bert as tokenization_bert
from transformers.models.bert import tokenization_bert_legacy

for _name in ("BasicTokenizer", "whitespace_tokenize"):
    if not hasattr(tokenization_bert, _name):
        setattr(tokenization_bert, _name, getattr(tokenization_bert_legacy, _name))

try:
    import jiant.shared.model_resolution as model_resolution
    import jiant.utils.tokenization_normalization as tokenization_normalization
except ImportError as e:  # not installed, or one of its light dependencies is missing
    raise ImportError(
        f"jiant 2.2.0 could not be imported ({e}): run scripts/setup.sh, or pip install --no-deps jiant==2.2.0 "
        "and the packages in roberta-superglue/requirements.txt"
    ) from None

_resolve = model_resolution.resolve_model_arch_tokenizer


def resolve_model_arch_tokenizer(tokenizer) -> model_resolution.ModelArchitectures:
    """jiant's tokenizer -> architecture lookup, with transformers 5's shared RoBERTa/BART class resolved."""
    matches = model_resolution.TOKENIZER_CLASS_DICT.inverse.get(type(tokenizer), [])
    if len(matches) > 1:
        family = type(tokenizer).__name__.removesuffix("TokenizerFast").removesuffix("Tokenizer").lower()
        named = [arch for arch in matches if arch.value.replace("-", "") == family]
        if len(named) == 1:
            return named[0]
    if not matches:
        raise ValueError(
            f"jiant 2.2.0 has no featurization for {type(tokenizer).__name__} (it knows: "
            f"{', '.join(c.__name__ for c in model_resolution.TOKENIZER_CLASS_DICT.inverse)}): pass a RoBERTa model"
        )
    return _resolve(tokenizer)


tokenization_normalization.resolve_model_arch_tokenizer = resolve_model_arch_tokenizer

import jiant.tasks.evaluate.core as evaluate  # noqa: E402  (needs fix 1 above)
from jiant.proj.main.modeling.primary import JiantTransformersModelFactory  # noqa: E402
from jiant.tasks.core import FeaturizationSpec  # noqa: E402

__all__ = ["evaluate", "feat_spec", "quiet", "resolve_model_arch_tokenizer"]


def feat_spec(tokenizer, max_seq_length: int) -> FeaturizationSpec:
    """jiant's featurization settings (special tokens, separators, padding) for the tokenizer's model."""
    arch = resolve_model_arch_tokenizer(tokenizer)
    return JiantTransformersModelFactory.build_featurization_spec(arch.value, max_seq_length)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow stdout: jiant's normalize_tokenizations prints the architecture for every WiC/WSC sentence."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
