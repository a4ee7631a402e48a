"""The guardrail policy: thresholds, patterns and messages from a YAML file.

The default ships as ``assistant/guardrails/policy.yaml``; ``ASSISTANT_GUARDRAIL_POLICY`` points
at a replacement. A broken file (bad YAML, a missing key, an invalid regular expression) fails at
load with the file and the reason, never at request time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from assistant.config import read_yaml_model

DEFAULT_POLICY = Path(__file__).with_name("policy.yaml")
_FLAGS = re.IGNORECASE | re.MULTILINE


def _compile(value: str) -> re.Pattern[str]:
    try:
        return re.compile(value, _FLAGS)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value[:60]!r}: {exc}") from exc


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class Patterns(_Model):
    """A list of regular expressions; ``search`` returns the first that matches."""

    items: tuple[re.Pattern[str], ...] = ()

    def search(self, text: str) -> re.Match[str] | None:
        """The first match of any pattern in ``text``."""
        for pattern in self.items:
            if match := pattern.search(text):
                return match
        return None

    def matches(self, text: str) -> Iterator[re.Match[str]]:
        """Every match of every pattern in ``text``, pattern by pattern, each left to right."""
        for pattern in self.items:
            yield from pattern.finditer(text)

    def count(self, text: str) -> int:
        """How many of the patterns match ``text``."""
        return sum(1 for pattern in self.items if pattern.search(text))


def _patterns(value: object) -> Patterns:
    if isinstance(value, Patterns):
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of regular expressions")
    return Patterns(items=tuple(_compile(v) for v in value))


#: A YAML list of regular expressions, compiled at load.
PatternList = Annotated[Patterns, BeforeValidator(_patterns)]
#: One regular expression, compiled at load.
Regex = Annotated[re.Pattern[str], BeforeValidator(lambda v: _compile(v) if isinstance(v, str) else v)]


class ScreenPolicy(_Model):
    """The message screen: classifier thresholds and structural signals."""

    injection_probability: float = Field(ge=0, le=1)
    harmful_probability: float = Field(ge=0, le=1)
    offtopic_probability: float = Field(ge=0, le=1)
    injection_sure_probability: float = Field(
        0.95, ge=0, le=1,
        description="Classifier injection probability at which a message is declined even when a policy covers it.",
    )
    harmful_sure_probability: float = Field(
        1.01, ge=0, le=1.01,
        description="Classifier harmful probability at which a message is declined even when a policy covers its "
        "words (1.01: off).",
    )
    offtopic_sure_probability: float = Field(
        0.8, ge=0, le=1, description="Off-topic probability that declines unless a policy clearly covers the question."
    )
    offtopic_answer_confidence: float = Field(
        0.0, ge=0, le=1,
        description="A message read as off-topic (offtopic_probability) is declined unless the answer's confidence "
        "reaches this (0: unless it is answered at all).",
    )
    authority_probability: float = Field(
        1.01, ge=0, le=1.01,
        description="The authority classifier's probability that a message claims authority (a staff role, a staff "
        "member's approval, an override code) to make the assistant act: declined even when a policy covers the "
        "action it asks for (1.01: off).",
    )
    other_language_authority_probability: float = Field(
        1.01, ge=0, le=1.01,
        description="The same for a message in another language, read by the multilingual classifier (1.01: off).",
    )
    misuse_probability: float = Field(
        1.01, ge=0, le=1.01,
        description="The misuse classifier's probability that an English message asks for help to cheat, deceive "
        "or harm someone in the delivery work (fake proof of delivery, location spoofing, a customer's data): "
        "declined even when a policy covers the topic (1.01: off).",
    )
    long_injection_probability: float = Field(
        0.5, ge=0, le=1, description="Injection probability that declines a message past long_message_chars."
    )
    covered_confidence: float = Field(
        0.75, ge=0, le=1, description="Retrieval confidence at which a flagged message is answered anyway."
    )
    safety_probability: float = Field(ge=0, le=1)
    other_language_safety_probability: float = Field(
        0.5, ge=0, le=1,
        description="The same for a message in another language, which the multilingual classifier reads alone "
        "(the safety patterns are English).",
    )
    other_language_harmful_probability: float = Field(
        0.7, ge=0, le=1, description="The harmful-request probability needed in another language.",
    )
    long_message_chars: int = Field(gt=0)
    long_message_structure: int = Field(ge=1)
    structure_signals: PatternList
    injection_patterns: PatternList
    harmful_patterns: PatternList
    offtopic_patterns: PatternList = Field(
        default_factory=Patterns, description="Requests for work unrelated to delivering (essays, code, ...)."
    )
    decline_injection: str
    decline_authority: str = Field(
        "I can't make changes to accounts, pay or checks, or share anyone's details, whoever has approved it. "
        "If something on your own account needs fixing, ask for a person and I'll pass it to support.",
        description="Told to a message declined as a claim of authority to make the assistant act.",
    )
    decline_out_of_scope: str


class SafetyPolicy(_Model):
    """Safety: patterns, idioms that only look violent, and the message with immediate steps."""

    patterns: PatternList
    not_safety: PatternList
    hypothetical: Regex
    present_emergency: Regex
    classifier_weight_with_lookalike: float = Field(ge=0, le=1)
    pattern_probability: float = Field(
        0.0, ge=0, le=1,
        description="English messages the present-danger classifier did not read: a pattern match counts when the "
        "screen's safety probability is at least this, or the message has a sign of a present emergency (0: every "
        "match counts).",
    )
    danger_pattern_probability: float = Field(
        0.0, ge=0, le=1,
        description="English messages: a pattern match counts when the present-danger classifier "
        "(examples-safety.yaml) reads at least this, whatever words of a present emergency ('now', 'emergency') the "
        "message has. Below it the match reads as a question about the policy or an incident that is over ('had a "
        "fender bender yesterday, nobody hurt, do I tell Courio').",
    )
    danger_gate_probability: float | None = Field(
        None, ge=0, le=1,
        description="English messages: where the danger gate (trained on the present-danger classifier's examples "
        "a pattern matches, read with their words) read the message, a pattern match counts only when it reads at "
        "least this, besides danger_pattern_probability (None: the gate is not read).",
    )
    other_language_pattern_probability: float = Field(
        0.0, ge=0, le=1,
        description="A message in another language: a pattern match counts when the multilingual classifier's safety "
        "probability is at least this, or the message has a sign of a present emergency (0: every match counts).",
    )
    past: Regex | None = Field(
        None,
        description="A time the message places its incident in the past ('last week', '2 days ago', 'yesterday'): "
        "with no sign of a present emergency, a pattern match in it counts only from past_probability.",
    )
    past_probability: float = Field(
        0.0, ge=0, le=1,
        description="danger_pattern_probability for a message about an incident in the past (``past``).",
    )
    danger_probability: float = Field(
        1.01, ge=0, le=1.01,
        description="English messages: the present-danger classifier's probability at or above which a message is a "
        "safety report by itself, in words no pattern lists (over 1: never).",
    )
    message: str
    self_harm: Regex | None = Field(
        None, description="A driver speaking of ending their own life: escalated for safety with ``self_harm_message``."
    )
    self_harm_message: str = Field(
        "", description="Told instead of ``message`` (and the safety article's steps) when ``self_harm`` matched."
    )
    search_terms: str = Field(
        "", description="Added to the search for a safety message, so the steps quoted come from the safety policy."
    )


class PatternRule(_Model):
    """A rule that fires on any of its patterns."""

    patterns: PatternList
    message: str = ""


class RepeatPolicy(_Model):
    """When a message raises an issue already raised in the conversation."""

    contact_markers: PatternList = Field(default_factory=Patterns, description="An earlier contact with support, claimed in the message; enough alone.")
    strong_markers: PatternList
    markers: PatternList
    min_similarity: float = Field(ge=0, le=1)
    min_shared_terms: int = Field(ge=1)


class DefectPolicy(_Model):
    """Symptoms in the message and what counts as evidence of a failure."""

    symptoms: dict[str, re.Pattern[str]]
    policy_codes: frozenset[str]
    failure_event_types: frozenset[str]
    failure_api_words: re.Pattern[str]
    failure_system_words: re.Pattern[str]
    explanation_question: Regex
    retry_threshold: int = Field(ge=2)
    recent_events: int = Field(ge=1)
    pattern_probability: float = Field(
        0.0, ge=0, le=1,
        description="Without evidence of a failure, a symptom pattern counts only when the defect-report classifier "
                    "reads the (English) message as a report of a failure with at least this probability: under it, "
                    "the words of a symptom ask how something works, put a hypothetical or describe a problem outside "
                    "the app.",
    )

    @field_validator("symptoms", mode="before")
    @classmethod
    def _symptoms(cls, value: object) -> object:
        if not isinstance(value, dict):
            raise ValueError("expected a mapping of symptom name -> regular expression")
        return {str(k): _compile(str(v)) for k, v in value.items()}

    @field_validator("failure_api_words", "failure_system_words", mode="before")
    @classmethod
    def _regex(cls, value: object) -> object:
        return _compile(str(value)) if isinstance(value, str) else value

    @field_validator("policy_codes", mode="before")
    @classmethod
    def _codes(cls, value: object) -> object:
        return frozenset(str(v).upper() for v in value) if isinstance(value, list) else value


class Combination(_Model):
    """A topic and a stance that must both appear in a message."""

    topic: Regex
    stance: Regex


class AccountPolicy(_Model):
    """Account actions: the classifier's ``action`` label, single patterns and topic-plus-stance
    combinations."""

    combinations: tuple[Combination, ...] = ()
    patterns: PatternList
    message: str
    action_probability: float = Field(
        1.0, ge=0, le=1,
        description="The classifier's action probability from which a message alone is an account action (1: off).",
    )
    other_language_action_probability: float = Field(
        1.01, ge=0, le=1.01,
        description="A message in another language: the multilingual account-action classifier's probability from "
        "which it is an account action (over 1: off).",
    )
    pattern_probability: float = Field(
        0.0, ge=0, le=1,
        description="A pattern match is an account action only when the classifier's action probability is at "
        "least this: below it the message asks how a policy works (0: every match counts).",
    )
    hypothetical: Regex | None = Field(
        None, description="A message put as a hypothetical ('if they deactivate me ...', 'why would i ...').",
    )
    hypothetical_probability: float = Field(
        0.0, ge=0, le=1, description="pattern_probability for a message put as a hypothetical.",
    )


class Incident(_Model):
    """A platform incident support has declared."""

    id: str
    title: str
    codes: frozenset[str] = frozenset()
    symptoms: PatternList = Patterns()


class IncidentPolicy(_Model):
    """Known incidents: announced by journey events or declared in the policy."""

    event_names: re.Pattern[str]
    active: tuple[Incident, ...] = ()
    message: str
    #: What a driver is told at once about an open incident detected from contacts (no new case).
    detected_message: str = (
        "This is a known problem: other drivers have reported it and our team is already working on it. "
        "You don't need to report it again; your report has been added to it."
    )
    #: Leads the workaround (the one a lead attached to the incident, else the help centre's).
    workaround_lead_in: str = "Until it's fixed:"

    @field_validator("event_names", mode="before")
    @classmethod
    def _regex(cls, value: object) -> object:
        return _compile(str(value)) if isinstance(value, str) else value


class Messages(_Model):
    """What the driver is told on each kind of handoff."""

    defect: str
    defect_evidence: str = ""
    defect_workaround: str = ""
    driver_requested: str
    repeat: str
    small_talk: str = "Happy to help. Ask me anything about your deliveries, your pay or the app."


class ConversationPolicy(_Model):
    """Small talk: a message made only of these words is a thanks, acknowledgement or greeting."""

    small_talk_words: frozenset[str] = frozenset()
    max_words: int = Field(8, ge=1)


class CorpusScanPolicy(_Model):
    """Patterns for instructions aimed at a model inside corpus documents."""

    patterns: PatternList
    watch: PatternList = Field(
        default_factory=Patterns,
        description="Excerpt sentences addressed to someone other than the driver: a chat answer must not obey them.",
    )


class LanguageReplies(_Model):
    """A route's fixed reply opened with one line in the driver's language (the reply itself is
    the policy's English message)."""

    safety: str = Field(min_length=1, description="Before the safety message: call 911, get safe, the team is alerted.")
    handoff: str = Field(min_length=1, description="Before any other handoff: a person from support takes over.")
    decline: str = Field(min_length=1, description="Before a decline: what the assistant can help with instead.")


class GuardrailPolicy(_Model):
    """The whole policy file."""

    version: int
    screen: ScreenPolicy
    safety: SafetyPolicy
    driver_requested: PatternRule
    account_action: AccountPolicy
    repeat_contact: RepeatPolicy
    defects: DefectPolicy
    known_incidents: IncidentPolicy
    messages: Messages
    conversation: ConversationPolicy = Field(default_factory=ConversationPolicy)
    corpus_scan: CorpusScanPolicy
    languages: dict[str, LanguageReplies] = Field(
        default_factory=dict,
        description="Language code (as the language identifier gives it) -> the lines that open a fixed reply to a "
        "message in that language.",
    )


def load_policy(path: Path | None = None) -> GuardrailPolicy:
    """Load and validate a policy file (the shipped default when ``path`` is ``None``)."""
    return _load(Path(path) if path else DEFAULT_POLICY)


@lru_cache(maxsize=8)
def _load(path: Path) -> GuardrailPolicy:
    return read_yaml_model(path, GuardrailPolicy, "guardrail policy")
