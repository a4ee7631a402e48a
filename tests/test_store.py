"""The conversation store on real SQLite and (integration tier) a real PostgreSQL on loopback:
rows written from records, idempotent writes, feedback, the review queue's and incident
detection's seams, and the spool that keeps records while the database is down."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from assistant import ConfigurationError, HelpRequest, HelpResponse, JourneyContext, NotFoundError
from assistant.records import ConversationRecord, RetrievedRef
from assistant.request import JourneyEvent, Turn
from assistant.response import Citation, HandoffPacket, Priority, Reason, ReasonCode, Route
from assistant.store import (
    ConversationStore,
    ReviewFilter,
    ReviewLabel,
    ReviewQueue,
    Spool,
    SqlSink,
)


def make_record(
    conversation_id: str = "conv-1",
    *,
    message: str = "when do i get paid",
    route: Route = Route.ANSWER,
    created_at: datetime | None = None,
    defect_code: str | None = None,
    market: str = "us-ca",
) -> ConversationRecord:
    journey = JourneyContext(
        stage="post_delivery", market=market, app_version="5.2.0", platform="android",
        events=[JourneyEvent(type="error", code=defect_code, name="photo_upload")] if defect_code else [],
    )
    request = HelpRequest(message=message, journey=journey, driver_id="drv-7", history=[Turn(role="driver", text="hi")])
    handoff = None
    reasons: list[Reason] = []
    if route is Route.ESCALATE:
        code = ReasonCode.DEFECT_CONFIRMED if defect_code else ReasonCode.LOW_CONFIDENCE
        reasons = [Reason(code=code, detail="test")]
        handoff = HandoffPacket(
            category="app_defect" if defect_code else "unanswered_question",
            priority=Priority.HIGH if defect_code else Priority.NORMAL,
            summary="driver needs help", driver_message=message,
            defect_signature={"error_code": defect_code, "endpoint": None, "app_version": "5.2.0",
                              "platform": "android", "stage": "post_delivery"} if defect_code else None,
        )
    response = HelpResponse(
        route=route, reasons=reasons, answer="Payouts arrive on Wednesday.", confidence=0.8,
        conversation_id=conversation_id, handoff=handoff,
        citations=[Citation(doc_id="payouts", title="Payouts", section="When", chunk_id="payouts#0", score=0.9)],
    )
    kwargs = {"created_at": created_at} if created_at else {}
    return ConversationRecord(
        conversation_id=conversation_id, request=request, cleaned_message=message, response=response,
        retrieved=[RetrievedRef(chunk_id="payouts#0", doc_id="payouts", score=0.9)], timings_ms={"total_ms": 12.5},
        model="extractive", **kwargs,
    )


def test_a_record_becomes_a_conversation_with_turns_response_and_handoff(store: ConversationStore) -> None:
    record = make_record(route=Route.ESCALATE)
    assert store.write(record) is True
    assert store.write(record) is False  # idempotent: the same record is never stored twice
    stored = store.get("conv-1")
    assert stored is not None
    assert (stored.driver_id, stored.market, stored.stage, stored.last_route, stored.responses) == (
        "drv-7", "us-ca", "post_delivery", "escalate", 1)
    assert [(t.role, t.text) for t in stored.turns] == [
        ("driver", "when do i get paid"), ("assistant", "Payouts arrive on Wednesday.")]
    [response] = stored.history
    assert response.record_id == record.record_id
    assert response.reasons == [{"code": "low_confidence", "detail": "test"}]
    assert response.citations[0]["doc_id"] == "payouts"
    assert response.retrieved[0]["chunk_id"] == "payouts#0"
    assert response.timings_ms == {"total_ms": 12.5}
    assert response.model == "extractive"
    assert response.journey is not None and response.journey["app_version"] == "5.2.0"
    assert response.handoff is not None and response.handoff["summary"] == "driver needs help"
    assert store.counts() == {"conversations": 1, "responses": 1, "turns": 2, "handoffs": 1, "feedback": 0, "review_items": 1}
    assert store.review_counts() == {"low_confidence": 1}
    assert store.get("nope") is None


def test_requests_that_share_a_conversation_id_are_one_conversation_in_order(store: ConversationStore) -> None:
    start = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    for minute in range(3):
        store.write(make_record(message=f"question {minute}", created_at=start + timedelta(minutes=minute)))
    store.write(make_record("conv-2", created_at=start))
    stored = store.get("conv-1")
    assert stored is not None and stored.responses == 3
    assert [t.text for t in stored.turns if t.role == "driver"] == ["question 0", "question 1", "question 2"]
    assert stored.updated_at == start + timedelta(minutes=2)
    assert [c.id for c in store.list_conversations()] == ["conv-1", "conv-2"]
    assert [c.id for c in store.list_conversations(driver_id="drv-7", limit=1)] == ["conv-1"]


def test_feedback_is_redacted_and_an_unhelpful_answer_joins_the_review_queue(store: ConversationStore) -> None:
    record = make_record()
    store.write(record)
    feedback = store.add_feedback("conv-1", helpful=False, comment="wrong day, call me at 415-555-0134")
    assert feedback.record_id == record.record_id
    assert feedback.comment is not None and "555-0134" not in feedback.comment and "[PHONE]" in feedback.comment
    store.add_feedback("conv-1", helpful=False)  # a second verdict does not queue it twice
    assert store.review_counts() == {"unhelpful": 1}
    with pytest.raises(NotFoundError):
        store.add_feedback("no-such-conversation", helpful=True)
    with pytest.raises(NotFoundError):
        store.add_feedback("conv-1", helpful=True, record_id="no-such-record")
    stored = store.get("conv-1")
    assert stored is not None and [f.helpful for f in stored.feedback] == [False, False]


def test_defect_contacts_are_counted_per_signature_and_hour(store: ConversationStore) -> None:
    hour = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    for n in range(3):
        store.write(make_record(f"c{n}", route=Route.ESCALATE, defect_code="UPL-500", created_at=hour + timedelta(minutes=n)))
    store.write(make_record("c9", route=Route.ESCALATE, defect_code="UPL-500", created_at=hour + timedelta(hours=1)))
    store.write(make_record("c8", route=Route.ESCALATE, defect_code="UPL-500", market="ca-on", created_at=hour))
    counts = store.signature_counts(since=hour - timedelta(hours=1))
    assert sorted((b.hour, n, f["market"]) for _, b, n, f in counts) == [(9, 1, "ca-on"), (9, 3, "us-ca"), (10, 1, "us-ca")]
    assert all(f["error_code"] == "UPL-500" for *_, f in counts)


def test_a_sampled_share_of_plain_answers_is_queued_for_quality_review(tmp_path: Path) -> None:
    store = ConversationStore.from_url(f"sqlite:///{tmp_path / 's.db'}", review_sample_rate=0.5, seed=3)
    store.upgrade()
    for n in range(200):
        store.write(make_record(f"c{n}"))
    sampled = store.review_counts().get("sample", 0)
    assert 70 <= sampled <= 130


# -- the sink: retries, spool, replay ---------------------------------------------------------------


def _locked(path: Path) -> tuple[sqlite3.Connection, threading.Event]:
    """Hold SQLite's write lock from another connection (a real "database is locked" outage)."""
    holder = sqlite3.connect(path, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    return holder, threading.Event()


def test_while_the_database_is_locked_records_wait_in_the_spool_and_replay_in_order(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = ConversationStore.from_url(f"sqlite:///{path}", sqlite_timeout=0.05)
    store.upgrade()
    sink = SqlSink(store, spool_dir=tmp_path / "spool", retries=1, backoff=0.01, retry_interval=60)
    sink.record(make_record("before"))
    holder, _ = _locked(path)
    records = [make_record(f"during-{n}") for n in range(5)]
    for record in records:
        sink.record(record)  # never raises: the driver's answer does not depend on the database
    assert sink.spool.pending() == 5
    assert sink.flush() == 0  # still locked: nothing lost, nothing written
    holder.rollback()
    holder.close()
    sink.record(make_record("after"))  # queues behind the spooled ones
    assert sink.spool.pending() == 6
    assert sink.flush() == 6
    assert sink.spool.pending() == 0
    assert [c.id for c in sorted(store.list_conversations(limit=100), key=lambda c: c.created_at)] == [
        "before", *(r.conversation_id for r in records), "after"]
    assert sink.flush() == 0
    assert store.counts()["responses"] == 7
    sink.close()


def test_the_replay_thread_empties_the_spool_when_the_database_returns(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = ConversationStore.from_url(f"sqlite:///{path}", sqlite_timeout=0.05)
    store.upgrade()
    sink = SqlSink(store, spool_dir=tmp_path / "spool", retries=0, retry_interval=0.1)
    holder, _ = _locked(path)
    sink.record(make_record("a"))
    sink.record(make_record("b"))
    holder.rollback()
    holder.close()
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while sink.spool.has_pending() and datetime.now(UTC) < deadline:
        threading.Event().wait(0.05)
    assert not sink.spool.has_pending()
    assert {c.id for c in store.list_conversations()} == {"a", "b"}
    sink.close()


def test_a_spool_left_by_a_crashed_process_is_replayed_once_and_a_torn_line_is_kept_aside(tmp_path: Path) -> None:
    store = ConversationStore.from_url(f"sqlite:///{tmp_path / 'store.db'}")
    store.upgrade()
    spool = Spool(tmp_path / "spool")
    first, second = make_record("one"), make_record("two")
    spool.append(first)
    store.write(first)  # written just before the crash, never removed from the spool
    spool.append(second)
    with open(spool.path, "a", encoding="utf-8") as torn:
        torn.write(make_record("three").model_dump_json()[:80])  # cut off mid-write
    sink = SqlSink(store, spool_dir=tmp_path / "spool", retry_interval=60)
    assert sink.flush() == 2
    assert store.counts()["responses"] == 2  # "one" not stored twice
    assert spool.pending() == 0
    assert spool.rejected.read_text(encoding="utf-8").startswith('{"record_id"')
    sink.close()


@pytest.mark.integration
def test_a_record_the_database_refuses_is_kept_aside_and_does_not_block_the_rest(postgres_url: str, tmp_path: Path) -> None:
    store = ConversationStore.from_url(postgres_url)
    store.upgrade()
    sink = SqlSink(store, spool_dir=tmp_path / "spool", retries=1, backoff=0.01, retry_interval=60)
    poison = make_record("x" * 100)  # longer than the column: PostgreSQL refuses the value
    sink.record(poison)
    sink.record(make_record("fine"))
    assert [c.id for c in store.list_conversations()] == ["fine"]
    assert poison.record_id in sink.spool.rejected.read_text(encoding="utf-8")
    # the same record waiting in a spool is set aside on replay, and the ones behind it written
    spool = sink.spool
    spool.append(make_record("y" * 100))
    spool.append(make_record("after"))
    assert sink.flush() == 1
    assert spool.pending() == 0
    assert {c.id for c in store.list_conversations()} == {"fine", "after"}
    sink.close()


def test_the_migrations_build_exactly_the_tables_the_code_declares(store: ConversationStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from assistant.store.schema import Base

    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_the_review_queue_filters_sorts_claims_labels_and_resolves_with_an_audit_log(store: ConversationStore) -> None:
    start = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    store.write(make_record("low", route=Route.ESCALATE, message="is there a 401k", created_at=start))
    store.write(make_record("defect", route=Route.ESCALATE, defect_code="UPL-500", message="photo wont upload",
                            created_at=start + timedelta(minutes=5)))
    store.write(make_record("ontario", route=Route.ESCALATE, market="ca-on", message="beer after 11pm",
                            created_at=start + timedelta(minutes=1)))
    store.write(make_record("plain", created_at=start))  # a plain answer is not queued (no sampling here)
    queue = ReviewQueue(store)
    items = queue.items()
    assert [i.conversation_id for i in items] == ["defect", "low", "ontario"]  # high priority first, then oldest
    assert queue.counts() == {"escalation": 1, "low_confidence": 2}
    assert [i.conversation_id for i in queue.items(ReviewFilter(market="ca-on"))] == ["ontario"]
    assert [i.conversation_id for i in queue.items(ReviewFilter(category="app_defect"))] == ["defect"]
    assert [i.conversation_id for i in queue.items(ReviewFilter(text="UPLOAD photo"))] == ["defect"]
    assert [i.conversation_id for i in queue.items(ReviewFilter(since=start + timedelta(minutes=2)))] == ["defect"]
    assert [i.conversation_id for i in queue.items(ReviewFilter(reason="low_confidence", priority="normal"))] == ["low", "ontario"]

    item = items[0]
    assert queue.claim(item.id, "sam").status == "claimed"
    assert [i.id for i in queue.items(ReviewFilter(assignee="sam"))] == [item.id]
    label = ReviewLabel(route_right=True, answer_right=False, defect_confirmed=True, correct_doc_id="app-error-codes",
                        correct_text="Tap Retry, then Complete without photo; call 415-555-0134 if stuck", tags=["upload"])
    labelled = queue.label(item.id, label, "sam")
    assert labelled.label is not None and labelled.label.defect_confirmed is True
    assert labelled.label.correct_text is not None and "555-0134" not in labelled.label.correct_text
    assert queue.resolve(item.id, "sam", note="filed as a defect").status == "resolved"
    with pytest.raises(ConfigurationError):
        queue.claim(item.id, "alex")  # closed: reopen first
    assert queue.reopen(item.id, "lee").status == "claimed"
    assert queue.dismiss(item.id, "lee").status == "dismissed"
    assert [(a.action, a.actor) for a in queue.history(item.id)] == [
        ("claim", "sam"), ("label", "sam"), ("resolved", "sam"), ("reopen", "lee"), ("dismissed", "lee")]
    assert item.id not in [i.id for i in queue.items()]  # closed items leave the active queue
    assert [i.id for i in queue.items(ReviewFilter(status="dismissed"))] == [item.id]
    assert queue.assign(items[1].id, "alex", actor="lead").assignee == "alex"
    with pytest.raises(NotFoundError):
        queue.get(99_999)
