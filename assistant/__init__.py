"""driver-help-assistant: grounded, journey-aware help for gig-delivery drivers.

>>> from assistant import Assistant, HelpRequest, JourneyContext
>>> assistant = Assistant.from_settings()
>>> assistant.ingest()
>>> assistant.answer(HelpRequest(message="when do i get paid", journey=JourneyContext(market="ca-on")))
"""

from typing import TYPE_CHECKING, Any

from assistant.config import Settings
from assistant.errors import (
    AssistantError,
    AuthError,
    BackendError,
    BackendTimeout,
    ConfigurationError,
    CorpusError,
    IndexMismatchError,
    IndexNotReadyError,
    InputError,
    MissingDependencyError,
    NotFoundError,
)
from assistant.guardrails.defects import (
    EvidenceLine,
    EvidenceSource,
    JourneyEvidence,
    JsonlLogEvidence,
)
from assistant.ingestion.report import IngestReport
from assistant.pipeline import Assistant
from assistant.records import ConversationRecord, ConversationSink, MemorySink, NullSink
from assistant.request import (
    EventType,
    HelpRequest,
    JourneyContext,
    JourneyEvent,
    Order,
    Stage,
    Turn,
)
from assistant.response import (
    Citation,
    HandoffPacket,
    HelpResponse,
    Priority,
    Reason,
    ReasonCode,
    Route,
    Usage,
)
from assistant.suggestions import HelpCard

__version__ = "0.1.0"

if TYPE_CHECKING:
    from assistant.console import ConsoleUsers
    from assistant.service import create_app
    from assistant.store import ConversationStore, ReviewFilter, ReviewLabel, ReviewQueue, SqlSink

_LAZY = {
    "ConversationStore": "assistant.store", "SqlSink": "assistant.store", "ReviewQueue": "assistant.store",
    "ReviewFilter": "assistant.store", "ReviewLabel": "assistant.store", "create_app": "assistant.service",
    "ConsoleUsers": "assistant.console",
}


def __getattr__(name: str) -> Any:
    """The store and the service import SQLAlchemy and FastAPI only when first used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'assistant' has no attribute {name!r}")


__all__ = [
    "Assistant",
    "AssistantError",
    "AuthError",
    "BackendError",
    "BackendTimeout",
    "Citation",
    "ConfigurationError",
    "ConsoleUsers",
    "ConversationRecord",
    "ConversationSink",
    "ConversationStore",
    "CorpusError",
    "EventType",
    "EvidenceLine",
    "EvidenceSource",
    "HandoffPacket",
    "HelpCard",
    "HelpRequest",
    "HelpResponse",
    "IndexMismatchError",
    "IndexNotReadyError",
    "IngestReport",
    "InputError",
    "JourneyContext",
    "JourneyEvent",
    "JourneyEvidence",
    "JsonlLogEvidence",
    "MemorySink",
    "MissingDependencyError",
    "NotFoundError",
    "NullSink",
    "Order",
    "Priority",
    "Reason",
    "ReasonCode",
    "ReviewFilter",
    "ReviewLabel",
    "ReviewQueue",
    "Route",
    "Settings",
    "SqlSink",
    "Stage",
    "Turn",
    "Usage",
    "__version__",
    "create_app",
]
