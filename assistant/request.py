"""What a caller sends: the driver's message, their journey context and the conversation so far.

These are frozen pydantic models and the JSON contract of ``assistant ask --journey/--history``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from assistant.errors import InputError

#: Bounds on the context a request carries. Longer values are cut (lists keep their newest
#: entries), so an oversized journey or history costs a bounded time and still gets an answer.
MAX_HISTORY_TURNS = 20
MAX_TURN_CHARS = 4000
MAX_EVENTS = 50
MAX_EVENT_FIELD_CHARS = 200
MAX_EVENT_DETAIL_CHARS = 1000
MAX_ORDER_ITEMS = 100
MAX_ITEM_CHARS = 300
MAX_FLAGS = 20
MAX_SHORT_FIELD_CHARS = 64

#: Order flags the retriever and the composer understand.
KNOWN_ORDER_FLAGS = ("alcohol", "pharmacy", "batched", "shopping")


def scrub_surrogates(value: Any) -> Any:
    """``value`` with every lone UTF-16 surrogate (invalid in UTF-8, e.g. from a JSON ``"\\ud800"``)
    replaced by U+FFFD, in strings nested in lists and dicts; a surrogate pair becomes its character."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, list):
        return [scrub_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {scrub_surrogates(k): scrub_surrogates(v) for k, v in value.items()}
    return value


class _Text(BaseModel):
    """Base of the request models: text that cannot be encoded is repaired before validation,
    so no later stage (tokenizer, JSON, database) meets a lone surrogate."""

    @model_validator(mode="before")
    @classmethod
    def _scrub(cls, data: Any) -> Any:
        return scrub_surrogates(data)


class Stage(StrEnum):
    """Where the driver is in their journey."""

    ONBOARDING = "onboarding"
    OFFLINE = "offline"
    ONLINE_WAITING = "online_waiting"
    OFFER_RECEIVED = "offer_received"
    EN_ROUTE_TO_PICKUP = "en_route_to_pickup"
    AT_PICKUP = "at_pickup"
    SHOPPING = "shopping"
    EN_ROUTE_TO_CUSTOMER = "en_route_to_customer"
    AT_DROPOFF = "at_dropoff"
    RETURNING = "returning"
    POST_DELIVERY = "post_delivery"
    ACCOUNT = "account"


class EventType(StrEnum):
    """The kind of thing the app logged."""

    ERROR = "error"
    ACTION = "action"
    SCREEN = "screen"
    API = "api"
    SYSTEM = "system"


class JourneyEvent(_Text):
    """One thing the app logged shortly before the driver asked (an error, a screen, an API call)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ts: datetime | None = None
    type: EventType = EventType.SYSTEM
    name: str | None = None
    code: str | None = None
    detail: str | None = None

    @field_validator("name", "code")
    @classmethod
    def _short(cls, value: str | None) -> str | None:
        return value[:MAX_EVENT_FIELD_CHARS] if value else value

    @field_validator("detail")
    @classmethod
    def _detail(cls, value: str | None) -> str | None:
        return value[:MAX_EVENT_DETAIL_CHARS] if value else value

    @field_validator("ts")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        """A time without a zone is read as UTC, so times compare (``datetime.min`` included)."""
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Order(_Text):
    """The order the driver is working on, if any."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str | None = None
    type: str | None = None
    items: list[str | dict[str, Any]] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)

    @field_validator("flags")
    @classmethod
    def _lower_flags(cls, flags: list[str]) -> list[str]:
        return [f.strip().lower()[:MAX_SHORT_FIELD_CHARS] for f in flags[:MAX_FLAGS] if f and f.strip()]

    @field_validator("items")
    @classmethod
    def _bounded_items(cls, items: list[str | dict[str, Any]]) -> list[str | dict[str, Any]]:
        return [_cut(item) for item in items[:MAX_ORDER_ITEMS]]

    @field_validator("id", "type")
    @classmethod
    def _short(cls, value: str | None) -> str | None:
        return value[:MAX_SHORT_FIELD_CHARS] if value else value

    @property
    def all_flags(self) -> frozenset[str]:
        """Flags plus what the order type implies (an ``alcohol`` order is an alcohol order)."""
        flags = set(self.flags)
        if self.type and self.type.strip().lower() in KNOWN_ORDER_FLAGS:
            flags.add(self.type.strip().lower())
        return frozenset(flags)


class JourneyContext(_Text):
    """Where the driver is and what the app just saw. Every field is optional.

    Unknown top-level fields are rejected, so a typo such as ``stag`` fails loudly
    instead of being ignored.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: Stage | None = None
    market: str | None = None
    app_version: str | None = None
    platform: str | None = None
    account_status: str | None = None
    order: Order | None = None
    events: list[JourneyEvent] = Field(default_factory=list)
    stage_since: datetime | None = Field(
        None, description="When the driver entered ``stage`` (a time without a zone is UTC); help cards use it to see a long wait."
    )

    @field_validator("market")
    @classmethod
    def _normalise_market(cls, market: str | None) -> str | None:
        if market is None or not market.strip():
            return None
        return market.strip().lower().replace("_", "-")[:MAX_SHORT_FIELD_CHARS]

    @field_validator("app_version", "platform", "account_status")
    @classmethod
    def _short(cls, value: str | None) -> str | None:
        return value[:MAX_SHORT_FIELD_CHARS] if value else value

    @field_validator("stage_since")
    @classmethod
    def _aware_since(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @field_validator("events")
    @classmethod
    def _newest_events(cls, events: list[JourneyEvent]) -> list[JourneyEvent]:
        return events[-MAX_EVENTS:]

    @property
    def order_flags(self) -> frozenset[str]:
        """The order's flags, empty when there is no order."""
        return self.order.all_flags if self.order else frozenset()

    @classmethod
    def from_json(cls, text: str, *, source: str = "journey") -> JourneyContext:
        """Parse journey JSON, raising :class:`InputError` that names the problem."""
        return _parse_json(cls, text, source)


class Turn(_Text):
    """One earlier message in the conversation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["driver", "assistant"]
    text: str

    @field_validator("text")
    @classmethod
    def _bounded(cls, text: str) -> str:
        return text[:MAX_TURN_CHARS]


class History(_Text):
    """A conversation history, as read from ``--history`` JSON (a list of turns)."""

    model_config = ConfigDict(frozen=True)

    turns: list[Turn]

    @classmethod
    def from_json(cls, text: str, *, source: str = "history") -> list[Turn]:
        """Parse history JSON (a list of ``{role, text}``), raising :class:`InputError`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
        if not isinstance(data, list):
            raise InputError(f"{source}: expected a JSON list of {{role, text}} turns")
        try:
            return cls(turns=data).turns
        except ValidationError as exc:
            raise InputError(f"{source}: {_first_error(exc)}") from exc


class HelpRequest(_Text):
    """A driver's question with its context.

    >>> HelpRequest(message="when do i get paid", journey=JourneyContext(market="ca-on"))
    HelpRequest(message='when do i get paid', ...)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    message: str
    journey: JourneyContext | None = None
    history: list[Turn] = Field(default_factory=list)
    driver_id: str | None = Field(None, max_length=128)
    locale: str = "en-US"
    conversation_id: str | None = Field(
        None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Continue this conversation (the ``conversation_id`` of an earlier response); a new one when unset.",
    )

    @field_validator("history")
    @classmethod
    def _recent_history(cls, history: list[Turn]) -> list[Turn]:
        return history[-MAX_HISTORY_TURNS:]

    @field_validator("locale")
    @classmethod
    def _short_locale(cls, locale: str) -> str:
        return locale[:MAX_SHORT_FIELD_CHARS]


def _cut(item: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(item, str):
        return item[:MAX_ITEM_CHARS]
    return {str(k)[:MAX_SHORT_FIELD_CHARS]: v[:MAX_ITEM_CHARS] if isinstance(v, str) else v
            for k, v in list(item.items())[:20]}


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "value"
    if err["type"] == "extra_forbidden":
        return f"unknown field {where!r}"
    return f"{where}: {err['msg']}"


def _parse_json(model: type[JourneyContext], text: str, source: str) -> JourneyContext:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{source}: {_first_error(exc)}") from exc
