"""The review queue: conversations a support lead should look at, worked without the web.

Items enter when a record is stored (escalations, declines, low confidence, errors, a sampled
share of plain answers) or when a driver marks an answer unhelpful. A reviewer filters and
sorts them (priority, then age), claims or assigns one, labels it (was the route right? the
answer? was it a defect? what should have been said?) and resolves or dismisses it. Every action
is kept with who and when (:meth:`ReviewQueue.history`).

>>> queue = ReviewQueue(store)
>>> [item] = queue.items(ReviewFilter(reason="low_confidence", market="us-ca"), limit=1)
>>> queue.claim(item.id, "sam")
>>> queue.label(item.id, ReviewLabel(route_right=True, answer_right=False, correct_doc_id="payouts"), "sam")
>>> queue.resolve(item.id, "sam")
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, case, func, or_, select

from assistant.errors import ConfigurationError, NotFoundError
from assistant.evals.dataset import EvalCase
from assistant.guardrails.pii import redact
from assistant.request import JourneyContext, Turn
from assistant.response import ReasonCode, Route
from assistant.store import schema
from assistant.store.store import ConversationStore, _utc

Status = Literal["open", "claimed", "resolved", "dismissed"]
_PRIORITY_ORDER = {"urgent": 0, "high": 1, "normal": 2}


class ReviewFilter(BaseModel):
    """Which items to show; every field is optional and they combine with AND."""

    model_config = ConfigDict(frozen=True)

    status: Status | Literal["active"] | None = Field(
        "active", description="'active' means open or claimed; None means any."
    )
    reason: str | None = None
    category: str | None = Field(None, description="The handoff's category (app_defect, safety, ...).")
    priority: str | None = None
    market: str | None = None
    stage: str | None = None
    app_version: str | None = None
    assignee: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = Field(None, description="Words to find in the (redacted) driver message or answer.")


class ReviewLabel(BaseModel):
    """A reviewer's verdict. Free text is redacted before it is stored."""

    model_config = ConfigDict(frozen=True)

    route_right: bool | None = None
    answer_right: bool | None = None
    defect_confirmed: bool | None = None
    correct_doc_id: str | None = Field(None, description="The article that should have been given.")
    correct_text: str | None = Field(None, description="What the driver should have been told.")
    tags: list[str] = Field(default_factory=list)
    notes: str | None = None


class ReviewAction(BaseModel):
    """One entry of an item's audit log."""

    model_config = ConfigDict(frozen=True)

    action: str
    actor: str
    at: datetime
    detail: dict[str, Any]


class ReviewItem(BaseModel):
    """A flagged conversation as the queue shows it."""

    model_config = ConfigDict(frozen=True)

    id: int
    record_id: str
    conversation_id: str
    reason: str
    priority: str
    status: str
    created_at: datetime
    assignee: str | None
    message: str
    answer: str
    route: str
    reason_codes: list[str]
    confidence: float
    category: str | None
    market: str | None
    stage: str | None
    app_version: str | None
    label: ReviewLabel | None


class ReviewQueue:
    """Filter, claim, label, resolve and dismiss flagged conversations in a :class:`ConversationStore`."""

    def __init__(self, store: ConversationStore) -> None:
        self.store = store

    # -- reading ----------------------------------------------------------------------------

    def _select(self, where: ReviewFilter) -> Select[Any, Any, Any]:  # rows of (item, response, category)
        item, response, handoff = schema.ReviewItem, schema.Response, schema.Handoff
        statement: Select[Any, Any, Any] = (
            select(item, response, handoff.category)
            .join(response, response.record_id == item.record_id)
            .outerjoin(handoff, handoff.record_id == item.record_id)
        )
        if where.status == "active":
            statement = statement.where(item.status.in_(("open", "claimed")))
        elif where.status is not None:
            statement = statement.where(item.status == where.status)
        for column, value in (
            (item.reason, where.reason), (handoff.category, where.category), (item.priority, where.priority),
            (response.market, where.market), (response.stage, where.stage), (response.app_version, where.app_version),
            (item.assignee, where.assignee),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if where.since is not None:
            statement = statement.where(item.created_at >= where.since)
        if where.until is not None:
            statement = statement.where(item.created_at < where.until)
        for word in (where.text or "").split():
            pattern = f"%{word.lower()}%"
            statement = statement.where(or_(func.lower(response.message).like(pattern), func.lower(response.answer).like(pattern)))
        return statement

    def items(self, where: ReviewFilter | None = None, *, limit: int = 50, offset: int = 0) -> list[ReviewItem]:
        """Matching items, most urgent first, then oldest first."""
        rank = case(_PRIORITY_ORDER, value=schema.ReviewItem.priority, else_=3)
        statement = (
            self._select(where or ReviewFilter())
            .order_by(rank, schema.ReviewItem.created_at, schema.ReviewItem.id)
            .limit(limit).offset(offset)
        )
        with self.store._session() as session:
            return [_view(row[0], row[1], row[2]) for row in session.execute(statement)]

    def counts(self, where: ReviewFilter | None = None) -> dict[str, int]:
        """How many matching items per reason."""
        inner = self._select(where or ReviewFilter()).subquery()
        statement = select(inner.c.reason, func.count()).group_by(inner.c.reason)
        with self.store._session() as session:
            return {reason: int(n) for reason, n in session.execute(statement).tuples()}

    def get(self, item_id: int) -> ReviewItem:
        """One item; :class:`~assistant.errors.NotFoundError` if there is none."""
        statement = self._select(ReviewFilter(status=None)).where(schema.ReviewItem.id == item_id)
        with self.store._session() as session:
            row = session.execute(statement).first()
        if row is None:
            raise NotFoundError(f"no review item {item_id}")
        return _view(row[0], row[1], row[2])

    def history(self, item_id: int) -> list[ReviewAction]:
        """The item's audit log, oldest first."""
        statement = (
            select(schema.ReviewAction).where(schema.ReviewAction.item_id == item_id).order_by(schema.ReviewAction.id)
        )
        with self.store._session() as session:
            return [
                ReviewAction(action=a.action, actor=a.actor, at=_utc(a.at), detail=a.detail)
                for a in session.scalars(statement)
            ]

    # -- acting -----------------------------------------------------------------------------

    def claim(self, item_id: int, actor: str) -> ReviewItem:
        """``actor`` takes the item."""
        return self.assign(item_id, actor, actor=actor)

    def assign(self, item_id: int, assignee: str | None, *, actor: str) -> ReviewItem:
        """Give the item to ``assignee`` (``None`` puts it back in the open queue)."""
        def change(row: schema.ReviewItem) -> dict[str, Any]:
            _still_active(row)
            row.assignee = assignee
            row.status = "claimed" if assignee else "open"
            return {"assignee": assignee}

        return self._act(item_id, "assign" if assignee != actor else "claim", actor, change)

    def label(self, item_id: int, label: ReviewLabel, actor: str) -> ReviewItem:
        """Record ``actor``'s verdict (it replaces an earlier label; the log keeps both)."""
        clean = label.model_copy(update={
            "correct_text": redact(label.correct_text).text if label.correct_text else None,
            "notes": redact(label.notes).text if label.notes else None,
        })

        def change(row: schema.ReviewItem) -> dict[str, Any]:
            row.label = clean.model_dump(mode="json")
            return dict(row.label)

        return self._act(item_id, "label", actor, change)

    def resolve(self, item_id: int, actor: str, note: str | None = None) -> ReviewItem:
        """Close the item as handled."""
        return self._close(item_id, "resolved", actor, note)

    def dismiss(self, item_id: int, actor: str, note: str | None = None) -> ReviewItem:
        """Close the item as needing nothing."""
        return self._close(item_id, "dismissed", actor, note)

    def reopen(self, item_id: int, actor: str, note: str | None = None) -> ReviewItem:
        """Put a closed item back in the queue."""
        def change(row: schema.ReviewItem) -> dict[str, Any]:
            row.status, row.closed_at = ("claimed" if row.assignee else "open"), None
            return {"note": redact(note).text if note else None}

        return self._act(item_id, "reopen", actor, change)

    def _close(self, item_id: int, status: str, actor: str, note: str | None) -> ReviewItem:
        def change(row: schema.ReviewItem) -> dict[str, Any]:
            _still_active(row)
            row.status, row.closed_at = status, datetime.now(UTC)
            return {"note": redact(note).text if note else None}

        return self._act(item_id, status, actor, change)

    def _act(self, item_id: int, action: str, actor: str, change: Any) -> ReviewItem:
        if not actor or not actor.strip():
            raise ConfigurationError("a review action needs the actor's name")
        with self.store._session(write=True) as session:
            row = session.get(schema.ReviewItem, item_id)
            if row is None:
                raise NotFoundError(f"no review item {item_id}")
            detail = change(row)
            session.add(schema.ReviewAction(
                item_id=item_id, action=action, actor=actor.strip()[:128], at=datetime.now(UTC), detail=detail,
            ))
        return self.get(item_id)


    # -- reviews become eval cases ----------------------------------------------------------------

    def export_cases(self, *, since: datetime | None = None) -> list[EvalCase]:
        """Every labelled item (newest label since ``since``) as an eval case in the
        ``evals/datasets`` format, the reviewer's verdict as its expectations (texts redacted):

        - the route: the one given if the reviewer says it was right, the other one if not;
        - the reasons given, when the route was right (``defect_confirmed`` when the reviewer
          confirmed a defect);
        - the relevant article: the one the reviewer says should have been given (a retrieval
          case), else the cited ones when the answer was right.
        """
        statement = (
            select(schema.ReviewItem, schema.Response)
            .join(schema.Response, schema.Response.record_id == schema.ReviewItem.record_id)
            .where(schema.ReviewItem.label.is_not(None))
            .order_by(schema.ReviewItem.id)
        )
        cases: list[EvalCase] = []
        with self.store._session() as session:
            for item, response in session.execute(statement).tuples():
                labelled = session.scalar(
                    select(func.max(schema.ReviewAction.at))
                    .where(schema.ReviewAction.item_id == item.id, schema.ReviewAction.action == "label")
                )
                if since is not None and (labelled is None or _utc(labelled) < since):
                    continue
                earlier = session.scalars(
                    select(schema.Turn).where(
                        schema.Turn.conversation_id == item.conversation_id, schema.Turn.created_at < response.created_at
                    ).order_by(schema.Turn.created_at, schema.Turn.id)
                ).all()
                cases.append(_case(item, response, ReviewLabel.model_validate(item.label), earlier))
        return cases


def _case(item: schema.ReviewItem, response: schema.Response, label: ReviewLabel, earlier: Any) -> EvalCase:
    route = Route(response.route)
    expected_route: Route | None = None
    reasons: list[ReasonCode] = []
    if label.route_right is True:
        expected_route = route
        reasons = [ReasonCode(c) for c in response.reason_codes.split(",") if c in ReasonCode._value2member_map_]
    elif label.route_right is False:
        expected_route = Route.ESCALATE if route is Route.ANSWER else Route.ANSWER
    if label.defect_confirmed and expected_route is Route.ESCALATE and ReasonCode.DEFECT_CONFIRMED not in reasons:
        reasons = [*(r for r in reasons if r is not ReasonCode.DEFECT_SUSPECTED), ReasonCode.DEFECT_CONFIRMED]
    if label.correct_doc_id:
        relevant = [label.correct_doc_id]
    elif label.answer_right:
        relevant = list(dict.fromkeys(str(c["doc_id"]) for c in response.citations))
    else:
        relevant = []
    return EvalCase(
        id=f"review-{item.record_id[:16]}",
        message=response.message,
        journey=JourneyContext.model_validate(response.journey) if response.journey else None,
        history=[Turn(role="driver" if t.role == "driver" else "assistant", text=t.text) for t in earlier],
        expected_route=expected_route,
        expected_reasons=reasons,
        relevant_doc_ids=relevant,
        tags=["review", f"reason:{item.reason}", *label.tags],
    )


def _still_active(row: schema.ReviewItem) -> None:
    if row.status in ("resolved", "dismissed"):
        raise ConfigurationError(f"review item {row.id} is {row.status}; reopen it first")


def _view(item: schema.ReviewItem, response: schema.Response, category: str | None) -> ReviewItem:
    return ReviewItem(
        id=item.id, record_id=item.record_id, conversation_id=item.conversation_id, reason=item.reason,
        priority=item.priority, status=item.status, created_at=_utc(item.created_at), assignee=item.assignee,
        message=response.message, answer=response.answer, route=response.route,
        reason_codes=[c for c in response.reason_codes.split(",") if c], confidence=response.confidence,
        category=category, market=response.market, stage=response.stage, app_version=response.app_version,
        label=ReviewLabel.model_validate(item.label) if item.label else None,
    )
