"""Replay timestamped contacts through the assistant on a simulated clock, into a fresh store, and
report the incidents the detector opened: how a platform tunes detection on its own history.

Input: one JSON object a line, ``{"ts": ISO-8601, "driver_id": str, "message": str, "journey":
JourneyContext}``. Each contact is answered by a real :class:`~assistant.Assistant` whose records
are stamped with the contact's ``ts``; the detector scans as the service's workers do (each
minute in which contacts arrived, and each hour to close incidents), on the same clock.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from assistant.config import Settings
from assistant.errors import InputError
from assistant.incidents.detection import DetectionConfig, IncidentDetector, hour_floor
from assistant.request import HelpRequest, JourneyContext
from assistant.response import ReasonCode
from assistant.store import ConversationStore, SqlSink

MINUTE = timedelta(minutes=1)


class ReplayContact(BaseModel):
    """One line of a replay file."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ts: datetime
    driver_id: str = Field(min_length=1, max_length=128)
    message: str
    journey: JourneyContext | None = None

    @field_validator("ts")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ReplayedIncident(BaseModel):
    """An incident the replay opened, as ``assistant incidents replay`` prints it."""

    model_config = ConfigDict(frozen=True)

    group: str
    signature: dict[str, Any]
    first_contact_at: datetime
    opened_at: datetime
    closed_at: datetime | None
    contacts: int
    drivers: int


class ReplayReport(BaseModel):
    """Every incident of the replay, with what it cost to run."""

    model_config = ConfigDict(frozen=True)

    incidents: list[ReplayedIncident]
    contacts: int
    routes: dict[str, int]
    seconds: float


def read_contacts(lines: Iterable[str], *, source: str = "contacts") -> list[ReplayContact]:
    """Parse a replay file; :class:`~assistant.errors.InputError` names the first bad line.
    Contacts are returned in time order (a stable sort keeps the file's order within a time)."""
    contacts: list[ReplayContact] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            contacts.append(ReplayContact.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise InputError(f"{source} line {number}: not a contact ({str(exc).splitlines()[0][:160]})") from None
    return sorted(contacts, key=lambda c: c.ts)


def replay(
    contacts: list[ReplayContact],
    settings: Settings,
    *,
    config: DetectionConfig | None = None,
    database_url: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    """Answer ``contacts`` in time order on their own clock into a fresh store (a temporary SQLite
    file unless ``database_url`` names an empty database) and return the incidents detected."""
    from assistant.pipeline import Assistant

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="assistant-replay-") as folder:
        url = database_url or f"sqlite:///{Path(folder) / 'replay.db'}"
        store = ConversationStore.from_url(url)
        store.upgrade()
        now = [contacts[0].ts if contacts else datetime.now(UTC)]
        replay_settings = settings.model_copy(update={
            "database_url": url, "spool_dir": Path(folder) / "spool", "review_sample_rate": 0.0,
            "incident_cache_seconds": 0.0,  # every contact sees the incidents open at its own time
        })
        sink = SqlSink(store, spool_dir=Path(folder) / "spool")
        assistant = Assistant(replay_settings, sink=sink, clock=lambda: now[0])
        detector = IncidentDetector(store, config)
        routes: dict[str, int] = {}
        clock = ScanClock(detector)
        try:
            for index, contact in enumerate(contacts):
                clock.scan_until(contact.ts)
                now[0] = contact.ts
                response = assistant.answer(HelpRequest(
                    message=contact.message, journey=contact.journey, driver_id=contact.driver_id,
                ))
                routes[response.route.value] = routes.get(response.route.value, 0) + 1
                if {r.code for r in response.reasons} & _COUNTED:
                    clock.counted(contact.ts)
                if progress is not None:
                    progress(index + 1, len(contacts))
            clock.finish()
            found = [
                ReplayedIncident(
                    group=i.group, signature=i.signature, first_contact_at=i.first_contact_at, opened_at=i.opened_at,
                    closed_at=i.closed_at, contacts=i.contacts, drivers=i.drivers,
                )
                for i in sorted(detector.incidents(limit=10_000), key=lambda i: (i.opened_at, i.id))
            ]
        finally:
            assistant.close()
    return ReplayReport(incidents=found, contacts=len(contacts), routes=routes,
                        seconds=round(time.perf_counter() - started, 2))


class ScanClock:
    """When the service's workers would scan: the minute after a contact that counts towards a
    defect signature, and each hour while an incident is open (to close it)."""

    def __init__(self, detector: IncidentDetector) -> None:
        self.detector = detector
        self.due: datetime | None = None  # the scan a counted contact asks for
        self.last: datetime | None = None
        self.open = 0
        self.scans = 0

    def counted(self, ts: datetime) -> None:
        if self.due is None:
            self.due = ts.replace(second=0, microsecond=0) + MINUTE

    def scan_until(self, until: datetime) -> None:
        while True:
            hourly = hour_floor(self.last) + timedelta(hours=1) if self.open and self.last is not None else None
            candidates = [t for t in (self.due, hourly) if t is not None and t <= until]
            if not candidates:
                return
            at = min(candidates)
            self.open = len(self.detector.scan(at).open)
            self.last, self.scans = at, self.scans + 1
            if self.due is not None and self.due <= at:
                self.due = None

    def finish(self) -> None:
        if self.due is not None:
            self.scan_until(self.due)


_COUNTED = {ReasonCode.DEFECT_CONFIRMED, ReasonCode.DEFECT_SUSPECTED, ReasonCode.KNOWN_INCIDENT}
