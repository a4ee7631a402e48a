"""The support lead's analytics on real SQLite and (integration tier) a real PostgreSQL: route
rates per day, escalations by reason and category, feedback, self-service resolution, and
content gaps (the clustering on synthetic vectors; planted question groups with the real embedder)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from assistant import HelpRequest, HelpResponse
from assistant.records import ConversationRecord
from assistant.response import HandoffPacket, Priority, Reason, ReasonCode, Route
from assistant.store import (
    Analytics,
    ConversationStore,
    CountRow,
    FeedbackSummary,
    SelfService,
    schema,
)
from assistant.store.analytics import cluster_by_similarity

DAY1 = datetime(2026, 11, 2, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


def make_record(
    conversation_id: str,
    at: datetime,
    *,
    message: str = "when do i get paid",
    route: Route = Route.ANSWER,
    codes: tuple[ReasonCode, ...] = (),
    confidence: float = 0.8,
    category: str = "unanswered_question",
    driver_id: str | None = "drv-7",
) -> ConversationRecord:
    request = HelpRequest(message=message, driver_id=driver_id)
    handoff = None
    if route is Route.ESCALATE:
        handoff = HandoffPacket(category=category, priority=Priority.NORMAL, summary="needs help", driver_message=message)
    response = HelpResponse(
        route=route, reasons=[Reason(code=c, detail="test") for c in codes], answer="Payouts arrive on Wednesday.",
        confidence=confidence, conversation_id=conversation_id, handoff=handoff,
    )
    return ConversationRecord(
        conversation_id=conversation_id, created_at=at, request=request, cleaned_message=message, response=response,
    )


# -- routes ------------------------------------------------------------------------------------


@pytest.fixture
def routed(store: ConversationStore) -> Analytics:
    """Day 1: 3 answers, 1 escalation, 1 decline; day 2: 1 answer, 2 escalations."""
    plus5 = timezone(timedelta(hours=5))
    for record in [
        make_record("c1", DAY1 + timedelta(hours=9)),
        make_record("c2", DAY1 + timedelta(hours=10)),
        make_record("c3", datetime(2026, 11, 3, 1, 30, tzinfo=plus5)),  # 20:30 UTC on day 1
        make_record("c4", DAY1 + timedelta(hours=11), route=Route.ESCALATE, codes=(ReasonCode.LOW_CONFIDENCE,)),
        make_record("c5", DAY1 + timedelta(hours=12), route=Route.DECLINE, codes=(ReasonCode.OUT_OF_SCOPE,)),
        make_record("c6", DAY2 + timedelta(hours=9)),
        make_record("c7", DAY2 + timedelta(hours=10), route=Route.ESCALATE, category="app_defect",
                    codes=(ReasonCode.DEFECT_CONFIRMED, ReasonCode.REPEAT_CONTACT)),
        make_record("c8", DAY2 + timedelta(hours=11), route=Route.ESCALATE, codes=(ReasonCode.LOW_CONFIDENCE,)),
    ]:
        store.write(record)
    return Analytics(store)


def test_rates_are_one_point_per_utc_day(routed: Analytics) -> None:
    one, two = routed.rates()
    assert (one.day, one.total, one.answered, one.escalated, one.declined) == (DAY1.date(), 5, 3, 1, 1)
    assert (one.answer_rate, one.escalation_rate, one.decline_rate) == (0.6, 0.2, 0.2)
    assert (two.day, two.total, two.answered, two.escalated, two.declined) == (DAY2.date(), 3, 1, 2, 0)
    assert two.escalation_rate == pytest.approx(2 / 3)
    assert two.model_dump()["answer_rate"] == pytest.approx(1 / 3)  # the rates reach the JSON pages too


def test_escalations_are_counted_by_each_reason_code_and_by_category(routed: Analytics) -> None:
    assert routed.escalations_by_reason() == [
        CountRow(key="low_confidence", count=2), CountRow(key="defect_confirmed", count=1),
        CountRow(key="repeat_contact", count=1),
    ]
    assert routed.escalations_by_category() == [
        CountRow(key="unanswered_question", count=2), CountRow(key="app_defect", count=1)]


def test_since_is_inclusive_until_exclusive_and_a_naive_bound_is_utc(routed: Analytics) -> None:
    naive_day2 = datetime(2026, 11, 3)
    assert [p.day for p in routed.rates(since=naive_day2)] == [DAY2.date()]
    assert [(p.day, p.total) for p in routed.rates(until=DAY2)] == [(DAY1.date(), 5)]
    nine_utc = datetime(2026, 11, 3, 14, tzinfo=timezone(timedelta(hours=5)))  # day 2, 09:00 UTC
    assert [(p.day, p.total) for p in routed.rates(since=nine_utc)] == [(DAY2.date(), 3)]
    assert [(p.day, p.total) for p in routed.rates(since=nine_utc + timedelta(minutes=1))] == [(DAY2.date(), 2)]
    assert routed.rates(since=DAY2 + timedelta(hours=10), until=DAY2 + timedelta(hours=11))[0].escalated == 1
    assert [r.key for r in routed.escalations_by_reason(since=naive_day2)] == [
        "defect_confirmed", "low_confidence", "repeat_contact"]
    assert routed.escalations_by_reason(until=naive_day2) == [CountRow(key="low_confidence", count=1)]
    assert routed.escalations_by_category(since=DAY2) == [
        CountRow(key="app_defect", count=1), CountRow(key="unanswered_question", count=1)]
    assert routed.rates(since=DAY2 + timedelta(days=1)) == []


def test_feedback_counts_verdicts_given_in_the_window(routed: Analytics) -> None:
    store = routed.store
    before = datetime.now(UTC) - timedelta(seconds=1)
    store.add_feedback("c1", helpful=True)
    store.add_feedback("c2", helpful=True)
    store.add_feedback("c6", helpful=False)
    summary = routed.feedback(since=before)
    assert summary == FeedbackSummary(helpful=2, unhelpful=1, rate_helpful=2 / 3)
    assert routed.feedback(until=before) == FeedbackSummary(helpful=0, unhelpful=0, rate_helpful=None)


# -- self-service resolution -------------------------------------------------------------------


def test_self_service_resolution(store: ConversationStore) -> None:
    base = datetime(2026, 11, 10, 9, tzinfo=UTC)
    now = base + timedelta(days=10)

    def hours(n: float) -> timedelta:
        return timedelta(hours=n)

    for record in [
        make_record("s1", base, driver_id="d1"),  # resolved
        make_record("s2", base, driver_id="d2"),
        make_record("s2", base + hours(0.1), driver_id="d2", route=Route.ESCALATE, codes=(ReasonCode.DRIVER_REQUESTED,)),
        make_record("s3", base, driver_id="d3"),  # the driver is back 48 h later: not resolved
        make_record("s3b", base + hours(48), driver_id="d3"),  # resolved
        make_record("s4", base, driver_id="d4"),  # the driver is back 80 h later: still resolved
        make_record("s4b", base + hours(80), driver_id="d4"),  # resolved
        make_record("s5", now - hours(24), driver_id="d5"),  # pending
        make_record("s6", now - hours(1), driver_id=None),  # no driver: resolved at once
        make_record("s7", base, driver_id="d7", route=Route.DECLINE, codes=(ReasonCode.OUT_OF_SCOPE,)),  # declined
        make_record("s8", now - hours(1), driver_id="d8", route=Route.ESCALATE, codes=(ReasonCode.SAFETY,)),
        make_record("s9", now - hours(30), driver_id="d9"),  # back 20 h later: not resolved, though recent
        make_record("s9b", now - hours(10), driver_id="d9"),  # pending
        make_record("s10", base, driver_id="d10"),
        make_record("s10", base + hours(50), driver_id="d10"),  # the window runs from the last response
        make_record("s10b", base + hours(100), driver_id="d10"),  # 50 h after it: s10 not resolved
        make_record("s11", base, driver_id="d11"),  # another conversation begun while it went on: not resolved
        make_record("s11b", base + hours(1), driver_id="d11"),  # resolved (s11 began before it)
        make_record("s11", base + hours(2), driver_id="d11"),
        make_record("s12", now - hours(100), driver_id="d12"),
        make_record("s12", now - hours(10), driver_id="d12"),  # pending: the window runs from the last response
    ]:
        store.write(record)
    analytics = Analytics(store)
    # resolved: s1 s3b s4 s4b s6 s10b s11b; not: s2 s3 s7 s8 s9 s10 s11; pending: s5 s9b s12
    assert analytics.self_service(now=now) == SelfService(contacts=17, resolved=7, pending=3, rate=0.5, window_hours=72)
    # contacts begun in the first hour: s1 s2 s3 s4 s7 s10 s11; repeats after `until` still count
    assert analytics.self_service(since=base, until=base + hours(1), now=now) == SelfService(
        contacts=7, resolved=2, pending=0, rate=2 / 7, window_hours=72)
    # a 24 h window: s3 (back after 48 h), s10 (50 h) and s5 (24 h elapsed) are resolved too
    assert analytics.self_service(now=now, window_hours=24) == SelfService(
        contacts=17, resolved=10, pending=2, rate=10 / 15, window_hours=24)
    assert analytics.self_service(since=now) == SelfService(contacts=0, resolved=0, pending=0, rate=None, window_hours=72)


# -- content gaps ------------------------------------------------------------------------------


def test_clustering_takes_the_best_connected_centre_first_and_breaks_ties_by_index() -> None:
    e1, e2, e3 = np.eye(3)
    assert cluster_by_similarity(np.array([e1, e1, e2, 2 * e2]), 0.9) == [[0, 1], [2, 3]]  # tie: index 0 first
    hub = np.array([e1, (e1 + e2) / np.sqrt(2), e2])  # the middle one is 0.71 from both ends
    assert cluster_by_similarity(hub, 0.7) == [[1, 0, 2]]
    assert cluster_by_similarity(hub, 0.8) == [[0], [1], [2]]
    rng = np.random.default_rng(7)
    points = np.concatenate([
        e3 + 0.05 * rng.standard_normal((4, 3)), e1 + 0.05 * rng.standard_normal((6, 3)), [-e1 - e2 - e3],
    ])
    groups = cluster_by_similarity(points, 0.9)
    assert [sorted(g) for g in groups] == [list(range(4, 10)), list(range(4)), [10]]  # largest first
    assert cluster_by_similarity(points, 0.9) == groups  # deterministic
    assert cluster_by_similarity(np.empty((0, 3)), 0.5) == []


class KeyedEmbeddings(Embeddings):
    """Vectors by message, for the fast tier; records what it was asked to embed."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors
        self.calls: list[list[str]] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [self.vectors[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]


def test_content_gaps_take_unanswered_unsure_and_unhelpful_questions_only(store: ConversationStore) -> None:

    def at(n: int) -> datetime:
        return DAY1 + timedelta(minutes=n)

    pay, tax, askew = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.2, 1.0, 0.0]  # askew: in the tax group, off its centre
    questions = {
        "where is my pay": (pay, dict(route=Route.ESCALATE, codes=(ReasonCode.LOW_CONFIDENCE,))),
        "pay missing": (pay, dict(confidence=0.3)),  # an unsure answer
        "no pay this week": (pay, dict()),  # a sure answer, marked unhelpful below
        "pay not here": (pay, dict()),  # a sure answer: not a gap
        "did not get paid": (pay, dict(route=Route.ESCALATE, codes=(ReasonCode.SAFETY,), confidence=0.2)),  # not a gap
        "how do taxes work": (askew, dict(route=Route.ESCALATE, codes=(ReasonCode.LOW_CONFIDENCE,))),
        "tax forms": (tax, dict(confidence=0.2)),
        "tax forms again": (tax, dict(confidence=0.2)),
        "taxes next day": (tax, dict(confidence=0.2)),
    }
    for n, (message, (_, kwargs)) in enumerate(questions.items()):
        when = at(n) if message != "taxes next day" else DAY2 + timedelta(hours=1)
        store.write(make_record(f"g{n}", when, message=message, **kwargs))  # type: ignore[arg-type]
    store.add_feedback("g2", helpful=False)
    store.add_feedback("g3", helpful=True)
    embeddings = KeyedEmbeddings({m: v for m, (v, _) in questions.items()})
    analytics = Analytics(store)

    taxes, pay_gap = analytics.content_gaps(embeddings)
    assert embeddings.calls == [["where is my pay", "pay missing", "no pay this week", "how do taxes work",
                                 "tax forms", "tax forms again", "taxes next day"]]
    assert (taxes.size, taxes.reasons) == (4, {"low_confidence": 3, "unanswered": 1})
    assert taxes.examples == ["tax forms", "tax forms again", "taxes next day", "how do taxes work"]  # most central first
    assert (pay_gap.size, pay_gap.reasons) == (3, {"low_confidence": 1, "unanswered": 1, "unhelpful": 1})
    assert pay_gap.examples == ["where is my pay", "pay missing", "no pay this week"]  # equally central: oldest first
    assert len(pay_gap.record_ids) == 3 and pay_gap.nearest_doc_id is None and pay_gap.nearest_score is None

    assert [g.size for g in analytics.content_gaps(embeddings, until=DAY2)] == [3, 3]
    assert [g.size for g in analytics.content_gaps(embeddings, since=DAY2)] == []  # one question: below min_size
    assert [g.size for g in analytics.content_gaps(embeddings, since=DAY2, min_size=1)] == [1]
    assert [g.size for g in analytics.content_gaps(embeddings, limit=1)] == [4]
    assert analytics.content_gaps(embeddings, max_questions=2)[0].examples == ["tax forms again", "taxes next day"]
    assert analytics.content_gaps(embeddings, since=DAY2 + timedelta(days=1)) == []


def test_unhelpful_feedback_without_a_record_id_marks_the_conversations_latest_response(store: ConversationStore) -> None:
    store.write(make_record("c1", DAY1, message="first question"))
    store.write(make_record("c1", DAY1 + timedelta(minutes=1), message="second question"))
    with store._session(write=True) as session:
        session.add(schema.Feedback(conversation_id="c1", record_id=None, helpful=False, created_at=DAY2))
    embeddings = KeyedEmbeddings({"first question": [1.0, 0.0], "second question": [1.0, 0.0]})
    [gap] = Analytics(store).content_gaps(embeddings, min_size=1)
    assert (gap.examples, gap.reasons) == (["second question"], {"unhelpful": 1})


# Three planted topics, typed the way drivers type, and unrelated single questions. These are held
# out: the threshold was chosen on other paraphrases (see DEFAULT_THRESHOLD).
PLANTED = {
    "insurance": [
        "do u guys give health insurance", "is there health insurance for us delivery drivers",
        "how do i get health insurance thru the app", "do i qualify for medical insurance if i drive a lot",
        "health insurance benefits for drivers??", "does the company cover health insurance or is that on me",
        "any medical or dental coverage for drivers", "where do i enroll in the driver health plan",
        "do yall offer health benefits like insurance",
    ],
    "passenger": [
        "can my friend ride with me on deliveries", "is it allowed to bring a passenger during orders",
        "can i have my wife in the car while i deliver", "can someone come along with me on my deliveries",
        "my friend wants to ride along on my shift is that ok", "am i allowed passengers in the car when doing orders",
        "can i bring my son with me while delivering",
    ],
    "map_crash": [
        "app crashes every time i open the map", "map screen keeps crashing the app",
        "the app closes when i go to the map", "app crash on map screen cant see my route",
        "whenever i open the map the app shuts down",
    ],
}
NOISE = [
    "how do i change my bank account for payouts", "my ratings dropped for no reason",
    "where do i get a new hot bag", "what do i do if the customer isnt home", "can i deliver alcohol",
    "how do i file taxes as a driver", "the restaurant is taking forever to make the food",
    "how do i update my drivers license photo", "why did i get fewer orders today", "can i work in another city",
]


@pytest.mark.integration
def test_planted_groups_of_unanswered_questions_come_out_as_the_largest_gaps(store: ConversationStore) -> None:
    from assistant.config import Settings
    from assistant.retrieval.embeddings import make_embeddings

    # interleave the topics in time; each member fails the corpus one of three ways
    topic_of: dict[str, str] = {}
    reason_of: dict[str, str] = {}
    queue = [(topic, m) for topic, messages in PLANTED.items() for m in messages] + [("noise", m) for m in NOISE]
    queue.sort(key=lambda tm: (PLANTED.get(tm[0], NOISE).index(tm[1]), tm[0]))
    for n, (topic, message) in enumerate(queue):
        record = make_record(
            f"q{n}", DAY1 + timedelta(minutes=n), message=message,
            **({"confidence": 0.3} if n % 5 == 1 else {"confidence": 0.9} if n % 5 == 2 else
               {"route": Route.ESCALATE, "codes": (ReasonCode.LOW_CONFIDENCE,)}),  # type: ignore[arg-type]
        )
        store.write(record)
        if n % 5 == 2:
            store.add_feedback(f"q{n}", helpful=False)
        topic_of[record.record_id] = topic
        reason_of[record.record_id] = {1: "low_confidence", 2: "unhelpful"}.get(n % 5, "unanswered")
    # a question the corpus answered well is not a gap, however close to a planted topic
    answered = make_record("ok", DAY1, message="do drivers get health insurance", confidence=0.95)
    store.write(answered)

    asked: list[str] = []

    def nearest(text: str) -> tuple[str, str, float]:
        asked.append(text)
        return ("benefits", "Driver benefits", 0.61)

    gaps = Analytics(store).content_gaps(make_embeddings(Settings()), nearest=nearest, limit=5)
    top = gaps[:3]
    sizes = {topic_of[g.record_ids[0]]: g.size for g in top}
    assert set(sizes) == set(PLANTED), [g.examples for g in gaps]
    for gap in top:
        topics = {topic_of[r] for r in gap.record_ids}
        assert len(topics) == 1, gap.examples  # pure
        assert abs(gap.size - len(PLANTED[topics.pop()])) <= 1
        assert gap.reasons == dict(sorted(Counter(reason_of[r] for r in gap.record_ids).items()))
        assert len(gap.examples) == 5 and gap.examples[0] in asked
        assert (gap.nearest_doc_id, gap.nearest_title, gap.nearest_score) == ("benefits", "Driver benefits", 0.61)
    assert [g.size for g in gaps] == sorted((g.size for g in gaps), reverse=True)
    assert all(g.size < min(sizes.values()) for g in gaps[3:])
    assert answered.record_id not in {r for g in gaps for r in g.record_ids}
    assert asked == [g.examples[0] for g in gaps]
