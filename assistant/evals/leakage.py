"""Leakage between the corpus's search-only driver questions and the eval cases.

An article's ``questions:`` (see :mod:`assistant.retrieval.questions`) are searched beside its
text. A question that restates an eval case would let retrieval score that case from a copy of
it, and the eval would overstate how well drivers' own words are understood. This module finds
such pairs, by shared words and, given an embedder, by meaning, so that a test can keep the
corpus and the datasets apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict

from assistant.evals.dataset import EvalCase
from assistant.ingestion.documents import PolicyDocument
from assistant.retrieval.questions import normalised

#: Share of distinct words two texts have in common (Jaccard) from which they count as the same.
WORD_OVERLAP = 0.4
#: Cosine similarity of their embeddings from which they count as the same.
COSINE = 0.8

_WORD = re.compile(r"[a-z0-9']+")


class Leak(BaseModel):
    """A corpus question too close to an eval case's message."""

    model_config = ConfigDict(frozen=True)

    doc_id: str
    question: str
    case: str
    message: str
    word_overlap: float
    cosine: float | None = None


def _words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def word_overlap(a: str, b: str) -> float:
    """Jaccard overlap of the distinct lower-cased words of ``a`` and ``b``."""
    wa, wb = _words(a), _words(b)
    return len(wa & wb) / len(wa | wb) if wa and wb else 0.0


def find_leaks(
    documents: Sequence[PolicyDocument],
    cases: Sequence[EvalCase],
    *,
    embeddings: Embeddings | None = None,
    max_overlap: float = WORD_OVERLAP,
    max_cosine: float = COSINE,
) -> list[Leak]:
    """Every (question, case) pair at or above ``max_overlap`` shared words or, with
    ``embeddings``, at or above ``max_cosine``; the closest case per question."""
    questions = [(doc.id, q) for doc in documents for q in doc.questions]
    messages = [c for c in cases if c.message.strip()]
    if not questions or not messages:
        return []
    cosines = None
    if embeddings is not None:
        q = normalised(np.asarray(embeddings.embed_documents([text for _, text in questions])))
        m = normalised(np.asarray(embeddings.embed_documents([c.message for c in messages])))
        cosines = q @ m.T
    leaks = []
    for i, (doc_id, question) in enumerate(questions):
        overlaps = [word_overlap(question, c.message) for c in messages]
        j = int(np.argmax(overlaps))
        if cosines is not None and cosines[i].max() >= max_cosine and overlaps[j] < max_overlap:
            j = int(np.argmax(cosines[i]))
        cosine = float(cosines[i, j]) if cosines is not None else None
        if overlaps[j] >= max_overlap or (cosine is not None and cosine >= max_cosine):
            leaks.append(
                Leak(
                    doc_id=doc_id, question=question, case=f"{messages[j].dataset}/{messages[j].id}",
                    message=messages[j].message, word_overlap=round(overlaps[j], 3),
                    cosine=None if cosine is None else round(cosine, 3),
                )
            )
    return leaks
