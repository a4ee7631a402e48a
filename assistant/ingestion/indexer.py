"""Incremental indexing of the corpus into Chroma and BM25.

Each ingest that changes something writes a new *generation* (a new Chroma collection and BM25
folder) holding the unchanged chunks' stored vectors plus freshly embedded ones, then switches
the manifest to it atomically and deletes the old generation. Interrupting an ingest at any
point leaves the previous generation live and usable; only new or edited chunks are embedded.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from assistant.config import Settings
from assistant.errors import AssistantError, BackendError, CorpusError
from assistant.generation.extractive import heading_texts
from assistant.guardrails.classifier import danger_gate_classifier, english_classifiers
from assistant.guardrails.corpus_scan import QuarantinedChunk, scan_chunk
from assistant.guardrails.multilingual import multilingual_classifiers
from assistant.guardrails.policy import load_policy
from assistant.ingestion.chunking import Chunker, embedding_text, unit_embedding_text
from assistant.ingestion.documents import (
    SITUATIONS_FILE,
    DocumentProblem,
    LoadedCorpus,
    PolicyDocument,
    load_corpus,
)
from assistant.ingestion.report import IngestReport, ProgressCallback
from assistant.ingestion.units import split_units
from assistant.retrieval import chroma
from assistant.retrieval.bm25 import Bm25Index
from assistant.retrieval.chunkstore import ChunkStore, Matrix
from assistant.retrieval.embeddings import embedding_model_id
from assistant.retrieval.manifest import (
    DocEntry,
    IndexManifest,
    lines_fingerprint,
    read_manifest,
    write_manifest,
)
from assistant.retrieval.multilingual import (
    PivotIndex,
    collect_pivots,
    default_encoder,
    encode_pivots,
)
from assistant.retrieval.questions import (
    GapIndex,
    IndexedQuestion,
    QuestionIndex,
    SituationIndex,
    nearest_chunks,
)

logger = logging.getLogger("assistant.ingestion")

__all__ = ["Indexer", "IngestReport", "ProgressCallback"]

def _doc_entry(doc: PolicyDocument, chunks: list[Document]) -> DocEntry:
    return DocEntry(
        path=doc.path,
        sha256=doc.sha256,
        title=doc.title,
        version=doc.version,
        effective_date=doc.effective_date,
        journey_stages=list(doc.journey_stages),
        markets=list(doc.markets),
        tags=list(doc.tags),
        supersedes=list(doc.supersedes),
        variant_of=doc.variant_of,
        chunk_ids=[c.metadata["chunk_id"] for c in chunks],
    )


def _question_index(
    documents: list[PolicyDocument],
    chunks_by_doc: dict[str, list[Document]],
    chunk_vectors: dict[str, Matrix],
    question_vectors: dict[str, Matrix],
) -> QuestionIndex:
    """Each document's questions, each pointed at the document's chunk nearest to it: among the
    chunks of the section the front matter names for it (:func:`_in_section`), else among all."""
    questions: list[IndexedQuestion] = []
    rows: list[Matrix] = []
    for doc in documents:
        if not doc.questions:
            continue
        chunks = chunks_by_doc[doc.id]
        chunk_ids = [c.metadata["chunk_id"] for c in chunks]
        matrix = np.asarray([question_vectors[q] for q in doc.questions], dtype=np.float32)
        named = [doc.question_sections.get(q) for q in doc.questions]
        allowed = [[i for i, c in enumerate(chunks) if _in_section(c, n)] if n is not None else [] for n in named]
        nearest = nearest_chunks(matrix, np.asarray([chunk_vectors[c] for c in chunk_ids], dtype=np.float32), allowed)
        questions.extend(
            IndexedQuestion(text=q, doc_id=doc.id, chunk_id=chunk_ids[i]) for q, i in zip(doc.questions, nearest, strict=True)
        )
        rows.append(matrix)
    return QuestionIndex(questions, np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32))


def _in_section(chunk: Document, heading: str) -> bool:
    """Whether ``chunk`` is of the section ``heading`` names: its heading path, one part of it
    ("Section > Subsection"), or the title for the introduction."""
    path = str(chunk.metadata.get("section", ""))
    return heading in (path, *path.split(" > "))


def _situation_index(
    corpus: LoadedCorpus, chunks_by_doc: dict[str, list[Document]], vectors: dict[str, Matrix], dimension: int
) -> tuple[SituationIndex, list[DocumentProblem]]:
    """Each safety situation pointed at the first chunk of its section (the section's heading, or
    one part of a heading path "Section > Subsection"); a situation whose article or section the
    corpus lacks is left out and reported."""
    kept: list[IndexedQuestion] = []
    missing: dict[tuple[str, str], int] = {}
    for situation in corpus.situations:
        chunk = next((c for c in chunks_by_doc.get(situation.doc_id, []) if _in_section(c, situation.section)), None)
        if chunk is None:
            missing[(situation.doc_id, situation.section)] = missing.get((situation.doc_id, situation.section), 0) + 1
            continue
        kept.append(IndexedQuestion(text=situation.text, doc_id=situation.doc_id, chunk_id=chunk.metadata["chunk_id"]))
    problems = [
        DocumentProblem(path=SITUATIONS_FILE, reason=f"{n} situation(s) point at {doc_id!r} > {section!r}, which the corpus does not have")
        for (doc_id, section), n in missing.items()
    ]
    rows = np.asarray([vectors[q.text] for q in kept], dtype=np.float32).reshape(len(kept), dimension)
    return SituationIndex(kept, rows), problems


@dataclass(frozen=True)
class _Previous:
    """The live generation whose vectors an ingest reuses: manifest, chunk store, questions,
    unanswered questions and multilingual pivots."""

    manifest: IndexManifest
    store: ChunkStore
    questions: QuestionIndex
    pivots: PivotIndex | None
    gaps: GapIndex
    situations: SituationIndex


class Indexer:
    """Builds and updates the index of one data folder."""

    def __init__(self, settings: Settings, embeddings: Embeddings) -> None:
        self.settings = settings
        self.embeddings = embeddings
        self.model_id = embedding_model_id(settings)
        self.chunker = Chunker(chunk_tokens=settings.chunk_tokens, chunk_overlap=settings.chunk_overlap)

    def ingest(
        self,
        corpus_dir: Path | None = None,
        *,
        rebuild: bool = False,
        progress: ProgressCallback | None = None,
    ) -> IngestReport:
        """Bring the index up to date with ``corpus_dir``; see the module docstring."""
        started = time.perf_counter()
        folder = corpus_dir or self.settings.resolved_corpus_dir()
        if not folder.is_dir():
            raise CorpusError(f"corpus folder {folder} does not exist")
        corpus = load_corpus(folder)
        if not corpus.documents:
            detail = f" ({len(corpus.problems)} files had problems)" if corpus.problems else ""
            raise CorpusError(f"no usable documents in {folder}{detail}")

        data_dir = self.settings.data_dir
        client = chroma.open_client(data_dir=data_dir, chroma_url=self.settings.chroma_url)
        live = read_manifest_or_none(data_dir)
        previous = None if rebuild else self._usable_previous(live)
        old = previous.manifest if previous else None
        old_docs = old.documents if old else {}

        chunks_by_doc, quarantined = self._split_and_scan(corpus.documents)
        new_ids = {doc.id for doc in corpus.documents}
        added = [d.id for d in corpus.documents if d.id not in old_docs]
        updated = [d.id for d in corpus.documents if d.id in old_docs and old_docs[d.id].sha256 != d.sha256]
        unchanged = [d.id for d in corpus.documents if d.id in old_docs and old_docs[d.id].sha256 == d.sha256]
        removed = sorted(set(old_docs) - new_ids)
        all_chunks = [c for doc in corpus.documents for c in chunks_by_doc[doc.id]]

        gaps = lines_fingerprint(corpus.gap_questions)
        situations = lines_fingerprint([f"{s.text}\t{s.doc_id}\t{s.section}" for s in corpus.situations])
        # pivots built before they held the unanswered questions (kind "gap") are completed: the
        # next generation reuses every vector and embeds only those
        pivots_lack_gaps = (
            self.settings.multilingual and previous is not None and previous.pivots is not None
            and bool(corpus.gap_questions) and not previous.pivots.has_gaps
        )
        if (
            old is not None and not (added or updated or removed) and old.market_names == corpus.market_names
            and old.gaps == gaps and old.situations == situations and not pivots_lack_gaps
        ):
            return IngestReport(
                unchanged=unchanged,
                problems=corpus.problems,
                quarantined=quarantined,
                chunks_total=old.chunk_count,
                generation=old.generation,
                seconds=time.perf_counter() - started,
            )

        # Vectors we already have: every chunk of the live generation, whose id is a content hash.
        reusable: dict[str, Matrix] = {}
        unit_vectors: dict[str, Matrix] = {}
        question_vectors: dict[str, Matrix] = {}
        previous_pivots: PivotIndex | None = None
        previous_headings: dict[str, Matrix] | None = None
        units = {c.metadata["chunk_id"]: split_units(c.page_content) for c in all_chunks}
        if previous is not None:
            wanted = [c.metadata["chunk_id"] for c in all_chunks]
            reusable = {
                cid: np.asarray(v, dtype=np.float32)
                for cid, v in chroma.fetch_embeddings(chroma.get_collection(client, previous.manifest.collection), wanted).items()
            }
            for cid in wanted:
                if previous.store.get(cid) is not None and previous.store.units(cid) == units[cid]:
                    unit_vectors[cid] = previous.store.unit_vectors(cid)
            question_vectors = previous.questions.vector_of() | previous.gaps.vector_of() | previous.situations.vector_of()
            previous_pivots = previous.pivots
            previous_headings = previous.store.heading_vectors
        to_embed = [c for c in all_chunks if c.metadata["chunk_id"] not in reusable]
        unit_jobs = [cid for cid in units if cid not in unit_vectors and units[cid]]
        kept_docs = [doc for doc in corpus.documents if chunks_by_doc[doc.id]]
        # the driver questions of the articles, the questions the corpus does not answer (gaps.yaml)
        # and the situations of drivers in danger (safety-situations.yaml)
        wanted = [*(q for d in kept_docs for q in d.questions), *corpus.gap_questions, *(s.text for s in corpus.situations)]
        question_jobs = list(dict.fromkeys(q for q in wanted if q not in question_vectors))

        sections = {c.metadata["chunk_id"]: c.metadata["section"] for c in all_chunks}
        texts = (
            [embedding_text(c) for c in to_embed]
            + [unit_embedding_text(sections[cid], u) for cid in unit_jobs for u in units[cid]]
            + question_jobs
        )
        embedded = self._embed(texts, progress)
        vectors = dict(reusable)
        for chunk, vector in zip(to_embed, embedded, strict=False):
            vectors[chunk.metadata["chunk_id"]] = vector
        cursor = len(to_embed)
        for cid in unit_jobs:
            count = len(units[cid])
            unit_vectors[cid] = np.asarray(embedded[cursor : cursor + count], dtype=np.float32)
            cursor += count
        for text, vector in zip(question_jobs, embedded[cursor:], strict=True):
            question_vectors[text] = np.asarray(vector, dtype=np.float32)
        for cid in units:
            unit_vectors.setdefault(cid, np.zeros((0, 0), dtype=np.float32))

        generation = max(live.generation if live else 0, _last_generation(data_dir)) + 1
        prefix = self.settings.collection
        name = f"{prefix}-g{generation}"
        dimension = len(next(iter(vectors.values())))
        unit_vectors = {
            cid: m if m.size else np.zeros((0, dimension), dtype=np.float32) for cid, m in unit_vectors.items()
        }
        # Clear half-built generations of interrupted runs; the live one stays until the switch.
        chroma.delete_collections(client, prefix, keep=live.collection if live else None)
        collection = chroma.create_collection(client, name, model_id=self.model_id, dimension=dimension)
        chroma.add_chunks(
            collection,
            ids=[c.metadata["chunk_id"] for c in all_chunks],
            embeddings=[vectors[c.metadata["chunk_id"]] for c in all_chunks],
            documents=[c.page_content for c in all_chunks],
            metadatas=[dict(c.metadata) for c in all_chunks],
        )
        store_dir = data_dir / f"store-g{generation}"
        Bm25Index.build(
            [c.metadata["chunk_id"] for c in all_chunks], [embedding_text(c) for c in all_chunks]
        ).save(store_dir)
        ChunkStore.write(store_dir, all_chunks, units, unit_vectors)
        ChunkStore.write_chunk_vectors(store_dir, [c.metadata["chunk_id"] for c in all_chunks], vectors)
        # the composer's section headings and titles, so that the first answer does not embed them
        _, _, heading_jobs, titles = heading_texts(ChunkStore.read(store_dir))
        heading_jobs = list(dict.fromkeys([*heading_jobs, *(t for _, t in titles)]))
        known_headings = previous_headings if previous_headings is not None else {}
        missing_headings = [t for t in heading_jobs if t not in known_headings]
        fresh_headings = dict(zip(missing_headings, self.embeddings.embed_documents(missing_headings), strict=True))
        ChunkStore.write_heading_vectors(
            store_dir, {t: np.asarray(known_headings.get(t, fresh_headings.get(t)), dtype=np.float32) for t in heading_jobs}
        )
        questions = _question_index(kept_docs, chunks_by_doc, vectors, question_vectors)
        questions.write(store_dir)
        # the corpus's questions it does not answer (gaps.yaml), a feature of the answer's confidence
        gap_rows = np.asarray([question_vectors[q] for q in corpus.gap_questions], dtype=np.float32)
        GapIndex(corpus.gap_questions, gap_rows.reshape(len(corpus.gap_questions), dimension)).write(store_dir)
        # which section's steps a driver escalated for safety is quoted (safety-situations.yaml)
        situation_index, situation_problems = _situation_index(corpus, chunks_by_doc, question_vectors, dimension)
        situation_index.write(store_dir)
        # the English guardrail classifiers are trained (or found in their cache) now, so no
        # driver's message waits for them
        policy = load_policy(self.settings.guardrail_policy)
        gate = danger_gate_classifier(self.embeddings, policy, cache_dir=data_dir / "guardrails", model_id=self.model_id)
        for classifier in (*english_classifiers(self.embeddings, cache_dir=data_dir / "guardrails", model_id=self.model_id), gate):
            classifier.ready()
        pivot_stats: tuple[int, int, float] = (0, 0, 0.0)
        if self.settings.multilingual:
            pivots = collect_pivots(
                ((q.text, q.doc_id) for q in questions.questions),
                ((str(c.metadata["doc_id"]), str(c.metadata.get("section") or ""), units[c.metadata["chunk_id"]])
                 for c in all_chunks),
                corpus.gap_questions,
            )
            known = previous_pivots.vector_of() if previous_pivots is not None else {}
            pivot_started = time.perf_counter()
            encode_pivots(pivots, default_encoder(), known=known, progress=progress).write(store_dir)
            # the multilingual classifier's example vectors too, so no driver's message waits for them
            for multilingual in multilingual_classifiers(data_dir / "guardrails"):
                multilingual.vectors()
            pivot_stats = (len(pivots), len({p.text for p in pivots} - set(known)), time.perf_counter() - pivot_started)

        manifest = IndexManifest(
            generation=generation,
            collection=name,
            store_dir=store_dir.name,
            embedding_model=self.model_id,
            dimension=dimension,
            chunker=self.chunker.fingerprint,
            built_at=datetime.now(UTC),
            corpus_dir=str(folder),
            documents={doc.id: _doc_entry(doc, chunks_by_doc[doc.id]) for doc in corpus.documents},
            market_names=corpus.market_names,
            gaps=gaps,
            situations=situations,
        )
        write_manifest(data_dir, manifest)  # the switch: from here on the new generation is live

        chroma.delete_collections(client, prefix, keep=name)
        for stale in data_dir.glob("store-g*"):
            if stale.name != store_dir.name:
                shutil.rmtree(stale, ignore_errors=True)
        return IngestReport(
            added=added,
            updated=updated,
            removed=removed,
            unchanged=unchanged,
            problems=[*corpus.problems, *situation_problems],
            quarantined=quarantined,
            chunks_total=len(all_chunks),
            chunks_embedded=len(to_embed),
            units_embedded=len(texts) - len(to_embed) - len(question_jobs),
            questions_total=len(questions),
            questions_embedded=len(question_jobs),
            gap_questions_total=len(corpus.gap_questions),
            situations_total=len(situation_index),
            rebuilt=True,
            pivots_total=pivot_stats[0],
            pivots_embedded=pivot_stats[1],
            pivot_seconds=pivot_stats[2],
            generation=generation,
            seconds=time.perf_counter() - started,
        )

    def _split_and_scan(
        self, documents: list[PolicyDocument]
    ) -> tuple[dict[str, list[Document]], list[QuarantinedChunk]]:
        """Each document's chunks, without those that carry instructions aimed at a model."""
        policy = load_policy(self.settings.guardrail_policy)
        chunks_by_doc: dict[str, list[Document]] = {}
        quarantined: list[QuarantinedChunk] = []
        for doc in documents:
            kept = []
            for chunk in self.chunker.split(doc):
                reason = scan_chunk(chunk.page_content, policy)
                if reason is None:
                    kept.append(chunk)
                else:
                    section = str(chunk.metadata.get("section", doc.title))
                    quarantined.append(QuarantinedChunk(doc_id=doc.id, path=doc.path, section=section, reason=reason))
                    logger.warning("quarantined a chunk of %s (%s): %s", doc.path, section, reason)
            chunks_by_doc[doc.id] = kept
        return chunks_by_doc, quarantined

    def _embed(self, texts: list[str], progress: ProgressCallback | None) -> Matrix:
        """Embed ``texts`` in batches of similar length (a batch is padded to its longest text,
        so corpus order would pad short units to long chunks), reporting progress; remote
        failures become BackendError. Vectors come back as the rows of one float32 matrix, in
        the order of ``texts`` (as Python lists of floats they took 8x the memory: 7 GB for the
        units of 100k chunks)."""
        out: Matrix | None = None
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batch = max(1, self.settings.embedding_batch_size)
        if progress:
            progress(0, len(texts))
        for start in range(0, len(order), batch):
            indexes = order[start : start + batch]
            try:
                vectors = self.embeddings.embed_documents([texts[i] for i in indexes])
            except AssistantError:
                raise
            except Exception as exc:  # a remote embedder's HTTP or auth error
                raise BackendError(f"embedding failed: {exc}") from exc
            if len(vectors) != len(indexes):
                raise BackendError(f"the embedder returned {len(vectors)} vectors for {len(indexes)} texts")
            rows = np.asarray(vectors, dtype=np.float32)
            if out is None:
                out = np.zeros((len(texts), rows.shape[1]), dtype=np.float32)
            out[indexes] = rows
            if progress:
                progress(min(start + batch, len(texts)), len(texts))
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)

    def _usable_previous(self, manifest: IndexManifest | None) -> _Previous | None:
        """The live generation, read, if its vectors can be reused (same embedder and chunking)."""
        if manifest is None:
            return None
        if manifest.embedding_model != self.model_id or manifest.chunker != self.chunker.fingerprint:
            return None
        folder = self.settings.data_dir / manifest.store_dir
        if not folder.is_dir():
            return None
        try:  # a live generation whose files are unreadable is rebuilt, not reused
            Bm25Index.load(folder)
            return _Previous(
                manifest, ChunkStore.read(folder), QuestionIndex.read(folder), PivotIndex.read(folder), GapIndex.read(folder),
                SituationIndex.read(folder),
            )
        except AssistantError as exc:
            logger.warning("the live index is unreadable, rebuilding it: %s", exc)
            return None


def read_manifest_or_none(data_dir: Path) -> IndexManifest | None:
    """The manifest, or ``None`` when it is missing or unreadable (ingest then rebuilds)."""
    try:
        return read_manifest(data_dir)
    except AssistantError:
        return None


def _last_generation(data_dir: Path) -> int:
    """The highest generation number left on disk (so a rebuild never reuses a name)."""
    numbers = [int(p.name.removeprefix("store-g")) for p in data_dir.glob("store-g*") if p.name[7:].isdigit()]
    return max(numbers, default=0)
