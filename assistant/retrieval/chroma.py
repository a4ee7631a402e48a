"""The Chroma vector store: embedded ``PersistentClient`` by default, ``HttpClient`` by URL.

Collections use cosine space and record the embedding model that built them; opening one with
a different query model raises :class:`~assistant.errors.IndexMismatchError`. Chroma's own
exceptions are wrapped in :class:`~assistant.errors.BackendError` here, at the edge.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import chromadb
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings as ChromaSettings
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from assistant.errors import (
    BackendError,
    ConfigurationError,
    IndexMismatchError,
    IndexNotReadyError,
)
from assistant.retrieval.exact import ExactSearch

_COPY_BATCH = 500
_Hit = TypeVar("_Hit")
#: An HNSW search with a document filter first fetches this many times ``k`` chunks unfiltered.
OVERFETCH = 4


def open_client(*, data_dir: Path, chroma_url: str | None) -> ClientAPI:
    """An embedded client under ``data_dir/chroma``, or an HTTP client for ``chroma_url``."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    try:
        if chroma_url:
            url = urlparse(chroma_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ConfigurationError(f"ASSISTANT_CHROMA_URL must be http(s)://host:port, got {chroma_url!r}")
            return chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
        data_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(data_dir / "chroma"), settings=chroma_settings)
    except ConfigurationError:
        raise
    except Exception as exc:  # chromadb raises many unrelated types at connect time
        repair = "is the server up?" if chroma_url else "if the files are damaged, rebuild with `assistant ingest --rebuild`"
        raise BackendError(f"could not open Chroma ({chroma_url or data_dir}): {exc}; {repair}") from exc


def create_collection(client: ClientAPI, name: str, *, model_id: str, dimension: int) -> Collection:
    """A fresh cosine-space collection stamped with the embedding model that fills it."""
    try:
        return client.create_collection(
            name,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"embedding_model": model_id, "dimension": dimension},
            embedding_function=None,
        )
    except Exception as exc:
        raise BackendError(f"could not create Chroma collection {name!r}: {exc}") from exc


def get_collection(client: ClientAPI, name: str) -> Collection:
    """An existing collection, or :class:`IndexNotReadyError`."""
    try:
        return client.get_collection(name, embedding_function=None)
    except Exception as exc:
        raise IndexNotReadyError(
            f"the Chroma collection {name!r} is missing or unreadable ({exc}); "
            "rebuild the index with `assistant ingest --rebuild`"
        ) from exc


def check_model(collection: Collection, query_model: str) -> None:
    """Refuse to query a collection built by another embedding model."""
    index_model = (collection.metadata or {}).get("embedding_model")
    if index_model != query_model:
        raise IndexMismatchError(index_model=str(index_model), query_model=query_model)


def add_chunks(
    collection: Collection,
    ids: list[str],
    embeddings: Sequence[Sequence[float] | np.ndarray[Any, Any]],
    documents: list[str],
    metadatas: list[dict[str, Any]],
) -> None:
    """Add chunks with precomputed embeddings."""
    try:
        for start in range(0, len(ids), _COPY_BATCH):
            end = start + _COPY_BATCH
            collection.add(
                ids=ids[start:end],
                embeddings=embeddings[start:end],  # type: ignore[arg-type]
                documents=documents[start:end],
                metadatas=metadatas[start:end],  # type: ignore[arg-type]
            )
    except Exception as exc:
        raise BackendError(f"could not write to Chroma collection {collection.name!r}: {exc}") from exc


def fetch_embeddings(collection: Collection, ids: Iterable[str]) -> dict[str, list[float]]:
    """Stored embeddings by chunk id (ids absent from the collection are left out)."""
    out: dict[str, list[float]] = {}
    for batch in _batched(list(ids), _COPY_BATCH):
        try:
            got = collection.get(ids=batch, include=["embeddings"])  # type: ignore[list-item]
        except Exception as exc:
            raise BackendError(f"could not read Chroma collection {collection.name!r}: {exc}") from exc
        vectors = got.get("embeddings")
        if vectors is None:
            continue
        for cid, vector in zip(got["ids"], vectors, strict=True):
            out[cid] = [float(x) for x in vector]
    return out


def delete_collections(client: ClientAPI, prefix: str, keep: str | None) -> list[str]:
    """Delete this index's collections other than ``keep`` (old or half-built generations)."""
    deleted: list[str] = []
    try:
        names = [c.name if hasattr(c, "name") else str(c) for c in client.list_collections()]
    except Exception:
        return deleted
    for name in names:
        if name.startswith(f"{prefix}-g") and name != keep:
            try:
                client.delete_collection(name)
                deleted.append(name)
            except Exception:
                continue  # best effort: a leftover collection is harmless
    return deleted


class DenseSearch:
    """Nearest-neighbour search over one collection.

    A collection of up to ``exact_max`` chunks is searched exactly
    (:class:`~assistant.retrieval.exact.ExactSearch`) over its vectors loaded once into memory
    (for an index whose store has no vectors of its own: see
    :class:`~assistant.retrieval.hybrid.HybridRetriever`); a larger one through LangChain's
    ``Chroma`` vector store (HNSW). Both return cosine similarities.
    """

    def __init__(
        self, client: ClientAPI, collection_name: str, embeddings: Embeddings, *, exact_max: int = 0,
        doc_of: Mapping[str, str] | None = None,
    ) -> None:
        self.doc_of = doc_of  # chunk id -> document id, when the caller has it: ids-only searches
        self.store = Chroma(
            client=client,
            collection_name=collection_name,
            embedding_function=embeddings,
            create_collection_if_not_exists=False,
        )
        self.exact_max = exact_max
        self._exact: ExactSearch | None = None
        self._count = 0
        self._checked = False
        self._lock = threading.Lock()

    def _exact_index(self) -> ExactSearch | None:
        with self._lock:
            if not self._checked:
                collection = self.store._collection
                try:
                    self._count = collection.count()  # an index generation never changes
                    if 0 < self._count <= self.exact_max:
                        got = collection.get(include=["embeddings", "documents", "metadatas"])  # type: ignore[list-item]
                        metadatas = got["metadatas"] or [{} for _ in got["ids"]]
                        texts = got["documents"] or ["" for _ in got["ids"]]
                        documents = [
                            Document(page_content=text or "", metadata=dict(meta or {}), id=cid)
                            for cid, text, meta in zip(got["ids"], texts, metadatas, strict=True)
                        ]
                        self._exact = ExactSearch(documents, np.asarray(got["embeddings"], dtype=np.float32))
                except Exception as exc:
                    raise BackendError(f"could not read Chroma collection {collection.name!r}: {exc}") from exc
                self._checked = True
            return self._exact

    @property
    def exact(self) -> bool:
        """True when searches are exact (numpy over the vectors in memory)."""
        return self._exact_index() is not None

    def search(
        self, vector: list[float], *, k: int, doc_ids: list[str] | None
    ) -> list[tuple[Document, float]]:
        """The ``k`` nearest chunks as (document, cosine similarity), optionally within ``doc_ids``."""
        if doc_ids is not None and not doc_ids:
            return []
        if (exact := self._exact_index()) is not None:
            return exact.search(vector, k=k, doc_ids=doc_ids)
        return self._post_filtered(
            k, doc_ids,
            nearest=lambda n: self._query(vector, n, None),
            doc_of=lambda hit: hit[0].metadata.get("doc_id"),
            filtered=lambda ids: self._query(vector, k, {"doc_id": {"$in": ids}}),
        )

    def search_ids(self, vector: list[float], *, k: int, doc_ids: list[str] | None) -> list[tuple[str, float]]:
        """The ``k`` nearest chunks as (chunk id, cosine similarity), optionally within
        ``doc_ids``. With ``doc_of`` known, HNSW is asked for ids and distances only (no texts
        or metadata read) and the document filter applied here, as :meth:`search` does."""
        if doc_ids is not None and not doc_ids:
            return []
        if (exact := self._exact_index()) is not None:
            return exact.search_ids(vector, k=k, doc_ids=doc_ids)
        doc_of = self.doc_of
        if doc_of is None:
            return [(str(doc.metadata["chunk_id"]), sim) for doc, sim in self.search(vector, k=k, doc_ids=doc_ids)]
        return self._post_filtered(
            k, doc_ids,
            nearest=lambda n: self._query_ids(vector, n),
            doc_of=lambda hit: doc_of.get(hit[0]),
            filtered=lambda ids: [(str(d.metadata["chunk_id"]), s) for d, s in self._query(vector, k, {"doc_id": {"$in": ids}})],
        )

    @staticmethod
    def _post_filtered(
        k: int, doc_ids: list[str] | None, *, nearest: Callable[[int], list[_Hit]],
        doc_of: Callable[[_Hit], str | None], filtered: Callable[[list[str]], list[_Hit]],
    ) -> list[_Hit]:
        """The ``k`` nearest hits within ``doc_ids``. Most of the index is open to a driver (the
        general articles and their market's), so the nearest OVERFETCH * k chunks, unfiltered,
        nearly always hold the k nearest allowed ones: one plain HNSW query, filtered here. A
        filter on every allowed id makes Chroma build and check a list as long as the index
        (hundreds of ms at 100k chunks); it runs only when too few of the nearest are allowed."""
        if doc_ids is None:
            return nearest(k)
        wanted = set(doc_ids)
        fetch = k * OVERFETCH
        hits = nearest(fetch)
        kept = [hit for hit in hits if doc_of(hit) in wanted]
        if len(kept) >= k or len(hits) < fetch:
            return kept[:k]
        return filtered(doc_ids)

    def _query_ids(self, vector: list[float], k: int) -> list[tuple[str, float]]:
        collection = self.store._collection
        count = self._count  # counted once, by the first search (_exact_index)
        if count == 0:
            return []
        try:
            got = collection.query(
                query_embeddings=[vector], n_results=min(k, count), include=["distances"]  # type: ignore[arg-type, list-item]
            )
        except Exception as exc:
            raise BackendError(f"Chroma query failed: {exc}") from exc
        distances = (got.get("distances") or [[]])[0]
        return [(str(cid), 1.0 - float(d)) for cid, d in zip(got["ids"][0], distances, strict=True)]

    def _query(self, vector: list[float], k: int, where: dict[str, Any] | None) -> list[tuple[Document, float]]:
        try:
            hits = self.store.similarity_search_by_vector_with_relevance_scores(vector, k=k, filter=where)
        except Exception as exc:
            raise BackendError(f"Chroma query failed: {exc}") from exc
        return [(doc, 1.0 - float(distance)) for doc, distance in hits]


def _batched(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
