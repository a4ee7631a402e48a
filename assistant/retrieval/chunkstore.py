"""The chunks of one index generation: texts, answer units and unit vectors.

Written by ingestion beside the BM25 files and loaded once per process by the retriever and the
extractive composer. Unit vectors are stored as float16 and memory-mapped.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document

from assistant.errors import IndexNotReadyError

CHUNKS_FILE = "chunks.jsonl"
VECTORS_FILE = "unit_vectors.npy"
#: The chunks' own vectors, rows in the order of :data:`CHUNKS_FILE` (float32): exact dense search
#: reads them without opening Chroma.
CHUNK_VECTORS_FILE = "chunk_vectors.npy"
#: The composer's section heading and title vectors, computed at ingest (a cache: without it, or
#: when it is damaged, they are embedded on the first answer).
HEADINGS_FILE = "heading_vectors.npz"

logger = logging.getLogger("assistant.retrieval")

Matrix = np.ndarray[Any, np.dtype[Any]]


class ChunkStore:
    """Chunk texts and metadata by chunk id, with each chunk's answer units and their vectors."""

    def __init__(self, chunks: dict[str, Document], units: dict[str, list[str]], offsets: dict[str, int], vectors: Matrix) -> None:
        self.chunks = chunks
        self._units = units
        self._offsets = offsets
        self._vectors = vectors
        self._by_doc: dict[str, list[str]] = {}
        for cid, chunk in chunks.items():
            self._by_doc.setdefault(str(chunk.metadata.get("doc_id")), []).append(cid)
        for ids in self._by_doc.values():
            ids.sort(key=lambda c: int(chunks[c].metadata.get("position", 0)))
        #: Section heading and title texts -> vectors, from :data:`HEADINGS_FILE` when present.
        self.heading_vectors: dict[str, Matrix] = {}

    @staticmethod
    def write_chunk_vectors(folder: Path, chunk_ids: list[str], vectors: Mapping[str, Sequence[float] | Matrix]) -> None:
        """Write the chunks' vectors (:data:`CHUNK_VECTORS_FILE`), rows in ``chunk_ids`` order (the
        order :meth:`write` was given)."""
        matrix = np.asarray([vectors[cid] for cid in chunk_ids], dtype=np.float32)
        tmp = folder / f".{CHUNK_VECTORS_FILE}.tmp.npy"
        np.save(tmp, matrix)
        os.replace(tmp, folder / CHUNK_VECTORS_FILE)

    def chunk_vectors(self, folder: Path) -> Matrix | None:
        """The chunks' vectors in :attr:`chunks` order, or ``None`` when the store has none (an
        index built before they were kept) or they do not fit it (damaged: a warning names the
        repair, and the caller searches Chroma instead)."""
        path = folder / CHUNK_VECTORS_FILE
        if not path.exists():
            return None
        try:
            vectors = np.load(path, mmap_mode="r")
            if vectors.ndim != 2 or vectors.shape[0] != len(self.chunks):
                raise ValueError(f"{vectors.shape[0]} rows for {len(self.chunks)} chunks")
        except (OSError, ValueError, EOFError) as exc:
            logger.warning("%s is damaged (%s): searching Chroma instead; `assistant ingest --rebuild` writes it again",
                           path, exc)
            return None
        return np.asarray(vectors, dtype=np.float32)

    @staticmethod
    def write_heading_vectors(folder: Path, vectors: dict[str, Matrix]) -> None:
        """Write the composer's heading vectors (:data:`HEADINGS_FILE`) beside the store."""
        texts = list(vectors)
        matrix = np.asarray([vectors[t] for t in texts], dtype=np.float32).reshape(len(texts), -1)
        tmp = folder / f".{HEADINGS_FILE}.tmp.npz"
        np.savez(tmp, texts=np.asarray(texts, dtype=str), vectors=matrix)
        os.replace(tmp, folder / HEADINGS_FILE)

    def _read_heading_vectors(self, folder: Path) -> None:
        path = folder / HEADINGS_FILE
        if not path.exists():
            return
        try:
            with np.load(path, allow_pickle=False) as stored:
                texts, vectors = [str(t) for t in stored["texts"]], np.asarray(stored["vectors"], dtype=np.float32)
            if len(texts) != len(vectors):
                raise ValueError("texts and vectors differ in length")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            logger.warning("%s is damaged (%s): headings are embedded on the first answer instead; "
                           "`assistant ingest --rebuild` writes it again", path, exc)
            return
        self.heading_vectors = dict(zip(texts, vectors, strict=True))

    def get(self, chunk_id: str) -> Document | None:
        """The chunk, or ``None``."""
        return self.chunks.get(chunk_id)

    def doc_chunks(self, doc_id: str) -> list[Document]:
        """All chunks of one document, in reading order."""
        return [self.chunks[cid] for cid in self._by_doc.get(doc_id, [])]

    def units(self, chunk_id: str) -> list[str]:
        """The chunk's answer units in reading order."""
        return self._units.get(chunk_id, [])

    def unit_vectors(self, chunk_id: str) -> Matrix:
        """One normalised vector per unit (rows align with :meth:`units`)."""
        start = self._offsets.get(chunk_id, 0)
        return np.asarray(self._vectors[start : start + len(self.units(chunk_id))], dtype=np.float32)

    @staticmethod
    def write(folder: Path, chunks: list[Document], units: dict[str, list[str]], vectors: dict[str, Matrix]) -> None:
        """Write chunks, their units and unit vectors (``vectors[chunk_id]`` has one row per unit)."""
        folder.mkdir(parents=True, exist_ok=True)
        rows: list[Matrix] = []
        offset = 0
        tmp = folder / f".{CHUNKS_FILE}.tmp"
        with tmp.open("w", encoding="utf-8") as handle:
            for chunk in chunks:
                cid = chunk.metadata["chunk_id"]
                record = {"text": chunk.page_content, **chunk.metadata, "units": units[cid], "unit_offset": offset}
                handle.write(json.dumps(record) + "\n")
                if units[cid]:
                    rows.append(np.asarray(vectors[cid], dtype=np.float16))
                    offset += len(units[cid])
        dim = rows[0].shape[1] if rows else 0
        matrix = np.concatenate(rows) if rows else np.zeros((0, dim), dtype=np.float16)
        vec_tmp = folder / f".{VECTORS_FILE}.tmp.npy"
        np.save(vec_tmp, matrix)
        os.replace(vec_tmp, folder / VECTORS_FILE)
        os.replace(tmp, folder / CHUNKS_FILE)

    @classmethod
    def read(cls, folder: Path) -> ChunkStore:
        """Load a store written by :meth:`write`."""
        try:
            chunks: dict[str, Document] = {}
            units: dict[str, list[str]] = {}
            offsets: dict[str, int] = {}
            for line in (folder / CHUNKS_FILE).read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                text = record.pop("text")
                cid = record["chunk_id"]
                units[cid] = record.pop("units")
                offsets[cid] = record.pop("unit_offset")
                chunks[cid] = Document(page_content=text, metadata=record)
            vectors = np.load(folder / VECTORS_FILE, mmap_mode="r")
        except (OSError, ValueError, KeyError) as exc:
            raise IndexNotReadyError(
                f"the chunk store in {folder} is missing or corrupt ({exc}); "
                "rebuild it with `assistant ingest --rebuild`"
            ) from exc
        store = cls(chunks, units, offsets, vectors)
        store._read_heading_vectors(folder)
        return store
