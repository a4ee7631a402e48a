"""Exact dense search in numpy: the offline default's vector search for an index that fits in memory.

The chunk vectors (unit length) are one matrix; a query is one matrix product and a partial sort,
and the document filter (market, superseded versions) is a boolean mask over documents, so a
search costs the same whatever the filter. For the shipped corpus it takes well under a
millisecond, against several for an HNSW query through Chroma, and it returns the true nearest
chunks, which HNSW approximates. :class:`~assistant.retrieval.hybrid.HybridRetriever` chooses it
by the index's size (``Settings.exact_search_max_chunks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document

from assistant.retrieval.embeddings import LruCache

Matrix = np.ndarray[Any, np.dtype[Any]]


def top_rows(scores: Matrix, k: int) -> Matrix:
    """The rows of the ``k`` highest ``scores``, best first, ties in row order: what a stable
    sort of every row gives, in time linear in the rows (a partition, then a sort of ``k``)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]  # the k-th highest score
    above = np.flatnonzero(scores > kth)
    rows = np.concatenate([above, np.flatnonzero(scores == kth)[: k - len(above)]])
    ordered: Matrix = rows[np.lexsort((rows, -scores[rows]))]
    return ordered


class DocumentMasks:
    """Row masks for document filters over rows that each belong to a document.

    A driver's filter (the general articles and their market's) is the same list on every
    request, so each distinct filter's mask is built once and kept (the last 64): a filtered
    search then costs the same however many documents are allowed.
    """

    def __init__(self, doc_of_row: Sequence[str]) -> None:
        self.names = sorted(set(doc_of_row))
        number = {name: i for i, name in enumerate(self.names)}
        self.row_doc = np.asarray([number[d] for d in doc_of_row], dtype=np.int64)
        self._kept: LruCache[Matrix] = LruCache(64)

    def mask(self, doc_ids: Sequence[str]) -> Matrix:
        """True for each row whose document is in ``doc_ids``."""
        key = tuple(doc_ids)
        mask = self._kept.get(key)
        if mask is None:
            wanted = set(key)
            mask = np.asarray([name in wanted for name in self.names], dtype=bool)[self.row_doc]
            self._kept.put(key, mask)
        return mask


class ExactSearch:
    """Nearest chunks by cosine similarity over vectors held in memory."""

    exact = True

    def __init__(self, documents: Sequence[Document], vectors: Matrix) -> None:
        if len(documents) != len(vectors):
            raise ValueError(f"{len(documents)} chunks but {len(vectors)} vectors")
        matrix = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True) if len(matrix) else np.ones((0, 1), np.float32)
        self.vectors = matrix / np.clip(norms, 1e-12, None)
        self.documents = list(documents)
        self.masks = DocumentMasks([str(d.metadata.get("doc_id", "")) for d in self.documents])
        self.chunk_ids = [str(d.metadata.get("chunk_id", "")) for d in self.documents]

    def search(self, vector: Sequence[float], *, k: int, doc_ids: list[str] | None) -> list[tuple[Document, float]]:
        """The ``k`` nearest chunks as (document, cosine similarity), optionally within ``doc_ids``."""
        return [(self.documents[i], s) for i, s in self._nearest(vector, k, doc_ids)]

    def search_ids(self, vector: Sequence[float], *, k: int, doc_ids: list[str] | None) -> list[tuple[str, float]]:
        """As :meth:`search`, with each chunk's id instead of the chunk."""
        return [(self.chunk_ids[i], s) for i, s in self._nearest(vector, k, doc_ids)]

    def _nearest(self, vector: Sequence[float], k: int, doc_ids: list[str] | None) -> list[tuple[int, float]]:
        if doc_ids is not None and not doc_ids:
            return []
        query = np.asarray(vector, dtype=np.float32)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        similarity = self.vectors @ query
        if doc_ids is not None:
            similarity = np.where(self.masks.mask(doc_ids), similarity, -np.inf)
        k = min(k, int(np.isfinite(similarity).sum()))
        return [(int(i), float(similarity[i])) for i in top_rows(similarity, k)]
