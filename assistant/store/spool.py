"""A local, append-only spool for records the database could not take.

Each record is one JSON line, appended and fsynced before :meth:`Spool.append` returns, so a
crash right after loses nothing. :meth:`Spool.replay` writes them to the database in file order
and keeps only what is still unwritten; writes are idempotent (keyed by ``record_id``), so a
record written just before a crash is not written twice. Every operation holds an exclusive
``flock`` on a lock file, so several workers may share one spool folder.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from assistant.records import ConversationRecord

logger = logging.getLogger("assistant.store")


class Spool:
    """Records waiting for the database, oldest first, in ``folder/records.jsonl``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "records.jsonl"
        self.rejected = self.folder / "rejected.jsonl"
        self._lock_path = self.folder / ".lock"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def append(self, record: ConversationRecord) -> None:
        """Add ``record`` at the end, durably."""
        line = record.model_dump_json() + "\n"
        with self._locked(), open(self.path, "a", encoding="utf-8") as spool:
            spool.write(line)
            spool.flush()
            os.fsync(spool.fileno())

    def pending(self) -> int:
        """How many records wait (0 without reading the file when it is empty)."""
        try:
            if self.path.stat().st_size == 0:
                return 0
        except FileNotFoundError:
            return 0
        with self._locked():
            return sum(1 for line in self._lines() if line.strip())

    def has_pending(self) -> bool:
        """True when at least one record waits (a ``stat``, no lock)."""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def _lines(self) -> list[str]:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        except FileNotFoundError:
            return []

    def replay(
        self, write: Callable[[ConversationRecord], object], *, refused: tuple[type[Exception], ...] = ()
    ) -> int:
        """Write waiting records in order with ``write`` until one fails; returns how many were
        written. Unwritten records stay, in order. A line that is not a record (a write cut off
        by a crash), or a record ``write`` refuses with one of ``refused``, moves to
        ``rejected.jsonl`` rather than blocking the rest."""
        done = 0
        with self._locked():
            lines = [line for line in self._lines() if line.strip()]
            if not lines:
                return 0
            index = 0
            try:
                for index, line in enumerate(lines):  # noqa: B007 - index is read after the loop
                    try:
                        record = ConversationRecord.model_validate_json(line)
                    except ValidationError:
                        self._reject(line)
                        continue
                    try:
                        write(record)
                    except refused:
                        self._reject(line)
                        continue
                    done += 1
                else:
                    index = len(lines)
            finally:
                self._keep(lines[index:])
        if done:
            logger.info("replayed %d spooled conversation records", done)
        return done

    def reject(self, record: ConversationRecord) -> None:
        """Keep ``record`` aside in ``rejected.jsonl`` (the database refused it)."""
        with self._locked():
            self._reject(record.model_dump_json() + "\n")

    def _reject(self, line: str) -> None:
        logger.error("a spooled line the database cannot take (or not a record) is kept in %s", self.rejected)
        with open(self.rejected, "a", encoding="utf-8") as out:
            out.write(line if line.endswith("\n") else line + "\n")
            out.flush()
            os.fsync(out.fileno())

    def _keep(self, lines: list[str]) -> None:
        """Atomically replace the spool with ``lines``."""
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as out:
            out.writelines(line if line.endswith("\n") else line + "\n" for line in lines)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
