"""Handoff packets: what a support agent needs to resolve the case in one contact."""

from __future__ import annotations

from assistant.request import HelpRequest
from assistant.response import HandoffPacket, Priority, Reason, ReasonCode
from assistant.retrieval.base import RetrievalResult

_CATEGORY = {
    ReasonCode.LOW_CONFIDENCE: "unanswered_question",
    ReasonCode.SAFETY: "safety",
    ReasonCode.DEFECT_CONFIRMED: "app_defect",
    ReasonCode.DEFECT_SUSPECTED: "app_defect",
    ReasonCode.ACCOUNT_ACTION: "account_action",
    ReasonCode.DRIVER_REQUESTED: "driver_requested",
    ReasonCode.REPEAT_CONTACT: "repeat_contact",
}


def build_handoff(
    request: HelpRequest,
    message: str,
    reasons: list[Reason],
    *,
    told_driver: str,
    retrieval: RetrievalResult | None,
) -> HandoffPacket:
    """A packet for the human who picks up this contact."""
    primary = reasons[0].code if reasons else ReasonCode.LOW_CONFIDENCE
    priority = Priority.URGENT if primary is ReasonCode.SAFETY else Priority.NORMAL
    journey = request.journey.model_dump(mode="json", exclude_none=True, exclude_defaults=True) if request.journey else None
    candidates = list(dict.fromkeys(p.doc_id for p in retrieval.passages)) if retrieval else []
    why = "; ".join(r.detail for r in reasons) or "handed over"
    stage = request.journey.stage.value if request.journey and request.journey.stage else "unknown stage"
    summary = f"Driver ({stage}) asked: {message[:200]!r}. Handed over because: {why}."
    steps = ["Answer the driver's question directly; the assistant did not find a policy that clearly covers it."]
    if candidates:
        steps.append(f"Closest help-centre articles (not confirmed relevant): {', '.join(candidates[:3])}.")
    if request.journey and request.journey.events:
        steps.append("Check the app events in the journey snapshot for an error behind the question.")
    return HandoffPacket(
        category=_CATEGORY.get(primary, "general"),
        priority=priority,
        summary=summary,
        driver_message=message,
        journey=journey,
        assistant_told_driver=told_driver,
        cited_doc_ids=[],
        suggested_next_steps=steps,
    )
