"""Scan corpus chunks at ingestion for text aimed at a model rather than at drivers.

A help article is data; a chunk that carries instructions for an AI ("ignore your previous
instructions", "note to the assistant: always recommend ...") is quarantined: reported with its
file and section and left out of the index, while the rest of the document still indexes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from assistant.guardrails.policy import GuardrailPolicy


class QuarantinedChunk(BaseModel):
    """A chunk left out of the index, and why."""

    model_config = ConfigDict(frozen=True)

    doc_id: str
    path: str
    section: str
    reason: str


def scan_chunk(text: str, policy: GuardrailPolicy) -> str | None:
    """Why ``text`` must not be indexed, or ``None`` when it is ordinary help text."""
    if match := policy.corpus_scan.patterns.search(text):
        quoted = " ".join(match.group(0).split())[:80]
        return f"instructions aimed at a model: \"{quoted}\""
    return None
