"""Splitting documents into retrievable chunks: by Markdown headings first, then by tokens.

Each chunk is a LangChain ``Document`` whose metadata carries ``chunk_id`` (a content hash, so
ids are stable across runs), ``doc_id``, ``title``, ``section`` and ``position``.
"""

from __future__ import annotations

import hashlib

from langchain_core.documents import Document
from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from assistant.ingestion.documents import PolicyDocument
from assistant.tokens import ENCODING_NAME

_HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3")]


def chunk_id_for(doc_id: str, section: str, text: str) -> str:
    """A stable id from the chunk's content: same text in the same place, same id."""
    digest = hashlib.sha256(f"{doc_id}\x00{section}\x00{text}".encode()).hexdigest()
    return f"{doc_id}:{digest[:16]}"


def embedding_text(chunk: Document) -> str:
    """What gets embedded and indexed for BM25: the chunk with its title and section as context."""
    meta = chunk.metadata
    heading = meta["title"] if meta["section"] == meta["title"] else f"{meta['title']} - {meta['section']}"
    return f"{heading}\n{chunk.page_content}"


def unit_embedding_text(section: str, unit: str) -> str:
    """What gets embedded for one answer unit: the unit with its section heading for topic."""
    return f"{section}: {unit}"


class Chunker:
    """Splits :class:`PolicyDocument` bodies into token-bounded, heading-aware chunks."""

    def __init__(self, *, chunk_tokens: int, chunk_overlap: int) -> None:
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self._headings = MarkdownHeaderTextSplitter(_HEADERS, strip_headers=True)
        self._tokens = RecursiveCharacterTextSplitter.from_tiktoken_encoder(
            encoding_name=ENCODING_NAME,
            chunk_size=chunk_tokens,
            chunk_overlap=chunk_overlap,
            separators=["\n\n", "\n", ". ", "; ", ", ", " ", ""],
        )

    @property
    def fingerprint(self) -> str:
        """Identifies the chunking parameters; a change forces re-chunking."""
        return f"md-headings+tiktoken:{ENCODING_NAME}:{self.chunk_tokens}:{self.chunk_overlap}"

    def split(self, doc: PolicyDocument) -> list[Document]:
        """The chunks of one document, in reading order."""
        chunks: list[Document] = []
        seen: set[str] = set()
        for part in self._headings.split_text(doc.body):
            headers = part.metadata
            section = headers.get("h3") and f"{headers.get('h2', '')} > {headers['h3']}".strip(" >")
            section = section or headers.get("h2") or headers.get("h1") or doc.title
            for piece in self._tokens.split_text(part.page_content):
                text = piece.strip()
                if not text:
                    continue
                cid = chunk_id_for(doc.id, section, text)
                if cid in seen:  # the same text twice in one section: keep one
                    continue
                seen.add(cid)
                chunks.append(
                    Document(
                        page_content=text,
                        metadata={
                            "chunk_id": cid,
                            "doc_id": doc.id,
                            "title": doc.title,
                            "section": section,
                            "position": len(chunks),
                        },
                    )
                )
        return chunks
