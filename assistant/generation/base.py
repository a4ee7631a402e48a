"""The answer-writing contract: a :class:`Composer` drafts an answer from ranked passages."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from assistant.request import HelpRequest
from assistant.response import Usage
from assistant.retrieval.base import Passage
from assistant.retrieval.journey import JourneySignals


class Draft(BaseModel):
    """An answer before routing: its text, the passages it cites (in [n] order) and its support."""

    model_config = ConfigDict(frozen=True)

    text: str
    cited: list[Passage] = Field(default_factory=list)
    support: float = Field(0.0, description="How well the best quoted sentence matches the question (0..1).")
    read: list[str] = Field(
        default_factory=list,
        description="Chunk ids of every passage the composer read: the retrieved ones and any it expanded to.",
    )
    usage: Usage = Field(default_factory=Usage, description="Model tokens and cost (zero offline).")
    prompt_version: str | None = Field(None, description="id@version of the prompt used, if a model wrote it.")
    prompt_hash: str | None = Field(None, description="sha256 of the prompt file used.")
    can_answer: bool | None = Field(None, description="The model's own judgement that the excerpts answer it.")
    confidence: float | None = Field(
        None, ge=0.0, le=1.0, description="The composer's calibrated probability that the answer is right, if it has one."
    )
    min_confidence: float | None = Field(
        None, ge=0.0, le=1.0, description="The confidence below which this composer's answer goes to a person (its fitted threshold)."
    )
    note: str = Field("", description="Why the draft is as it is (a fallback, a rejected reply).")


class Composer(Protocol):
    """Anything that writes an answer from passages."""

    def compose(
        self, question: str, passages: list[Passage], signals: JourneySignals, *, request: HelpRequest | None = None
    ) -> Draft:
        """A draft answer to ``question`` that only states what ``passages`` say.

        ``request`` (redacted) gives a generative composer the journey and history."""
        ...
