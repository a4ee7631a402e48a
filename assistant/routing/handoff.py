"""Handoff packets: what a support agent needs to resolve the case in one contact.

Everything in a packet comes from the redacted request: the driver's words, the conversation,
the journey snapshot and the evidence lines never carry the PII the guardrails removed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from assistant.request import HelpRequest
from assistant.response import HandoffPacket, Priority, Reason, ReasonCode
from assistant.retrieval.base import RetrievalResult

if TYPE_CHECKING:
    from assistant.guardrails.engine import ContextCheck

_CATEGORY = {
    ReasonCode.LOW_CONFIDENCE: "unanswered_question",
    ReasonCode.SAFETY: "safety",
    ReasonCode.DEFECT_CONFIRMED: "app_defect",
    ReasonCode.DEFECT_SUSPECTED: "app_defect",
    ReasonCode.KNOWN_INCIDENT: "known_incident",
    ReasonCode.ACCOUNT_ACTION: "account_action",
    ReasonCode.DRIVER_REQUESTED: "driver_requested",
    ReasonCode.REPEAT_CONTACT: "repeat_contact",
}
_PRIORITY = {
    ReasonCode.SAFETY: Priority.URGENT,
    ReasonCode.DEFECT_CONFIRMED: Priority.HIGH,
    ReasonCode.KNOWN_INCIDENT: Priority.HIGH,
    ReasonCode.ACCOUNT_ACTION: Priority.HIGH,
    ReasonCode.REPEAT_CONTACT: Priority.HIGH,
}
_STEPS = {
    ReasonCode.SAFETY: [
        "Call the driver now; confirm they are safe and that emergency services were called if anyone is hurt.",
        "Open a safety incident with the time, location and order from the journey snapshot.",
    ],
    ReasonCode.DEFECT_CONFIRMED: [
        "The evidence timeline shows the failure; file it with the defect signature so matching reports group together.",
        "Complete or adjust the affected order or pay for the driver so they are not out of pocket.",
    ],
    ReasonCode.DEFECT_SUSPECTED: [
        "Ask for a screenshot or the error text and check backend logs for the order in the journey snapshot.",
        "If it is a defect, file it with the defect signature; if not, explain the policy the driver ran into.",
    ],
    ReasonCode.KNOWN_INCIDENT: [
        "Attach this contact to the open incident and tell the driver how pay or orders will be made good.",
    ],
    ReasonCode.ACCOUNT_ACTION: [
        "Review the account and act on the appeal or dispute; the assistant already gave the policy shown below.",
    ],
    ReasonCode.DRIVER_REQUESTED: ["The driver asked for a person; reply directly, without a scripted deflection."],
    ReasonCode.REPEAT_CONTACT: [
        "The driver raised this before in the conversation: resolve it in this contact rather than repeat the earlier answer.",
    ],
    ReasonCode.LOW_CONFIDENCE: [
        "Answer the driver's question directly; the assistant did not find a policy that clearly covers it.",
    ],
}


def defect_signature(request: HelpRequest, context: ContextCheck | None) -> dict[str, str | None] | None:
    """The structured signature of a defect contact: the last failure's error code and endpoint
    (event name), else the matched open incident's code or endpoint; the app version, platform and
    stage from the journey. ``None`` when neither shows what broke."""
    if context is None:
        return None
    code: str | None = None
    endpoint: str | None = None
    if context.defect is not None and context.defect.failures:
        failure = context.defect.failures[-1]
        code, endpoint = failure.code, failure.name or None
    elif context.incident is not None:
        kind, _, value = context.incident.group.partition(":")
        code, endpoint = (value, None) if kind == "code" else (None, value)
    else:
        return None
    journey = request.journey
    return {
        "error_code": code,
        "endpoint": endpoint,
        "app_version": journey.app_version if journey else None,
        "platform": journey.platform if journey else None,
        "stage": journey.stage.value if journey and journey.stage else None,
    }



def build_handoff(
    request: HelpRequest,
    message: str,
    reasons: list[Reason],
    *,
    told_driver: str,
    retrieval: RetrievalResult | None,
    cited: list[str] | None = None,
    context: ContextCheck | None = None,
) -> HandoffPacket:
    """A packet for the human who picks up this contact (``request`` and ``message`` redacted)."""
    codes = [r.code for r in reasons if r.code is not ReasonCode.PII_REDACTED]
    primary = codes[0] if codes else ReasonCode.LOW_CONFIDENCE
    priority = _PRIORITY.get(primary, Priority.NORMAL)
    journey = request.journey.model_dump(mode="json", exclude_none=True, exclude_defaults=True) if request.journey else None
    candidates = list(dict.fromkeys(p.doc_id for p in retrieval.passages)) if retrieval else []
    why = "; ".join(r.detail for r in reasons) or "handed over"
    stage = request.journey.stage.value if request.journey and request.journey.stage else "unknown stage"
    market = f", {request.journey.market}" if request.journey and request.journey.market else ""
    summary = f"Driver ({stage}{market}) wrote: {message[:300]!r}. Handed over because: {why}."
    steps = [step for code in dict.fromkeys(codes or [primary]) for step in _STEPS.get(code, [])]
    if candidates and primary is ReasonCode.LOW_CONFIDENCE:
        steps.append(f"Closest help-centre articles (not confirmed relevant): {', '.join(candidates[:3])}.")
    evidence = [line.render() for line in context.evidence] if context else []
    if not evidence and request.journey and request.journey.events:
        evidence = [
            f"{e.ts.isoformat() if e.ts else '-'} [journey] {e.type.value} {e.name or ''}{' ' + e.code if e.code else ''}: {e.detail or ''}".strip()
            for e in request.journey.events
        ]
    return HandoffPacket(
        category=_CATEGORY.get(primary, "general"),
        priority=priority,
        summary=summary,
        driver_message=message,
        journey=journey,
        assistant_told_driver=told_driver,
        cited_doc_ids=cited or [],
        suggested_next_steps=steps,
        conversation=[f"{t.role}: {t.text}" for t in request.history],
        evidence_timeline=evidence,
        defect_signature=defect_signature(request, context),
    )
