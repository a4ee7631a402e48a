"""The conversation store: every contact kept, in SQLite or PostgreSQL.

- :class:`ConversationStore` writes records as rows and reads conversations back;
- :class:`SqlSink` is the :class:`~assistant.records.ConversationSink` that writes to it, with
  retries and a local spool so a database outage loses no record;
- :class:`ReviewQueue` works the conversations flagged for a support lead;
- migrations (Alembic) run with ``assistant db upgrade`` or :meth:`ConversationStore.upgrade`.

``import assistant`` does not import this package (nor SQLAlchemy) until a store is used.
"""

from assistant.store.analytics import (
    Analytics,
    ContentGap,
    CountRow,
    FeedbackSummary,
    RatePoint,
    SelfService,
)
from assistant.store.review import ReviewAction, ReviewFilter, ReviewItem, ReviewLabel, ReviewQueue
from assistant.store.sink import SqlSink
from assistant.store.spool import Spool
from assistant.store.store import (
    ConversationStore,
    ConversationSummary,
    StoredConversation,
    StoredFeedback,
    StoredResponse,
    StoredTurn,
)

__all__ = [
    "Analytics",
    "ContentGap",
    "ConversationStore",
    "ConversationSummary",
    "CountRow",
    "FeedbackSummary",
    "RatePoint",
    "ReviewAction",
    "ReviewFilter",
    "ReviewItem",
    "ReviewLabel",
    "ReviewQueue",
    "SelfService",
    "Spool",
    "SqlSink",
    "StoredConversation",
    "StoredFeedback",
    "StoredResponse",
    "StoredTurn",
]
