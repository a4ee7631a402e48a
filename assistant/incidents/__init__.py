"""Platform defects noticed from the pattern of contacts (:class:`IncidentDetector`): related
defect signatures grouped, each group's contact rate watched against its own hour-of-day
baseline with a Poisson CUSUM, incidents opened and closed in the shared store."""

from assistant.incidents.detection import (
    DetectionConfig,
    Incident,
    IncidentDetector,
    ScanResult,
    group_of,
)

__all__ = ["DetectionConfig", "Incident", "IncidentDetector", "ScanResult", "group_of"]
