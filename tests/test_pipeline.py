"""The whole pipeline on the shipped corpus: real embedder, real Chroma, real BM25."""

import asyncio
from pathlib import Path

import pytest

from assistant import (
    Assistant,
    HelpRequest,
    IndexNotReadyError,
    JourneyContext,
    MemorySink,
    ReasonCode,
    Route,
    Settings,
    Turn,
)
from assistant.errors import BackendError
from tests.conftest import CORPUS

pytestmark = pytest.mark.integration


def ask(assistant: Assistant, message: str, **journey: object):
    return assistant.answer(HelpRequest(message=message, journey=JourneyContext.model_validate(journey) if journey else None))


def cited(response) -> list[str]:
    return [c.doc_id for c in response.citations]


def test_answers_cite_retrieved_chunks_and_quote_them(shipped_assistant: Assistant):
    response = ask(shipped_assistant, "how much does fast pay cost")
    assert response.route is Route.ANSWER and response.reasons == []
    assert cited(response)[0] == "instant-cashout"
    assert "[1]" in response.answer
    retriever, _ = shipped_assistant._stages()
    store = retriever.store  # type: ignore[attr-defined]
    for citation in response.citations:
        chunk = store.get(citation.chunk_id)
        assert chunk is not None
    # every quoted line is the cited section's heading or comes from its text (markdown removed)
    sections = {(c.doc_id, c.section) for c in response.citations}
    quoted = " ".join(
        f"{chunk.metadata['section']}: " + chunk.page_content.replace("**", "")
        for chunk in store.chunks.values()
        if (chunk.metadata["doc_id"], chunk.metadata["section"]) in sections
    )
    for line in response.answer.replace("[1]", "").replace("[2]", "").splitlines():
        fragment = line.strip().removeprefix("- ")[:40]
        assert not fragment or fragment in quoted, fragment


@pytest.mark.xfail(strict=True, reason="known gap: for 'how much does fast pay cost' the section model prefers "
                   "'Who can use Fast Pay' over the fee section (see CHANGELOG, Known gaps)")
def test_fee_question_quotes_the_fee_section(shipped_assistant: Assistant):
    response = ask(shipped_assistant, "how much does fast pay cost")
    assert "$0.99" in response.answer
    assert response.citations[0].section.startswith("Fees")


def test_superseded_policy_is_never_cited(shipped_assistant: Assistant):
    for message in ("fast pay fee", "how many times a day can i cash out", "instant cashout rules", "fast pay 1.99 fee once per day"):
        response = ask(shipped_assistant, message)
        assert "instant-cashout-2024" not in cited(response)
    retriever, _ = shipped_assistant._stages()
    result = retriever.retrieve("fast pay costs $1.99 and works once per day after 30 days", k=20)
    assert "instant-cashout-2024" not in {p.doc_id for p in result.passages}
    assert "instant-cashout-2024" in result.excluded_doc_ids


def test_market_variant_pair_gets_different_correct_answers(shipped_assistant: Assistant):
    us = ask(shipped_assistant, "when do i get paid", market="us-tx", stage="post_delivery")
    on = ask(shipped_assistant, "when do i get paid", market="ca-on", stage="post_delivery")
    assert cited(us)[0] == "payout-schedule" and "payout-schedule-ca-on" not in cited(us)
    assert cited(on)[0] == "payout-schedule-ca-on" and "payout-schedule" not in cited(on)
    assert "market: ca-on" in on.journey_used
    assert us.answer != on.answer


@pytest.mark.xfail(strict=False, reason="known gap: since the corpus questions name their sections and the answer "
                   "model was refitted, the alcohol variant (no market) quotes the right section at confidence 0.25, "
                   "just under the threshold 0.26, and goes to a person (see CHANGELOG); with a market (make demo) it is answered")
def test_alcohol_order_pair_gets_different_correct_answers(shipped_assistant: Assistant):
    plain = ask(shipped_assistant, "the customer isnt answering what do i do", stage="at_dropoff", order={"type": "food"})
    alcohol = ask(shipped_assistant, "the customer isnt answering what do i do", stage="at_dropoff", order={"type": "alcohol", "flags": ["alcohol"]})
    assert plain.route is Route.ANSWER and alcohol.route is Route.ANSWER
    assert "order: alcohol" in alcohol.journey_used and "order: alcohol" not in plain.journey_used
    assert any(d.startswith("alcohol-delivery") or d == "customer-unavailable" for d in cited(alcohol))
    assert "alcohol" in alcohol.answer.lower()
    assert "alcohol" not in plain.answer.lower()


def test_logged_error_code_steers_the_answer(shipped_assistant: Assistant):
    response = ask(
        shipped_assistant, "it wont let me finish",
        stage="at_dropoff", events=[{"type": "error", "code": "LOC-203", "name": "complete_dropoff_failed"}],
    )
    assert "app error: LOC-203" in response.journey_used
    assert "150 m" in response.answer


def test_off_topic_question_is_declined_not_guessed(shipped_assistant: Assistant):
    response = ask(shipped_assistant, "what is the capital of france")
    assert response.route is Route.DECLINE
    assert response.reason_codes == [ReasonCode.OUT_OF_SCOPE]
    assert response.citations == [] and response.handoff is None
    assert "deliveries" in response.answer


def test_unsupported_driver_question_is_handed_to_a_human_not_guessed(shipped_assistant: Assistant):
    response = ask(shipped_assistant, "ok and how many times a day can i do it")  # a follow-up with no history
    assert response.route is Route.ESCALATE, response.answer
    assert response.reason_codes == [ReasonCode.LOW_CONFIDENCE]
    assert response.citations == [] and response.handoff is not None
    assert response.handoff.driver_message.startswith("ok and how many")


def test_empty_message_asks_to_rephrase(shipped_assistant: Assistant):
    response = ask(shipped_assistant, "  \u200b ")
    assert response.route is Route.ANSWER and "didn't catch a question" in response.answer


def test_oversized_and_non_english_input_do_not_crash(shipped_assistant: Assistant):
    long = ask(shipped_assistant, "my payout is missing " * 2000)
    assert long.route in (Route.ANSWER, Route.ESCALATE)
    spanish = ask(shipped_assistant, "¿cuándo me pagan? no recibí mi depósito")
    assert spanish.route in (Route.ANSWER, Route.ESCALATE) and spanish.answer


def test_async_twin_matches_sync(shipped_assistant: Assistant):
    sync = ask(shipped_assistant, "how do i change my bank account")
    result = asyncio.run(shipped_assistant.aanswer(HelpRequest(message="how do i change my bank account")))
    assert cited(result) == cited(sync) and result.answer == sync.answer


def test_sink_receives_one_complete_record_per_request(shipped_index: Path):
    sink = MemorySink()
    assistant = Assistant(Settings(data_dir=shipped_index), sink=sink)
    response = assistant.answer("where do i see my tips")
    (record,) = sink.records
    assert record.conversation_id == response.conversation_id and record.response == response
    assert record.retrieved and "total_ms" in record.timings_ms


def test_no_index_is_a_typed_error(tmp_path: Path):
    with pytest.raises(IndexNotReadyError, match="assistant ingest"):
        Assistant(Settings(data_dir=tmp_path / "empty")).answer("when do i get paid")
    # a thanks needs no index: it is answered without a search
    assert Assistant(Settings(data_dir=tmp_path / "empty")).answer("ok thanks").route is Route.ANSWER


def test_backend_failure_hands_the_driver_to_a_human(shipped_index: Path):
    class DeadRetriever:
        def retrieve(self, query, *, k, journey=None):
            raise BackendError("chroma server unreachable")

    assistant = Assistant(Settings(data_dir=shipped_index), retriever=DeadRetriever())  # type: ignore[arg-type]
    response = assistant.answer("when do i get paid")
    assert response.route is Route.ESCALATE and response.handoff is not None
    assert "unreachable" in response.reasons[0].detail


def test_corrupt_index_hands_over_instead_of_crashing(copy_of_shipped_index: Path):
    manifest = (copy_of_shipped_index / "manifest.json").read_text()
    store = next(copy_of_shipped_index.glob("store-g*"))
    (store / "chunks.jsonl").write_text("{not json")
    assert manifest  # the manifest itself is intact; the chunk store is not
    response = Assistant(Settings(data_dir=copy_of_shipped_index)).answer("when do i get paid")
    assert response.route is Route.ESCALATE and "rebuild" in response.reasons[0].detail


def test_an_english_request_embeds_all_its_texts_in_one_embedder_call(shipped_index: Path, monkeypatch: pytest.MonkeyPatch):
    """The classifier's text and the order-kind query go to the embedder together (one call, its
    two texts run side by side on the one-thread session, each model call a text), and the answer
    is the one the stages give when each embeds its own texts."""
    from assistant.retrieval.embeddings import LocalMiniLMEmbeddings

    request = HelpRequest(
        message="The customer looks underage and has no ID. Can I still hand over the order?",
        journey=JourneyContext.model_validate({"stage": "at_dropoff", "order": {"id": "o-1", "flags": ["alcohol"]}}),
    )
    cached = LocalMiniLMEmbeddings()
    calls: list[list[str]] = []
    model_calls: list[list[str]] = []
    embed, run = cached.embed_documents, cached._run
    monkeypatch.setattr(cached, "embed_documents", lambda texts: calls.append(texts) or embed(texts))
    monkeypatch.setattr(cached, "_run", lambda texts, **kw: model_calls.append(texts) or run(texts, **kw))
    one_call = Assistant(Settings(data_dir=shipped_index, corpus_dir=CORPUS), embeddings=cached).answer(request)
    assert calls == [[request.message, f"{request.message} (alcohol order)"]]
    assert sorted(model_calls) == sorted([[text] for text in calls[0]])

    uncached = LocalMiniLMEmbeddings(cache_size=0)  # no cache: every stage embeds its own texts
    separate: list[list[str]] = []
    run_uncached = uncached._run
    monkeypatch.setattr(uncached, "_run", lambda texts, **kw: separate.append(texts) or run_uncached(texts, **kw))
    each_own = Assistant(Settings(data_dir=shipped_index, corpus_dir=CORPUS), embeddings=uncached).answer(request)
    assert len(separate) > 1
    assert (one_call.route, one_call.reasons, one_call.answer, one_call.citations) == (
        each_own.route, each_own.reasons, each_own.answer, each_own.citations
    )


def test_a_follow_up_embeds_its_earlier_turns_in_the_same_model_call(shipped_index: Path, monkeypatch: pytest.MonkeyPatch):
    """The repeat-contact check compares the message with the driver's earlier turns: they go to
    the model with the message (redacted like it), not in a call of their own."""
    from assistant.retrieval.embeddings import LocalMiniLMEmbeddings

    embedder = LocalMiniLMEmbeddings()
    calls: list[list[str]] = []
    run = embedder._run
    monkeypatch.setattr(embedder, "_run", lambda texts, **kw: calls.append(texts) or run(texts, **kw))
    request = HelpRequest(
        message="still no payout, when does it land",
        history=[Turn(role="driver", text="my payout is missing, call me at 415-555-0199"),
                 Turn(role="assistant", text="Payouts land on Mondays.")],
    )
    Assistant(Settings(data_dir=shipped_index, corpus_dir=CORPUS), embeddings=embedder).answer(request)
    assert len(calls) == 1
    assert "my payout is missing, call me at [PHONE]" in calls[0]
    assert not any("415" in text for text in calls[0])
