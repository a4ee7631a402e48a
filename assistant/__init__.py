"""driver-help-assistant: grounded, journey-aware help for gig-delivery drivers.

>>> from assistant import Assistant, HelpRequest, JourneyContext
>>> assistant = Assistant.from_settings()
>>> assistant.ingest()
>>> assistant.answer(HelpRequest(message="when do i get paid", journey=JourneyContext(market="ca-on")))
"""

from assistant.config import Settings
from assistant.errors import (
    AssistantError,
    BackendError,
    BackendTimeout,
    ConfigurationError,
    CorpusError,
    IndexMismatchError,
    IndexNotReadyError,
    InputError,
)
from assistant.guardrails.defects import (
    EvidenceLine,
    EvidenceSource,
    JourneyEvidence,
    JsonlLogEvidence,
)
from assistant.ingestion.indexer import IngestReport
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

__version__ = "0.1.0"

__all__ = [
    "Assistant",
    "AssistantError",
    "BackendError",
    "BackendTimeout",
    "Citation",
    "ConfigurationError",
    "ConversationRecord",
    "ConversationSink",
    "CorpusError",
    "EventType",
    "EvidenceLine",
    "EvidenceSource",
    "HandoffPacket",
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
    "NullSink",
    "Order",
    "Priority",
    "Reason",
    "ReasonCode",
    "Route",
    "Settings",
    "Stage",
    "Turn",
    "Usage",
    "__version__",
]
