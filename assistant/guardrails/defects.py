"""Defect or misunderstanding: the symptom in the message weighed against evidence of a failure.

Evidence comes from an :class:`EvidenceSource`: by default the journey's own events
(:class:`JourneyEvidence`); :class:`JsonlLogEvidence` adds the driver's recent backend log lines
from a JSONL file. The rule, with the evidence it used listed in every decision:

* a symptom and evidence of a failure (an error event, a failed API call, a crash, the same
  action retried again and again) -> ``defect_confirmed``, the evidence quoted;
* a symptom and no evidence either way (no events at all) -> ``defect_suspected``;
* a symptom, events that show no failure, or only an error that a policy explains (too far from
  the drop-off, a debit card just changed) -> an answer that explains the policy.

A symptom is a pattern of the policy (``defects.symptoms``) in the message. Without evidence of a
failure, a pattern in an English message counts only when the defect-report classifier
(``examples-defect.yaml``) reads the message as a report of a failure: "what does LOC-203 mean",
"what if the app crashes mid-delivery" and "stuck in traffic" use a symptom's words to ask
something else.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from assistant.guardrails.policy import DefectPolicy, IncidentPolicy
from assistant.request import EventType, HelpRequest

_CODE = re.compile(r"\b[A-Z]{2,5}-\d{3}\b", re.I)


class EvidenceLine(BaseModel):
    """One piece of evidence: an app event or a backend log line."""

    model_config = ConfigDict(frozen=True)

    ts: datetime | None = None
    source: str = Field(description="journey or the log source's name")
    kind: str
    name: str = ""
    code: str | None = None
    detail: str = ""

    @field_validator("ts")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        """A time without a zone is read as UTC, so lines from several sources sort together."""
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    def render(self) -> str:
        """``ts source kind name code: detail`` on one line."""
        when = self.ts.isoformat() if self.ts else "-"
        code = f" {self.code}" if self.code else ""
        return f"{when} [{self.source}] {self.kind} {self.name}{code}: {self.detail}".strip()


class EvidenceSource(Protocol):
    """Where the driver's recent technical history comes from."""

    def fetch(self, request: HelpRequest) -> list[EvidenceLine]:
        """Recent evidence for this driver, oldest first."""
        ...


class JourneyEvidence:
    """The default source: the events the app sent with the request."""

    def fetch(self, request: HelpRequest) -> list[EvidenceLine]:
        """The journey's events as evidence lines."""
        if request.journey is None:
            return []
        return [
            EvidenceLine(ts=e.ts, source="journey", kind=e.type.value, name=e.name or "", code=e.code, detail=e.detail or "")
            for e in request.journey.events
        ]


class JsonlLogEvidence:
    """Backend log lines from a JSONL file: ``{"driver_id", "ts", "level", "event", "code", "message"}``.

    Lines for ``request.driver_id`` are returned (newest ``limit``); a missing file or a bad line
    is skipped, never an error for the driver.
    """

    def __init__(self, path: Path, *, limit: int = 20) -> None:
        self.path = path
        self.limit = limit

    def fetch(self, request: HelpRequest) -> list[EvidenceLine]:
        """The driver's recent log lines."""
        if not request.driver_id or not self.path.exists():
            return []
        lines: list[EvidenceLine] = []
        try:
            raw_lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return []
        for raw in raw_lines:
            try:
                row = json.loads(raw)
                if row.get("driver_id") != request.driver_id:
                    continue
                level = str(row.get("level", "info")).lower()
                lines.append(EvidenceLine(
                    ts=row.get("ts"), source=f"log:{self.path.name}",
                    kind="error" if level in ("error", "critical", "fatal") else "api" if row.get("status") else "system",
                    name=str(row.get("event", "")), code=row.get("code"),
                    detail=str(row.get("message", "")) + (f" (status {row['status']})" if row.get("status") else ""),
                ))
            except (ValueError, TypeError, AttributeError):
                continue
        return lines[-self.limit :]


class DefectVerdict(StrEnum):
    """What the evidence says about a symptom."""

    NONE = "none"
    CONFIRMED = "confirmed"
    SUSPECTED = "suspected"
    EXPLAINED = "explained"


class DefectAssessment(BaseModel):
    """A verdict with the symptoms and evidence behind it."""

    model_config = ConfigDict(frozen=True)

    verdict: DefectVerdict
    symptoms: list[str] = Field(default_factory=list)
    failures: list[EvidenceLine] = Field(default_factory=list)
    explained_by: list[EvidenceLine] = Field(default_factory=list)
    evidence_used: list[EvidenceLine] = Field(default_factory=list)

    def detail(self) -> str:
        """A sentence naming the symptom and the evidence."""
        symptoms = ", ".join(self.symptoms) or "none"
        if self.verdict is DefectVerdict.CONFIRMED:
            quoted = "; ".join(e.render() for e in self.failures[:3])
            return f"symptom ({symptoms}) with evidence of a failure: {quoted}"
        if self.verdict is DefectVerdict.SUSPECTED:
            return f"symptom ({symptoms}) but no app events or logs to confirm or rule out a failure"
        if self.verdict is DefectVerdict.EXPLAINED:
            quoted = "; ".join(e.render() for e in self.explained_by[:2]) or "events show no failure"
            return f"symptom ({symptoms}) explained by policy, not a failure: {quoted}"
        return "no symptom of a defect"


def failures_in(evidence: Iterable[EvidenceLine], policy: DefectPolicy) -> tuple[list[EvidenceLine], list[EvidenceLine]]:
    """(evidence of a failure, errors that a policy explains) among the recent evidence."""
    recent = list(evidence)[-policy.recent_events :]
    failures: list[EvidenceLine] = []
    explained: list[EvidenceLine] = []
    for line in recent:
        text = re.sub(r"[_\-./]+", " ", f"{line.name} {line.code or ''} {line.detail}")
        if line.code and line.code.upper() in policy.policy_codes:
            explained.append(line)
        elif line.kind in policy.failure_event_types or (line.kind == EventType.API.value and policy.failure_api_words.search(text)) or (line.kind == EventType.SYSTEM.value and policy.failure_system_words.search(text)):
            failures.append(line)
    actions = Counter(line.name for line in recent if line.kind == EventType.ACTION.value and line.name)
    for name, count in actions.items():
        if count >= policy.retry_threshold:
            last = next(line for line in reversed(recent) if line.name == name)
            failures.append(last.model_copy(update={"detail": f"{last.detail} (repeated {count} times)".strip()}))
    return failures, explained


def assess_defect(
    message: str, evidence: list[EvidenceLine], policy: DefectPolicy, *, reported: float | None = None
) -> DefectAssessment:
    """Weigh the symptoms in ``message`` against ``evidence`` (see the module docstring).

    ``reported``: the defect-report classifier's probability that the message reports a failure
    (``None`` when it did not read the message, as for a message in another language: the
    patterns decide alone). Without evidence of a failure, the symptom patterns count only at or
    above ``policy.pattern_probability``: under it their words ask how something works, put a
    hypothetical or describe a problem outside the app. With evidence of a failure they count as
    they are."""
    symptoms = [name for name, pattern in policy.symptoms.items() if pattern.search(message)]
    failures, explained = failures_in(evidence, policy)
    if reported is not None and not failures and reported < policy.pattern_probability:
        symptoms = []
    if not symptoms:
        return DefectAssessment(verdict=DefectVerdict.NONE, evidence_used=evidence)
    named = {code.upper() for code in _CODE.findall(message)}
    if set(symptoms) <= {"error_code"} and named and named <= policy.policy_codes:
        # the driver quotes an error whose condition a policy explains (a card just changed, ...)
        quoted = [EvidenceLine(source="message", kind="error", code=code, detail="named by the driver") for code in sorted(named)]
        return DefectAssessment(verdict=DefectVerdict.EXPLAINED, symptoms=symptoms, explained_by=quoted, evidence_used=evidence)
    if failures:
        verdict = DefectVerdict.CONFIRMED
    elif explained or evidence:
        verdict = DefectVerdict.EXPLAINED
    else:
        verdict = DefectVerdict.SUSPECTED
    return DefectAssessment(
        verdict=verdict, symptoms=symptoms, failures=failures, explained_by=explained, evidence_used=evidence
    )


class LiveIncident(BaseModel):
    """An open incident detected from the pattern of contacts, as the guardrails see it."""

    model_config = ConfigDict(frozen=True)

    id: int
    group: str = Field(description="'code:UPL-500' or 'endpoint:photo_upload'.")
    note: str | None = None
    workaround: str | None = None


class IncidentLookup(Protocol):
    """Finds the open incident a contact belongs to (``assistant.incidents.OpenIncidents``)."""

    def match(self, *, codes: set[str], endpoints: set[str], message: str) -> LiveIncident | None:
        """The open incident for these error codes, failing endpoints or the message, if any."""
        ...


def incident_keys(evidence: list[EvidenceLine], failures: list[EvidenceLine]) -> tuple[set[str], set[str]]:
    """The error codes and failing endpoints (event names) a contact's evidence shows: the
    defect's failures when there are some, else every error line."""
    lines = failures or [line for line in evidence if line.kind == EventType.ERROR.value]
    codes = {line.code.strip().upper() for line in lines if line.code and line.code.strip()}
    endpoints = {line.name.strip().lower() for line in lines if line.name and line.name.strip()}
    return codes, endpoints


def known_incident(message: str, evidence: list[EvidenceLine], policy: IncidentPolicy) -> str | None:
    """The detail of a known incident this contact belongs to, or ``None``."""
    for line in evidence:
        if line.kind == EventType.SYSTEM.value and policy.event_names.search(re.sub(r"[_\-]+", " ", f"{line.name} {line.detail}")):
            return f"the app shows a known incident: {line.render()}"
    codes = {line.code.upper() for line in evidence if line.code}
    for incident in policy.active:
        if codes & incident.codes:
            return f"matches known incident {incident.id} ({incident.title}): error {', '.join(sorted(codes & incident.codes))}"
        if incident.symptoms.search(message):
            return f"matches known incident {incident.id} ({incident.title}) by its symptom"
    return None


class CombinedEvidence:
    """Evidence from several sources, merged in time order."""

    def __init__(self, sources: list[EvidenceSource]) -> None:
        self.sources = sources

    def fetch(self, request: HelpRequest) -> list[EvidenceLine]:
        """Every source's lines, oldest first (lines without a time keep their source order)."""
        lines = [line for source in self.sources for line in source.fetch(request)]
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return sorted(lines, key=lambda line: (line.ts - epoch).total_seconds() if line.ts else 0.0)
