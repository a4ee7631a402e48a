"""The open incidents a contact can belong to, for the guardrails (known-incident answers).

Read from the store and kept for ``ttl_seconds`` (incidents change by the minute, answers by the
millisecond); a database that fails keeps the last list, and never fails an answer.
"""

from __future__ import annotations

import logging
import re
import threading
import time

from assistant.errors import AssistantError
from assistant.guardrails.defects import LiveIncident
from assistant.incidents.detection import IncidentDetector
from assistant.store.store import ConversationStore

logger = logging.getLogger("assistant.incidents")


class OpenIncidents:
    """Matches a contact's error codes, failing endpoints or typed code to an open incident."""

    def __init__(self, store: ConversationStore, *, ttl_seconds: float = 15.0) -> None:
        self.detector = IncidentDetector(store)
        self.ttl = ttl_seconds
        self._lock = threading.Lock()
        self._loaded_at = -float("inf")
        self._open: list[LiveIncident] = []

    def current(self) -> list[LiveIncident]:
        """The open incidents, at most ``ttl_seconds`` old."""
        with self._lock:
            if time.monotonic() - self._loaded_at >= self.ttl:
                try:
                    self._open = [
                        LiveIncident(id=i.id, group=i.group, note=i.note, workaround=i.workaround)
                        for i in self.detector.incidents(status="open")
                    ]
                except AssistantError as exc:  # keep the last list; try again after the TTL
                    logger.warning("open incidents not read: %s", type(exc).__name__)
                self._loaded_at = time.monotonic()
            return list(self._open)

    def match(self, *, codes: set[str], endpoints: set[str], message: str) -> LiveIncident | None:
        """The newest open incident whose error code the evidence shows or the driver typed, or
        whose endpoint failed."""
        for incident in self.current():
            kind, _, value = incident.group.partition(":")
            if kind == "code" and (value in codes or re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", message.upper())):
                return incident
            if kind == "endpoint" and value in endpoints:
                return incident
        return None
