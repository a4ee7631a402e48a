"""The index manifest: which collection and BM25 files are live, and what each document was.

Ingestion writes a new generation of the index beside the old one and then replaces this small
JSON file atomically, so an interrupted ingest leaves the previous index in use.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import date, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistant.errors import IndexNotReadyError
from assistant.request import Stage

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


class DocEntry(BaseModel):
    """What the index knows about one document (filters read these, not the chunks)."""

    model_config = ConfigDict(frozen=True)

    path: str
    sha256: str
    title: str
    version: int
    effective_date: date
    journey_stages: list[Stage]
    markets: list[str]
    tags: list[str]
    supersedes: list[str] = Field(default_factory=list)
    variant_of: str | None = None
    chunk_ids: list[str]

    @property
    def is_general(self) -> bool:
        """True when the document applies in every market."""
        return "all" in self.markets


class IndexManifest(BaseModel):
    """The live generation of the index."""

    model_config = ConfigDict(frozen=True)

    format_version: int = FORMAT_VERSION
    generation: int
    collection: str
    store_dir: str
    embedding_model: str
    dimension: int
    chunker: str
    built_at: datetime
    corpus_dir: str
    documents: dict[str, DocEntry]
    market_names: dict[str, list[str]] = Field(default_factory=dict)
    #: sha256 of the corpus's questions it does not answer (``gaps.yaml``) as indexed; empty
    #: when it has none (see :func:`lines_fingerprint`).
    gaps: str = ""
    #: sha256 of the corpus's safety situations (``safety-situations.yaml``) as indexed, each
    #: "text<TAB>doc_id<TAB>section"; empty when it has none (see :func:`lines_fingerprint`).
    situations: str = ""

    @property
    def superseded_ids(self) -> frozenset[str]:
        """Documents that a newer document in the index replaces."""
        return frozenset(old for entry in self.documents.values() for old in entry.supersedes)

    @property
    def chunk_count(self) -> int:
        """Number of chunks in this generation."""
        return sum(len(e.chunk_ids) for e in self.documents.values())


def lines_fingerprint(lines: list[str]) -> str:
    """What the manifest records for a list the corpus gives beside its articles (the unanswered
    questions of :attr:`IndexManifest.gaps`, the situations of :attr:`IndexManifest.situations`):
    the sha256 of its lines, empty for none."""
    return hashlib.sha256("\n".join(lines).encode()).hexdigest() if lines else ""


def manifest_path(data_dir: Path) -> Path:
    """Where the manifest of an index folder lives."""
    return data_dir / MANIFEST_NAME


def read_manifest(data_dir: Path) -> IndexManifest | None:
    """The live manifest, or ``None`` if no index was ever completed here."""
    path = manifest_path(data_dir)
    if not path.exists():
        return None
    try:
        return IndexManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, OSError, ValueError) as exc:
        raise IndexNotReadyError(
            f"the index manifest {path} is unreadable ({exc.__class__.__name__}); "
            "rebuild it with `assistant ingest --rebuild`"
        ) from exc


def write_manifest(data_dir: Path, manifest: IndexManifest) -> None:
    """Replace the manifest atomically (write a temp file, fsync, rename)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".json", dir=data_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(manifest.model_dump(mode="json"), indent=1, sort_keys=True))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, manifest_path(data_dir))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
