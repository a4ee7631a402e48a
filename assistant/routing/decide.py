"""Answer, escalate or decline: guardrail findings, retrieval and the draft become a route.

Precedence, first match wins (``pii_redacted`` is added to any route when PII was removed):

1. a prompt-like set-up (long, structured) -> decline ``prompt_injection``, whatever it says;
2. a present danger -> escalate ``safety`` (urgent), with the safety steps;
3. an injection attempt -> decline ``prompt_injection``; harmful help -> decline ``out_of_scope``;
4. the driver asks for a person -> escalate ``driver_requested`` at once;
   (then an injection or harmful request only the classifier saw -> declined as in 3, unless a
   policy clearly covers the question: answer confidence at least ``covered_confidence``);
5. a known incident -> escalate ``known_incident`` (announced by the app or declared in the
   policy); an open incident detected from contacts -> answer ``known_incident`` at once, with
   the workaround, without a new case (the incident is the case);
6. a confirmed or suspected defect -> escalate ``defect_confirmed`` / ``defect_suspected``
   (with ``repeat_contact`` when raised before);
7. an account action -> escalate ``account_action`` after the policy answer;
8. the same unresolved issue again -> escalate ``repeat_contact``;
9. a request the classifier reads as unrelated to driving, that no policy clearly covers ->
   decline ``out_of_scope``;
10. weak support -> escalate ``low_confidence``; otherwise answer.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from assistant.generation.base import Draft
from assistant.guardrails.checks import Finding
from assistant.guardrails.engine import ContextCheck, InputCheck
from assistant.response import Reason, ReasonCode, Route
from assistant.retrieval.base import RetrievalResult

#: Cosine similarities of all-MiniLM-L6-v2 between these bounds map onto 0..1.
SIMILARITY_FLOOR = 0.20
SIMILARITY_CEILING = 0.60
#: Added to confidence when a cited passage names an error code the app just logged.
ERROR_MATCH_BONUS = 0.25


class Handling(StrEnum):
    """What the driver is told (the pipeline picks the text for each)."""

    ANSWER = "answer"
    DECLINE_INJECTION = "decline_injection"
    DECLINE_AUTHORITY = "decline_authority"
    DECLINE_OUT_OF_SCOPE = "decline_out_of_scope"
    SAFETY = "safety"
    SAFETY_SELF_HARM = "safety_self_harm"
    DRIVER_REQUESTED = "driver_requested"
    KNOWN_INCIDENT = "known_incident"
    KNOWN_INCIDENT_ANSWER = "known_incident_answer"
    DEFECT = "defect"
    ACCOUNT_ACTION = "account_action"
    REPEAT = "repeat"
    LOW_CONFIDENCE = "low_confidence"


class Decision(BaseModel):
    """The route with its reasons and the confidence behind it."""

    model_config = ConfigDict(frozen=True)

    route: Route
    reasons: list[Reason] = Field(default_factory=list)
    confidence: float
    handling: Handling = Handling.ANSWER


def _scale(value: float) -> float:
    return min(1.0, max(0.0, (value - SIMILARITY_FLOOR) / (SIMILARITY_CEILING - SIMILARITY_FLOOR)))


def confidence(retrieval: RetrievalResult, draft: Draft) -> float:
    """0..1: the composer's calibrated confidence when it has one (the offline composer's learned
    model); otherwise how closely the best passage and best quoted sentence match, and whether
    searches agree."""
    if not retrieval.passages or not draft.text:
        return 0.0
    if draft.confidence is not None:
        return draft.confidence
    value = 0.5 * _scale(retrieval.top_similarity) + 0.3 * _scale(draft.support) + 0.2 * retrieval.agreement
    if any(fact.startswith("app error:") for p in draft.cited for fact in p.boosts):
        value += ERROR_MATCH_BONUS  # the cited passage explains the error the app just logged
    return round(min(1.0, value), 4)


def decide(retrieval: RetrievalResult, draft: Draft, *, min_confidence: float) -> Decision:
    """Answer when support is strong enough; otherwise escalate with ``low_confidence``."""
    score = confidence(retrieval, draft)
    if draft.can_answer is False:  # the model's own judgement, or a reply that failed validation twice
        return Decision(
            route=Route.ESCALATE,
            reasons=[Reason(code=ReasonCode.LOW_CONFIDENCE, detail=draft.note or "the model could not answer from the excerpts")],
            confidence=min(score, 0.2),
        )
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


def _reason(code: ReasonCode, detail: str) -> Reason:
    return Reason(code=code, detail=detail)


def pii_reasons(inputs: InputCheck | None) -> list[Reason]:
    """``pii_redacted`` with what was removed, when the input check removed anything."""
    if inputs is None or not inputs.redaction.spans:
        return []
    return [_reason(ReasonCode.PII_REDACTED, f"removed before processing: {inputs.redaction.summary()}")]


def decide_on_input(inputs: InputCheck) -> Decision | None:
    """The decision the message alone settles (rules 1-4), or ``None`` to go on to retrieval.

    Safety is settled here too but still retrieves, to give the policy's steps; so are requests
    for a person (retrieval then feeds the handoff packet).
    """
    # classifier-only injection or harm waits for retrieval (see decide_with_context)
    injection = next((f for f in inputs.findings if f.code is ReasonCode.PROMPT_INJECTION and not f.by_classifier), None)
    safety = inputs.first(ReasonCode.SAFETY)
    person = inputs.first(ReasonCode.DRIVER_REQUESTED)
    if safety and safety.by_classifier and person:
        safety = None  # an explicit request for a person outweighs the classifier's guess of danger
    harmful = next((f for f in inputs.findings if f.code is ReasonCode.OUT_OF_SCOPE and not f.by_classifier), None)
    pii = pii_reasons(inputs)

    def settled(finding: Finding, route: Route, handling: Handling) -> Decision:
        return Decision(route=route, reasons=[_reason(finding.code, finding.detail), *pii], confidence=1.0,
                        handling=handling)

    if injection and injection.structural:
        return settled(injection, Route.DECLINE, Handling.DECLINE_INJECTION)
    if safety:
        return settled(safety, Route.ESCALATE, Handling.SAFETY_SELF_HARM if safety.self_harm else Handling.SAFETY)
    if injection:
        return settled(injection, Route.DECLINE, Handling.DECLINE_INJECTION)
    if harmful:
        return settled(harmful, Route.DECLINE, Handling.DECLINE_OUT_OF_SCOPE)
    if person:
        return settled(person, Route.ESCALATE, Handling.DRIVER_REQUESTED)
    return None


def decide_with_context(
    retrieval: RetrievalResult,
    draft: Draft,
    *,
    min_confidence: float,
    inputs: InputCheck | None = None,
    context: ContextCheck | None = None,
    offtopic_probability: float = 1.01,
    covered_confidence: float = 0.0,
    offtopic_sure_probability: float = 1.01,
    injection_sure_probability: float = 1.01,
    offtopic_confidence: float = 0.0,
) -> Decision:
    """Rules 5-10 for a message the input checks let through.

    A message only the classifier flagged (injection, harmful or off-topic) is declined unless
    the answer's confidence reaches ``covered_confidence``: a policy that clearly covers it. A
    message read as off-topic at ``offtopic_probability`` is declined unless it is answered at
    ``offtopic_confidence`` or more ("best pizza spot in austin" is not answered from the produce
    rules of shopping orders).
    """
    base = decide(retrieval, draft, min_confidence=min_confidence)
    pii = pii_reasons(inputs)
    findings = context.findings if context else []
    by_code = {f.code: f for f in findings}
    repeat = by_code.get(ReasonCode.REPEAT_CONTACT)
    repeat_reason = [_reason(repeat.code, repeat.detail)] if repeat else []

    def escalate(code: ReasonCode, handling: Handling, *extra: Reason) -> Decision:
        finding = by_code[code]
        return Decision(route=Route.ESCALATE, reasons=[_reason(code, finding.detail), *extra, *pii],
                        confidence=base.confidence, handling=handling)

    # an injection or harmful request only the classifier saw: declined unless a policy covers it
    answered = base.route is Route.ANSWER
    covered = answered and base.confidence >= covered_confidence
    # ... and one the classifier is sure of is declined even then (an authority claim asking for an
    # action names the policy it wants changed, so the policy "covers" it)
    # ... and so is a decisive finding, such as a claim of authority (a staff role, an approval,
    # an override) asking the assistant to act: the policy of the action it wants done is no
    # reason to answer it
    injection_sure = inputs is not None and inputs.probabilities.get("injection", 0.0) >= injection_sure_probability
    sure = inputs is not None and (injection_sure or any(f.decisive for f in inputs.findings))
    if inputs is not None and (not covered or sure):
        for finding in inputs.findings:
            # against a covering policy, only a finding that is sure of itself decides
            if covered and not finding.decisive and not (injection_sure and finding.code is ReasonCode.PROMPT_INJECTION):
                continue
            if finding.by_classifier and finding.code in (ReasonCode.PROMPT_INJECTION, ReasonCode.OUT_OF_SCOPE):
                handling = (Handling.DECLINE_OUT_OF_SCOPE if finding.code is ReasonCode.OUT_OF_SCOPE
                            else Handling.DECLINE_AUTHORITY if finding.decisive else Handling.DECLINE_INJECTION)
                return Decision(route=Route.DECLINE, reasons=[_reason(finding.code, finding.detail), *pii],
                                confidence=base.confidence, handling=handling)
    if ReasonCode.KNOWN_INCIDENT in by_code:
        if context is not None and context.incident is not None:  # detected from contacts: the incident is the case
            finding = by_code[ReasonCode.KNOWN_INCIDENT]
            return Decision(route=Route.ANSWER, reasons=[_reason(finding.code, finding.detail), *pii],
                            confidence=base.confidence, handling=Handling.KNOWN_INCIDENT_ANSWER)
        return escalate(ReasonCode.KNOWN_INCIDENT, Handling.KNOWN_INCIDENT)
    if ReasonCode.DEFECT_CONFIRMED in by_code:
        return escalate(ReasonCode.DEFECT_CONFIRMED, Handling.DEFECT, *repeat_reason)
    if ReasonCode.ACCOUNT_ACTION in by_code:
        return escalate(ReasonCode.ACCOUNT_ACTION, Handling.ACCOUNT_ACTION, *repeat_reason)
    suspected = by_code.get(ReasonCode.DEFECT_SUSPECTED)
    explains = context is not None and context.explanation_sought and answered
    if suspected and not explains:  # a "what does this mean / how do i" question the policy answers is answered
        return escalate(ReasonCode.DEFECT_SUSPECTED, Handling.DEFECT, *repeat_reason)
    if repeat:
        return escalate(ReasonCode.REPEAT_CONTACT, Handling.REPEAT)
    offtopic = inputs.probabilities.get("offtopic", 0.0) if inputs else 0.0
    weakly_answered = not answered or base.confidence < offtopic_confidence
    if (offtopic >= offtopic_probability and weakly_answered) or (offtopic >= offtopic_sure_probability and not covered):
        return Decision(
            route=Route.DECLINE,
            reasons=[_reason(ReasonCode.OUT_OF_SCOPE,
                             f"unrelated to delivery work (classifier {offtopic:.2f}) and no policy clearly covers it"), *pii],
            confidence=base.confidence, handling=Handling.DECLINE_OUT_OF_SCOPE,
        )
    if base.route is Route.ESCALATE:
        return base.model_copy(update={"reasons": [*base.reasons, *pii], "handling": Handling.LOW_CONFIDENCE})
    return base.model_copy(update={"reasons": [*base.reasons, *pii]})
