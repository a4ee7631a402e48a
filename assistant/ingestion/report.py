"""What an ingest reports (kept apart from the indexer, so that importing the library does not
import the ingestion machinery)."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from assistant.guardrails.corpus_scan import QuarantinedChunk
from assistant.ingestion.documents import DocumentProblem

#: Called as ``progress(done, total)`` while chunks are embedded.
ProgressCallback = Callable[[int, int], None]


class IngestReport(BaseModel):
    """What an ingest did."""

    model_config = ConfigDict(frozen=True)

    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    problems: list[DocumentProblem] = Field(default_factory=list)
    quarantined: list[QuarantinedChunk] = Field(
        default_factory=list, description="Chunks left out because they carry instructions aimed at a model."
    )
    chunks_total: int = 0
    chunks_embedded: int = 0
    units_embedded: int = 0
    questions_total: int = 0
    questions_embedded: int = Field(
        0, description="Driver questions, unanswered questions and safety situations embedded (the others were reused)."
    )
    gap_questions_total: int = Field(0, description="Questions the corpus does not answer (its gaps.yaml).")
    situations_total: int = Field(
        0, description="Situations of drivers in danger indexed with the section of their steps (its safety-situations.yaml)."
    )
    pivots_total: int = Field(0, description="Multilingual pivots (0 when Settings.multilingual is off).")
    pivots_embedded: int = 0
    pivot_seconds: float = Field(
        0.0, description="Of ``seconds``, the time spent on the multilingual model (pivots, the multilingual classifier's examples)."
    )
    generation: int = 0
    rebuilt: bool = Field(
        False, description="A new generation was written (also when only markets.yaml, gaps.yaml or safety-situations.yaml changed)."
    )
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        """True when the ingest wrote a new generation."""
        return bool(self.added or self.updated or self.removed or self.rebuilt)
