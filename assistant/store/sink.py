""":class:`SqlSink`: the :class:`~assistant.records.ConversationSink` that keeps every record.

A write that fails is retried; if the database stays down, the record goes to the local
:class:`~assistant.store.spool.Spool` and the driver still gets their answer. While records
wait there, new ones queue behind them (order is kept), and a background thread replays them
in order, exactly once, when the database is back.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from assistant.config import Settings
from assistant.errors import BackendError
from assistant.records import ConversationRecord
from assistant.store.spool import Spool
from assistant.store.store import ConversationStore, RecordRejected

logger = logging.getLogger("assistant.store")


class SqlSink:
    """Writes each record to a :class:`ConversationStore`; spools it when the database fails.

    ``retries`` extra attempts (``backoff`` seconds, doubling) before a record is spooled;
    after a failure, writes go straight to the spool for ``retry_interval`` seconds (so a
    database outage does not slow every answer down), while the replay thread tries again.
    """

    def __init__(
        self,
        store: ConversationStore,
        *,
        spool_dir: Path,
        retries: int = 2,
        backoff: float = 0.05,
        retry_interval: float = 2.0,
    ) -> None:
        self.store = store
        self.spool = Spool(spool_dir)
        self.retries = retries
        self.backoff = backoff
        self.retry_interval = retry_interval
        self._down_until = 0.0
        self._wake = threading.Event()  # set by close(): the replay thread ends
        self._replayer: threading.Thread | None = None
        self._guard = threading.Lock()
        if self.spool.has_pending():  # left by an earlier process
            self._start_replayer()

    @classmethod
    def open(cls, settings: Settings) -> SqlSink:
        """A sink on ``settings``' store (``resolved_database_url()``), spooling to its spool dir.
        SQLite is migrated on the spot; PostgreSQL is migrated by ``assistant db upgrade``, once
        per deployment."""
        store = ConversationStore.from_url(
            settings.resolved_database_url(), review_sample_rate=settings.review_sample_rate
        )
        if store.backend == "sqlite":
            store.upgrade()
        return cls(store, spool_dir=settings.resolved_spool_dir())

    # -- the sink ---------------------------------------------------------------------------

    def record(self, record: ConversationRecord) -> None:
        """Store ``record``, or spool it; never raises (the driver's answer does not depend on it)."""
        try:
            self._record(record)
        except Exception:  # the disk under the spool failed too: say so loudly, with the id
            logger.exception("conversation record %s could be neither stored nor spooled", record.record_id)

    def _record(self, record: ConversationRecord) -> None:
        if self.spool.has_pending() or time.monotonic() < self._down_until:
            self._to_spool(record)
            return
        for attempt in range(self.retries + 1):
            try:
                self.store.write(record)
                return
            except RecordRejected as exc:  # a race on a new conversation resolves on retry; else keep it aside
                if attempt == self.retries:
                    logger.error("conversation record %s refused by the database: %s", record.record_id, exc)
                    self.spool.reject(record)
                    return
                time.sleep(self.backoff * 2**attempt)
            except BackendError as exc:
                logger.warning(
                    "conversation store write failed (attempt %d of %d, record %s): %s",
                    attempt + 1, self.retries + 1, record.record_id, exc,
                )
                if attempt < self.retries:
                    time.sleep(self.backoff * 2**attempt)
        self._down_until = time.monotonic() + self.retry_interval
        self._to_spool(record)

    def _to_spool(self, record: ConversationRecord) -> None:
        self.spool.append(record)
        logger.info("conversation record %s spooled", record.record_id)
        self._start_replayer()

    # -- replay -----------------------------------------------------------------------------

    def flush(self) -> int:
        """Replay the spool now; returns how many records reached the database (0 while it is
        still down). Records that stay spooled are retried by the background thread."""
        try:
            written = self.spool.replay(self.store.write, refused=(RecordRejected,))
        except BackendError as exc:
            logger.warning("spool replay stopped, database still failing: %s", exc)
            self._down_until = time.monotonic() + self.retry_interval
            return 0
        if not self.spool.has_pending():
            self._down_until = 0.0
        return written

    def _start_replayer(self) -> None:
        with self._guard:
            if self._replayer is not None and self._replayer.is_alive():
                return
            self._replayer = threading.Thread(target=self._replay_loop, name="assistant-spool-replay", daemon=True)
            self._replayer.start()

    def _replay_loop(self) -> None:
        """Every ``retry_interval`` seconds, replay what waits; sleeps while nothing does."""
        while not self._wake.wait(self.retry_interval):
            if self.spool.has_pending():
                self.flush()

    def close(self) -> None:
        """Stop the replay thread after one last attempt, and release the database."""
        self._wake.set()
        if self._replayer is not None:
            self._replayer.join(timeout=5)
        if self.spool.has_pending():
            self.flush()
        self.store.close()
