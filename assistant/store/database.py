"""Engines and migrations: SQLite by default (WAL, foreign keys on), PostgreSQL by URL.

``sqlite:///path/to/assistant.db`` or ``postgresql+psycopg://user@127.0.0.1:5432/db``; a plain
``postgresql://`` URL is read as psycopg 3.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from assistant.errors import BackendError, ConfigurationError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: Seconds a connection attempt to a database server may take.
CONNECT_TIMEOUT = 3


def normalise_url(url: str) -> str:
    """``url`` with the psycopg 3 driver named for PostgreSQL."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"invalid database URL: {exc}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, sqlite_timeout: float = 30.0) -> Engine:
    """An engine for ``url``: SQLite in WAL mode with foreign keys (waiting up to
    ``sqlite_timeout`` seconds for another writer's lock), or PostgreSQL (psycopg 3)."""
    url = normalise_url(url)
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": sqlite_timeout, "check_same_thread": False}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["pool_size"] = 8  # a connection per concurrent writer, reused (SQLite serialises the writes)
            kwargs["max_overflow"] = 8
            kwargs["pool_timeout"] = sqlite_timeout
    else:
        from assistant._optional import require

        require("a PostgreSQL store", "postgres", "psycopg")
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
        kwargs["pool_pre_ping"] = True
        kwargs["pool_size"] = 5
        kwargs["max_overflow"] = 10
        kwargs["pool_timeout"] = CONNECT_TIMEOUT
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine


def _alembic_config() -> Any:
    """Alembic's configuration: the migrations folder only (env.py takes the connection given)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Run the store's migrations up to ``revision``; returns the revision the database is at."""
    from alembic import command

    config = _alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        raise BackendError(f"database migration failed: {type(exc).__name__}: {_safe(exc)}") from exc
    return current_revision(engine)


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (``None`` for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as connection:
            revision: str | None = MigrationContext.configure(connection).get_current_revision()
            return revision
    except SQLAlchemyError as exc:
        raise BackendError(f"database unreachable: {type(exc).__name__}: {_safe(exc)}") from exc


@functools.cache
def head_revision() -> str | None:
    """The newest migration shipped with the package."""
    from alembic.script import ScriptDirectory

    head: str | None = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    return head


def _safe(exc: BaseException) -> str:
    """A database error's first line, without SQL parameters (which may hold driver text)."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0][:300] if text else ""
