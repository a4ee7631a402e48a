"""Friction rules: what in a journey makes a help card worth showing, from a YAML file.

The default ships as ``assistant/suggestions/friction.yaml``; ``ASSISTANT_FRICTION_RULES`` points
at a platform's own copy. A broken file (bad YAML, an unknown key, an invalid regular expression,
a template naming a field that does not exist) fails at load with the file and the reason, never
when a journey arrives.
"""

from __future__ import annotations

import re
import string
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from assistant.config import read_yaml_model
from assistant.request import Stage

DEFAULT_RULES = Path(__file__).with_name("friction.yaml")

#: The fields a rule's ``why``, ``query`` and ``title`` templates may name.
TEMPLATE_FIELDS = frozenset({"count", "minutes", "action", "code", "subject", "stage", "wait", "events"})


def _compile(value: object) -> re.Pattern[str]:
    if isinstance(value, re.Pattern):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a regular expression")
    try:
        return re.compile(value, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value[:60]!r}: {exc}") from exc


#: One regular expression (case-insensitive), compiled at load.
Regex = Annotated[re.Pattern[str], BeforeValidator(_compile)]


def _template(value: str) -> str:
    names = {name for _, name, _, _ in string.Formatter().parse(value) if name}
    unknown = names - TEMPLATE_FIELDS
    if unknown:
        raise ValueError(f"unknown template field(s) {sorted(unknown)}; use {sorted(TEMPLATE_FIELDS)}")
    return value


Template = Annotated[str, BeforeValidator(lambda v: _template(v) if isinstance(v, str) else v)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class RuleKind(StrEnum):
    """How a rule reads the journey."""

    #: the same action failing ``min_count`` times within ``within_minutes``
    REPEATED_FAILURE = "repeated_failure"
    #: a failure the app logged: one card per error code, or per failing action without one
    ERROR_CODE = "error_code"
    #: events (and, with ``account_status``, the account status) matching every ``match`` pattern,
    #: at least ``min_count`` of them within ``within_minutes``
    EVENTS = "events"
    #: longer at the current stage than the stage's ``minutes``
    WAIT = "wait"


class StageWait(_Model):
    """How long is too long at one stage, when the stage began, and what to search for."""

    minutes: float = Field(gt=0)
    start: Regex | None = Field(
        None, description="An event marking the start of the stage (the oldest matching one), when the journey has no stage_since."
    )
    end: Regex | None = Field(None, description="An event that ends the wait (order picked up, customer replied) when it comes after the start.")
    since: Literal["stage", "event"] = Field(
        "stage",
        description="What the wait counts from: the stage's start (stage_since, else the first start event), or "
        "only a start event (a wait on something in particular, such as a customer's reply while shopping).",
    )
    query: Template
    why: Template = "You have been at this stage for {wait}"


class Rule(_Model):
    """One kind of friction and the help it calls for."""

    id: str = Field(pattern=r"^[a-z0-9_]{2,40}$")
    kind: RuleKind
    priority: int = Field(0, description="Cards of higher-priority rules come first.")
    title: Template | None = Field(None, description="The card's title; the quoted section's heading when unset.")
    why: Template = ""
    query: Template = Field("", description="What the card's content is retrieved for, as a driver would ask it.")
    match: list[Regex] = Field(default_factory=list, description="events: patterns an event's text must all match.")
    exclude: Regex | None = Field(None, description="events: an event whose text matches this is not friction.")
    codes: Regex | None = Field(None, description="events: an event whose error code matches counts too.")
    failure: bool = Field(False, description="events: only failures count.")
    account_status: bool = Field(False, description="events: the account status is read as a current event too.")
    persist_minutes: float | None = Field(
        None, gt=0, description="events: fire only once the first matching event is this old and the state still holds "
        "(the newest matching event is recent, or the account status matches)."
    )
    horizon_days: float | None = Field(
        None, gt=0, description="events: an event naming only dates further ahead than this is not friction yet."
    )
    min_count: int = Field(1, ge=1)
    within_minutes: float = Field(60.0, gt=0)
    stages: dict[Stage, StageWait] = Field(default_factory=dict, description="wait: the stages watched.")

    @model_validator(mode="after")
    def _complete(self) -> Rule:
        if self.kind is RuleKind.WAIT and not self.stages:
            raise ValueError(f"rule {self.id}: a wait rule needs stages")
        if self.kind is RuleKind.EVENTS and not (self.match or self.codes):
            raise ValueError(f"rule {self.id}: an events rule needs match patterns or codes")
        if self.kind is not RuleKind.WAIT and not self.query:
            raise ValueError(f"rule {self.id}: a query is needed")
        return self


class Retries(_Model):
    """When repeating the same action counts as it failing."""

    count: int = Field(3, ge=2)
    within_minutes: float = Field(10, gt=0)
    exclude: Regex = Field(description="Actions drivers repeat anyway (scanning items, calling the customer).")


class IncidentCard(_Model):
    """The card of an open incident that matches the journey's failures."""

    title: Template
    why: Template
    message: str = Field(min_length=1, description="The body when the lead attached no note.")


class FrictionRules(_Model):
    """Every friction rule, and what makes an app event a failure."""

    max_cards: int = Field(3, ge=1, le=10)
    incident: IncidentCard
    card_words: int = Field(60, ge=10, le=400, description="Most words a card's body quotes.")
    lookback_minutes: float = Field(90, gt=0, description="Events older than this (before the journey's time) are not friction.")
    recording_after_hours: float = Field(
        6, gt=0, description="A journey whose newest event is older than this is a recording: its time is that event's."
    )
    failure: Regex = Field(description="Words that make an app event a failure (an error event or an error code does too).")
    success: Regex = Field(description="Words that make an event a success even if failure words appear.")
    negation: Regex = Field(description="A word among the three before a failure word that negates it ('not invalid').")
    content: Regex = Field(description="Event names of what the driver reads (help articles, settings): never friction.")
    error_code: Regex = Field(description="What an error code looks like (a code such as 'UPL-500').")
    ignore_words: Regex = Field(description="Words left out of an action's name (HTTP verbs, API versions).")
    retries: Retries
    stage_words: dict[Stage, str] = Field(default_factory=dict, description="How a query names each stage.")
    rules: list[Rule]

    @field_validator("rules")
    @classmethod
    def _unique(cls, rules: list[Rule]) -> list[Rule]:
        ids = [r.id for r in rules]
        if len(ids) != len(set(ids)):
            raise ValueError("rule ids must be unique")
        return rules


def load_rules(path: Path | None = None) -> FrictionRules:
    """Load and validate a friction rules file (the shipped default when ``path`` is ``None``)."""
    return _load(Path(path) if path else DEFAULT_RULES)


@lru_cache(maxsize=8)
def _load(path: Path) -> FrictionRules:
    return read_yaml_model(path, FrictionRules, "friction rules")
