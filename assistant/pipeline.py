"""The assistant: request -> guardrails -> retrieval -> answer -> routing -> response.

Read :meth:`Assistant.answer` top to bottom to follow one request through every stage.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from assistant.config import Settings, load_settings
from assistant.errors import AssistantError, BackendError, IndexNotReadyError
from assistant.generation.base import Composer, Draft
from assistant.generation.extractive import ExtractiveComposer
from assistant.guardrails.checks import earlier_turns, is_small_talk
from assistant.guardrails.defects import (
    CombinedEvidence,
    EvidenceSource,
    JourneyEvidence,
    JsonlLogEvidence,
    LiveIncident,
)
from assistant.guardrails.engine import (
    ContextCheck,
    Guardrails,
    InputCheck,
    redact_history,
    redact_request,
)
from assistant.guardrails.hygiene import clean_message
from assistant.guardrails.pii import redact
from assistant.guardrails.policy import load_policy
from assistant.ingestion.report import IngestReport, ProgressCallback
from assistant.records import ConversationRecord, ConversationSink, NullSink, RetrievedRef
from assistant.request import HelpRequest, JourneyContext, Turn
from assistant.response import Citation, HelpResponse, Reason, ReasonCode, Route, Usage
from assistant.retrieval.base import Passage, RetrievalResult, Retriever
from assistant.retrieval.embeddings import embedding_model_id, make_embeddings
from assistant.retrieval.hybrid import HybridRetriever
from assistant.retrieval.journey import JourneySignals
from assistant.retrieval.language import QueryLanguage, load_identifier, query_language
from assistant.retrieval.manifest import read_manifest
from assistant.retrieval.packing import pack_context
from assistant.retrieval.query import is_follow_up, retrieval_query
from assistant.routing.decide import (
    Decision,
    Handling,
    confidence,
    decide_on_input,
    decide_with_context,
    pii_reasons,
)
from assistant.routing.handoff import build_handoff, defect_signature
from assistant.suggestions.cards import HelpCard, Suggester
from assistant.suggestions.rules import load_rules
from assistant.tokens import encoding as token_encoding

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable

    from assistant.generation.chat import ChatComposer
    from assistant.incidents.live import OpenIncidents
    from assistant.store import ConversationStore

logger = logging.getLogger("assistant")

_preload_lock = threading.Lock()
_preload_started = False


def _preload() -> None:
    """Load, once per process and in a background thread, the shared models a first answer
    needs besides the embedder: the language identifier (its LZMA unpacking releases the GIL)
    and the token counter. The first request's own work (the guardrail patterns, the ONNX
    session, the index) runs meanwhile; when it needs one of them it waits for this load instead
    of starting a second one (each is loaded under a lock)."""
    global _preload_started
    if _preload_started:  # every later request: no lock taken
        return
    with _preload_lock:
        if _preload_started:
            return
        _preload_started = True

    def load() -> None:
        try:
            load_identifier()
            token_encoding()
        except Exception:  # the request that needs it loads it again and reports the error
            logger.debug("preloading the language identifier or the token counter failed", exc_info=True)

    threading.Thread(target=load, name="assistant-preload", daemon=True).start()

#: Confidence a chat model's answer needs when ``min_confidence`` is unset (its confidence is a
#: similarity blend, not a fitted probability).
CHAT_MIN_CONFIDENCE = 0.35
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


def _sink_from_settings(settings: Settings) -> ConversationSink:
    """A :class:`~assistant.store.SqlSink` when ``database_url`` is set (SQLite is migrated on
    the spot; run ``assistant db upgrade`` for PostgreSQL), else the :class:`NullSink`."""
    if not settings.database_url:
        return NullSink()
    from assistant.store import SqlSink

    return SqlSink.open(settings)


@dataclass
class _Prepared:
    """One request after guardrails and retrieval, ready for its answer to be written."""

    request: HelpRequest
    safe_request: HelpRequest
    message: str
    conversation_id: str
    timings: dict[str, float]
    started: float
    inputs: InputCheck
    early: Decision | None
    signals: JourneySignals
    retrieval: RetrievalResult
    context: list[Passage]
    composer: Composer
    guardrails: Guardrails
    compose_started: float
    language: QueryLanguage
    question: str  # what the answer is composed for: the message, or its English rendering
    steps: tuple[str, str] | None = None  # (document, chunk) of the safety steps for this situation



def _own_words(safe: HelpRequest, language: QueryLanguage) -> str | None:
    """The driver's own words a market they name is read from, when the search text is not
    them (a message in another language searched through English pivots, whose places are the
    pivots' own: "Ontario" in the pivot for a driver in California); ``None`` when it is."""
    return retrieval_query(safe.message, safe.history) if language.english else None


def _is_chat(composer: object) -> TypeGuard[ChatComposer]:
    """True for the chat-model composer (the chat module, and the openai client with it, is
    imported only when a chat model is configured)."""
    module = sys.modules.get("assistant.generation.chat")
    return module is not None and isinstance(composer, module.ChatComposer)


def _chat_composer(settings: Settings, fallback: ExtractiveComposer) -> ChatComposer:
    from assistant.generation.chat import ChatComposer

    return ChatComposer(settings, fallback=fallback)

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
        evidence: EvidenceSource | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``evidence`` replaces the default defect evidence (the journey's events, plus the JSONL
        log named by ``ASSISTANT_EVIDENCE_LOG``) with your own :class:`EvidenceSource`; ``clock``
        (default: the current UTC time) stamps each record, so a replay of past contacts can run
        on their own times."""
        self.settings = settings
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self._evidence = evidence
        self._embeddings = embeddings
        self._retriever = retriever
        self._composer = composer
        self.sink: ConversationSink = sink if sink is not None else _sink_from_settings(settings)
        self._guardrails_engine: Guardrails | None = None
        self._dismissed_cards: dict[str, set[str]] = {}
        self._card_composer: ExtractiveComposer | None = None  # quotes cards when the composer is a custom one
        self._incidents = _StoreIncidents(self)
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

    def warm_up(self) -> None:
        """Load the embedder, guardrails, index and answer model now, not on the first request.

        Raises :class:`~assistant.errors.IndexNotReadyError` when no index was built.
        """
        self._guardrails()
        self._stages()
        # one request through every stage loads what each builds on first use; a chat model is
        # not called (its offline fallback writes the draft), and nothing is recorded
        sink, self.sink = self.sink, NullSink()
        try:
            prepared = self._prepare(HelpRequest(message="when do I get paid?"))
            if isinstance(prepared, _Prepared):
                composer = prepared.composer
                if _is_chat(composer):
                    composer = composer.fallback
                self._complete(prepared, composer.compose(
                    prepared.question, prepared.context, prepared.signals, request=prepared.safe_request
                ))
        finally:
            self.sink = sink

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
        from assistant.ingestion.indexer import (
            Indexer,  # the ingestion machinery, only when ingesting
        )

        report = Indexer(self.settings, self.embeddings).ingest(corpus_dir, rebuild=rebuild, progress=progress)
        with self._lock:
            self._card_composer = None
            if isinstance(self._retriever, HybridRetriever) or self._retriever is None:
                self._retriever = None
                stale = isinstance(self._composer, ExtractiveComposer) or _is_chat(self._composer)
                self._composer = None if stale else self._composer
        return report

    def _stages(self) -> tuple[Retriever, Composer]:
        with self._lock:
            if self._retriever is None:
                self._retriever = HybridRetriever.open(self.settings, self.embeddings)
            if self._composer is None:
                hybrid = self._retriever if isinstance(self._retriever, HybridRetriever) else None
                extractive = ExtractiveComposer(
                    self.embeddings,
                    hybrid.store if hybrid else None,
                    market_names=hybrid.manifest.market_names if hybrid else None,
                    questions=hybrid.questions if hybrid else None,
                    gaps=hybrid.gaps if hybrid else None,
                    answerability=hybrid.answerability if hybrid and self.settings.multilingual else None,
                    cross_lingual=hybrid.cross_lingual if hybrid and self.settings.multilingual else None,
                )
                self._composer = (
                    _chat_composer(self.settings, extractive) if self.settings.generator == "openai" else extractive
                )
            return self._retriever, self._composer

    # -- answering --------------------------------------------------------------------------

    def answer(self, request: HelpRequest | str) -> HelpResponse:
        """Answer one request. A handoff to a human is a normal response, not an error.

        Raises :class:`~assistant.errors.IndexNotReadyError` if no index was ever built.
        """
        prepared = self._prepare(request)
        if isinstance(prepared, HelpResponse):
            return prepared
        return self._compose_and_complete(prepared)

    async def aanswer(self, request: HelpRequest | str) -> HelpResponse:
        """Async :meth:`answer`: the CPU-bound stages run in a worker thread, and a chat model is
        awaited on the event loop (``ainvoke``), so many requests can wait on the model at once."""
        prepared = await asyncio.to_thread(self._prepare, request)
        if isinstance(prepared, HelpResponse):
            return prepared
        composer = prepared.composer
        try:
            if _is_chat(composer):
                draft = await composer.acompose(
                    prepared.question, prepared.context, prepared.signals, request=prepared.safe_request
                )
            else:
                draft = await asyncio.to_thread(
                    composer.compose, prepared.question, prepared.context, prepared.signals, request=prepared.safe_request
                )
        except (BackendError, IndexNotReadyError) as exc:
            return await asyncio.to_thread(self._compose_failed, prepared, exc)
        return await asyncio.to_thread(self._complete, prepared, draft)

    def stream(self, request: HelpRequest | str) -> Iterator[str | HelpResponse]:
        """Yield the answer's text as it is written, then the final :class:`HelpResponse`.

        With a chat model, text arrives as the model writes it; the offline composer yields its
        answer in one piece. The final response carries the route, reasons and citations. If it
        answers differently from the streamed text (the model's reply failed its checks, or the
        driver is handed over), show ``response.answer`` instead: the streamed text is retracted.
        """
        prepared = self._prepare(request)
        if isinstance(prepared, HelpResponse):
            yield prepared.answer
            yield prepared
            return
        composer = prepared.composer
        if not _is_chat(composer):
            response = self._compose_and_complete(prepared)
            yield response.answer
            yield response
            return
        deltas: queue.Queue[str | None] = queue.Queue()
        outcome: list[HelpResponse] = []
        streamed: list[str] = []

        def work() -> None:
            try:
                try:
                    draft = composer.compose(
                        prepared.question, prepared.context, prepared.signals, request=prepared.safe_request,
                        on_delta=deltas.put,
                    )
                except (BackendError, IndexNotReadyError) as exc:
                    outcome.append(self._compose_failed(prepared, exc))
                    return
                outcome.append(self._complete(prepared, draft))
            finally:
                deltas.put(None)

        worker = threading.Thread(target=work, name="assistant-stream", daemon=True)
        worker.start()
        while (delta := deltas.get()) is not None:
            streamed.append(delta)
            yield delta
        worker.join()
        response = outcome[0]
        if not streamed:
            yield response.answer
        yield response

    def as_runnable(self) -> Runnable[HelpRequest | str, HelpResponse]:
        """This assistant as a LangChain Runnable (``invoke``, ``ainvoke``, ``batch``, ``stream``),
        so callbacks and tracing see each request."""
        # imported here: langchain_core.runnables brings its tracers, about 0.4 s of every start-up
        from langchain_core.runnables import RunnableLambda

        return RunnableLambda(self.answer, afunc=self.aanswer, name="driver-help-assistant")

    async def astream(self, request: HelpRequest | str) -> AsyncIterator[str | HelpResponse]:
        """Async :meth:`stream`: text as the model writes it (awaited with ``astream``), then the
        final :class:`HelpResponse`; the CPU-bound stages run in a worker thread."""
        prepared = await asyncio.to_thread(self._prepare, request)
        if isinstance(prepared, HelpResponse):
            yield prepared.answer
            yield prepared
            return
        composer = prepared.composer
        if not _is_chat(composer):
            response = await asyncio.to_thread(self._compose_and_complete, prepared)
            yield response.answer
            yield response
            return
        deltas: asyncio.Queue[str | None] = asyncio.Queue()

        async def work() -> HelpResponse:
            try:
                draft = await composer.acompose(
                    prepared.question, prepared.context, prepared.signals, request=prepared.safe_request,
                    on_delta=deltas.put_nowait,
                )
            except (BackendError, IndexNotReadyError) as exc:
                return await asyncio.to_thread(self._compose_failed, prepared, exc)
            finally:
                deltas.put_nowait(None)
            return await asyncio.to_thread(self._complete, prepared, draft)

        task = asyncio.create_task(work())
        streamed = False
        while (delta := await deltas.get()) is not None:
            streamed = True
            yield delta
        response = await task
        if not streamed:
            yield response.answer
        yield response

    def _compose_and_complete(self, p: _Prepared) -> HelpResponse:
        try:
            draft = p.composer.compose(p.question, p.context, p.signals, request=p.safe_request)
        except (BackendError, IndexNotReadyError) as exc:
            return self._compose_failed(p, exc)
        return self._complete(p, draft)

    # -- the stages of one request ----------------------------------------------------------

    def _prepare(self, request: HelpRequest | str) -> _Prepared | HelpResponse:
        """Hygiene, guardrails and retrieval: everything before the answer is written.

        Returns a finished response when the request is settled before an answer is needed
        (empty, declined, or the backend is down).
        """
        _preload()
        if isinstance(request, str):
            request = HelpRequest(message=request)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        conversation_id = request.conversation_id or uuid.uuid4().hex

        # 1. guardrails: hygiene, PII redaction, then the message screen
        cleaned = clean_message(request.message, max_chars=self.settings.max_message_chars)
        if cleaned.is_empty:
            response = HelpResponse(
                route=Route.ANSWER, answer=REPHRASE, confidence=0.0, conversation_id=conversation_id
            )
            return self._finish(request, cleaned.text, None, response, timings, started, redacted=False)
        try:
            guardrails = self._guardrails()
            t0 = time.perf_counter()
            history = redact_history(request.history)
            inputs = guardrails.check_input(
                cleaned.text, original_chars=cleaned.original_chars,
                # the retriever's queries and the earlier turns the repeat check compares
                also_embed=lambda redacted: [*self._query_texts(request, redacted, history), *earlier_turns(history)],
            )
            timings["guardrails_ms"] = (time.perf_counter() - t0) * 1000
        except BackendError as exc:
            return self._unavailable(request, cleaned.text, exc, timings, started, conversation_id, redacted=False)
        message = inputs.redaction.text
        safe_request = redact_request(request, message, history=history)  # from here on, nothing sees the raw text
        early = decide_on_input(inputs)
        if early is not None and early.handling in (Handling.DECLINE_INJECTION, Handling.DECLINE_OUT_OF_SCOPE):
            response = self._respond(safe_request, None, None, early, conversation_id)
            return self._finish(safe_request, message, None, response, timings, started)
        if early is None and is_small_talk(message, guardrails.policy):  # "ok thanks": a reply, not a search
            response = HelpResponse(
                route=Route.ANSWER, answer=guardrails.policy.messages.small_talk, confidence=1.0,
                reasons=pii_reasons(inputs),
                conversation_id=conversation_id,
            )
            return self._finish(safe_request, message, None, response, timings, started)

        signals = JourneySignals.from_journey(request.journey) if self.settings.use_journey else JourneySignals()

        # 2. retrieval
        try:
            retriever, composer = self._stages()
            t0 = time.perf_counter()
            language, question, query = self._search_text(safe_request, retriever)
            if early is not None and early.handling is Handling.SAFETY and guardrails.policy.safety.search_terms:
                query = f"{query}\n{guardrails.policy.safety.search_terms}"
            own_words = _own_words(safe_request, language)
            retrieval = self._retrieve(retriever, query, request.journey, own_words)
            steps = (
                retriever.safety_steps(question, journey=request.journey, market_text=own_words)
                if early is not None and early.handling is Handling.SAFETY and isinstance(retriever, HybridRetriever)
                else None
            )
            timings["retrieval_ms"] = (time.perf_counter() - t0) * 1000
        except (BackendError, IndexNotReadyError) as exc:
            if isinstance(exc, IndexNotReadyError) and not self.index_ready():
                raise
            if early is not None:  # safety or a request for a person: hand over without the policy text
                response = self._respond(safe_request, None, None, early, conversation_id)
                return self._finish(safe_request, message, None, response, timings, started, error=str(exc))
            return self._unavailable(safe_request, message, exc, timings, started, conversation_id)
        if retrieval.market and retrieval.market != signals.market:
            signals = replace(signals, market=retrieval.market, market_from_message=True)
        context = pack_context(retrieval.passages, budget=self.settings.context_tokens)
        return _Prepared(
            request=request, safe_request=safe_request, message=message, conversation_id=conversation_id,
            timings=timings, started=started, inputs=inputs, early=early, signals=signals, retrieval=retrieval,
            context=context, composer=composer, guardrails=guardrails, compose_started=time.perf_counter(),
            language=language, question=question, steps=steps,
        )

    def _compose_failed(self, p: _Prepared, exc: Exception) -> HelpResponse:
        if isinstance(exc, IndexNotReadyError) and not self.index_ready():
            raise exc
        if p.early is not None:
            response = self._respond(p.safe_request, None, None, p.early, p.conversation_id)
            return self._finish(p.safe_request, p.message, None, response, p.timings, p.started, error=str(exc))
        return self._unavailable(p.safe_request, p.message, exc, p.timings, p.started, p.conversation_id)

    def _complete(self, p: _Prepared, draft: Draft) -> HelpResponse:
        """Routing and the response, once the draft is written."""
        p.timings["compose_ms"] = (time.perf_counter() - p.compose_started) * 1000
        if not p.language.is_english and p.language.english is None and draft.confidence is not None:
            # the offline answer searches in English: a message it could not render is not answered from a guess
            draft = draft.model_copy(update={
                "can_answer": False,
                "note": f"the message is in '{p.language.code}', which could not be searched in the English help "
                "centre (the multilingual model is off or failed)",
            })
        if p.steps is not None and draft.prompt_version is None:
            draft = self._with_steps(p, p.steps, draft)
        # 4. routing: what the message settled, else the journey, evidence and history decide
        if p.early is not None:
            decision = p.early.model_copy(update={"confidence": confidence(p.retrieval, draft)})
            checked = None
        else:
            checked = p.guardrails.check_context(
                p.message, p.safe_request, p.safe_request.history, probabilities=p.inputs.probabilities
            )
            decision = decide_with_context(
                p.retrieval, draft, min_confidence=self._min_confidence(draft), inputs=p.inputs, context=checked,
                offtopic_probability=p.guardrails.policy.screen.offtopic_probability,
                # a message searched through its English pivots is never "clearly covered": their
                # confidence is the pivots', not the message's
                covered_confidence=(
                    p.guardrails.policy.screen.covered_confidence if p.language.english is None else math.inf
                ),
                offtopic_sure_probability=p.guardrails.policy.screen.offtopic_sure_probability,
                offtopic_confidence=p.guardrails.policy.screen.offtopic_answer_confidence,
                injection_sure_probability=p.guardrails.policy.screen.injection_sure_probability,
            )
        if p.language.note and draft.text and draft.prompt_version is None and decision.route is Route.ANSWER:
            # the offline answer quotes the English help centre: say so in the driver's language
            draft = draft.model_copy(update={"text": f"{p.language.note}\n\n{draft.text}"})
        response = self._respond(p.safe_request, p.retrieval, draft, decision, p.conversation_id, checked)
        judged = {r.code for r in decision.reasons} & _DEFECT_CODES
        return self._finish(
            p.safe_request, p.message, p.retrieval, response, p.timings, p.started, context=draft.read, draft=draft.text,
            signature=defect_signature(p.safe_request, checked) if judged else None,
        )

    @staticmethod
    def _with_steps(p: _Prepared, steps: tuple[str, str], draft: Draft) -> Draft:
        """The offline draft for a driver escalated for safety, quoting first the section of the
        steps for their situation (:meth:`HybridRetriever.safety_steps`), then the section model's
        first choice; unchanged when the composer cannot quote them."""
        composer = p.composer.fallback if _is_chat(p.composer) else p.composer
        if not isinstance(composer, ExtractiveComposer):
            return draft
        # the steps for the situation first, then the section the section model chose
        quoted = composer.quote_sections(
            [steps, *((c.doc_id, c.chunk_id) for c in draft.cited[:1])], p.question, p.signals, p.context
        )
        if quoted is None:
            return draft
        text, cited = quoted
        return draft.model_copy(update={"text": text, "cited": cited, "read": list(dict.fromkeys([*(c.chunk_id for c in cited), *draft.read]))})

    # -- help cards -------------------------------------------------------------------------

    def suggest(
        self,
        journey: JourneyContext | None,
        *,
        driver_id: str | None = None,
        limit: int | None = None,
        now: datetime | None = None,
    ) -> list[HelpCard]:
        """Help cards for the driver's journey, with no question asked: up to ``limit`` (default
        the rules' ``max_cards``), best first, one per friction the journey shows (an open
        incident matching its errors first); none for a calm journey. Cards ``driver_id``
        dismissed are left out. ``now`` is the journey's time (default: the current time, or the
        newest event's for a recorded journey). The rules are ``ASSISTANT_FRICTION_RULES`` or the
        shipped ``assistant/suggestions/friction.yaml``.

        Raises :class:`~assistant.errors.IndexNotReadyError` if no index was ever built. When the
        store cannot be read, the cards are shown without the driver's dismissals.
        """
        dismissed: frozenset[str] = frozenset()
        if driver_id:
            try:
                dismissed = self._dismissed(driver_id)
            except BackendError as exc:
                logger.error("dismissed cards unreadable, suggesting without them: %s", exc)
        return self._suggester().suggest(journey, dismissed=dismissed, limit=limit, now=now)

    async def asuggest(
        self,
        journey: JourneyContext | None,
        *,
        driver_id: str | None = None,
        limit: int | None = None,
        now: datetime | None = None,
    ) -> list[HelpCard]:
        """Async :meth:`suggest` (run in a worker thread)."""
        return await asyncio.to_thread(self.suggest, journey, driver_id=driver_id, limit=limit, now=now)

    def dismiss(self, driver_id: str, card_id: str) -> None:
        """Record that ``driver_id`` dismissed the help card ``card_id``: :meth:`suggest` leaves it
        out from now on (in the store, so every worker agrees; in this process when there is none).

        Raises :class:`~assistant.errors.BackendError` when the store cannot record it.
        """
        store = self.store
        if store is not None:
            store.dismiss_card(driver_id, card_id, at=self.clock())
            return
        with self._lock:
            self._dismissed_cards.setdefault(driver_id, set()).add(card_id)

    def _dismissed(self, driver_id: str) -> frozenset[str]:
        store = self.store
        if store is not None:
            return store.dismissed_cards(driver_id)
        with self._lock:
            return frozenset(self._dismissed_cards.get(driver_id, ()))

    def _suggester(self) -> Suggester:
        retriever, composer = self._stages()
        extractive = composer.fallback if _is_chat(composer) else composer
        if not isinstance(extractive, ExtractiveComposer):  # a custom composer: quote with the offline one
            with self._lock:
                if self._card_composer is None:
                    hybrid = retriever if isinstance(retriever, HybridRetriever) else None
                    self._card_composer = ExtractiveComposer(self.embeddings, hybrid.store if hybrid else None)
                extractive = self._card_composer
        return Suggester(
            load_rules(self.settings.friction_rules), retriever, extractive, top_k=self.settings.top_k,
            incidents=self._incidents, use_journey=self.settings.use_journey,
        )

    def retrieve(self, request: HelpRequest | str) -> RetrievalResult:
        """The passages :meth:`answer` would draw on for ``request`` (retrieval only, no answer).

        Uses the same query (the message in English, made standalone with the history) and
        journey filters.
        """
        if isinstance(request, str):
            request = HelpRequest(message=request)
        cleaned = clean_message(request.message, max_chars=self.settings.max_message_chars)
        retriever, _ = self._stages()
        safe = redact_request(request, redact(cleaned.text).text)
        language, _, query = self._search_text(safe, retriever)
        return self._retrieve(retriever, query, request.journey, _own_words(safe, language))

    def _retrieve(
        self, retriever: Retriever, query: str, journey: JourneyContext | None, own_words: str | None
    ) -> RetrievalResult:
        """``retriever.retrieve`` for ``query``; a market the driver names is read from
        ``own_words`` when given (:func:`_own_words`)."""
        if own_words is not None and isinstance(retriever, HybridRetriever):
            return retriever.retrieve(query, k=self.settings.top_k, journey=journey, market_text=own_words)
        return retriever.retrieve(query, k=self.settings.top_k, journey=journey)

    def _query_texts(self, request: HelpRequest, redacted: str, history: list[Turn]) -> list[str]:
        """The texts retrieval will embed for this request, given its redacted message and
        history, so that the guardrails embed them in their own model call (an English
        message's; best effort: none when the index is not ready)."""
        try:
            retriever, _ = self._stages()
        except AssistantError:
            return []
        if not isinstance(retriever, HybridRetriever):
            return []
        read = history if is_follow_up(redacted) else []  # only a follow-up reads the history
        return retriever.query_texts(retrieval_query(redacted, read), journey=request.journey)

    def chunk(self, chunk_id: str) -> Document | None:
        """The indexed chunk with this id, or ``None`` when the live index has none."""
        retriever, _ = self._stages()
        return retriever.store.get(chunk_id) if isinstance(retriever, HybridRetriever) else None

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _search_text(safe: HelpRequest, retriever: Retriever) -> tuple[QueryLanguage, str, str]:
        """The message's language, the question to answer (in English, through the help
        centre's own questions, when the message is in another language: see
        :mod:`assistant.retrieval.multilingual`) and the retrieval query built from it."""
        language = query_language(safe.message)
        if not language.is_english and isinstance(retriever, HybridRetriever) and retriever.settings.multilingual:
            try:
                english, _ = retriever.english_for(safe.message, safe.journey)
            except (BackendError, IndexNotReadyError) as exc:  # the model or its pivots failed: to a person
                logger.warning("multilingual search unavailable: %s", exc)
                english = ""
            if english:
                language = replace(language, english=english)
        question = language.english or safe.message
        return language, question, retrieval_query(question, safe.history)

    def _min_confidence(self, draft: Draft) -> float:
        """The confidence an answer needs: the setting, else the threshold its composer fitted
        (the offline answer model's), else :data:`CHAT_MIN_CONFIDENCE`."""
        if self.settings.min_confidence is not None:
            return self.settings.min_confidence
        if draft.min_confidence is not None:
            return draft.min_confidence
        return CHAT_MIN_CONFIDENCE

    def _model_name(self, response: HelpResponse) -> str:
        """What wrote the answer: the chat model when a prompt version shows it did, else the
        offline composer."""
        return self.settings.chat_model if response.prompt_version else "extractive"

    @property
    def store(self) -> ConversationStore | None:
        """The conversation store records go to (``None`` unless recording to a database)."""
        store = getattr(self.sink, "store", None)
        if store is None:
            return None
        from assistant.store import ConversationStore

        return store if isinstance(store, ConversationStore) else None

    def close(self) -> None:
        """Flush and release the conversation store, if any (records still spooled stay on disk)."""
        close = getattr(self.sink, "close", None)
        if callable(close):
            close()

    def _guardrails(self) -> Guardrails:
        with self._lock:
            if self._guardrails_engine is None:
                policy = load_policy(self.settings.guardrail_policy)
                evidence: EvidenceSource = self._evidence or JourneyEvidence()
                if self._evidence is None and self.settings.evidence_log is not None:
                    evidence = CombinedEvidence([evidence, JsonlLogEvidence(self.settings.evidence_log)])
                self._guardrails_engine = Guardrails(
                    self.embeddings,
                    policy=policy,
                    evidence=evidence,
                    cache_dir=Path(self.settings.data_dir) / "guardrails",
                    model_id=embedding_model_id(self.settings),
                    multilingual=self.settings.multilingual,
                )
                self._guardrails_engine.incidents = self._incidents
            return self._guardrails_engine

    def _unavailable(
        self, request: HelpRequest, message: str, exc: Exception, timings: dict[str, float], started: float,
        conversation_id: str, *, redacted: bool = True,
    ) -> HelpResponse:
        logger.error("answering failed, handing over: %s", exc)
        if not redacted:  # the guardrails failed before redacting: the handoff gets redacted text too
            message = redact(message).text
            request = redact_request(request, message)
        reasons = [Reason(code=ReasonCode.LOW_CONFIDENCE, detail=f"assistant backend unavailable: {exc}")]
        try:
            line = self._language_line(message, Route.ESCALATE, Handling.LOW_CONFIDENCE)
        except AssistantError:  # a policy file that does not load: the English text alone
            line = None
        told = f"{line}\n\n{UNAVAILABLE_TEXT}" if line else UNAVAILABLE_TEXT
        response = HelpResponse(
            route=Route.ESCALATE,
            reasons=reasons,
            answer=told,
            confidence=0.0,
            conversation_id=conversation_id,
            handoff=build_handoff(request, message, reasons, told_driver=told, retrieval=None),
        )
        return self._finish(request, message, None, response, timings, started, error=str(exc))

    def _told(self, decision: Decision, draft: Draft | None, checked: ContextCheck | None = None) -> tuple[str, bool]:
        """What the driver is told for ``decision``, and whether the draft's citations go with it."""
        policy = self._guardrails().policy
        quote = draft.text if draft is not None and draft.text and draft.cited else ""
        handling = decision.handling
        if handling is Handling.ANSWER:
            return (draft.text if draft else ""), True
        if handling is Handling.KNOWN_INCIDENT_ANSWER:
            # the problem is known: say so at once, with the lead's note and workaround, else the
            # help centre's passage when it is strong enough to stand as the workaround
            incident = checked.incident if checked is not None else None
            known = policy.known_incidents
            parts = [incident.note if incident and incident.note else known.detected_message]
            if incident and incident.workaround:
                parts.append(f"{known.workaround_lead_in} {incident.workaround}")
                return "\n\n".join(parts), False
            if quote and draft is not None and decision.confidence >= self._min_confidence(draft):
                parts.append(f"{known.workaround_lead_in}\n\n{quote}")
                return "\n\n".join(parts), True
            return "\n\n".join(parts), False
        if handling is Handling.SAFETY:
            return (f"{policy.safety.message}\n\n{quote}".strip(), bool(quote))
        if handling is Handling.SAFETY_SELF_HARM:  # the crisis line, not an article's steps
            return (policy.safety.self_harm_message or policy.safety.message), False
        answers = bool(quote) and draft is not None and decision.confidence >= self._min_confidence(draft)
        if handling is Handling.ACCOUNT_ACTION and answers:
            return f"{quote}\n\n{policy.account_action.message}", True
        if handling is Handling.DEFECT:
            # help and handoff in one contact: the handoff is made, and a documented workaround
            # is given now; the evidence line only when the app really logged errors
            confirmed = any(r.code is ReasonCode.DEFECT_CONFIRMED for r in decision.reasons)
            told = " ".join(p for p in (policy.messages.defect, policy.messages.defect_evidence if confirmed else "") if p)
            if answers:
                return f"{told}\n\n{policy.messages.defect_workaround}\n\n{quote}".replace("\n\n\n\n", "\n\n"), True
            return told, False
        text = {
            Handling.DECLINE_INJECTION: policy.screen.decline_injection,
            Handling.DECLINE_AUTHORITY: policy.screen.decline_authority,
            Handling.DECLINE_OUT_OF_SCOPE: policy.screen.decline_out_of_scope,
            Handling.DRIVER_REQUESTED: policy.messages.driver_requested,
            Handling.KNOWN_INCIDENT: policy.known_incidents.message,
            Handling.ACCOUNT_ACTION: policy.account_action.message,
            Handling.REPEAT: policy.messages.repeat,
        }.get(handling, HANDOFF_TEXT)
        return text, False

    def _language_line(self, message: str, route: Route, handling: Handling | None) -> str | None:
        """The line in the driver's language that opens a fixed reply (a safety escalation, any
        other handoff, a decline) to a message in another language; None for English or a
        language the policy has no lines for. Reads the policy file, not the guardrails (which a
        backend failure may have left unbuilt)."""
        language = query_language(message)
        if language.is_english:
            return None
        replies = load_policy(self.settings.guardrail_policy).languages.get(language.code)
        if replies is None:
            return None
        if route is Route.DECLINE:
            return replies.decline
        return replies.safety if handling in (Handling.SAFETY, Handling.SAFETY_SELF_HARM) else replies.handoff

    def _respond(
        self,
        request: HelpRequest,
        retrieval: RetrievalResult | None,
        draft: Draft | None,
        decision: Decision,
        conversation_id: str,
        checked: ContextCheck | None = None,
    ) -> HelpResponse:
        told, with_citations = self._told(decision, draft, checked)
        if decision.route is not Route.ANSWER and (line := self._language_line(request.message, decision.route,
                                                                                  decision.handling)):
            told = f"{line}\n\n{told}"
        citations = []
        used: list[str] = []
        if with_citations and draft is not None and retrieval is not None:
            citations = [
                Citation(doc_id=p.doc_id, title=p.title, section=p.section, chunk_id=p.chunk_id, score=round(p.score, 4))
                for p in draft.cited
            ]
            market_facts = [f for f in retrieval.journey_used if f.startswith("market")]
            used = list(dict.fromkeys([*market_facts, *(f for p in draft.cited for f in p.boosts)]))
        handoff = None
        if decision.route is Route.ESCALATE:
            handoff = build_handoff(
                request, request.message, decision.reasons, told_driver=told, retrieval=retrieval,
                cited=[c.doc_id for c in citations], context=checked,
            )
        return HelpResponse(
            route=decision.route,
            reasons=decision.reasons,
            answer=told,
            citations=citations,
            confidence=decision.confidence,
            journey_used=used,
            handoff=handoff,
            conversation_id=conversation_id,
            prompt_version=draft.prompt_version if draft is not None else None,
            prompt_hash=draft.prompt_hash if draft is not None else None,
            usage=draft.usage if draft is not None else Usage(),
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
        draft: str = "",
        redacted: bool = True,
        signature: dict[str, str | None] | None = None,
    ) -> HelpResponse:
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        if not redacted:  # settled before the guardrails redacted it: redact here, on every path
            message = redact(message).text
            request = redact_request(request, message)
        record = ConversationRecord(
            conversation_id=response.conversation_id,
            model=self._model_name(response),
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
            draft=draft,
            response=response,
            timings_ms=timings,
            error=error,
            defect_signature=signature,
            created_at=self.clock(),
        )
        try:
            self.sink.record(record)
        except AssistantError:  # a sink must never cost the driver their answer
            logger.exception("conversation sink failed")
        return response


_DEFECT_CODES = {ReasonCode.DEFECT_CONFIRMED, ReasonCode.DEFECT_SUSPECTED, ReasonCode.KNOWN_INCIDENT}


class _StoreIncidents:
    """The open incidents of the assistant's store, when it records to one (none otherwise);
    SQLAlchemy is imported only then."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self._lookup: OpenIncidents | None = None
        self._store: ConversationStore | None = None

    def match(self, *, codes: set[str], endpoints: set[str], message: str) -> LiveIncident | None:
        store = self.assistant.store
        if store is None:
            return None
        if self._lookup is None or self._store is not store:
            from assistant.incidents.live import OpenIncidents

            self._lookup = OpenIncidents(store, ttl_seconds=self.assistant.settings.incident_cache_seconds)
            self._store = store
        return self._lookup.match(codes=codes, endpoints=endpoints, message=message)
