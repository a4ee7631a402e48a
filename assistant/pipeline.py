"""The assistant: request -> guardrails -> retrieval -> answer -> routing -> response.

Read :meth:`Assistant.answer` top to bottom to follow one request through every stage.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from assistant.config import Settings, load_settings
from assistant.errors import AssistantError, BackendError, IndexNotReadyError
from assistant.generation.base import Composer, Draft
from assistant.generation.extractive import ExtractiveComposer
from assistant.guardrails.hygiene import clean_message
from assistant.ingestion.indexer import Indexer, IngestReport, ProgressCallback
from assistant.records import ConversationRecord, ConversationSink, NullSink, RetrievedRef
from assistant.request import HelpRequest
from assistant.response import Citation, HelpResponse, Reason, ReasonCode, Route
from assistant.retrieval.base import RetrievalResult, Retriever
from assistant.retrieval.embeddings import make_embeddings
from assistant.retrieval.hybrid import HybridRetriever
from assistant.retrieval.journey import JourneySignals
from assistant.retrieval.manifest import read_manifest
from assistant.retrieval.packing import pack_context
from assistant.retrieval.query import retrieval_query
from assistant.routing.decide import decide
from assistant.routing.handoff import build_handoff

logger = logging.getLogger("assistant")

REPHRASE = (
    "I didn't catch a question there. Tell me what's happening, for example "
    '"the app won\'t let me complete the drop-off" or "when do I get paid?"'
)
HANDOFF_TEXT = (
    "I'm not sure I have the right answer for this, so I'm passing you to a support agent. "
    "They'll see your question and where you are in the app, so you won't need to repeat yourself."
)
UNAVAILABLE_TEXT = (
    "I can't look that up right now, so I'm passing you to a support agent. "
    "They'll see your question and where you are in the app."
)


class Assistant:
    """Answers drivers' questions from the policy corpus, or hands them to a human.

    >>> assistant = Assistant.from_settings()
    >>> response = assistant.answer("when do i get paid?")
    >>> response.route, [c.doc_id for c in response.citations]
    """

    def __init__(
        self,
        settings: Settings,
        *,
        embeddings: Embeddings | None = None,
        retriever: Retriever | None = None,
        composer: Composer | None = None,
        sink: ConversationSink | None = None,
    ) -> None:
        self.settings = settings
        self._embeddings = embeddings
        self._retriever = retriever
        self._composer = composer
        self.sink: ConversationSink = sink or NullSink()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: object) -> Assistant:
        """An assistant configured from ``ASSISTANT_*`` variables, with ``overrides`` on top."""
        if settings is None:
            settings = load_settings(**overrides)
        elif overrides:
            settings = settings.model_copy(update=overrides)
        return cls(settings)

    # -- set-up -----------------------------------------------------------------------------

    @property
    def embeddings(self) -> Embeddings:
        """The embedder (loaded on first use, once)."""
        if self._embeddings is None:
            self._embeddings = make_embeddings(self.settings)
        return self._embeddings

    def index_ready(self) -> bool:
        """True when an index has been built in ``settings.data_dir``."""
        try:
            return read_manifest(self.settings.data_dir) is not None
        except IndexNotReadyError:
            return False

    def ingest(
        self, corpus_dir: Path | None = None, *, rebuild: bool = False, progress: ProgressCallback | None = None
    ) -> IngestReport:
        """Index (or incrementally re-index) the corpus; the next answer uses the new index."""
        report = Indexer(self.settings, self.embeddings).ingest(corpus_dir, rebuild=rebuild, progress=progress)
        with self._lock:
            if isinstance(self._retriever, HybridRetriever) or self._retriever is None:
                self._retriever = None
                self._composer = self._composer if not isinstance(self._composer, ExtractiveComposer) else None
        return report

    def _stages(self) -> tuple[Retriever, Composer]:
        with self._lock:
            if self._retriever is None:
                self._retriever = HybridRetriever.open(self.settings, self.embeddings)
            if self._composer is None:
                hybrid = self._retriever if isinstance(self._retriever, HybridRetriever) else None
                self._composer = ExtractiveComposer(
                    self.embeddings,
                    hybrid.store if hybrid else None,
                    market_names=hybrid.manifest.market_names if hybrid else None,
                    max_units=self.settings.answer_sentences,
                )
            return self._retriever, self._composer

    # -- answering --------------------------------------------------------------------------

    def answer(self, request: HelpRequest | str) -> HelpResponse:
        """Answer one request. A handoff to a human is a normal response, not an error.

        Raises :class:`~assistant.errors.IndexNotReadyError` if no index was ever built.
        """
        if isinstance(request, str):
            request = HelpRequest(message=request)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        conversation_id = uuid.uuid4().hex

        # 1. guardrails: input hygiene
        cleaned = clean_message(request.message, max_chars=self.settings.max_message_chars)
        if cleaned.is_empty:
            response = HelpResponse(
                route=Route.ANSWER, answer=REPHRASE, confidence=0.0, conversation_id=conversation_id
            )
            return self._finish(request, cleaned.text, None, response, timings, started)

        signals = JourneySignals.from_journey(request.journey) if self.settings.use_journey else JourneySignals()

        # 2. retrieval
        try:
            retriever, composer = self._stages()
            t0 = time.perf_counter()
            query = retrieval_query(cleaned.text, request.history)
            retrieval = retriever.retrieve(query, k=self.settings.top_k, journey=request.journey)
            timings["retrieval_ms"] = (time.perf_counter() - t0) * 1000
            if retrieval.market and retrieval.market != signals.market:
                signals = replace(signals, market=retrieval.market, market_from_message=True)
            # 3. answer
            t0 = time.perf_counter()
            context = pack_context(retrieval.passages, budget=self.settings.context_tokens)
            draft = composer.compose(cleaned.text, context, signals)
            timings["compose_ms"] = (time.perf_counter() - t0) * 1000
        except (BackendError, IndexNotReadyError) as exc:
            if isinstance(exc, IndexNotReadyError) and not self.index_ready():
                raise
            logger.error("answering failed, handing over: %s", exc)
            reasons = [Reason(code=ReasonCode.LOW_CONFIDENCE, detail=f"assistant backend unavailable: {exc}")]
            response = HelpResponse(
                route=Route.ESCALATE,
                reasons=reasons,
                answer=UNAVAILABLE_TEXT,
                confidence=0.0,
                conversation_id=conversation_id,
                handoff=build_handoff(request, cleaned.text, reasons, told_driver=UNAVAILABLE_TEXT, retrieval=None),
            )
            return self._finish(request, cleaned.text, None, response, timings, started, error=str(exc))

        # 4. routing
        decision = decide(retrieval, draft, min_confidence=self.settings.min_confidence)
        response = self._respond(request, cleaned.text, retrieval, draft, decision.route, decision.reasons, decision.confidence, conversation_id)
        return self._finish(request, cleaned.text, retrieval, response, timings, started, context=draft.read)

    def retrieve(self, request: HelpRequest | str) -> RetrievalResult:
        """The passages :meth:`answer` would draw on for ``request`` (retrieval only, no answer).

        Uses the same query (the message, made standalone with the history) and journey filters.
        """
        if isinstance(request, str):
            request = HelpRequest(message=request)
        cleaned = clean_message(request.message, max_chars=self.settings.max_message_chars)
        retriever, _ = self._stages()
        query = retrieval_query(cleaned.text, request.history)
        return retriever.retrieve(query, k=self.settings.top_k, journey=request.journey)

    def chunk(self, chunk_id: str) -> Document | None:
        """The indexed chunk with this id, or ``None`` when the live index has none."""
        retriever, _ = self._stages()
        return retriever.store.get(chunk_id) if isinstance(retriever, HybridRetriever) else None

    async def aanswer(self, request: HelpRequest | str) -> HelpResponse:
        """Async twin of :meth:`answer` (the offline pipeline is CPU-bound, so it runs in a worker thread)."""
        return await asyncio.to_thread(self.answer, request)

    # -- helpers ----------------------------------------------------------------------------

    def _respond(
        self,
        request: HelpRequest,
        message: str,
        retrieval: RetrievalResult,
        draft: Draft,
        route: Route,
        reasons: list[Reason],
        confidence: float,
        conversation_id: str,
    ) -> HelpResponse:
        if route is Route.ANSWER:
            citations = [
                Citation(doc_id=p.doc_id, title=p.title, section=p.section, chunk_id=p.chunk_id, score=round(p.score, 4))
                for p in draft.cited
            ]
            market_facts = [f for f in retrieval.journey_used if f.startswith("market")]
            used = list(dict.fromkeys([*market_facts, *(f for p in draft.cited for f in p.boosts)]))
            return HelpResponse(
                route=route,
                reasons=reasons,
                answer=draft.text,
                citations=citations,
                confidence=confidence,
                journey_used=used,
                conversation_id=conversation_id,
            )
        handoff = build_handoff(request, message, reasons, told_driver=HANDOFF_TEXT, retrieval=retrieval)
        return HelpResponse(
            route=route,
            reasons=reasons,
            answer=HANDOFF_TEXT,
            confidence=confidence,
            journey_used=[],
            handoff=handoff,
            conversation_id=conversation_id,
        )

    def _finish(
        self,
        request: HelpRequest,
        message: str,
        retrieval: RetrievalResult | None,
        response: HelpResponse,
        timings: dict[str, float],
        started: float,
        error: str | None = None,
        context: list[str] | None = None,
    ) -> HelpResponse:
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        record = ConversationRecord(
            conversation_id=response.conversation_id,
            request=request,
            cleaned_message=message,
            retrieved=[
                RetrievedRef(
                    chunk_id=p.chunk_id, doc_id=p.doc_id, score=p.score,
                    dense_similarity=p.dense_similarity, bm25_score=p.bm25_score,
                )
                for p in (retrieval.passages if retrieval else [])
            ],
            context_chunk_ids=context or [],
            response=response,
            timings_ms=timings,
            error=error,
        )
        try:
            self.sink.record(record)
        except AssistantError:  # a sink must never cost the driver their answer
            logger.exception("conversation sink failed")
        return response
