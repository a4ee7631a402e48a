"""One complete, serialisable record per answered request, handed to a :class:`ConversationSink`.

The default sink does nothing; :class:`assistant.store.SqlSink` keeps them in a database (an
:class:`~assistant.Assistant` uses it when ``ASSISTANT_DATABASE_URL`` is set; the service always).
Every text in a record is redacted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field

from assistant.request import HelpRequest
from assistant.response import HelpResponse


class RetrievedRef(BaseModel):
    """A retrieved passage, by reference."""

    model_config = ConfigDict(frozen=True)

    chunk_id: str
    doc_id: str
    score: float
    dense_similarity: float | None = None
    bm25_score: float | None = None


class ConversationRecord(BaseModel):
    """Everything about one request: what came in, what was found, what went out, how long it took."""

    model_config = ConfigDict(frozen=True)

    record_id: str = Field(default_factory=lambda: uuid4().hex, description="Unique per request; stores key on it.")
    conversation_id: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    request: HelpRequest
    cleaned_message: str
    retrieved: list[RetrievedRef] = Field(default_factory=list)
    context_chunk_ids: list[str] = Field(
        default_factory=list, description="Every chunk the answer was drafted from (retrieved and expanded)."
    )
    draft: str = Field(
        "", description="The answer drafted before routing (quotes of the corpus); the driver may have been handed over instead."
    )
    response: HelpResponse
    timings_ms: dict[str, float] = Field(default_factory=dict)
    model: str | None = Field(None, description="What wrote the answer: 'extractive' or the chat model's name.")
    error: str | None = None
    defect_signature: dict[str, str | None] | None = Field(
        None, description="error_code, endpoint, app_version, platform, stage of a contact the guardrails judged a "
        "defect or matched to a known incident (answered or handed over); incident detection counts these.",
    )


class ConversationSink(Protocol):
    """Receives one record per request."""

    def record(self, record: ConversationRecord) -> None:
        """Store or forward ``record``; must not raise for ordinary failures."""
        ...


class NullSink:
    """The default sink: keeps nothing."""

    def record(self, record: ConversationRecord) -> None:
        """Discard ``record``."""


class MemorySink:
    """Keeps records in a list (handy in tests and notebooks)."""

    def __init__(self) -> None:
        self.records: list[ConversationRecord] = []

    def record(self, record: ConversationRecord) -> None:
        """Append ``record``."""
        self.records.append(record)
