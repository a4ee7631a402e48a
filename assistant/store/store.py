"""The conversation store: writes a :class:`~assistant.records.ConversationRecord` as rows,
reads conversations back, takes drivers' feedback.

>>> store = ConversationStore.from_url("sqlite:///.assistant/assistant.db")
>>> store.upgrade()
>>> store.get("3f2a...")  # a StoredConversation with its turns, responses and handoffs
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from assistant.errors import BackendError, NotFoundError
from assistant.guardrails.pii import redact
from assistant.records import ConversationRecord
from assistant.response import ReasonCode, Route
from assistant.store import schema
from assistant.store.database import _safe, current_revision, head_revision, make_engine, upgrade


class StoredTurn(BaseModel):
    """A message of a stored conversation (redacted)."""

    model_config = ConfigDict(frozen=True)

    role: str
    text: str
    created_at: datetime
    record_id: str


class StoredResponse(BaseModel):
    """What the assistant did for one request of a stored conversation."""

    model_config = ConfigDict(frozen=True)

    record_id: str
    created_at: datetime
    message: str
    route: str
    reasons: list[dict[str, Any]]
    confidence: float
    answer: str
    citations: list[dict[str, Any]]
    retrieved: list[dict[str, Any]]
    journey: dict[str, Any] | None
    prompt_version: str | None
    prompt_hash: str | None
    model: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    timings_ms: dict[str, float]
    error: str | None
    handoff: dict[str, Any] | None = None


class StoredFeedback(BaseModel):
    """A driver's verdict on an answer."""

    model_config = ConfigDict(frozen=True)

    id: int
    conversation_id: str
    record_id: str | None
    helpful: bool
    comment: str | None
    created_at: datetime


class ConversationSummary(BaseModel):
    """One line of ``assistant conversations list``."""

    model_config = ConfigDict(frozen=True)

    id: str
    driver_id: str | None
    market: str | None
    stage: str | None
    created_at: datetime
    updated_at: datetime
    last_route: str
    responses: int


class StoredConversation(ConversationSummary):
    """A whole conversation: turns in order, every response with its handoff, feedback."""

    turns: list[StoredTurn] = Field(default_factory=list)
    history: list[StoredResponse] = Field(default_factory=list)
    feedback: list[StoredFeedback] = Field(default_factory=list)


class RecordRejected(BackendError):
    """The database refused a record (a constraint or a value), as opposed to failing to answer:
    retrying later will not help, so the record is kept aside rather than replayed for ever."""


def _utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def signature_key(fields: dict[str, Any]) -> str:
    """A short, stable key for a defect signature (its fields, sorted, hashed)."""
    canonical = json.dumps({k: v for k, v in sorted(fields.items()) if v}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class ConversationStore:
    """Conversations, turns, responses, handoffs, feedback and the review queue's seams, in
    SQLite or PostgreSQL. Thread-safe; one per process."""

    def __init__(self, engine: Engine, *, review_sample_rate: float = 0.0, seed: int | None = None) -> None:
        self.engine = engine
        self.review_sample_rate = review_sample_rate
        self._random = random.Random(seed)
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str, *, sqlite_timeout: float = 30.0, **kwargs: Any) -> ConversationStore:
        """A store on the database at ``url`` (tables are created by :meth:`upgrade`)."""
        return cls(make_engine(url, sqlite_timeout=sqlite_timeout), **kwargs)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def upgrade(self) -> str | None:
        """Run the migrations; returns the database's revision."""
        return upgrade(self.engine)

    def is_current(self) -> bool:
        """True when the database is reachable and at the newest migration."""
        return current_revision(self.engine) == head_revision()

    def ping(self) -> None:
        """Raise :class:`~assistant.errors.BackendError` unless the database answers."""
        with self._session() as session:
            session.execute(select(1))

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Session]:
        try:
            with self._sessions() as session:
                if write:
                    with session.begin():
                        yield session
                else:
                    yield session
        except (IntegrityError, DataError) as exc:
            raise RecordRejected(f"conversation store refused it: {type(exc).__name__}: {_safe(exc)}") from exc
        except SQLAlchemyError as exc:
            raise BackendError(f"conversation store: {type(exc).__name__}: {_safe(exc)}") from exc

    # -- writing ----------------------------------------------------------------------------

    def write(self, record: ConversationRecord) -> bool:
        """Store ``record`` in one transaction; ``False`` when it was stored before (idempotent).

        Raises :class:`~assistant.errors.BackendError` when the database fails.
        """
        with self._session(write=True) as session:
            if session.get(schema.Response, record.record_id) is not None:
                return False
            self._write(session, record)
        return True

    def _write(self, session: Session, record: ConversationRecord) -> None:
        request, response = record.request, record.response
        journey = request.journey
        created = record.created_at.astimezone(UTC)
        conversation = session.get(schema.Conversation, response.conversation_id)
        if conversation is None:
            conversation = schema.Conversation(
                id=response.conversation_id, driver_id=request.driver_id, created_at=created, responses=0,
            )
            session.add(conversation)
        conversation.updated_at = max(created, _utc(conversation.updated_at)) if conversation.updated_at else created
        conversation.last_route = response.route.value
        conversation.responses = (conversation.responses or 0) + 1
        if journey is not None:
            conversation.market = journey.market or conversation.market
            conversation.stage = journey.stage.value if journey.stage else conversation.stage
            conversation.app_version = journey.app_version or conversation.app_version
            conversation.platform = journey.platform or conversation.platform
        session.flush()
        signature, fields = None, {}
        judged = (response.handoff.defect_signature if response.handoff is not None else None) or record.defect_signature
        if judged:
            fields = {**judged, "market": journey.market if journey else None}
            signature = signature_key(fields)
        session.add(schema.Response(
            record_id=record.record_id,
            conversation_id=response.conversation_id,
            created_at=created,
            driver_id=request.driver_id,
            message=record.cleaned_message,
            route=response.route.value,
            reason_codes=",".join(r.code.value for r in response.reasons)[:255],
            reasons=[r.model_dump(mode="json") for r in response.reasons],
            confidence=response.confidence,
            answer=response.answer,
            draft=record.draft,
            citations=[c.model_dump(mode="json") for c in response.citations],
            retrieved=[r.model_dump(mode="json") for r in record.retrieved],
            context_chunk_ids=list(record.context_chunk_ids),
            journey=journey.model_dump(mode="json", exclude_none=True) if journey else None,
            market=journey.market if journey else None,
            stage=journey.stage.value if journey and journey.stage else None,
            app_version=journey.app_version if journey else None,
            platform=journey.platform if journey else None,
            prompt_version=response.prompt_version,
            prompt_hash=response.prompt_hash,
            model=record.model,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            cost_usd=response.usage.cost_usd,
            timings_ms=dict(record.timings_ms),
            total_ms=record.timings_ms.get("total_ms"),
            error=record.error,
            defect_signature=signature,
        ))
        session.flush()
        session.add_all([
            schema.Turn(conversation_id=response.conversation_id, record_id=record.record_id, role="driver",
                        text=record.cleaned_message, created_at=created),
            schema.Turn(conversation_id=response.conversation_id, record_id=record.record_id, role="assistant",
                        text=response.answer, created_at=created),
        ])
        if signature is not None:  # a defect contact, handed over or answered: incident detection counts it
            self._count_signature(session, signature, fields, created)
        if response.handoff is not None:
            packet = response.handoff
            session.add(schema.Handoff(
                record_id=record.record_id, conversation_id=response.conversation_id, created_at=created,
                category=packet.category, priority=packet.priority.value, summary=packet.summary,
                packet=packet.model_dump(mode="json"), defect_signature=signature,
            ))
        if reason := self._review_reason(record):
            priority = response.handoff.priority.value if response.handoff else "normal"
            session.add(schema.ReviewItem(
                record_id=record.record_id, conversation_id=response.conversation_id, reason=reason,
                priority=priority, status="open", created_at=created,
            ))

    def _review_reason(self, record: ConversationRecord) -> str | None:
        """Why a support lead should look at this record, if they should."""
        response = record.response
        if response.route is Route.DECLINE:
            return "decline"
        if response.route is Route.ESCALATE:
            low = any(r.code is ReasonCode.LOW_CONFIDENCE for r in response.reasons)
            return "low_confidence" if low else "escalation"
        if record.error:
            return "error"
        if self.review_sample_rate and self._random.random() < self.review_sample_rate:
            return "sample"
        return None

    def _count_signature(self, session: Session, key: str, fields: dict[str, Any], created: datetime) -> None:
        bucket = created.replace(minute=0, second=0, microsecond=0)
        values = {"signature": key, "bucket": bucket, "contacts": 1, "fields": fields}
        increment = {"contacts": schema.SignatureCount.contacts + 1}
        if self.backend == "postgresql":
            pg = pg_insert(schema.SignatureCount).values(**values)
            statement: Any = pg.on_conflict_do_update(index_elements=["signature", "bucket"], set_=increment)
        else:
            lite = sqlite_insert(schema.SignatureCount).values(**values)
            statement = lite.on_conflict_do_update(index_elements=["signature", "bucket"], set_=increment)
        session.execute(statement)

    def add_feedback(
        self, conversation_id: str, *, helpful: bool, comment: str | None = None, record_id: str | None = None
    ) -> StoredFeedback:
        """Record a driver's verdict on a conversation's latest answer (or on ``record_id``).

        The comment is redacted before it is stored. An unhelpful answer joins the review queue.
        Raises :class:`~assistant.errors.NotFoundError` for an unknown conversation or record.
        """
        now = datetime.now(UTC)
        with self._session(write=True) as session:
            if session.get(schema.Conversation, conversation_id) is None:
                raise NotFoundError(f"no conversation {conversation_id!r}")
            if record_id is None:
                record_id = session.scalar(
                    select(schema.Response.record_id)
                    .where(schema.Response.conversation_id == conversation_id)
                    .order_by(schema.Response.created_at.desc()).limit(1)
                )
            else:
                found = session.get(schema.Response, record_id)
                if found is None or found.conversation_id != conversation_id:
                    raise NotFoundError(f"no response {record_id!r} in conversation {conversation_id!r}")
            row = schema.Feedback(
                conversation_id=conversation_id, record_id=record_id, helpful=helpful,
                comment=redact(comment).text if comment else None, created_at=now,
            )
            session.add(row)
            if not helpful and record_id is not None:
                exists = session.scalar(select(schema.ReviewItem.id).where(
                    schema.ReviewItem.record_id == record_id, schema.ReviewItem.reason == "unhelpful"))
                if exists is None:
                    session.add(schema.ReviewItem(
                        record_id=record_id, conversation_id=conversation_id, reason="unhelpful",
                        priority="normal", status="open", created_at=now,
                    ))
            session.flush()
            return StoredFeedback(
                id=row.id, conversation_id=conversation_id, record_id=record_id, helpful=helpful,
                comment=row.comment, created_at=now,
            )

    def dismiss_card(self, driver_id: str, card_id: str, *, at: datetime | None = None) -> bool:
        """Record that ``driver_id`` dismissed help card ``card_id``; ``False`` when they had
        before (idempotent, also when two workers record it at once)."""
        with self._session() as session:
            if self._dismissed(session, driver_id, card_id):
                return False
        try:
            with self._session(write=True) as session:
                session.add(schema.DismissedCard(
                    driver_id=driver_id, card_id=card_id, dismissed_at=(at or datetime.now(UTC)).astimezone(UTC)
                ))
        except RecordRejected:  # the unique constraint: another worker recorded it first
            return False
        return True

    @staticmethod
    def _dismissed(session: Session, driver_id: str, card_id: str) -> bool:
        return session.scalar(select(schema.DismissedCard.id).where(
            schema.DismissedCard.driver_id == driver_id, schema.DismissedCard.card_id == card_id)) is not None

    def dismissed_cards(self, driver_id: str) -> frozenset[str]:
        """The ids of the help cards ``driver_id`` dismissed."""
        with self._session() as session:
            return frozenset(session.scalars(
                select(schema.DismissedCard.card_id).where(schema.DismissedCard.driver_id == driver_id)))

    # -- reading ----------------------------------------------------------------------------

    def get(self, conversation_id: str) -> StoredConversation | None:
        """The whole conversation, or ``None``."""
        with self._session() as session:
            row = session.get(schema.Conversation, conversation_id)
            if row is None:
                return None
            turns = session.scalars(
                select(schema.Turn).where(schema.Turn.conversation_id == conversation_id)
                .order_by(schema.Turn.created_at, schema.Turn.id)
            ).all()
            responses = session.scalars(
                select(schema.Response).where(schema.Response.conversation_id == conversation_id)
                .order_by(schema.Response.created_at)
            ).all()
            handoffs = {
                h.record_id: h.packet
                for h in session.scalars(select(schema.Handoff).where(schema.Handoff.conversation_id == conversation_id))
            }
            feedback = session.scalars(
                select(schema.Feedback).where(schema.Feedback.conversation_id == conversation_id).order_by(schema.Feedback.id)
            ).all()
            return StoredConversation(
                **_summary(row).model_dump(),
                turns=[StoredTurn(role=t.role, text=t.text, created_at=_utc(t.created_at), record_id=t.record_id) for t in turns],
                history=[_response(r, handoffs.get(r.record_id)) for r in responses],
                feedback=[
                    StoredFeedback(id=f.id, conversation_id=f.conversation_id, record_id=f.record_id, helpful=f.helpful,
                                   comment=f.comment, created_at=_utc(f.created_at))
                    for f in feedback
                ],
            )

    def list_conversations(
        self, *, limit: int = 50, route: str | None = None, driver_id: str | None = None, since: datetime | None = None
    ) -> list[ConversationSummary]:
        """The newest conversations first, optionally filtered by last route, driver or time."""
        statement = select(schema.Conversation).order_by(schema.Conversation.updated_at.desc()).limit(limit)
        if route:
            statement = statement.where(schema.Conversation.last_route == route)
        if driver_id:
            statement = statement.where(schema.Conversation.driver_id == driver_id)
        if since:
            statement = statement.where(schema.Conversation.updated_at >= since)
        with self._session() as session:
            return [_summary(row) for row in session.scalars(statement)]

    def counts(self) -> dict[str, int]:
        """Rows per table (conversations, responses, turns, handoffs, feedback, review items)."""
        tables = {
            "conversations": schema.Conversation, "responses": schema.Response, "turns": schema.Turn,
            "handoffs": schema.Handoff, "feedback": schema.Feedback, "review_items": schema.ReviewItem,
        }
        with self._session() as session:
            return {name: int(session.scalar(select(func.count()).select_from(model)) or 0) for name, model in tables.items()}

    def record_ids(self) -> list[str]:
        """Every stored record id, oldest first (for consistency checks)."""
        with self._session() as session:
            return list(session.scalars(select(schema.Response.record_id).order_by(schema.Response.created_at)))

    def signature_counts(self, *, since: datetime | None = None) -> list[tuple[str, datetime, int, dict[str, Any]]]:
        """``(signature, hour, contacts, fields)`` per defect signature and hour, oldest first."""
        since = since or datetime.now(UTC) - timedelta(days=7)
        statement = (
            select(schema.SignatureCount).where(schema.SignatureCount.bucket >= since)
            .order_by(schema.SignatureCount.bucket, schema.SignatureCount.signature)
        )
        with self._session() as session:
            return [(r.signature, _utc(r.bucket), r.contacts, r.fields) for r in session.scalars(statement)]

    def review_counts(self) -> dict[str, int]:
        """Open review items by reason (the queue's seam)."""
        statement = (
            select(schema.ReviewItem.reason, func.count()).where(schema.ReviewItem.status == "open")
            .group_by(schema.ReviewItem.reason)
        )
        with self._session() as session:
            return {reason: int(count) for reason, count in session.execute(statement).tuples()}


def _summary(row: schema.Conversation) -> ConversationSummary:
    return ConversationSummary(
        id=row.id, driver_id=row.driver_id, market=row.market, stage=row.stage, created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at), last_route=row.last_route, responses=row.responses,
    )


def _response(row: schema.Response, handoff: dict[str, Any] | None) -> StoredResponse:
    return StoredResponse(
        record_id=row.record_id, created_at=_utc(row.created_at), message=row.message, route=row.route,
        reasons=row.reasons, confidence=row.confidence, answer=row.answer, citations=row.citations,
        retrieved=row.retrieved, journey=row.journey, prompt_version=row.prompt_version, prompt_hash=row.prompt_hash,
        model=row.model, input_tokens=row.input_tokens, output_tokens=row.output_tokens, cost_usd=row.cost_usd,
        timings_ms=row.timings_ms, error=row.error, handoff=handoff,
    )
