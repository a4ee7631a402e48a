"""The baseline every benchmark compares against, and the percentile both sides are read with.

The baseline is what a developer would write first: ``langchain_chroma.Chroma.from_documents``
over the same chunks (title and section prepended, as ours embeds them) with the same local
embedder, queried with ``Chroma.similarity_search(q, k=5)``.
"""

from __future__ import annotations

from pathlib import Path

import chromadb
from chromadb.config import Settings as ChromaSettings
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from assistant.ingestion.chunking import embedding_text


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def build_baseline(chunks: list[Document], embedder: Embeddings, folder: Path) -> Chroma:
    """A plain LangChain Chroma store over ``chunks`` in ``folder``."""
    client = chromadb.PersistentClient(path=str(folder), settings=ChromaSettings(anonymized_telemetry=False))
    return Chroma.from_documents(
        [c.model_copy(update={"page_content": embedding_text(c)}) for c in chunks],
        embedding=embedder,
        client=client,
        collection_name="baseline",
        collection_metadata={"hnsw:space": "cosine"},
    )
