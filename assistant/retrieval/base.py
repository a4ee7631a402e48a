"""The retrieval contract: a :class:`Retriever` turns a question into ranked :class:`Passage` s."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from assistant.request import JourneyContext


class Passage(BaseModel):
    """One retrieved chunk with its scores."""

    model_config = ConfigDict(frozen=True)

    chunk_id: str
    doc_id: str
    title: str
    section: str
    text: str
    position: int = 0
    score: float = Field(description="Final ranking score: fused rank score times journey boosts.")
    dense_similarity: float | None = Field(None, description="Cosine similarity, if dense found it.")
    bm25_score: float | None = Field(None, description="BM25 score, if keyword search found it.")
    boosts: list[str] = Field(default_factory=list, description="Journey facts that raised it.")


class RetrievalResult(BaseModel):
    """What a retriever found, and how sure it can be."""

    model_config = ConfigDict(frozen=True)

    passages: list[Passage]
    journey_used: list[str] = Field(default_factory=list)
    top_similarity: float = 0.0
    agreement: float = Field(0.0, description="1.0 when dense and keyword search agree on the top document.")
    excluded_doc_ids: list[str] = Field(default_factory=list)
    market: str | None = Field(None, description="The market the passages were chosen for (journey or message).")


class Retriever(Protocol):
    """Anything that can rank corpus passages for a question."""

    def retrieve(self, query: str, *, k: int, journey: JourneyContext | None = None) -> RetrievalResult:
        """The ``k`` best passages for ``query`` given the driver's ``journey``."""
        ...
