"""Alembic environment of the conversation store (run by ``assistant db upgrade``).

The connection comes from :func:`assistant.store.database.upgrade`; nothing reads alembic.ini.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from assistant.store.schema import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `assistant db upgrade` (assistant.store.database.upgrade)")
_run(connection)
