"""Fit the offline answer model (:mod:`assistant.generation.answer_model`) on the tuning split.

``assistant eval fit`` runs every **tuning** case of the eval datasets through the real
pipeline up to the answer (guardrails, retrieval, candidate sections) and learns:

1. the **section model** and the **ranking**: which candidate section answers the question. A
   section is a positive example when it belongs to an article the case names as relevant (a
   passing mention of the fact in another article is not the answer) and its text states every
   ``must_include`` fact of the case and none of its ``must_not_include`` ones. The ranking is
   fitted per question (which of its candidates answers it) and chooses the section quoted; the
   section model, one regression over every candidate of every question, gives the probability
   the confidence reads;
2. the **confidence**: the product of two logistic regressions, recalibrated (Platt scaling of
   its log-odds). The *confidence model* gives P(the drafted answer is right: it states every
   fact and nothing forbidden) from every request feature; it learns from the cases whose
   drafts can be scored (a question the help centre does not answer, expected
   ``low_confidence`` with no relevant document, is a negative: any answer to it is wrong) and
   from the answerable ones with their answering articles taken out. The *answerable model*
   gives P(the help centre answers the question at all) from how close the question is to the
   questions the corpus answers and to those it does not (``gaps.yaml``); it learns from every
   question about the work (answered ones without named facts too) and from requests declined
   as out of scope in English (in another language their English rendering is the help
   centre's own text and says nothing). Split this way, the few unanswerable cases are not
   outweighed by the many answerable ones drafted wrong: on the tuning cases, at the same
   4 % hand-off, one regression left 0.74 of them answered, the product 0.66 (0.92 and 0.76
   without the gap questions). The drafts come from section models fitted without the case
   (cross-validation), so the confidence learns how often the section model is right on cases
   it has not seen;
3. the **threshold**: the highest confidence that, in cross-validation, hands at most
   ``max_handoff`` (4 % by default) of the questions the help centre answers to a person. Below it the driver
   gets a person; the precision of the answers above it is measured and reported, not assumed.

Sealed cases are never read. The file records what it was fitted on and the cross-validated
scores (section top-1 accuracy, expected calibration error, precision and coverage at the
threshold), so a change to features or data is compared on numbers, not on a feeling.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from assistant._optional import missing
from assistant.errors import ConfigurationError
from assistant.evals import metrics as m
from assistant.evals.dataset import EvalCase, Split, load_datasets
from assistant.generation.answer_model import (
    ANSWERABLE_FEATURES,
    CONFIDENCE_FEATURES,
    DEFAULT_PATH,
    RENDERED_FEATURES,
    AnswerModel,
    LogisticModel,
    product,
    recalibrated,
)
from assistant.generation.extractive import ExtractiveComposer, Ranking
from assistant.generation.sections import FEATURES, terms
from assistant.pipeline import Assistant
from assistant.response import HelpResponse, ReasonCode, Route
from assistant.retrieval.base import Passage
from assistant.retrieval.embeddings import embedding_model_id
from assistant.retrieval.hybrid import HybridRetriever
from assistant.retrieval.journey import JourneySignals

FOLDS = 5
#: Share of answerable questions the threshold may hand to a person (cross-validated).
MAX_HANDOFF = 0.04
#: Candidate ratios for quoting a second section (second's probability / first's); above 1 never.
SECOND_SECTION_RATIOS = (0.3, 0.5, 0.7, 0.85, 1.01)
#: Thresholds whose trade-off the fitted file reports.
THRESHOLD_SWEEP = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
#: Weight of a case with its answering articles taken out, against a real case's 1.
AUGMENTED_WEIGHT = 0.5
#: L2 strength of both regressions (scikit-learn's C is its inverse).
REGULARISATION_C = 1.0
#: The section model's L2 penalty per question (its cross-validated top-1 hardly moved from 0 to 1).
SECTION_L2 = 0.1


@dataclass
class _Example:
    """One tuning case, prepared up to the answer."""

    case: EvalCase
    answerable: bool
    ranking: Ranking
    passages: list[Passage]
    signals: JourneySignals
    labels: list[int]  # per candidate: 1 when the section states every fact and nothing forbidden
    rendered: bool = False  # a message in another language, searched through its English pivots
    #: RENDERED_FEATURES measured by the multilingual model on the message (any language), for
    #: ``answerable_rendered``; NaN without that model
    multilingual: tuple[float, ...] = ()

    @property
    def expects_answer(self) -> bool:
        """A question the help centre answers (with ``must_include`` facts or not)."""
        return self.case.expected_route is Route.ANSWER

    @property
    def on_topic(self) -> bool:
        """A question about the work, answerable or not (not a request declined as out of scope)."""
        return self.expects_answer or self.case.unanswerable

    @property
    def scored(self) -> bool:
        """Whether a draft for it is known to be right or wrong: it names the facts a right
        answer states, or the help centre does not answer it (any answer is wrong)."""
        return self.answerable or self.case.unanswerable


def right_answer(text: str, case: EvalCase) -> bool:
    """True when ``text`` states every fact of ``case`` and nothing it must not."""
    return m.right_answer(text, case.must_include, case.must_not_include)


def _logistic_regression() -> Any:
    """scikit-learn's ``LogisticRegression``: refitting is an offline tool, installed with the
    ``evals`` extra."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ModuleNotFoundError as exc:
        raise missing("refitting the answer model", exc, extra="evals") from exc
    return LogisticRegression


def _fit(x: np.ndarray, y: np.ndarray, names: Sequence[str], weight: np.ndarray | None = None) -> LogisticModel:
    LogisticRegression = _logistic_regression()

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=REGULARISATION_C, max_iter=2000)
    model.fit((x - mean) / scale, y, sample_weight=weight)
    return LogisticModel(
        features=list(names), mean=[round(float(v), 6) for v in mean], scale=[round(float(v), 6) for v in scale],
        coef=[round(float(v), 6) for v in model.coef_[0]], intercept=round(float(model.intercept_[0]), 6),
    )


def _section_data(examples: Sequence[_Example]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, labels, weights = [], [], []
    for ex in examples:
        if not ex.answerable or not any(ex.labels):
            continue
        n = len(ex.ranking.candidates)
        for candidate, label in zip(ex.ranking.candidates, ex.labels, strict=True):
            rows.append(candidate.features)
            labels.append(label)
            weights.append(1.0 / n)  # every case counts the same, however many candidates it has
    return np.asarray(rows, dtype=np.float64), np.asarray(labels), np.asarray(weights)


def _fit_ranking(examples: Sequence[_Example]) -> LogisticModel:
    """The ranking model: which of a question's candidate sections answers it.

    Fitted per question (a conditional logit: a softmax over each question's candidates, whose
    right sections share the target), since the composer quotes each question's best candidate:
    what matters is the order within a question, not how a section scores against another
    question's. Cross-validated on the tuning cases, section top-1 0.666 with the section model
    (one logistic regression over every candidate), 0.691 this way. Its scores are log-odds
    only up to a constant per question, so the confidence keeps reading the section model's
    probabilities: with the ranking model's scores Platt-scaled in their place, more of the
    questions the help centre does not answer were answered (tuning 0.42 -> 0.37)."""
    try:
        from scipy.optimize import minimize
    except ModuleNotFoundError as exc:
        raise missing("refitting the answer model", exc, extra="evals") from exc
    groups = [
        (np.asarray([c.features for c in ex.ranking.candidates], dtype=np.float64), np.asarray(ex.labels, dtype=np.float64))
        for ex in examples if ex.answerable and any(ex.labels)
    ]
    x = np.vstack([features for features, _ in groups])
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    standard = [((features - mean) / scale, labels / labels.sum()) for features, labels in groups]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = SECTION_L2 * float(w @ w) / 2, SECTION_L2 * w
        for features, target in standard:
            scores = features @ w
            p = np.exp(scores - scores.max())
            p /= p.sum()
            total -= float(target @ np.log(p + 1e-12))
            grad = grad - features.T @ (target - p)
        return total / len(standard), grad / len(standard)

    w = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x
    return LogisticModel(
        features=list(FEATURES), mean=[round(float(v), 6) for v in mean], scale=[round(float(v), 6) for v in scale],
        coef=[round(float(v), 6) for v in w], intercept=0.0,
    )


def _rerank(ex: _Example, section: LogisticModel, ranking_model: LogisticModel) -> tuple[Ranking, list[int]]:
    """``ex``'s ranking and labels re-scored by other section and ranking models, best first."""
    for candidate in ex.ranking.candidates:
        candidate.probability = section.probability(candidate.features)
        candidate.score = ranking_model.logit(candidate.features)
    pairs = sorted(
        zip(ex.ranking.candidates, ex.labels, strict=True),
        key=lambda pair: (-pair[0].order, pair[0].section.doc_id, pair[0].section.position),
    )
    ranking = Ranking(
        ex.ranking.question, [c for c, _ in pairs], ex.ranking.unknown_words, ex.ranking.driver_questions,
        ex.ranking.gap_question, ex.ranking.rendered,
    )
    return ranking, [label for _, label in pairs]


def fold_of_case(case: EvalCase, seed: int = 0) -> int:
    """The cross-validation fold of ``case``: a hash of the seed, its dataset and its id."""
    digest = hashlib.sha256(f"{seed}:{case.dataset}/{case.id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % FOLDS


def choose_threshold(answerable: Sequence[float], max_handoff: float = MAX_HANDOFF) -> float:
    """The highest threshold that leaves at most ``max_handoff`` of the ``answerable``
    confidences below it (0.0 when there are none)."""
    if not answerable:
        return 0.0
    ordered = sorted(answerable)
    allowed = int(max_handoff * len(ordered))  # this many may fall below the threshold
    return round(float(ordered[allowed]), 4) if allowed < len(ordered) else 1.0


def prepare(assistant: Assistant, cases: Sequence[EvalCase], on_progress: Callable[[int, int], None] | None = None) -> list[_Example]:
    """Run ``cases`` through guardrails and retrieval and rank their candidate sections."""
    examples: list[_Example] = []
    for done, case in enumerate(cases, start=1):
        if on_progress:
            on_progress(done, len(cases))
        unanswerable = case.unanswerable
        answerable = case.expected_route is Route.ANSWER and bool(case.must_include)
        # a request the help centre is not for (declined out of scope) that reaches the answer:
        # another kind of question it does not answer
        off_topic = case.expected_route is Route.DECLINE and ReasonCode.OUT_OF_SCOPE in case.expected_reasons
        if not (case.expected_route is Route.ANSWER or unanswerable or off_topic):
            continue
        prepared = assistant._prepare(case.to_request())
        if isinstance(prepared, HelpResponse) or not isinstance(prepared.composer, ExtractiveComposer):
            continue  # settled before an answer (declined, handed over) or another composer
        if not prepared.language.is_english and prepared.language.english is None:
            continue  # a language the offline answer cannot search goes to a person whatever the score
        composer = prepared.composer
        # as the composer does: the question differs from the message when it renders it in English
        rendered_from = prepared.message if prepared.question != prepared.message else None
        ranking = composer.rank(prepared.question, prepared.context, prepared.signals, rendered_from=rendered_from)
        retriever = assistant._stages()[0]
        measured = (
            retriever.answerability(prepared.message).values()
            if isinstance(retriever, HybridRetriever) and assistant.settings.multilingual else {}
        )
        # in reading order, so that what is fitted does not depend on the model being replaced
        ranking.candidates.sort(key=lambda c: (c.section.doc_id, c.section.position))
        relevant = set(case.relevant_doc_ids)
        labels = [
            int(
                answerable
                and (not relevant or c.section.doc_id in relevant)  # not a passing mention elsewhere
                and right_answer(composer.quotable(c.section, ranking.question), case)
            )
            for c in ranking.candidates
        ]
        examples.append(
            _Example(
                case, answerable, ranking, prepared.context, prepared.signals, labels,
                rendered=prepared.language.english is not None,
                multilingual=tuple(measured.get(name, np.nan) for name in RENDERED_FEATURES),
            )
        )
    return examples


def fit_answer_model(
    assistant: Assistant,
    datasets: list[Path],
    *,
    max_handoff: float = MAX_HANDOFF,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> AnswerModel:
    """Fit both models and the threshold on the tuning cases of ``datasets`` (see the module docstring)."""
    cases = load_datasets(datasets, split=Split.TUNING).cases
    examples = prepare(assistant, cases, on_progress)
    composer = assistant._stages()[1]
    if not isinstance(composer, ExtractiveComposer):
        raise ConfigurationError("fitting needs the offline extractive composer (ASSISTANT_GENERATOR=extractive)")
    # each case's fold from its own name, so a case added or removed moves no other case to
    # another fold (drawn over the whole list, one more case reshuffled them all: the threshold
    # went from 0.270 to 0.237 when one answerable case was left out)
    fold_of = {i: fold_of_case(ex.case, seed) for i, ex in enumerate(examples)}

    # 1. section model, cross-validated top-1 accuracy; out-of-fold rankings for what follows
    top1: list[bool] = []
    rankings: list[Ranking] = [ex.ranking for ex in examples]
    sections: list[LogisticModel] = []
    rankers: list[LogisticModel] = []
    for fold in range(FOLDS):
        train = [ex for i, ex in enumerate(examples) if fold_of[i] != fold]
        x, y, w = _section_data(train)
        sections.append(_fit(x, y, FEATURES, w))
        rankers.append(_fit_ranking(train))
        for i, ex in enumerate(examples):
            if fold_of[i] != fold:
                continue
            ranking, ordered = _rerank(ex, sections[fold], rankers[fold])
            rankings[i] = ranking
            if ex.answerable and any(ordered):
                top1.append(bool(ordered[0]))

    # 2. when to quote a second section: the ratio with the most right answers in cross-validation
    def drafts(ratio: float) -> list[str]:
        texts = []
        for i, ex in enumerate(examples):
            trial = AnswerModel.model_validate(
                {**composer.model.model_dump(), "section": sections[fold_of[i]].model_dump(),
                 "ranking": rankers[fold_of[i]].model_dump(), "second_section_ratio": ratio}
            )
            texts.append(_with_model(composer, trial).draft(rankings[i], ex.passages, ex.signals).text)
        return texts

    sweep: dict[float, tuple[float, float]] = {}
    for ratio in SECOND_SECTION_RATIOS:
        texts = drafts(ratio)
        right = [ex.answerable and bool(t) and right_answer(t, ex.case) for ex, t in zip(examples, texts, strict=True) if ex.scored]
        words = [len(t.split()) for ex, t in zip(examples, texts, strict=True) if ex.answerable]
        sweep[ratio] = (sum(right) / len(right), sum(words) / len(words))
    # the fewest second sections among the ratios within a point of the best
    best_right = max(r for r, _ in sweep.values())
    ratio = max(r for r, (right, _) in sweep.items() if right >= best_right - 0.01)

    # 3. out-of-fold drafts and whether they are right: the confidence models' data. Each
    # answerable case is used twice: as asked, and with the articles that answer it taken out of
    # the corpus, which turns it into a question the help centre does not answer (in a driver's
    # own words). The second kind teaches the confidence what "the answer is not here" looks
    # like; the answerable model learns it from the real questions about the work alone.
    texts = drafts(ratio)
    rows: list[list[float]] = []
    measured: list[tuple[float, ...]] = []
    rendered: list[bool] = []
    right_labels: list[int] = []
    is_real: list[bool] = []
    asked: list[bool] = []
    answerable: list[bool] = []
    labelled: list[bool] = []
    fold_ids: list[int] = []
    vocabulary = _term_documents(composer)
    for i, ex in enumerate(examples):
        rows.append(rankings[i].confidence_features(ex.passages))
        measured.append(ex.multilingual or (np.nan,) * len(RENDERED_FEATURES))
        rendered.append(ex.rendered and rankings[i].rendered is not None)
        right_labels.append(int(ex.answerable and bool(texts[i]) and right_answer(texts[i], ex.case)))
        is_real.append(True)
        # a request out of scope in another language is searched through the help centre's own
        # text, which carries no sign of it: the answerable model learns from those in English
        asked.append(ex.on_topic or not ex.rendered)
        answerable.append(ex.expects_answer)
        labelled.append(ex.scored)
        fold_ids.append(fold_of[i])
        if ex.answerable and ex.case.relevant_doc_ids:
            ranking, passages = _without(rankings[i], ex.passages, set(ex.case.relevant_doc_ids), vocabulary)
            if ranking.candidates and passages:
                trial = AnswerModel.model_validate(
                    {**composer.model.model_dump(), "section": sections[fold_of[i]].model_dump(),
                 "ranking": rankers[fold_of[i]].model_dump(), "second_section_ratio": ratio}
                )
                text = _with_model(composer, trial).draft(ranking, passages, ex.signals).text
                rows.append(ranking.confidence_features(passages))
                measured.append((np.nan,) * len(RENDERED_FEATURES))  # not read: neither answerable model learns from these
                rendered.append(ex.rendered and rankings[i].rendered is not None)
                right_labels.append(int(bool(text) and right_answer(text, ex.case)))
                is_real.append(False)
                asked.append(False)
                answerable.append(False)
                labelled.append(True)
                fold_ids.append(fold_of[i])
    data = _ConfidenceData(
        # a corpus without gaps.yaml or driver questions measures no gap margin or driver question
        # (NaN): a constant column, which the fit ignores
        x=np.nan_to_num(np.asarray(rows, dtype=np.float64), nan=0.0), right=np.asarray(right_labels), real=np.asarray(is_real),
        answerable=np.asarray(answerable), labelled=np.asarray(labelled), asked=np.asarray(asked),
        measured=np.asarray(measured, dtype=np.float64).reshape(len(rows), len(RENDERED_FEATURES)),
        rendered=np.asarray(rendered, dtype=bool),
    )
    folds_conf = np.asarray(fold_ids)

    # cross-validated confidence on the real cases, for the calibration and the threshold
    raw = np.zeros(len(rows))
    for fold in range(FOLDS):
        train, held = folds_conf != fold, (folds_conf == fold) & data.real
        if len(set(data.right[train & data.labelled].tolist())) < 2 or not held.any():
            continue
        fold_answered, fold_rendered, fold_right = _confidence_models(data.subset(train))
        raw[held] = [
            _product(fold_rendered if is_rendered and fold_rendered is not None else fold_answered, fold_right, row,
                     tuple(ml) if is_rendered and fold_rendered is not None else None)
            for row, ml, is_rendered in zip(data.x[held], data.measured[held], data.rendered[held], strict=True)
        ]
    raw, labels = raw[data.real], data.right[data.real]
    scored = np.asarray([ex.scored for ex in examples])
    calibration = _calibration(raw[scored], labels[scored])
    predicted = np.asarray([recalibrated(float(p), calibration) for p in raw])
    # scored on the questions about the work with known right answers (a request declined as out
    # of scope is reported apart)
    pairs = [(float(p), bool(y)) for p, y, ex in zip(predicted, labels, examples, strict=True) if ex.scored]
    answerable_total = sum(1 for ex in examples if ex.answerable)
    unanswerable_conf = [float(p) for p, ex in zip(predicted, examples, strict=True) if ex.case.unanswerable]
    off_topic_conf = [float(p) for p, ex in zip(predicted, examples, strict=True) if not ex.on_topic]
    answerable_conf = [float(p) for p, ex in zip(predicted, examples, strict=True) if ex.expects_answer]
    threshold = choose_threshold(answerable_conf, max_handoff)
    answered_model, rendered_model, right_model = _confidence_models(data)
    rendered_real = data.rendered[data.real]
    rendered_unanswerable = [float(p) for p, ex, r in zip(predicted, examples, rendered_real, strict=True) if r and ex.case.unanswerable]
    rendered_answerable = [float(p) for p, ex, r in zip(predicted, examples, rendered_real, strict=True) if r and ex.expects_answer]

    x, y, w = _section_data(examples)
    final = AnswerModel(
        embedding_model=embedding_model_id(assistant.settings),
        section=_fit(x, y, FEATURES, w),
        ranking=_fit_ranking(examples),
        confidence=right_model,
        answerable=answered_model,
        answerable_rendered=rendered_model,
        calibration=calibration,
        threshold=threshold,
        second_section_ratio=ratio,
        fitted={
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "split": "tuning",
            "datasets": sorted({ex.case.dataset for ex in examples}),
            "cases": len(examples),
            "answerable": answerable_total,
            "answered_without_facts": sum(1 for ex in examples if ex.expects_answer and not ex.answerable),
            "unanswerable": len(unanswerable_conf),
            "off_topic": len(off_topic_conf),
            "folds": FOLDS,
            "cv_section_top1": round(sum(top1) / len(top1), 4) if top1 else None,
            "cv_right_answers": round(sum(ok for _, ok in pairs) / len(pairs), 4) if pairs else None,
            "cv_answerable_handed_off": _share_below(answerable_conf, threshold),
            "cv_unanswerable_answered": _share_at_or_above(unanswerable_conf, threshold),
            "rendered": len(rendered_answerable) + len(rendered_unanswerable),
            "cv_rendered_answerable_handed_off": _share_below(rendered_answerable, threshold),
            "cv_rendered_unanswerable_answered": _share_at_or_above(rendered_unanswerable, threshold),
            "augmented": int((~data.real).sum()),
            "cv_off_topic_median_confidence": round(float(np.median(off_topic_conf)), 4) if off_topic_conf else None,
            "cv_ece": m.expected_calibration_error(pairs),
            "cv_precision_at_threshold": _precision(pairs, threshold),
            "cv_answered_share": _share_at_or_above([c for c, _ in pairs], threshold),
            "max_handoff": max_handoff,
            "cv_threshold_sweep": {
                f"{t:.2f}": {
                    "answerable_handed_off": _share_below(answerable_conf, t),
                    "unanswerable_answered": _share_at_or_above(unanswerable_conf, t),
                    "precision": _precision(pairs, t),
                }
                for t in THRESHOLD_SWEEP
            },
            "cv_second_section_sweep": {str(r): {"right": round(a, 4), "answer_words": round(b, 1)} for r, (a, b) in sweep.items()},
        },
    )
    return final


def _share_below(values: Sequence[float], threshold: float) -> float | None:
    return round(sum(1 for v in values if v < threshold) / len(values), 4) if values else None


def _share_at_or_above(values: Sequence[float], threshold: float) -> float | None:
    return round(sum(1 for v in values if v >= threshold) / len(values), 4) if values else None


def _precision(pairs: Sequence[tuple[float, bool]], threshold: float) -> float | None:
    """Share of right answers among those at or above ``threshold``."""
    above = [ok for conf, ok in pairs if conf >= threshold]
    return round(sum(above) / len(above), 4) if above else None


@dataclass
class _ConfidenceData:
    """The confidence models' rows: features, whether the draft was right, whether the row is a
    real case (not one with its answering articles taken out), and whether the help centre
    answers the question; which rows each model learns from."""

    x: np.ndarray
    right: np.ndarray
    real: np.ndarray
    answerable: np.ndarray
    labelled: np.ndarray  # the confidence model's rows: the scored cases and the augmented ones
    asked: np.ndarray  # the answerable model's rows: questions about the work, English requests out of scope
    measured: np.ndarray  # RENDERED_FEATURES by the multilingual model (NaN: not measured)
    rendered: np.ndarray  # a message in another language, searched through its English pivots

    def subset(self, rows: np.ndarray) -> _ConfidenceData:
        return _ConfidenceData(
            self.x[rows], self.right[rows], self.real[rows], self.answerable[rows], self.labelled[rows], self.asked[rows],
            self.measured[rows], self.rendered[rows],
        )


def _confidence_models(data: _ConfidenceData) -> tuple[LogisticModel | None, LogisticModel | None, LogisticModel]:
    """The answerable model (``None`` without both kinds of question), the answerable model for
    a message in another language (``None`` without multilingual measures) and the confidence
    model (augmented rows at half weight, recalibrated on the real ones).

    The second learns from every real question, in any language, the multilingual model measured:
    questions about the work and requests out of scope (whose own words it reads)."""
    columns = [CONFIDENCE_FEATURES.index(name) for name in ANSWERABLE_FEATURES]
    rows = data.asked
    labels = data.answerable[rows].astype(int)
    answered = _fit(data.x[rows][:, columns], labels, ANSWERABLE_FEATURES) if len(set(labels.tolist())) == 2 else None
    rows = data.real & ~np.isnan(data.measured).any(axis=1)
    labels = data.answerable[rows].astype(int)
    rendered = _fit(data.measured[rows], labels, RENDERED_FEATURES) if len(set(labels.tolist())) == 2 else None
    rows = data.labelled
    weights = np.where(data.real[rows], 1.0, AUGMENTED_WEIGHT)
    return answered, rendered, _calibrated(data.x[rows], data.right[rows], weights, data.real[rows])


def _product(
    answered: LogisticModel | None, right: LogisticModel, row: Sequence[float], measured: Sequence[float] | None = None
) -> float:
    """P(answerable) x P(right) for one row of :data:`CONFIDENCE_FEATURES` (``answered`` reads
    ``measured``, :data:`RENDERED_FEATURES`, when given)."""
    values = dict(zip(CONFIDENCE_FEATURES, row, strict=True))
    return product(right, answered, values, None if measured is None else dict(zip(RENDERED_FEATURES, measured, strict=True)))


def _calibration(raw: np.ndarray, labels: np.ndarray) -> tuple[float, float] | None:
    """Platt scaling of the product's log-odds: (a, b) with P(right) = sigmoid(a * logit + b)."""
    if len(set(labels.tolist())) < 2:
        return None
    LogisticRegression = _logistic_regression()
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(raw).reshape(-1, 1), labels)
    return round(float(platt.coef_[0][0]), 6), round(float(platt.intercept_[0]), 6)


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(clipped / (1 - clipped)))


def _term_documents(composer: ExtractiveComposer) -> dict[str, frozenset[str]]:
    """Every term of the corpus and the articles that use it."""
    found: dict[str, set[str]] = {}
    for chunk in composer.source.chunks.values() if composer.source is not None else ():
        for term in terms(chunk.page_content):
            found.setdefault(term, set()).add(str(chunk.metadata["doc_id"]))
    return {term: frozenset(docs) for term, docs in found.items()}


def _without(
    ranking: Ranking, passages: list[Passage], docs: set[str], vocabulary: dict[str, frozenset[str]]
) -> tuple[Ranking, list[Passage]]:
    """``ranking`` and ``passages`` as if the articles ``docs`` were not in the corpus: their
    sections are gone, and so are the words only they use (``vocabulary``: term -> articles), so
    the question's own words for the missing topic count as words the corpus never uses, and
    their driver questions (the unanswered questions stay)."""
    kept = [c for c in ranking.candidates if c.section.doc_id not in docs]
    question_terms = ranking.question.terms
    unknown = (
        sum(1 for t in question_terms if not vocabulary.get(t, frozenset()) - docs) / len(question_terms)
        if question_terms and vocabulary else ranking.unknown_words
    )
    return (
        Ranking(
            ranking.question, kept, unknown,
            None if ranking.driver_questions is None else {d: v for d, v in ranking.driver_questions.items() if d not in docs},
            ranking.gap_question, ranking.rendered,
        ),
        [p for p in passages if p.doc_id not in docs],
    )


def _calibrated(x: np.ndarray, y: np.ndarray, weight: np.ndarray, real: np.ndarray) -> LogisticModel:
    """A logistic regression fitted on all rows (real and augmented), then recalibrated on the
    real rows alone (Platt scaling, folded into the weights), so its probabilities match how
    often real answers are right."""
    LogisticRegression = _logistic_regression()

    scorer = _fit(x, y, CONFIDENCE_FEATURES, weight)
    logits = np.asarray([[scorer.logit(row)] for row in x[real]])
    if len(set(y[real])) < 2:
        return scorer
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(logits, y[real])
    a, b = float(platt.coef_[0][0]), float(platt.intercept_[0])
    return scorer.model_copy(
        update={"coef": [round(a * c, 6) for c in scorer.coef], "intercept": round(a * scorer.intercept + b, 6)}
    )


def _with_model(composer: ExtractiveComposer, model: AnswerModel) -> ExtractiveComposer:
    """A shallow copy of ``composer`` that scores with ``model`` (sections and vectors shared)."""
    clone = object.__new__(ExtractiveComposer)
    clone.__dict__.update(composer.__dict__)
    clone.model = model
    return clone


def write_answer_model(model: AnswerModel, path: Path = DEFAULT_PATH) -> Path:
    """Write ``model`` as JSON (atomically)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(model.model_dump(mode="json"), indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def describe(model: AnswerModel) -> str:
    """One paragraph on what was fitted and how well it did in cross-validation."""
    f = model.fitted
    def weights(fitted: LogisticModel) -> str:
        return ", ".join(f"{n} {c:+.2f}" for n, c in sorted(zip(fitted.features, fitted.coef, strict=True), key=lambda p: -abs(p[1])))

    return (
        f"fitted on {f.get('cases')} tuning cases ({f.get('answerable')} answerable, {f.get('unanswerable')} unanswerable); "
        f"cross-validated: section top-1 {f.get('cv_section_top1')}, right answers {f.get('cv_right_answers')}, "
        f"second section at ratio {model.second_section_ratio}, ECE {f.get('cv_ece')}; at threshold {model.threshold}: "
        f"answers right {f.get('cv_precision_at_threshold')}, answerable handed off {f.get('cv_answerable_handed_off')}, "
        f"unanswerable answered {f.get('cv_unanswerable_answered')}\nsection weights (standardised): {weights(model.section)}"
        + (f"\nranking weights (standardised): {weights(model.ranking)}" if model.ranking is not None else "")
    )


#: The fitted scores :func:`compare` shows, with how they read.
COMPARED = (
    ("cases", "tuning cases"),
    ("cv_section_top1", "section top-1"),
    ("cv_right_answers", "right answers"),
    ("cv_ece", "calibration error"),
    ("cv_precision_at_threshold", "answers right at the threshold"),
    ("cv_answerable_handed_off", "answerable handed off"),
    ("cv_unanswerable_answered", "unanswerable answered"),
    ("cv_rendered_answerable_handed_off", "other languages: answerable handed off"),
    ("cv_rendered_unanswerable_answered", "other languages: unanswerable answered"),
)


def compare(previous: AnswerModel, new: AnswerModel) -> str:
    """The threshold and the cross-validated scores of the model a refit replaces beside the new
    one's, a line each ("-" where one was not measured): what a refit changes before its eval run."""
    def shown(value: object) -> str:
        return "-" if value is None else str(value)

    rows: list[tuple[str, object, object]] = [("threshold", previous.threshold, new.threshold)]
    rows += [(label, previous.fitted.get(key), new.fitted.get(key)) for key, label in COMPARED]
    width = max(len(label) for label, _, _ in rows)
    lines = [f"{'':{width}}  {'before':>8}  {'after':>8}"]
    lines += [f"{label:{width}}  {shown(a):>8}  {shown(b):>8}" for label, a, b in rows]
    return "\n".join(lines)
