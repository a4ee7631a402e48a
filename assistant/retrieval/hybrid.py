"""The default retriever: dense (Chroma) + keyword (BM25), fused by RRF, shaped by the journey.

When the journey has an order, the message is also searched with the order's kind ("alcohol
order"), in the same model call, and that ranking joins the fusion. (Each sentence of a long
message was searched on its own too, until it stopped helping: without it the sealed eval
numbers held and the tuning ones rose, at one model row less a request.)

Articles may list the questions they answer in drivers' words (:mod:`assistant.retrieval.questions`):
the documents of the questions closest to the message get one more vote when documents are
ranked, which finds the article for a situation described in words the article never uses.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_core.embeddings import Embeddings

from assistant.config import Settings
from assistant.errors import IndexMismatchError, IndexNotReadyError
from assistant.request import JourneyContext
from assistant.retrieval.base import Passage, RetrievalResult
from assistant.retrieval.bm25 import Bm25Index
from assistant.retrieval.chunkstore import ChunkStore
from assistant.retrieval.embeddings import embed_queries, embedding_model_id
from assistant.retrieval.exact import DocumentMasks, ExactSearch
from assistant.retrieval.fusion import reciprocal_rank_fusion
from assistant.retrieval.journey import (
    Boost,
    JourneySignals,
    allowed_documents,
    chunk_boosts,
    doc_boosts,
)
from assistant.retrieval.manifest import IndexManifest, read_manifest
from assistant.retrieval.multilingual import (
    Answerability,
    CrossLingual,
    MultilingualEncoder,
    PivotIndex,
    default_encoder,
    encode_pivots,
    pivots_of_store,
)
from assistant.retrieval.questions import GapIndex, QuestionIndex, SituationIndex

if TYPE_CHECKING:
    from langchain_core.documents import Document

    from assistant.retrieval.chroma import DenseSearch

#: At most this many passages from one document in a result (keeps room for other documents).
MAX_PER_DOCUMENT = 2
#: How much a document's second-best passage adds to its best one when ranking documents.
DOC_SUPPORT_WEIGHT = 0.3
#: Weight of the driver-questions ranking of documents (see assistant.retrieval.questions),
#: relative to one chunk ranking in the fusion.
QUESTION_WEIGHT = 1.0
#: How many top documents of each ranking count when checking that dense and BM25 agree.
AGREEMENT_DEPTH = 3


class HybridRetriever:
    """Ranks corpus chunks for a question; loads its indexes once, at construction.

    ``mode`` selects ``hybrid`` (default), ``dense`` or ``bm25`` (for ablations).
    """

    def __init__(self, settings: Settings, embeddings: Embeddings, manifest: IndexManifest) -> None:
        self.settings = settings
        self.embeddings = embeddings
        self.manifest = manifest
        self.mode = settings.retrieval_mode
        folder = Path(settings.data_dir) / manifest.store_dir
        self.bm25 = Bm25Index.load(folder)
        self.store = ChunkStore.read(folder)
        self._chunk_doc = {cid: d for d, e in manifest.documents.items() for cid in e.chunk_ids}
        self.dense = self._dense_search(folder)
        self.questions = QuestionIndex.read(folder)
        self.gaps = GapIndex.read(folder)
        self.situations = SituationIndex.read(folder)
        # the document of each BM25 row: a request's document filter is a row mask
        self._bm25_masks = DocumentMasks([self._chunk_doc.get(cid, "") for cid in self.bm25.chunk_ids])
        # the documents open to a driver of each market, and those closed (computed once a market)
        self._by_market: dict[str | None, tuple[list[str], list[str]]] = {}
        self._folder = folder
        self._pivots: PivotIndex | None = None
        self._pivot_lock = threading.Lock()

    def _dense_search(self, folder: Path) -> ExactSearch | DenseSearch:
        """Exact numpy search over the store's own chunk vectors when the index has at most
        ``exact_search_max_chunks`` chunks (Chroma is then not opened at all); Chroma's HNSW
        otherwise, or for an index whose store has no vectors."""
        query_model = embedding_model_id(self.settings)
        if self.manifest.embedding_model != query_model:
            raise IndexMismatchError(index_model=self.manifest.embedding_model, query_model=query_model)
        if len(self.store.chunks) <= self.settings.exact_search_max_chunks:
            vectors = self.store.chunk_vectors(folder)
            if vectors is not None:
                return ExactSearch(list(self.store.chunks.values()), vectors)
        from assistant.retrieval import chroma  # imported only when Chroma is searched

        client = chroma.open_client(data_dir=self.settings.data_dir, chroma_url=self.settings.chroma_url)
        collection = chroma.get_collection(client, self.manifest.collection)
        chroma.check_model(collection, query_model)
        return chroma.DenseSearch(
            client, self.manifest.collection, self.embeddings, exact_max=self.settings.exact_search_max_chunks,
            doc_of=self._chunk_doc,
        )

    def _pivot_index(self, encoder: MultilingualEncoder) -> PivotIndex:
        with self._pivot_lock:
            if self._pivots is None:
                self._pivots = PivotIndex.read(self._folder)
            if self._pivots is None:  # an index built without them: once, then kept on disk
                self._pivots = encode_pivots(pivots_of_store(self.store, self.questions, self.gaps.questions), encoder)
                self._pivots.write(self._folder)
            return self._pivots

    def answerability(self, message: str) -> Answerability:
        """How close ``message`` (in any language) is to a driver question the help centre
        answers and to one it does not, in the multilingual model's space
        (:meth:`PivotIndex.answerability`)."""
        encoder = default_encoder()
        return self._pivot_index(encoder).answerability(message, encoder)

    def cross_lingual(self, message: str) -> CrossLingual:
        """``message`` (in any language) beside the help centre's English sentences, in the
        multilingual model's space (:class:`~assistant.retrieval.multilingual.CrossLingual`)."""
        encoder = default_encoder()
        index = self._pivot_index(encoder)
        [vector] = encoder.encode([message])
        return CrossLingual(index, vector)

    def english_for(self, message: str, journey: JourneyContext | None = None) -> tuple[str, float]:
        """English text to search for a message in another language, through the help centre's
        own questions, headings and sentences (see :mod:`assistant.retrieval.multilingual`), only
        those of the documents that apply to the driver; and the best pivot's similarity."""
        encoder = default_encoder()
        signals = JourneySignals.from_journey(journey) if self.settings.use_journey else JourneySignals()
        allowed = allowed_documents(self.manifest, signals.with_market_named_in(message, self.manifest.market_names))
        return self._pivot_index(encoder).english(message, encoder, doc_ids=set(allowed))

    @classmethod
    def open(cls, settings: Settings, embeddings: Embeddings) -> HybridRetriever:
        """Open the live index under ``settings.data_dir``."""
        manifest = read_manifest(settings.data_dir)
        if manifest is None:
            raise IndexNotReadyError(
                f"no index in {settings.data_dir}; run `assistant ingest` to build it"
            )
        return cls(settings, embeddings, manifest)

    def query_texts(self, query: str, *, journey: JourneyContext | None = None) -> list[str]:
        """The texts :meth:`retrieve` embeds for ``query`` (none in ``bm25`` mode): the query and
        the query with the order's kind. A caller that embeds other texts first (the guardrail
        classifier) can embed these in the same model call, and :meth:`retrieve` then finds
        them in the embedder's cache."""
        if self.mode not in ("hybrid", "dense"):
            return []
        signals = JourneySignals.from_journey(journey) if self.settings.use_journey else JourneySignals()
        return self._texts(query, signals.context_phrase())

    @staticmethod
    def _texts(query: str, phrase: str | None) -> list[str]:
        return [query, *([f"{query} ({phrase})"] if phrase else [])]

    def retrieve(
        self, query: str, *, k: int, journey: JourneyContext | None = None, market_text: str | None = None
    ) -> RetrievalResult:
        """The ``k`` best passages (see the module docstring). A market the driver names is read
        from ``market_text`` when given (the driver's own words, for a ``query`` that is not: a
        message in another language searched through English pivots names the places of the
        pivots, not the driver's), else from ``query``."""
        use_journey = self.settings.use_journey
        signals = JourneySignals.from_journey(journey) if use_journey else JourneySignals()
        signals = signals.with_market_named_in(query if market_text is None else market_text, self.manifest.market_names)
        allowed, excluded = self._documents_for(signals)
        n = self.settings.candidates

        dense_hits: list[tuple[str, float]] = []
        context_hits: list[tuple[str, float]] = []
        question_hits: list[tuple[str, float]] = []
        if self.mode in ("hybrid", "dense"):
            # A second query with the order's kind ("alcohol order") finds the rules for this
            # order, in the same model call (the same vectors as one call each).
            phrase = signals.context_phrase()
            vector, *others = embed_queries(self.embeddings, self._texts(query, phrase))
            dense_hits = self._search(vector, n, allowed)
            question_hits = self.questions.search(vector, k=n, doc_ids=allowed)
            if others:
                context_hits = self._search(others[0], n, allowed)
        bm25_hits: list[tuple[str, float]] = []
        if self.mode in ("hybrid", "bm25"):
            keyword_query = f"{query} {signals.query_terms()}".strip()
            bm25_hits = self.bm25.search(keyword_query, k=n, mask=self._bm25_masks.mask(allowed))

        fused = reciprocal_rank_fusion(
            [[c for c, _ in hits] for hits in (dense_hits, context_hits, bm25_hits) if hits],
            k=self.settings.rrf_k,
        )
        # A document that no other search found joins with the chunk its best question points at.
        question_rank = {d: r for r, d in enumerate(self._question_docs(question_hits), start=1)}
        present = {self._chunk_doc.get(c) for c in fused}
        for cid, _ in question_hits:
            if self._chunk_doc.get(cid) not in present:
                fused.setdefault(cid, 0.0)
                present.add(self._chunk_doc.get(cid))
        similarity = dict(dense_hits)
        keyword = dict(bm25_hits)
        # Score every candidate as a plain tuple; only the ``k`` kept become Passages.
        doc_boost: dict[str, list[Boost]] = {}
        scored: list[tuple[str, str, Document, float, list[Boost]]] = []  # chunk id, doc id, chunk, score, boosts
        for cid, base in fused.items():
            chunk = self.store.get(cid)
            doc_id = self._chunk_doc.get(cid)
            if chunk is None or doc_id is None:
                continue
            if doc_id not in doc_boost:
                doc_boost[doc_id] = doc_boosts(self.manifest.documents[doc_id], signals)
            boosts = [*doc_boost[doc_id], *chunk_boosts(chunk.page_content, signals)]
            scored.append((cid, doc_id, chunk, base * math.prod(1.0 + b.factor for b in boosts), boosts))
        # Rank documents by their best passage plus a share of their second best, so an article
        # that answers from two sections outranks one lucky sentence elsewhere (but a long
        # article does not win just by having many weak matches).
        by_doc: dict[str, list[float]] = {}
        for _, doc_id, _, score, _ in scored:
            by_doc.setdefault(doc_id, []).append(score)
        text_score = {}
        for doc_id, values in by_doc.items():
            best, second = [*sorted(values, reverse=True), 0.0][:2]
            text_score[doc_id] = best + DOC_SUPPORT_WEIGHT * second
        doc_score = self._with_question_votes(text_score, question_rank, doc_boost)
        scored.sort(key=lambda row: (-doc_score[row[1]], row[1], -row[3], row[0]))

        passages: list[Passage] = []
        per_doc: dict[str, int] = {}
        for cid, doc_id, chunk, score, boosts in scored:
            if per_doc.get(doc_id, 0) >= MAX_PER_DOCUMENT:
                continue
            per_doc[doc_id] = per_doc.get(doc_id, 0) + 1
            entry = self.manifest.documents[doc_id]
            passages.append(
                Passage(
                    chunk_id=cid,
                    doc_id=doc_id,
                    title=entry.title,
                    section=str(chunk.metadata.get("section", entry.title)),
                    text=chunk.page_content,
                    position=int(chunk.metadata.get("position", 0)),
                    score=score,
                    dense_similarity=similarity.get(cid),
                    bm25_score=keyword.get(cid),
                    boosts=list(dict.fromkeys(b.fact for b in boosts)),
                )
            )
            if len(passages) == k:
                break

        return RetrievalResult(
            passages=passages,
            journey_used=self._journey_used(passages, signals, excluded),
            market=signals.market,
            top_similarity=self._top_similarity(passages, dense_hits, bm25_hits),
            agreement=self._agreement(passages, dense_hits, bm25_hits),
            excluded_doc_ids=excluded,
        )

    def safety_steps(
        self, query: str, *, journey: JourneyContext | None = None, market_text: str | None = None
    ) -> tuple[str, str] | None:
        """(document, chunk) of the section whose steps a driver in danger who wrote ``query``
        needs first: the one most of the nearest situations of the corpus's
        ``safety-situations.yaml`` point to, among the documents that apply to the driver (the
        market named in ``market_text``, as for :meth:`retrieve`); ``None`` for an index without
        situations."""
        if not len(self.situations):
            return None
        signals = JourneySignals.from_journey(journey) if self.settings.use_journey else JourneySignals()
        named = query if market_text is None else market_text
        allowed, _ = self._documents_for(signals.with_market_named_in(named, self.manifest.market_names))
        [vector] = embed_queries(self.embeddings, [query])
        chunk = self.situations.steps(vector, doc_ids=allowed)
        doc_id = self._chunk_doc.get(chunk) if chunk is not None else None
        return (doc_id, chunk) if doc_id is not None and chunk is not None else None

    def _documents_for(self, signals: JourneySignals) -> tuple[list[str], list[str]]:
        """The documents that apply to this driver (they depend on the market alone) and the
        others, sorted; computed once for each market."""
        found = self._by_market.get(signals.market)
        if found is None:
            allowed = allowed_documents(self.manifest, signals)
            found = (allowed, sorted(set(self.manifest.documents) - set(allowed)))
            if signals.market is None or signals.market in self.manifest.market_names:  # bounded: known markets
                self._by_market[signals.market] = found
        return found

    def _question_docs(self, hits: list[tuple[str, float]]) -> list[str]:
        """Documents in the order of their best matching driver question."""
        return list(dict.fromkeys(self._chunk_doc[c] for c, _ in hits if c in self._chunk_doc))

    def _with_question_votes(
        self, text_score: dict[str, float], question_rank: dict[str, int], boosts: dict[str, list[Boost]]
    ) -> dict[str, float]:
        """Document scores with the driver questions' ranking added as one more RRF vote.

        The questions are a recall device: they pull in and re-rank the articles that the text
        searches missed or ranked low, but the article whose own text matches best stays first,
        because the answer quotes text and a question match alone is weaker evidence.
        """
        if not text_score or not question_rank:
            return text_score
        scores = dict(text_score)
        for doc_id, rank in question_rank.items():
            if doc_id in scores:  # with the document's journey boosts, as its passages have
                factor = math.prod(1.0 + b.factor for b in boosts[doc_id])  # scored, so its boosts are known
                scores[doc_id] += QUESTION_WEIGHT * factor / (self.settings.rrf_k + rank)
        lead = min(text_score, key=lambda d: (-text_score[d], d))
        scores[lead] = max(scores.values()) + 1.0
        return scores

    def _search(self, vector: list[float], n: int, allowed: list[str]) -> list[tuple[str, float]]:
        return self.dense.search_ids(vector, k=n, doc_ids=allowed)

    def _journey_used(self, passages: list[Passage], signals: JourneySignals, excluded: list[str]) -> list[str]:
        facts: list[str] = []
        if signals.market_from_message:
            facts.append(f"market named in message: {signals.market}")
        elif signals.market and any(
            not self.manifest.documents[d].is_general or d in {e.variant_of for e in self.manifest.documents.values()}
            for d in excluded
        ):
            facts.append(f"market: {signals.market}")
        for passage in passages[:3]:
            facts.extend(passage.boosts)
        return list(dict.fromkeys(facts))

    def _top_similarity(
        self, passages: list[Passage], dense: list[tuple[str, float]], bm25: list[tuple[str, float]]
    ) -> float:
        if dense:
            return max(dense[0][1], passages[0].dense_similarity or 0.0) if passages else dense[0][1]
        if bm25:  # keyword-only mode: squash the BM25 score onto a similarity-like scale
            return bm25[0][1] / (bm25[0][1] + 8.0)
        return 0.0

    def _agreement(
        self, passages: list[Passage], dense: list[tuple[str, float]], bm25: list[tuple[str, float]]
    ) -> float:
        if not passages:
            return 0.0
        top_doc = passages[0].doc_id

        def top_docs(hits: list[tuple[str, float]]) -> list[str]:
            docs = list(dict.fromkeys(self._chunk_doc.get(c, "") for c, _ in hits))
            return docs[:AGREEMENT_DEPTH]

        found = [top_doc in top_docs(hits) for hits in (dense, bm25) if hits]
        return sum(found) / len(found) if found else 0.0
