"""The conversation store's tables (SQLAlchemy 2 declarative; migrations in ``migrations/``).

Only redacted text reaches these tables: the pipeline redacts every request before it makes a
record, and :class:`~assistant.store.sink.SqlSink` writes the record as it is.

Seams for later features: ``review_items`` (the queue of flagged conversations a support lead
works) and ``signature_counts`` (contacts per defect signature per hour, for incident detection).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import text


class Base(DeclarativeBase):
    """Declarative base of every table of the store."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class Conversation(Base):
    """One driver conversation: one or more requests that share a ``conversation_id``."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    driver_id: Mapped[str | None] = mapped_column(String(128), index=True)
    market: Mapped[str | None] = mapped_column(String(32))
    stage: Mapped[str | None] = mapped_column(String(32))
    app_version: Mapped[str | None] = mapped_column(String(64))
    platform: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    last_route: Mapped[str] = mapped_column(String(16))
    responses: Mapped[int] = mapped_column(Integer, default=0)


class Turn(Base):
    """A message in a conversation, redacted: the driver's, then the assistant's, per request."""

    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("record_id", "role", name="uq_turns_record_role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("responses.record_id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class Response(Base):
    """What the assistant did for one request: route, reasons, citations, timings, cost."""

    __tablename__ = "responses"
    __table_args__ = (Index("ix_responses_route_created", "route", "created_at"),)

    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    driver_id: Mapped[str | None] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    route: Mapped[str] = mapped_column(String(16))
    reason_codes: Mapped[str] = mapped_column(String(255), default="")
    reasons: Mapped[list[Any]]
    confidence: Mapped[float] = mapped_column(Float)
    answer: Mapped[str] = mapped_column(Text)
    draft: Mapped[str] = mapped_column(Text, default="")
    citations: Mapped[list[Any]]
    retrieved: Mapped[list[Any]]
    context_chunk_ids: Mapped[list[Any]]
    journey: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    market: Mapped[str | None] = mapped_column(String(32))
    stage: Mapped[str | None] = mapped_column(String(32))
    app_version: Mapped[str | None] = mapped_column(String(64))
    platform: Mapped[str | None] = mapped_column(String(32))
    prompt_version: Mapped[str | None] = mapped_column(String(64))
    prompt_hash: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    timings_ms: Mapped[dict[str, Any]]
    total_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    defect_signature: Mapped[str | None] = mapped_column(String(64), index=True)


class Handoff(Base):
    """The packet a support agent received, for an escalated request."""

    __tablename__ = "handoffs"

    record_id: Mapped[str] = mapped_column(ForeignKey("responses.record_id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    category: Mapped[str] = mapped_column(String(64), index=True)
    priority: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    packet: Mapped[dict[str, Any]]
    defect_signature: Mapped[str | None] = mapped_column(String(64), index=True)


class Feedback(Base):
    """A driver's verdict on an answer (helpful or not, and an optional comment, redacted)."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    record_id: Mapped[str | None] = mapped_column(ForeignKey("responses.record_id", ondelete="CASCADE"))
    helpful: Mapped[bool] = mapped_column(Boolean)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class ReviewItem(Base):
    """A conversation flagged for a support lead: escalated, declined, unhelpful or sampled."""

    __tablename__ = "review_items"
    __table_args__ = (UniqueConstraint("record_id", "reason", name="uq_review_record_reason"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("responses.record_id", ondelete="CASCADE"))
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    assignee: Mapped[str | None] = mapped_column(String(128), index=True)
    label: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    closed_at: Mapped[datetime | None]


class ReviewAction(Base):
    """Who did what to a review item, and when (the audit log of the review queue)."""

    __tablename__ = "review_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime]
    detail: Mapped[dict[str, Any]]


class SignatureCount(Base):
    """Contacts per defect signature per hour (the input of incident detection)."""

    __tablename__ = "signature_counts"

    signature: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    contacts: Mapped[int] = mapped_column(Integer, default=0)
    fields: Mapped[dict[str, Any]]


class ConsoleUser(Base):
    """A person who may sign in to the console: a ``reviewer`` or a ``lead`` (argon2 hash only)."""

    __tablename__ = "console_users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ConsoleSession(Base):
    """A signed-in browser: the SHA-256 of its cookie token (never the token) and its CSRF token."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(ForeignKey("console_users.name", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class LoginAttempt(Base):
    """A failed sign-in, by account and by client address (the console's login rate limit)."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(160), index=True)
    at: Mapped[datetime] = mapped_column(index=True)


class ConsoleAudit(Base):
    """Who did what in the console outside the review queue (sign-ins, user management)."""

    __tablename__ = "console_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(index=True)


class Incident(Base):
    """A platform defect detected from the pattern of contacts: one group of related defect
    signatures (same error code across app versions and markets, or same endpoint) whose contact
    rate rose above its own baseline. At most one open incident per group."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("uq_incidents_open_group", "group_key", unique=True,
              sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_key: Mapped[str] = mapped_column(String(160), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    fields: Mapped[dict[str, Any]]
    signatures: Mapped[list[Any]]
    first_contact_at: Mapped[datetime]
    opened_at: Mapped[datetime] = mapped_column(index=True)
    closed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    contacts: Mapped[int] = mapped_column(Integer, default=0)
    drivers: Mapped[int] = mapped_column(Integer, default=0)
    examples: Mapped[list[Any]]
    score: Mapped[float] = mapped_column(Float, default=0.0)
    baseline_per_hour: Mapped[float] = mapped_column(Float, default=0.0)
    note: Mapped[str | None] = mapped_column(Text)
    workaround: Mapped[str | None] = mapped_column(Text)


class DismissedCard(Base):
    """A help card a driver dismissed: not shown to that driver again."""

    __tablename__ = "dismissed_cards"
    __table_args__ = (UniqueConstraint("driver_id", "card_id", name="uq_dismissed_cards_driver_card"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    driver_id: Mapped[str] = mapped_column(String(128), index=True)
    card_id: Mapped[str] = mapped_column(String(160))
    dismissed_at: Mapped[datetime]
