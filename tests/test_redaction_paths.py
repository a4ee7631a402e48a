"""PII is redacted on the paths that end before the guardrails redact the message: an empty
message, and an embedder that fails during the screen. Fast tier: no index is needed."""

from __future__ import annotations

from pathlib import Path

from langchain_core.embeddings import Embeddings

from assistant import Assistant, HelpRequest, JourneyContext, MemorySink, Route, Settings
from assistant.errors import BackendError

PHONE, EMAIL, CARD = "415-555-0132", "jordan.lee77@gmail.com", "4111 1111 1111 1111"


class DeadEmbeddings(Embeddings):
    """An embedder whose backend is down."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise BackendError("embedder unavailable")

    def embed_query(self, text: str) -> list[float]:
        raise BackendError("embedder unavailable")


def request(message: str) -> HelpRequest:
    journey = JourneyContext(
        stage="at_dropoff",
        order={"type": "delivery", "items": [f"gift card {CARD}", {"name": "note", "text": f"call {PHONE}"}]},
        events=[{"type": "error", "name": f"upload for {EMAIL}", "code": "UPL-500", "detail": f"user {EMAIL}"}],
    )
    return HelpRequest(message=message, journey=journey, history=[{"role": "driver", "text": f"i'm {EMAIL}"}])


def test_a_failing_embedder_hands_over_with_nothing_raw_in_the_packet_or_record(tmp_path: Path) -> None:
    sink = MemorySink()
    assistant = Assistant(Settings(data_dir=tmp_path), embeddings=DeadEmbeddings(), sink=sink)
    response = assistant.answer(request(f"app crashed, call me at {PHONE}"))
    assert response.route is Route.ESCALATE and response.handoff is not None
    written = response.model_dump_json() + sink.records[0].model_dump_json()
    for value in (PHONE, EMAIL, CARD):
        assert value not in written, value
    assert "[PHONE]" in response.handoff.driver_message
    assert "UPL-500" in written  # codes are not PII and stay readable


def test_an_empty_message_records_a_redacted_history_and_journey(tmp_path: Path) -> None:
    sink = MemorySink()
    assistant = Assistant(Settings(data_dir=tmp_path), embeddings=DeadEmbeddings(), sink=sink)
    response = assistant.answer(request("   "))
    assert response.route is Route.ANSWER  # asked to rephrase
    written = sink.records[0].model_dump_json()
    for value in (PHONE, EMAIL, CARD):
        assert value not in written, value


def test_a_failing_embedder_s_handoff_opens_in_the_driver_s_language_with_no_pii(tmp_path: Path) -> None:
    from assistant.guardrails.policy import load_policy

    # the English classifier reads every message (multilingual off), so the dead embedder fails the screen
    assistant = Assistant(Settings(data_dir=tmp_path, multilingual=False), embeddings=DeadEmbeddings())
    response = assistant.answer(request(f"la app se cerró y no puedo subir la foto, llámame al {PHONE} por favor"))
    assert response.route is Route.ESCALATE and response.handoff is not None
    assert response.answer.startswith(load_policy().languages["es"].handoff + "\n\n")
    assert response.handoff.assistant_told_driver == response.answer and PHONE not in response.answer
