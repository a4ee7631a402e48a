"""The console's pages, served by the same FastAPI app as the API under ``/console``.

Server-rendered (Jinja2), usable without JavaScript: every action is a plain form ``POST`` with
the session's CSRF token in a hidden field, answered by a redirect (post/redirect/get). A little
vendored JavaScript adds keyboard shortcuts. Pages:

- ``/console/queue``: the review queue with its filters and counts by reason;
- ``/console/items/{id}``: one flagged conversation: transcript, journey timeline, defect
  evidence, retrieved passages and citations with their text, the handoff packet, prompt and
  model, the label form, Claim / Resolve / Dismiss / Reopen, and the item's audit log;
- ``/console/incidents``: open and recent incidents; leads attach a note and a workaround;
- ``/console/analytics``: answer, escalation and decline rates by day, escalations by reason and
  category, drivers' feedback, self-service resolution and content gaps;
- ``/console/users`` (leads only): accounts and the console's audit log;
- ``/console/analytics.json`` and ``/console/reviews.jsonl`` (leads only): the analytics, and the
  labelled reviews as eval cases (the same file as ``assistant review export``).

Nothing personal goes in a URL: ids are opaque, texts are the store's redacted texts, and a
search typed with PII in it is redacted and redirected. Log lines carry the route, not the URL.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from assistant.console.users import ROLES, ConsoleSession, ConsoleUsers, Role
from assistant.errors import AssistantError, AuthError, ConfigurationError, NotFoundError
from assistant.guardrails.pii import redact
from assistant.incidents import IncidentDetector
from assistant.store import schema
from assistant.store.analytics import Analytics, ContentGap, RatePoint
from assistant.store.review import ReviewFilter, ReviewItem, ReviewLabel, ReviewQueue

if TYPE_CHECKING:
    from assistant.service.app import ServiceState

logger = logging.getLogger("assistant.console")

HERE = Path(__file__).parent
COOKIE = "assistant_console"
LOGIN_COOKIE = "assistant_console_login"
PAGE_SIZE = 50
GAPS_TTL_SECONDS = 300.0
_templates = Jinja2Templates(directory=str(HERE / "templates"))
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class _LoginRequired(Exception):
    """Not signed in: go to the sign-in page."""


class _PageError(Exception):
    """A console error shown as a page (never the API's JSON body)."""

    def __init__(self, status: int, title: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.title, self.message, self.headers = status, title, message, headers or {}


@dataclass
class _Console:
    """What the console of one worker holds (all shared state lives in the store)."""

    users: ConsoleUsers
    queue: ReviewQueue
    analytics: Analytics
    gaps: dict[tuple[Any, ...], tuple[float, list[ContentGap]]] = field(default_factory=dict)
    gaps_lock: threading.Lock = field(default_factory=threading.Lock)


def _service(request: Request) -> ServiceState:
    current: ServiceState | None = getattr(request.app.state, "service", None)
    if current is None:
        raise _PageError(503, "Starting", "The service is starting; reload in a moment.")
    return current


def _console(request: Request) -> _Console:
    found: _Console | None = getattr(request.app.state, "console", None)
    if found is None:
        current = _service(request)
        found = _Console(
            users=ConsoleUsers(current.store, session_hours=current.settings.console_session_hours),
            queue=ReviewQueue(current.store),
            analytics=Analytics(current.store),
        )
        request.app.state.console = found
    return found


async def _signed_in(request: Request, *, lead: bool = False) -> ConsoleSession:
    console = _console(request)
    found = await run_in_threadpool(console.users.session, request.cookies.get(COOKIE))
    if found is None:
        raise _LoginRequired()
    request.state.caller = f"user:{found.user}"
    if lead and not found.is_lead:
        raise _PageError(403, "Leads only", "This page is for leads. Ask a lead if you need access.")
    return found


async def _form(request: Request, session: ConsoleSession) -> dict[str, str]:
    """The posted form, after checking its CSRF token against the session's."""
    form = await request.form()
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    sent = values.get("csrf_token", "")
    if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise _PageError(403, "Form refused", "The form's security token is missing or wrong. Reload the page and try again.")
    return values


def _secure(request: Request) -> bool:
    settings = _service(request).settings
    return bool(settings.console_secure_cookies) or request.url.scheme == "https"


def _render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = _templates.TemplateResponse(request, template, context, status_code=status)
    response.headers.update(_SECURITY_HEADERS)
    return response


def _redirect(url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    response.headers.update(_SECURITY_HEADERS)
    return response


def _flash_url(url: str, note: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode({'done': note})}"


# -- filters ---------------------------------------------------------------------------------

_FILTER_FIELDS = ("status", "reason", "category", "priority", "market", "stage", "app_version", "since", "until", "q")
_STATUSES = ("active", "open", "claimed", "resolved", "dismissed", "any")


def _day(text: str | None, *, end: bool = False) -> datetime | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError as exc:
        raise _PageError(400, "Bad date", "Dates are written YYYY-MM-DD.") from exc
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start + timedelta(days=1) if end else start


def _filter_from(params: dict[str, str]) -> ReviewFilter:
    status = params.get("status") or "active"
    if status not in _STATUSES:
        raise _PageError(400, "Bad filter", f"Unknown status {status!r}.")
    return ReviewFilter(
        status=None if status == "any" else status,  # type: ignore[arg-type]
        reason=params.get("reason") or None, category=params.get("category") or None,
        priority=params.get("priority") or None, market=params.get("market") or None,
        stage=params.get("stage") or None, app_version=params.get("app_version") or None,
        since=_day(params.get("since")), until=_day(params.get("until"), end=True),
        text=params.get("q") or None,
    )


def _choices(console: _Console) -> dict[str, list[str]]:
    """The values each filter can take, from the store."""
    r, h, item = schema.Response, schema.Handoff, schema.ReviewItem
    columns = {
        "reason": item.reason, "category": h.category, "priority": item.priority,
        "market": r.market, "stage": r.stage, "app_version": r.app_version,
    }
    found: dict[str, list[str]] = {}
    with console.queue.store._session() as session:
        for name, column in columns.items():
            values = session.scalars(select(column).distinct().where(column.is_not(None)).limit(200)).all()
            found[name] = sorted(str(v) for v in values if v)
    return found


# -- the conversation page's data --------------------------------------------------------------


def _timeline(journey: dict[str, Any] | None, evidence: list[str]) -> list[dict[str, Any]]:
    """Stage and app events of the journey in time order (events without a time keep their order,
    after the timed ones), then the evidence lines of the handoff."""
    rows: list[dict[str, Any]] = []
    for position, event in enumerate((journey or {}).get("events") or []):
        ts = event.get("ts")
        rows.append({
            "ts": ts, "type": event.get("type") or "event", "name": event.get("name"), "code": event.get("code"),
            "detail": event.get("detail"), "order": (0 if ts else 1, ts or "", position),
        })
    rows.sort(key=lambda row: row["order"])
    rows.extend({"ts": None, "type": "evidence", "name": None, "code": None, "detail": line} for line in evidence)
    return rows


def _passage_text(current: ServiceState, chunk_id: str) -> str | None:
    """The indexed text of a chunk, when the index is loaded."""
    try:
        retriever, _ = current.assistant._stages()
    except AssistantError:
        return None
    store = getattr(retriever, "store", None)
    doc = store.get(chunk_id) if store is not None else None
    return str(doc.page_content) if doc is not None else None


def _item_page(current: ServiceState, console: _Console, item_id: int) -> dict[str, Any]:
    item = console.queue.get(item_id)
    conversation = current.store.get(item.conversation_id)
    if conversation is None:
        raise NotFoundError(f"no conversation for review item {item_id}")
    flagged = next((r for r in conversation.history if r.record_id == item.record_id), None)
    packet = (flagged.handoff or {}) if flagged else {}  # the HandoffPacket as stored
    citations = [
        {**c, "text": _passage_text(current, str(c.get("chunk_id")))} for c in (flagged.citations if flagged else [])
    ]
    cited = {c.get("chunk_id") for c in citations}
    retrieved = [
        {**r, "text": _passage_text(current, str(r.get("chunk_id"))), "cited": r.get("chunk_id") in cited}
        for r in (flagged.retrieved if flagged else [])
    ]
    return {
        "item": item, "conversation": conversation, "flagged": flagged, "handoff": packet, "packet": packet,
        "timeline": _timeline(flagged.journey if flagged else None, list(packet.get("evidence_timeline") or [])),
        "citations": citations, "retrieved": retrieved, "history": console.queue.history(item_id),
        "journey": flagged.journey if flagged else None,
    }


# -- analytics -------------------------------------------------------------------------------


def _nearest(current: ServiceState) -> Callable[[str], tuple[str, str, float] | None] | None:
    try:
        retriever, _ = current.assistant._stages()
    except AssistantError:
        return None

    def nearest(text: str) -> tuple[str, str, float] | None:
        try:
            found = retriever.retrieve(text, k=1)
        except AssistantError:
            return None
        if not found.passages:
            return None
        top = found.passages[0]
        return top.doc_id, top.title, float(top.dense_similarity if top.dense_similarity is not None else top.score)

    return nearest


def _analytics(current: ServiceState, console: _Console, days: int, *, gaps: bool = True) -> dict[str, Any]:
    now = datetime.now(UTC)
    since = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    rates = console.analytics.rates(since=since)
    totals = {key: sum(getattr(p, key) for p in rates) for key in ("total", "answered", "escalated", "declined")}
    data: dict[str, Any] = {
        "days": days, "since": since, "rates": rates, "totals": totals,
        "by_reason": console.analytics.escalations_by_reason(since=since),
        "by_category": console.analytics.escalations_by_category(since=since),
        "feedback": console.analytics.feedback(since=since),
        "self_service": console.analytics.self_service(since=since, now=now),
        "gaps": [], "gaps_error": None,
    }
    if gaps:
        key = (days, totals["total"], current.store.counts().get("feedback", 0))
        with console.gaps_lock:
            cached = console.gaps.get(key)
            if cached is not None and time.monotonic() - cached[0] < GAPS_TTL_SECONDS:
                data["gaps"] = cached[1]
                return data
        try:
            found = console.analytics.content_gaps(current.assistant.embeddings, nearest=_nearest(current), since=since)
        except AssistantError as exc:
            data["gaps_error"] = f"content gaps unavailable: {type(exc).__name__}"
        else:
            with console.gaps_lock:
                console.gaps.clear()
                console.gaps[key] = (time.monotonic(), found)
            data["gaps"] = found
    return data


def _bars(rates: list[RatePoint], since: datetime, today: date) -> dict[str, Any]:
    """Geometry of the stacked daily bar chart, one slot per day of the period (days without a
    contact are empty slots); SVG attributes, so no inline style is needed."""
    width, height, gap = 640, 160, 2
    by_day = {p.day: p for p in rates}
    days = [since.date() + timedelta(days=n) for n in range((today - since.date()).days + 1)]
    rates = [by_day.get(d) or RatePoint(day=d, total=0, answered=0, escalated=0, declined=0) for d in days]
    peak = max((p.total for p in rates), default=0) or 1
    step = width / max(len(rates), 1)
    bars = []
    for index, point in enumerate(rates):
        x, top = index * step, float(height)
        parts = []
        for kind in ("answered", "escalated", "declined"):
            value = getattr(point, kind)
            h = height * value / peak
            top -= h
            parts.append({"kind": kind, "y": round(top, 1), "h": round(h, 1), "value": value})
        bars.append({"x": round(x + gap / 2, 1), "w": round(max(step - gap, 1), 1), "parts": parts, "point": point})
    return {"width": width, "height": height, "bars": bars, "peak": peak}


# -- routes ----------------------------------------------------------------------------------


def mount_console(app: FastAPI) -> None:
    """Add the console's pages, static files and error pages to the service ``app``."""
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("", response_class=HTMLResponse)
    @router.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        await _signed_in(request)
        return _redirect("/console/queue")

    # -- sign-in ------------------------------------------------------------------------------

    @router.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> Response:
        token = secrets.token_urlsafe(32)
        response = _render(request, "login.html", csrf_token=token, error=None)
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request),
                            path="/console/login", max_age=3600)
        return response

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        form = await request.form()
        sent, expected = str(form.get("csrf_token") or ""), request.cookies.get(LOGIN_COOKIE, "")
        if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            raise _PageError(403, "Form refused", "The sign-in form expired or was not sent from this site. Reload it.")
        client = request.client.host if request.client else "unknown"
        try:
            token, session = await run_in_threadpool(
                _console(request).users.sign_in, str(form.get("name") or ""), str(form.get("password") or ""),
                client=client,
            )
        except AuthError as exc:
            status = 429 if exc.retry_after else 401
            page = _render(request, "login.html", status, csrf_token=expected, error=str(exc))
            if exc.retry_after:
                page.headers["Retry-After"] = str(int(exc.retry_after + 0.999))
            logger.info("console sign-in refused (%s)", "throttled" if exc.retry_after else "wrong credentials")
            return page
        response = _redirect("/console/queue")
        response.set_cookie(
            COOKIE, token, httponly=True, samesite="lax", secure=_secure(request), path="/console",
            max_age=int((session.expires_at - datetime.now(UTC)).total_seconds()),
        )
        response.delete_cookie(LOGIN_COOKIE, path="/console/login")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session = await _signed_in(request)
        await _form(request, session)
        await run_in_threadpool(_console(request).users.sign_out, request.cookies.get(COOKIE))
        response = _redirect("/console/login")
        response.delete_cookie(COOKIE, path="/console")
        return response

    # -- queue ----------------------------------------------------------------------------------

    @router.get("/queue", response_class=HTMLResponse)
    async def queue_page(request: Request) -> Response:
        session = await _signed_in(request)
        params = {k: v.strip() for k, v in request.query_params.items() if k in (*_FILTER_FIELDS, "page", "done")}
        if params.get("q"):
            clean = redact(params["q"]).text
            if clean != params["q"]:  # no PII in URLs: search the redacted words instead
                params["q"] = clean
                return _redirect("/console/queue?" + urlencode(params))
        where = _filter_from(params)
        try:
            page = max(1, int(params.get("page") or 1))
        except ValueError:
            page = 1
        console = _console(request)

        def load() -> dict[str, Any]:
            return {
                "items": console.queue.items(where, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE),
                "counts": console.queue.counts(where.model_copy(update={"reason": None})),
                "choices": _choices(console),
            }

        data = await run_in_threadpool(load)
        items: list[ReviewItem] = data["items"]
        base = {k: v for k, v in params.items() if k in _FILTER_FIELDS and v}
        return _render(
            request, "queue.html", session=session, items=items[:PAGE_SIZE], counts=data["counts"],
            choices=data["choices"], params=params, statuses=_STATUSES, page=page,
            next_url=("/console/queue?" + urlencode({**base, "page": page + 1})) if len(items) > PAGE_SIZE else None,
            prev_url=("/console/queue?" + urlencode({**base, "page": page - 1})) if page > 1 else None,
            reason_url=lambda reason: "/console/queue?" + urlencode({**base, "reason": reason}),
            now=datetime.now(UTC), done=params.get("done"),
        )

    # -- one item -----------------------------------------------------------------------------

    @router.get("/items/{item_id}", response_class=HTMLResponse)
    async def item_page(request: Request, item_id: int) -> Response:
        session = await _signed_in(request)
        current, console = _service(request), _console(request)
        data = await run_in_threadpool(_item_page, current, console, item_id)
        return _render(request, "item.html", session=session, done=request.query_params.get("done"), **data)

    @router.post("/items/{item_id}/{action}")
    async def item_action(request: Request, item_id: int, action: str) -> Response:
        session = await _signed_in(request)
        form = await _form(request, session)
        queue = _console(request).queue
        actor, note = session.user, form.get("note") or None
        acts: dict[str, Callable[[], Any]] = {
            "claim": lambda: queue.claim(item_id, actor),
            "release": lambda: queue.assign(item_id, None, actor=actor),
            "resolve": lambda: queue.resolve(item_id, actor, note),
            "dismiss": lambda: queue.dismiss(item_id, actor, note),
            "reopen": lambda: queue.reopen(item_id, actor, note),
            "label": lambda: _label(queue, item_id, form, actor),
        }
        if action not in acts:
            raise _PageError(404, "Not found", f"No action {action!r}.")
        await run_in_threadpool(acts[action])
        done = {"label": "label saved", "claim": "claimed", "release": "released"}.get(action, action + "d")
        if action == "label" and form.get("then") == "resolve":
            await run_in_threadpool(queue.resolve, item_id, actor, None)
            done = "label saved and resolved"
        return _redirect(_flash_url(f"/console/items/{item_id}", done))

    # -- analytics ------------------------------------------------------------------------------

    @router.get("/analytics", response_class=HTMLResponse)
    async def analytics_page(request: Request, days: int = 30) -> Response:
        session = await _signed_in(request)
        days = min(max(days, 1), 365)
        data = await run_in_threadpool(_analytics, _service(request), _console(request), days)
        chart = _bars(data["rates"], data["since"], datetime.now(UTC).date())
        return _render(request, "analytics.html", session=session, chart=chart, **data)

    @router.get("/analytics.json")
    async def analytics_export(request: Request, days: int = 30) -> Response:
        await _signed_in(request, lead=True)
        days = min(max(days, 1), 365)
        data = await run_in_threadpool(_analytics, _service(request), _console(request), days)
        body = {
            "days": days, "since": data["since"].isoformat(), "totals": data["totals"],
            "rates": [p.model_dump(mode="json") for p in data["rates"]],
            "escalations_by_reason": [r.model_dump() for r in data["by_reason"]],
            "escalations_by_category": [r.model_dump() for r in data["by_category"]],
            "feedback": data["feedback"].model_dump(), "self_service": data["self_service"].model_dump(),
            "content_gaps": [g.model_dump() for g in data["gaps"]],
        }
        return JSONResponse(body, headers={"Content-Disposition": f'attachment; filename="analytics-{days}d.json"',
                                           **_SECURITY_HEADERS})

    @router.get("/reviews.jsonl")
    async def reviews_export(request: Request, since: str | None = None) -> Response:
        """Labelled reviews as eval cases (``evals/datasets`` format): ``assistant eval run -d FILE``."""
        await _signed_in(request, lead=True)
        start = _day(since)
        cases = await run_in_threadpool(lambda: _console(request).queue.export_cases(since=start))
        body = "".join(c.model_dump_json(exclude={"dataset"}, exclude_defaults=True) + "\n" for c in cases)
        return Response(body, media_type="application/x-ndjson", headers={
            "Content-Disposition": 'attachment; filename="reviewed-cases.jsonl"', **_SECURITY_HEADERS,
        })

    # -- incidents ------------------------------------------------------------------------------

    @router.get("/incidents", response_class=HTMLResponse)
    async def incidents_page(request: Request) -> Response:
        session = await _signed_in(request)
        detector = IncidentDetector(_service(request).store)
        open_, closed = await run_in_threadpool(
            lambda: (detector.incidents(status="open"), detector.incidents(status="closed", limit=20))
        )
        return _render(request, "incidents.html", session=session, open_incidents=open_, closed_incidents=closed,
                       done=request.query_params.get("done"))

    @router.post("/incidents/{incident_id}")
    async def incident_note(request: Request, incident_id: int) -> Response:
        session = await _signed_in(request, lead=True)
        form = await _form(request, session)
        detector = IncidentDetector(_service(request).store)
        await run_in_threadpool(
            lambda: detector.annotate(incident_id, note=form.get("note", ""), workaround=form.get("workaround", ""))
        )
        logger.info("incident %d annotated by a lead", incident_id)
        return _redirect(_flash_url("/console/incidents", f"incident {incident_id} updated"))

    @router.get("/conversations/{conversation_id}")
    async def conversation_link(request: Request, conversation_id: str) -> Response:
        """A conversation's review item (incidents list conversations by id)."""
        await _signed_in(request)
        store = _service(request).store

        def first_item() -> int | None:
            with store._session() as db:
                return db.scalar(
                    select(schema.ReviewItem.id).where(schema.ReviewItem.conversation_id == conversation_id[:64])
                    .order_by(schema.ReviewItem.id).limit(1)
                )

        found = await run_in_threadpool(first_item)
        if found is None:
            raise _PageError(404, "Not in the queue", "That conversation was not flagged for review.")
        return _redirect(f"/console/items/{found}")

    # -- users (leads) --------------------------------------------------------------------------

    @router.get("/users", response_class=HTMLResponse)
    async def users_page(request: Request) -> Response:
        session = await _signed_in(request, lead=True)
        users = _console(request).users
        listed, audit = await run_in_threadpool(lambda: (users.all(), users.audit(limit=50)))
        return _render(request, "users.html", session=session, users=listed, audit=audit, roles=ROLES,
                       done=request.query_params.get("done"), error=None)

    @router.post("/users")
    async def users_action(request: Request) -> Response:
        session = await _signed_in(request, lead=True)
        form = await _form(request, session)
        users = _console(request).users
        name, action = form.get("name", ""), form.get("action", "add")
        role: Role = "lead" if form.get("role") == "lead" else "reviewer"
        try:
            if action == "add":
                await run_in_threadpool(lambda: users.add(name, form.get("password", ""), role=role, actor=session.user))
            elif action in ("disable", "enable"):
                if name == session.user:
                    raise ConfigurationError("you cannot disable your own account")
                await run_in_threadpool(lambda: users.set_active(name, action == "enable", actor=session.user))
            elif action == "role":
                await run_in_threadpool(lambda: users.set_role(name, role, actor=session.user))
            else:
                raise ConfigurationError(f"unknown action {action!r}")
        except (ConfigurationError, NotFoundError) as exc:
            listed, audit = await run_in_threadpool(lambda: (users.all(), users.audit(limit=50)))
            return _render(request, "users.html", 400, session=session, users=listed, audit=audit, roles=ROLES,
                           done=None, error=str(exc))
        return _redirect(_flash_url("/console/users", f"{action}: {name}"))

    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=str(HERE / "static")), name="console-static")

    @app.exception_handler(_LoginRequired)
    async def _to_login(request: Request, _: _LoginRequired) -> Response:
        if request.method == "GET":
            return _redirect("/console/login")
        return error_page(request, 401, "Signed out", "Your session ended. Sign in again, then repeat the action.")

    @app.exception_handler(_PageError)
    async def _page_error(request: Request, exc: _PageError) -> Response:
        response = error_page(request, exc.status, exc.title, exc.message)
        response.headers.update(exc.headers)
        return response


def is_console(request: Request) -> bool:
    """Whether ``request`` is for a console page (its errors are pages, not JSON)."""
    return request.url.path == "/console" or request.url.path.startswith("/console/")


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    """The console's error page (the service's error handlers use it for console paths)."""
    return _render(request, "error.html", status, title=title, message=message)


def _label(queue: ReviewQueue, item_id: int, form: dict[str, str], actor: str) -> ReviewItem:
    def verdict(name: str) -> bool | None:
        return {"yes": True, "no": False}.get(form.get(name, ""))

    tags = [t.strip()[:40] for t in form.get("tags", "").split(",") if t.strip()][:20]
    label = ReviewLabel(
        route_right=verdict("route_right"), answer_right=verdict("answer_right"),
        defect_confirmed=verdict("defect_confirmed"),
        correct_doc_id=(form.get("correct_doc_id") or "").strip()[:128] or None,
        correct_text=(form.get("correct_text") or "").strip()[:4000] or None,
        tags=tags, notes=(form.get("notes") or "").strip()[:4000] or None,
    )
    return queue.label(item_id, label, actor)
