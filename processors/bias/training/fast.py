"""Train the fast model: TF-IDF + logistic regression heads, exported as one ONNX graph.

The graph takes raw strings. onnxruntime's Tokenizer uses re2, so the token pattern is
an explicit ASCII class both sides understand the same way, and the lower-casing
StringNormalizer gets the C.UTF-8 locale (en_US may not exist on the machine).
`sublinear_tf` stays off: skl2onnx computes it differently from scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import StringTensorType
from sklearn.feature_extraction.text import TfidfVectorizer

from processors.bias.fast import (
    CONTRIBUTIONS_OUTPUT,
    DIMENSION_OUTPUT,
    FAST_MAX_TOKENS,
    FAST_MODEL_NAME,
    FEATURES_OUTPUT,
    STEREOTYPE_OUTPUT,
    TEXT_INPUT,
    TOKEN_PATTERN,
)
from processors.bias.training import onnx_export as ox
from processors.bias.training.datasets import LabeledText
from processors.bias.training.heads import TrainedHeads, fit_heads

STRING_NORMALIZER_LOCALE = "C.UTF-8"


def build_vectorizer() -> TfidfVectorizer:
    """Return the unfitted TF-IDF vectorizer (unigrams and bigrams, ASCII token pattern)."""
    return TfidfVectorizer(
        token_pattern=TOKEN_PATTERN,
        lowercase=True,
        ngram_range=(1, 2),
        min_df=2,
        sublinear_tf=False,
        dtype=np.float32,
    )


@dataclass(slots=True)
class FastModel:
    """Hold the fitted scikit-learn parts of the fast model."""

    vectorizer: TfidfVectorizer
    heads: TrainedHeads

    def predict(self, texts: Sequence[str]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return scikit-learn's stereotype probabilities and dimension probabilities."""
        x = self.vectorizer.transform(list(texts))
        stereotype = self.heads.stereotype.predict_proba(x)[:, 1]
        return stereotype, self.heads.dimension.predict_proba(x)


def _labels(examples: Sequence[LabeledText]) -> tuple[Any, Any, list[str]]:
    stereotype = np.array([e.stereotype for e in examples], dtype=np.int64)
    rows = np.array([i for i, e in enumerate(examples) if e.dimension], dtype=np.intp)
    dims = [str(examples[i].dimension) for i in rows]
    return stereotype, rows, dims


def train_fast(
    train: Sequence[LabeledText], validation: Sequence[LabeledText], seed: int
) -> FastModel:
    """Fit the vectorizer on train and both heads (tuned and calibrated on validation)."""
    vectorizer = build_vectorizer()
    x_train = vectorizer.fit_transform([e.text for e in train])
    x_val = vectorizer.transform([e.text for e in validation])
    s_train, rows_train, d_train = _labels(train)
    s_val, rows_val, d_val = _labels(validation)
    heads = fit_heads(
        x_train, s_train, rows_train, d_train, x_val, s_val, rows_val, d_val, seed=seed
    )
    return FastModel(vectorizer, heads)


# An n-gram is tied to a dimension only when the dimension head's weight for it beats
# the runner-up by this margin (logit units); shared words ("women", "are") stay untied.
TOKEN_DIMENSION_MARGIN = 2.0


def token_dimensions(model: FastModel) -> list[int]:
    """Return, per vocabulary entry, the dimension it clearly points to (-1 for none)."""
    coef = np.sort(model.heads.dimension.coef_, axis=0)
    best = model.heads.dimension.coef_.argmax(axis=0)
    margin = coef[-1] - coef[-2]
    return [
        int(b) if m >= TOKEN_DIMENSION_MARGIN else -1 for b, m in zip(best, margin, strict=True)
    ]


def export_fast(model: FastModel, version: str) -> onnx.ModelProto:
    """Convert the fast model to one ONNX graph: text in; probabilities and contributions out."""
    vectorizer = model.vectorizer
    n_features = len(vectorizer.vocabulary_)
    base = convert_sklearn(
        vectorizer,
        initial_types=[(TEXT_INPUT, StringTensorType([None]))],
        options={id(vectorizer): {"locale": STRING_NORMALIZER_LOCALE}},
        target_opset=ox.TARGET_OPSET,
    )
    assert isinstance(base, onnx.ModelProto)
    heads = {
        "stereotype_": ox.convert_head(model.heads.stereotype, n_features, FEATURES_OUTPUT),
        "dimension_": ox.convert_head(model.heads.dimension, n_features, FEATURES_OUTPUT),
    }
    weights = ox.float_initializer(
        "stereotype_weights", model.heads.stereotype.coef_.reshape(1, n_features)
    )
    contributions = helper.make_node(
        "Mul", [FEATURES_OUTPUT, "stereotype_weights"], [CONTRIBUTIONS_OUTPUT], name="contrib"
    )
    vocabulary = [""] * n_features
    for term, index in vectorizer.vocabulary_.items():
        vocabulary[int(index)] = str(term)
    n_dims = len(model.heads.dimension_classes)
    return ox.compose(
        base,
        base_output=base.graph.output[0].name,
        feature_name=FEATURES_OUTPUT,
        heads=heads,
        outputs=[
            (STEREOTYPE_OUTPUT, ox.FLOAT, [None, 2]),
            (DIMENSION_OUTPUT, ox.FLOAT, [None, n_dims]),
            (FEATURES_OUTPUT, ox.FLOAT, [None, n_features]),
            (CONTRIBUTIONS_OUTPUT, ox.FLOAT, [None, n_features]),
        ],
        extra_nodes=[contributions],
        extra_initializers=[weights],
        metadata={
            "fairstream.model_name": FAST_MODEL_NAME,
            "fairstream.model_version": version,
            "fairstream.dimensions": model.heads.dimension_classes,
            "fairstream.vocabulary": vocabulary,
            "fairstream.token_dimensions": token_dimensions(model),
            "fairstream.token_pattern": TOKEN_PATTERN,
            "fairstream.max_tokens": str(FAST_MAX_TOKENS),
        },
        graph_name="fairstream_bias_fast",
    )
