"""Answer or hand off: turn retrieval and draft signals into a route, reasons and confidence."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from assistant.generation.base import Draft
from assistant.response import Reason, ReasonCode, Route
from assistant.retrieval.base import RetrievalResult

#: Cosine similarities of all-MiniLM-L6-v2 between these bounds map onto 0..1.
SIMILARITY_FLOOR = 0.20
SIMILARITY_CEILING = 0.60
#: Added to confidence when a cited passage names an error code the app just logged.
ERROR_MATCH_BONUS = 0.25


class Decision(BaseModel):
    """The route with its reasons and the confidence behind it."""

    model_config = ConfigDict(frozen=True)

    route: Route
    reasons: list[Reason] = Field(default_factory=list)
    confidence: float


def _scale(value: float) -> float:
    return min(1.0, max(0.0, (value - SIMILARITY_FLOOR) / (SIMILARITY_CEILING - SIMILARITY_FLOOR)))


def confidence(retrieval: RetrievalResult, draft: Draft) -> float:
    """0..1: how closely the best passage and best quoted sentence match, and whether searches agree."""
    if not retrieval.passages or not draft.text:
        return 0.0
    value = 0.5 * _scale(retrieval.top_similarity) + 0.3 * _scale(draft.support) + 0.2 * retrieval.agreement
    if any(fact.startswith("app error:") for p in draft.cited for fact in p.boosts):
        value += ERROR_MATCH_BONUS  # the cited passage explains the error the app just logged
    return round(min(1.0, value), 4)


def decide(retrieval: RetrievalResult, draft: Draft, *, min_confidence: float) -> Decision:
    """Answer when support is strong enough; otherwise escalate with ``low_confidence``."""
    score = confidence(retrieval, draft)
    if score >= min_confidence:
        return Decision(route=Route.ANSWER, confidence=score)
    if retrieval.passages:
        best = retrieval.passages[0]
        detail = (
            f"retrieval support too weak to answer: confidence {score:.2f} < {min_confidence:.2f} "
            f"(best match {best.doc_id!r} section {best.section!r}, similarity {retrieval.top_similarity:.2f}, "
            f"search agreement {retrieval.agreement:.1f})"
        )
    else:
        detail = "no policy passage matched the question"
    return Decision(
        route=Route.ESCALATE,
        reasons=[Reason(code=ReasonCode.LOW_CONFIDENCE, detail=detail)],
        confidence=score,
    )
