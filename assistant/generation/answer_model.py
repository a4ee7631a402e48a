"""The learned parts of the offline answer: which section answers a question, and how sure to be.

Logistic regressions over small, general feature vectors, fitted by ``assistant eval fit``
(:mod:`assistant.evals.fit`) on the **tuning** split of the eval datasets only, and shipped as
``answer_model.json`` beside this module:

* ``section``: P(this section states the answer) from the features of a (question, section)
  pair (:data:`assistant.generation.sections.FEATURES`), fitted over every candidate of every
  question: how likely a section is to answer, on one scale for all questions, which the
  confidence reads;
* ``ranking``: which of one question's candidates answers it, from the same features, fitted per
  question (a softmax over its candidates). The composer quotes the candidate it ranks first.
* ``confidence``: P(the drafted answer is right) from the request's features
  (:data:`CONFIDENCE_FEATURES`): how sure the section model is, by how much the best section
  beats the next, how well retrieval matched, how close the question is to the questions the
  articles answer and to those they do not (the corpus's ``gaps.yaml``);
* ``answerable``: P(the help centre answers the question at all), from how much closer the
  question is to a question the corpus does not answer than to one it does
  (:data:`ANSWERABLE_FEATURES`). Fitted on the questions about the work alone, it says what one
  regression for everything cannot: "about this, but not answered here".
* ``answerable_rendered``: the same for a message in another language, from the same two
  features measured in the multilingual model's space (:meth:`assistant.retrieval.multilingual.PivotIndex.answerability`):
  such a message is searched through the help centre's own English sentences, which always look
  answered, so the English measure says nothing about it.

Their product, recalibrated (``calibration``), is ``HelpResponse.confidence``; below
``threshold`` the driver goes to a person (``low_confidence``). Its calibration (expected
calibration error, reliability diagram) is measured by ``assistant eval run``.

The weights depend on the embedding model, so the file names the model it was fitted with; with
another embedder the composer still works (the weights are a reasonable prior) and says so in
the log, and ``assistant eval fit`` refits them.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Mapping, Sequence
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from assistant.errors import ConfigurationError
from assistant.generation.sections import FEATURES

DEFAULT_PATH = Path(__file__).with_name("answer_model.json")

#: The request-level features of the confidence model, in vector order.
CONFIDENCE_FEATURES = (
    "section_probability",  # the section model's probability for the quoted section
    "margin",               # it minus the next best section's probability (another article's)
    "top_similarity",       # the best dense similarity among the retrieved passages
    "agreement",            # dense and keyword search both found the top passage
    "unit_max",             # the quoted section's best unit similarity
    "keywords",             # share of the question's words the quoted section has
    "answer_type_miss",     # the question asks for a kind of fact the section does not state
    "question_words",       # log(1 + words in the question)
    "keywords_idf",         # IDF-weighted share of the question's words the quoted section has
    "unknown_words",        # share of the question's words the corpus never uses
    "driver_question",      # best similarity to a driver question of the corpus (any article)
    "gap_margin",           # best similarity to a question the corpus does not answer (gaps.yaml) minus the
                            # better of driver_question and unit_max: how much closer to a gap than to an answer
    "logged_error",         # a candidate section is about an error code the app just logged (its heading names it)
)

#: The features of the answerable model: how much closer the question is to a question the
#: corpus does not answer than to what it answers, and how close it is to a question it answers.
ANSWERABLE_FEATURES = ("gap_margin", "driver_question", "logged_error")
#: The features of ``answerable_rendered`` (a message in another language), measured by the
#: multilingual model: the gap margin alone. Across languages the similarity to the nearest
#: driver question shifts (a question and its English pivot are less alike than two English
#: sentences: 0.86 against 0.90 on average over the tuning questions it answers), but the margin
#: does not (-0.003 against -0.011; 0.020 for both kinds of unanswered question), so a model fitted
#: on questions in every language reads the margin the same way for each.
RENDERED_FEATURES = ("gap_margin",)

class LogisticModel(BaseModel):
    """A fitted logistic regression over standardised features."""

    model_config = ConfigDict(frozen=True)

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float

    @model_validator(mode="after")
    def _shapes(self) -> LogisticModel:
        n = len(self.features)
        if not (len(self.mean) == len(self.scale) == len(self.coef) == n):
            raise ValueError("features, mean, scale and coef must have the same length")
        return self

    @cached_property
    def _affine(self) -> tuple[list[float], float]:
        """The model folded into weights on the raw features and one offset."""
        weights = [c / (s or 1.0) for c, s in zip(self.coef, self.scale, strict=True)]
        return weights, self.intercept - sum(w * m for w, m in zip(weights, self.mean, strict=True))

    def logit(self, x: Sequence[float]) -> float:
        """The log-odds for one feature vector; a NaN feature (not measured) counts as its mean."""
        weights, offset = self._affine
        if len(x) != len(weights):
            raise ValueError(f"{len(x)} features for a model of {len(weights)}")
        if any(v != v for v in x):
            x = [m if v != v else v for v, m in zip(x, self.mean, strict=True)]
        return float(offset + sum(map(operator.mul, weights, x)))

    def probability(self, x: Sequence[float]) -> float:
        """P(positive) for one feature vector."""
        z = self.logit(x)
        return 1.0 / (1.0 + math.exp(-z)) if z > -60 else 0.0


class AnswerModel(BaseModel):
    """The section and confidence models, the confidence threshold and how they were fitted."""

    model_config = ConfigDict(frozen=True)

    embedding_model: str
    section: LogisticModel
    ranking: LogisticModel | None = Field(
        None,
        description="Orders a question's candidate sections (fitted per question: a softmax over its candidates); "
        "``section`` still gives each its probability. Without it ``section`` orders them too.",
    )
    confidence: LogisticModel = Field(description="P(the drafted answer is right) from every confidence feature.")
    answerable: LogisticModel | None = Field(
        None, description="P(the help centre answers the question at all) from ANSWERABLE_FEATURES; multiplies ``confidence``."
    )
    answerable_rendered: LogisticModel | None = Field(
        None,
        description="P(the help centre answers it) for a message in another language, from RENDERED_FEATURES "
        "measured by the multilingual model; replaces ``answerable`` for such a message.",
    )
    calibration: tuple[float, float] | None = Field(
        None, description="(a, b): the confidence is sigmoid(a * logit(product) + b), so that the product is calibrated."
    )
    threshold: float = Field(ge=0.0, le=1.0, description="Confidence below which the driver goes to a person.")
    second_section_ratio: float = Field(
        1.1, description="Quote a second section when its probability is at least this share of the first's."
    )
    fitted: dict[str, Any] = Field(default_factory=dict, description="Cases, splits and cross-validated scores.")

    @model_validator(mode="after")
    def _known_features(self) -> AnswerModel:
        for model, known in (
            (self.section, FEATURES), (self.ranking, FEATURES), (self.confidence, CONFIDENCE_FEATURES), (self.answerable, CONFIDENCE_FEATURES),
            (self.answerable_rendered, RENDERED_FEATURES),
        ):
            unknown = [f for f in model.features if f not in known] if model is not None else []
            if unknown:
                raise ValueError(f"features this version does not compute: {', '.join(unknown)}; refit with `assistant eval fit`")
        return self

    @cached_property
    def _section_columns(self) -> list[int] | None:
        """Where the section model's features sit in :data:`FEATURES` (``None``: in that order)."""
        names = list(self.section.features)
        return None if names == list(FEATURES) else [FEATURES.index(name) for name in names]

    def section_probability(self, values: Sequence[float]) -> float:
        """The section model's probability for a (question, section) pair's :data:`FEATURES`
        values; a model fitted on some of them (before a feature joined) reads those."""
        columns = self._section_columns
        return self.section.probability(values if columns is None else [values[i] for i in columns])

    def section_score(self, values: Sequence[float], probability: float) -> float:
        """Where a (question, section) pair ranks among the question's candidates, higher first:
        the ``ranking`` model's log-odds, or ``probability`` (the section model's) without one."""
        if self.ranking is None:
            return probability
        names = list(self.ranking.features)
        return self.ranking.logit(values if names == list(FEATURES) else [values[FEATURES.index(n)] for n in names])

    def confidence_of(self, values: Mapping[str, float], rendered: Mapping[str, float] | None = None) -> float:
        """The confidence from the request's confidence features by name
        (:data:`CONFIDENCE_FEATURES`; each model reads those it was fitted on); ``rendered``: a
        message in another language's :data:`ANSWERABLE_FEATURES` measured by the multilingual
        model, read by ``answerable_rendered`` (when fitted) instead of ``answerable``."""
        if rendered is not None and self.answerable_rendered is not None:
            return recalibrated(product(self.confidence, self.answerable_rendered, values, rendered), self.calibration)
        return recalibrated(product(self.confidence, self.answerable, values), self.calibration)


def product(
    right: LogisticModel, answerable: LogisticModel | None, values: Mapping[str, float],
    answerable_values: Mapping[str, float] | None = None,
) -> float:
    """P(the draft is right) x P(the help centre answers it), each model reading its features by
    name (``answerable`` from ``answerable_values`` when given)."""
    p = right.probability([values[name] for name in right.features])
    if answerable is None:
        return p
    read = values if answerable_values is None else answerable_values
    return p * answerable.probability([read[name] for name in answerable.features])


def recalibrated(p: float, calibration: tuple[float, float] | None) -> float:
    """``p`` through Platt scaling of its log-odds, ``sigmoid(a * logit(p) + b)`` (unchanged without one)."""
    if calibration is None:
        return p
    a, b = calibration
    p = min(max(p, 1e-6), 1 - 1e-6)
    z = a * math.log(p / (1 - p)) + b
    return 1.0 / (1.0 + math.exp(-z)) if z > -60 else 0.0


@lru_cache(maxsize=4)
def load_answer_model(path: Path = DEFAULT_PATH) -> AnswerModel:
    """The answer model in ``path``; :class:`ConfigurationError` naming the file if unusable."""
    try:
        return AnswerModel.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError) as exc:
        raise ConfigurationError(
            f"answer model {path}: {exc}; restore it from the package or refit it with `assistant eval fit`"
        ) from exc
