"""The HTTP service: ``create_app(settings)`` builds a FastAPI app over one :class:`Assistant`.

Endpoints (every error has one body, ``{"error": {"type", "message"}}``):

- ``POST /v1/answer``: a :class:`~assistant.HelpRequest` in, a :class:`~assistant.HelpResponse` out;
- ``POST /v1/answer/stream``: Server-Sent Events, ``delta`` events with text, then one
  ``response`` event with the final response (citations included); ``error`` on failure;
- ``POST /v1/suggestions``: help cards for a journey, no question asked; ``POST
  /v1/suggestions/dismiss``: a driver dismissed one;
- ``POST /v1/feedback``: a driver's verdict on an answer;
- ``GET /v1/conversations/{id}``: a stored conversation (redacted);
- ``GET /healthz`` (alive), ``GET /readyz`` (index loaded, database reachable), ``GET /metrics``;
- ``/console/...``: the support-lead console's pages (:mod:`assistant.console`), signed in with
  console users, not API keys; their errors are pages.

Every request is recorded in the conversation store (``ASSISTANT_DATABASE_URL``, default SQLite
in the data dir, migrated at start). No driver text is logged: log lines carry ids and codes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.config import Settings, load_settings
from assistant.console.pages import error_page, is_console, mount_console
from assistant.errors import (
    AssistantError,
    BackendError,
    BackendTimeout,
    ConfigurationError,
    IndexNotReadyError,
    InputError,
    NotFoundError,
)
from assistant.pipeline import Assistant
from assistant.request import HelpRequest, JourneyContext
from assistant.response import HelpResponse
from assistant.service.metrics import MeteredSink, ServiceMetrics
from assistant.service.security import ApiKeys, BodyLimit, RateLimiter, retry_after
from assistant.store import ConversationStore, SqlSink, StoredConversation, StoredFeedback
from assistant.suggestions import HelpCard

logger = logging.getLogger("assistant.service")


class ErrorDetail(BaseModel):
    """What went wrong: a stable ``type`` to branch on and a message for people."""

    type: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class FeedbackRequest(BaseModel):
    """A driver's verdict on the latest answer of a conversation (or on one ``record_id``)."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: str = Field(min_length=1, max_length=64)
    helpful: bool
    comment: str | None = Field(None, max_length=2000, description="Redacted before it is stored.")
    record_id: str | None = Field(None, max_length=64)


class SuggestionRequest(BaseModel):
    """A driver's journey, for help cards with no question asked."""

    model_config = ConfigDict(extra="forbid")

    journey: JourneyContext | None = None
    driver_id: str | None = Field(None, max_length=128, description="Leave out the cards this driver dismissed.")
    limit: int | None = Field(None, ge=0, le=10, description="Most cards (default: the friction rules' max_cards).")


class Suggestions(BaseModel):
    """``POST /v1/suggestions``: the cards, best first (none for a calm journey)."""

    cards: list[HelpCard]


class DismissRequest(BaseModel):
    """A driver dismissed a help card: it is not shown to them again."""

    model_config = ConfigDict(extra="forbid")

    driver_id: str = Field(min_length=1, max_length=128)
    card_id: str = Field(min_length=1, max_length=160)


class Readiness(BaseModel):
    """``GET /readyz``: whether this worker can answer and record."""

    ready: bool
    index: bool
    database: bool
    database_backend: str
    spooled_records: int
    detail: list[str] = Field(default_factory=list)


class ApiError(Exception):
    """An HTTP error with the service's error body."""

    def __init__(self, status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.headers = status, type_, message, headers or {}


#: HTTP status for each branch of the library's exception tree (most specific first).
_STATUS: list[tuple[type[AssistantError], int, str]] = [
    (NotFoundError, 404, "not_found"),
    (InputError, 422, "invalid_input"),
    (IndexNotReadyError, 503, "index_not_ready"),
    (BackendTimeout, 504, "backend_timeout"),
    (BackendError, 503, "backend_unavailable"),
    (ConfigurationError, 500, "configuration_error"),
    (AssistantError, 500, "assistant_error"),
]


def error_status(exc: AssistantError) -> tuple[int, str]:
    """The HTTP status and error type for a library error."""
    for kind, status, name in _STATUS:
        if isinstance(exc, kind):
            return status, name
    return 500, "assistant_error"


def _error(status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": type_, "message": message}}, status_code=status, headers=headers)


@dataclass
class ServiceState:
    """What one worker holds: the assistant, the store, the sink, auth and limits, metrics."""

    settings: Settings
    assistant: Assistant
    store: ConversationStore
    sink: SqlSink
    keys: ApiKeys
    limiter: RateLimiter
    metrics: ServiceMetrics
    index_error: str | None = None
    migrated: bool = False


def _build_state(settings: Settings, assistant: Assistant | None) -> ServiceState:
    sink = SqlSink.open(settings)  # the service records even when no database URL is set
    store = sink.store
    metrics = ServiceMetrics()
    metered = MeteredSink(sink, metrics)
    if assistant is None:
        assistant = Assistant(settings, sink=metered)
    else:
        assistant.sink = metered
    Gauge(
        "assistant_records_spooled_pending", "Conversation records waiting in the spool for the database.",
        registry=metrics.registry,
    ).set_function(sink.spool.pending)
    return ServiceState(
        settings=settings, assistant=assistant, store=store, sink=sink, keys=ApiKeys(settings.api_keys),
        limiter=RateLimiter(settings.rate_limit_per_minute), metrics=metrics,
    )


class IncidentScanner:
    """Scans the store for incidents every ``interval`` seconds in a daemon thread. Every worker
    runs one; they agree because incidents live in the database (one open per group)."""

    def __init__(self, store: ConversationStore, interval: float) -> None:
        self.store, self.interval = store, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="incident-scanner", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        from assistant.incidents import IncidentDetector

        detector = IncidentDetector(self.store)
        while not self._stop.wait(self.interval):
            try:
                result = detector.scan()
            except AssistantError as exc:  # the database is down: try again next time
                logger.warning("incident scan failed: %s", type(exc).__name__)
                continue
            for incident in result.opened:
                logger.warning("incident %d opened: %s, %d contacts", incident.id, incident.group, incident.contacts)
            for incident in result.closed:
                logger.info("incident %d closed: %s", incident.id, incident.group)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def create_app(settings: Settings | None = None, *, assistant: Assistant | None = None) -> FastAPI:
    """The service as an ASGI app. Models and the index load at start-up (``lifespan``), once
    per worker; the store is migrated (SQLite) and every request is recorded in it."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await run_in_threadpool(_build_state, settings, assistant)
        try:
            await run_in_threadpool(state.assistant.warm_up)
        except AssistantError as exc:  # no index, a damaged one, a Chroma server down: not ready, yet alive
            state.index_error = str(exc)
            logger.error("index not loaded (%s): /readyz reports not ready until it loads", type(exc).__name__)
        app.state.service = state
        logger.info("service ready (store: %s)", state.store.backend)
        scanner = IncidentScanner(state.store, settings.incident_scan_seconds)
        scanner.start()
        try:
            yield
        finally:
            await run_in_threadpool(scanner.stop)
            await run_in_threadpool(state.sink.close)

    app = FastAPI(
        title="driver-help-assistant",
        version=_version(),
        summary="Grounded, journey-aware help for gig-delivery drivers, with guardrails and human handoff.",
        lifespan=lifespan,
        responses={
            401: {"model": ErrorBody, "description": "Missing API key"},
            403: {"model": ErrorBody, "description": "Wrong API key"},
            413: {"model": ErrorBody, "description": "Request body too large"},
            422: {"model": ErrorBody, "description": "Malformed request"},
            429: {"model": ErrorBody, "description": "Rate limit exceeded; see Retry-After"},
        },
    )

    # -- errors: one body for all ---------------------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.type, exc.message, exc.headers)

    @app.exception_handler(AssistantError)
    async def _assistant_error(request: Request, exc: AssistantError) -> Response:
        status, name = error_status(exc)
        message = str(exc) if status < 500 or status in (503, 504) else "internal error"
        if is_console(request):
            status = 409 if isinstance(exc, ConfigurationError) else status  # e.g. resolving a closed item
            return error_page(request, status, name.replace("_", " ").capitalize(), message)
        return _error(status, name, message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if is_console(request):
            return error_page(request, 404, "Not found", "There is no such page.")
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            return _error(422, "invalid_request", "body: not valid JSON")
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        message = f"{where}: {first.get('msg', 'invalid request')}"
        return _error(422, "invalid_request", message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        name = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        if is_console(request):
            return error_page(request, exc.status_code, name.replace("_", " ").capitalize(), str(exc.detail))
        return _error(exc.status_code, name, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        logger.error("unexpected %s on %s (request %s)", type(exc).__name__, request.url.path,
                     getattr(request.state, "request_id", "-"))
        if is_console(request):
            return error_page(request, 500, "Internal error", "Something went wrong; the error was logged.")
        return _error(500, "internal_error", "internal error")

    # -- logs and HTTP metrics: ids and codes, never driver text -----------------------------

    @app.middleware("http")
    async def _observe(request: Request, call_next: Any) -> Response:
        request_id = request.headers.get("x-request-id", "")[:64] or uuid.uuid4().hex
        request.state.request_id = request_id
        started = time.perf_counter()
        response: Response = await call_next(request)
        seconds = time.perf_counter() - started
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        current: ServiceState | None = getattr(request.app.state, "service", None)
        if current is not None:
            current.metrics.http_requests.labels(method=request.method, path=path, status=str(response.status_code)).inc()
            current.metrics.http_seconds.labels(path=path).observe(seconds)
        response.headers["X-Request-Id"] = request_id
        logger.info("%s %s %d %.1fms request=%s caller=%s", request.method, path, response.status_code, seconds * 1000,
                    request_id, getattr(request.state, "caller", "-"))
        return response

    # -- endpoints ------------------------------------------------------------------------------

    @app.post("/v1/answer", response_model=HelpResponse, tags=["answers"])
    async def answer(body: HelpRequest, current: State, _: Caller) -> HelpResponse:
        """Answer one driver request (or hand it to a person: a handoff is a normal response)."""
        await _ready_or_raise(current)
        return await current.assistant.aanswer(body)

    @app.post(
        "/v1/answer/stream", tags=["answers"],
        responses={200: {"content": {"text/event-stream": {}}, "description": "`delta` events, then one `response` event."}},
    )
    async def answer_stream(body: HelpRequest, current: State, _: Caller) -> StreamingResponse:
        """The answer as Server-Sent Events: ``event: delta`` with ``{"text"}`` as it is written,
        then ``event: response`` with the final HelpResponse; ``event: error`` if it fails."""
        await _ready_or_raise(current)

        async def events() -> AsyncIterator[str]:
            try:
                async for item in current.assistant.astream(body):
                    if isinstance(item, HelpResponse):
                        yield _sse("response", item.model_dump(mode="json"))
                    elif item:
                        yield _sse("delta", {"text": item})
            except AssistantError as exc:
                status, name = error_status(exc)
                yield _sse("error", {"error": {"type": name, "message": str(exc) if status != 500 else "internal error"}})
            except Exception as exc:  # the stream has started: report in-band, never a traceback
                logger.error("unexpected %s while streaming", type(exc).__name__)
                yield _sse("error", {"error": {"type": "internal_error", "message": "internal error"}})

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.post("/v1/suggestions", response_model=Suggestions, tags=["suggestions"])
    async def suggestions(body: SuggestionRequest, current: State, _: Caller) -> Suggestions:
        """Help cards for the driver's journey before they ask: one per friction it shows (an open
        incident matching its errors first), none for a calm journey, never one they dismissed."""
        await _ready_or_raise(current)
        return Suggestions(cards=await current.assistant.asuggest(body.journey, driver_id=body.driver_id, limit=body.limit))

    @app.post("/v1/suggestions/dismiss", status_code=204, tags=["suggestions"], response_class=Response)
    async def dismiss(body: DismissRequest, current: State, _: Caller) -> Response:
        """Record that the driver dismissed a card (idempotent; every worker honours it)."""
        await run_in_threadpool(current.assistant.dismiss, body.driver_id, body.card_id)
        return Response(status_code=204)

    @app.post("/v1/feedback", response_model=StoredFeedback, status_code=201, tags=["feedback"],
              responses={404: {"model": ErrorBody}})
    async def feedback(body: FeedbackRequest, current: State, _: Caller) -> StoredFeedback:
        """Record whether an answer helped; an unhelpful one joins the review queue."""
        return await run_in_threadpool(
            current.store.add_feedback, body.conversation_id, helpful=body.helpful, comment=body.comment,
            record_id=body.record_id,
        )

    @app.get("/v1/conversations/{conversation_id}", response_model=StoredConversation, tags=["conversations"],
             responses={404: {"model": ErrorBody}})
    async def conversation(conversation_id: str, current: State, _: Caller) -> StoredConversation:
        """A stored conversation: turns, responses with their handoff packets, feedback (redacted)."""
        found = await run_in_threadpool(current.store.get, conversation_id)
        if found is None:
            raise ApiError(404, "not_found", f"no conversation {conversation_id!r}")
        return found

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is alive (it may still be loading)."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=Readiness, tags=["operations"], responses={503: {"model": Readiness}})
    async def readyz(current: State) -> JSONResponse:
        """Ready when the index is loaded and the database is reachable and migrated."""
        detail: list[str] = []
        database = True
        try:
            if not current.migrated:
                current.migrated = await run_in_threadpool(current.store.is_current)
            if not current.migrated:
                database = False
                detail.append("database not migrated: run `assistant db upgrade`")
            else:
                await run_in_threadpool(current.store.ping)
        except BackendError as exc:
            database = False
            detail.append(f"database unreachable: {exc}")
        index = await _index_loaded(current)
        if not index:
            detail.append(f"index not loaded: {current.index_error}")
        body = Readiness(
            ready=index and database, index=index, database=database, database_backend=current.store.backend,
            spooled_records=current.sink.spool.pending(), detail=detail,
        )
        return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics(current: State) -> Response:
        """Prometheus text: answers by route and reason, stage and HTTP latency histograms."""
        return Response(generate_latest(current.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
        )
    mount_console(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


async def _index_loaded(current: ServiceState) -> bool:
    """True once the index is loaded; an index built after start-up is loaded on the next call."""
    if current.index_error is not None and await run_in_threadpool(current.assistant.index_ready):  # built since
        try:
            await run_in_threadpool(current.assistant.warm_up)
            current.index_error = None
        except AssistantError as exc:
            current.index_error = str(exc)
    return current.index_error is None


def _state(request: Request) -> ServiceState:
    """The worker's state (a dependency of every endpoint)."""
    current: ServiceState | None = getattr(request.app.state, "service", None)
    if current is None:
        raise ApiError(503, "starting", "the service is starting")
    return current


async def _caller(request: Request, current: Annotated[ServiceState, Depends(_state)]) -> str:
    """Authenticate (bearer key) and rate-limit; returns the caller's id for logs."""
    who = request.client.host if request.client else "unknown"
    if current.keys.enabled:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "missing bearer API key", {"WWW-Authenticate": "Bearer"})
        key_id = current.keys.match(token.strip())
        if key_id is None:
            raise ApiError(403, "forbidden", "API key not accepted")
        who = f"key:{key_id}"
    wait = current.limiter.take(who)
    if wait > 0:
        raise ApiError(429, "rate_limited", "too many requests", {"Retry-After": retry_after(wait)})
    request.state.caller = who
    return who


State = Annotated[ServiceState, Depends(_state)]
Caller = Annotated[str, Depends(_caller)]


async def _ready_or_raise(current: ServiceState) -> None:
    if not await _index_loaded(current):
        raise ApiError(503, "index_not_ready", current.index_error or "the index is not loaded")


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _version() -> str:
    from assistant import __version__

    return __version__
