"""What the assistant returns: the route, its reasons, the answer and its sources.

``HelpResponse.to_contract()`` is exactly the JSON object ``assistant ask --json`` prints.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Route(StrEnum):
    """What happens to the driver's contact."""

    ANSWER = "answer"
    ESCALATE = "escalate"
    DECLINE = "decline"


class ReasonCode(StrEnum):
    """Why a response took its route. The values are the contract's strings."""

    LOW_CONFIDENCE = "low_confidence"
    DEFECT_SUSPECTED = "defect_suspected"
    DEFECT_CONFIRMED = "defect_confirmed"
    SAFETY = "safety"
    ACCOUNT_ACTION = "account_action"
    DRIVER_REQUESTED = "driver_requested"
    REPEAT_CONTACT = "repeat_contact"
    PROMPT_INJECTION = "prompt_injection"
    OUT_OF_SCOPE = "out_of_scope"
    KNOWN_INCIDENT = "known_incident"
    PII_REDACTED = "pii_redacted"


class Reason(BaseModel):
    """One reason for the route, with a human-readable detail naming its evidence."""

    model_config = ConfigDict(frozen=True)

    code: ReasonCode
    detail: str


class Citation(BaseModel):
    """A corpus passage the answer relies on."""

    model_config = ConfigDict(frozen=True)

    doc_id: str
    title: str
    section: str
    chunk_id: str
    score: float


class Priority(StrEnum):
    """How fast a human should pick up a handoff."""

    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"


class HandoffPacket(BaseModel):
    """What a support agent receives when the assistant hands the driver over.

    Built so the agent can resolve the case in one contact: what the driver said, where they
    were, and what the assistant already told them.
    """

    model_config = ConfigDict(frozen=True)

    category: str
    priority: Priority
    summary: str
    driver_message: str
    journey: dict[str, Any] | None = None
    assistant_told_driver: str = ""
    cited_doc_ids: list[str] = Field(default_factory=list)
    suggested_next_steps: list[str] = Field(default_factory=list)
    conversation: list[str] = Field(default_factory=list, description="Earlier turns, redacted, as 'role: text'.")
    evidence_timeline: list[str] = Field(
        default_factory=list, description="App events and log lines behind the decision, oldest first."
    )
    defect_signature: dict[str, str | None] | None = Field(
        None, description="error_code, endpoint, app_version, platform, stage: for grouping defect reports."
    )

    def render_text(self) -> str:
        """A plain-text rendering for agent tools that cannot show JSON."""
        lines = [
            f"[{self.priority.value.upper()}] {self.category}",
            f"Summary: {self.summary}",
            f"Driver said: {self.driver_message}",
        ]
        if self.journey:
            lines.append("Journey: " + ", ".join(f"{k}={v}" for k, v in self.journey.items()))
        if self.assistant_told_driver:
            lines.append(f"Assistant told driver: {self.assistant_told_driver}")
        if self.cited_doc_ids:
            lines.append("Cited: " + ", ".join(self.cited_doc_ids))
        lines.extend(f"Earlier: {turn}" for turn in self.conversation)
        lines.extend(f"Evidence: {item}" for item in self.evidence_timeline)
        if self.defect_signature:
            lines.append("Defect signature: " + ", ".join(f"{k}={v}" for k, v in self.defect_signature.items() if v))
        lines.extend(f"Next step: {step}" for step in self.suggested_next_steps)
        return "\n".join(lines)


class Usage(BaseModel):
    """Tokens spent on the answer (zero for the offline extractive composer)."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None


class HelpResponse(BaseModel):
    """The assistant's reply to one :class:`~assistant.request.HelpRequest`."""

    model_config = ConfigDict(frozen=True)

    route: Route
    reasons: list[Reason] = Field(default_factory=list)
    answer: str
    citations: list[Citation] = Field(default_factory=list)
    confidence: float = Field(ge=0.0, le=1.0)
    journey_used: list[str] = Field(default_factory=list)
    handoff: HandoffPacket | None = None
    conversation_id: str
    prompt_version: str | None = None
    prompt_hash: str | None = Field(None, description="sha256 of the prompt file that wrote the answer, if a model did.")
    usage: Usage = Field(default_factory=Usage)

    @property
    def reason_codes(self) -> list[ReasonCode]:
        """The reason codes alone, in order."""
        return [r.code for r in self.reasons]

    def to_contract(self) -> dict[str, Any]:
        """The JSON object of the ``assistant ask --json`` contract (its keys are fixed, so the
        prompt's hash stays on the model and in conversation records, not in this object)."""
        return self.model_dump(mode="json", exclude={"prompt_hash"})
