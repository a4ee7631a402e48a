from assistant import ReasonCode, Route
from assistant.generation.base import Draft
from assistant.retrieval.base import Passage, RetrievalResult
from assistant.routing.decide import confidence, decide


def _result(similarity: float, agreement: float) -> RetrievalResult:
    passage = Passage(chunk_id="d:1", doc_id="d", title="T", section="S", text="x", score=0.03, dense_similarity=similarity)
    return RetrievalResult(passages=[passage], top_similarity=similarity, agreement=agreement)


def test_strong_support_answers():
    decision = decide(_result(0.62, 1.0), Draft(text="a [1]", support=0.6), min_confidence=0.35)
    assert decision.route is Route.ANSWER and decision.reasons == [] and decision.confidence == 1.0


def test_weak_support_escalates_with_low_confidence_naming_the_evidence():
    decision = decide(_result(0.15, 0.0), Draft(text="a [1]", support=0.1), min_confidence=0.35)
    assert decision.route is Route.ESCALATE
    assert decision.reasons[0].code is ReasonCode.LOW_CONFIDENCE
    assert "'d'" in decision.reasons[0].detail and "0.15" in decision.reasons[0].detail


def test_confidence_hand_computed():
    # 0.5 * (0.40-0.20)/0.40 + 0.3 * (0.30-0.20)/0.40 + 0.2 * 0.5 = 0.25 + 0.075 + 0.1
    assert confidence(_result(0.40, 0.5), Draft(text="x", support=0.30)) == 0.425
    assert confidence(RetrievalResult(passages=[]), Draft(text="")) == 0.0
