import json

from assistant import Citation, HelpResponse, Reason, ReasonCode, Route

CONTRACT_KEYS = {"route", "reasons", "answer", "citations", "confidence", "journey_used", "handoff",
                 "conversation_id", "prompt_version", "usage"}


def test_contract_has_exactly_the_documented_keys_and_string_enums():
    response = HelpResponse(
        route=Route.ESCALATE,
        reasons=[Reason(code=ReasonCode.LOW_CONFIDENCE, detail="weak")],
        answer="handing over",
        citations=[Citation(doc_id="d", title="T", section="S", chunk_id="d:1", score=0.5)],
        confidence=0.2,
        conversation_id="abc",
    )
    data = json.loads(json.dumps(response.to_contract()))
    assert set(data) == CONTRACT_KEYS
    assert data["route"] == "escalate" and data["reasons"] == [{"code": "low_confidence", "detail": "weak"}]
    assert set(data["citations"][0]) == {"doc_id", "title", "section", "chunk_id", "score"}


def test_reason_vocabulary_is_the_contract():
    assert {r.value for r in ReasonCode} == {
        "low_confidence", "defect_suspected", "defect_confirmed", "safety", "account_action",
        "driver_requested", "repeat_contact", "prompt_injection", "out_of_scope", "known_incident",
        "pii_redacted",
    }
