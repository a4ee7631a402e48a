"""Friction in a journey: which rules of :mod:`assistant.suggestions.rules` fire, and why.

Plain typed Python over the journey's events; no model is called. Each :class:`Friction` names
the rule, a key (what it is about: an error code, an action, a stage) and the words that make the
retrieval query and the card's ``why``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from assistant.request import EventType, JourneyContext, JourneyEvent
from assistant.suggestions.rules import FrictionRules, Rule, RuleKind

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[_./:\\\-#?=&,;|()\[\]{}\"']+")
_HTTP_ERROR = re.compile(r"^[45]\d\d$")
_HTTP_OK = re.compile(r"^(2\d\d|304)$")
_SKEW = timedelta(minutes=5)  # an event stamped a little after the journey's time still counts


@dataclass(frozen=True)
class Friction:
    """One rule that fired on a journey."""

    rule: Rule
    key: str
    fields: dict[str, str] = field(default_factory=dict)
    at: datetime | None = None
    codes: frozenset[str] = frozenset()
    endpoints: frozenset[str] = frozenset()

    def render(self, template: str) -> str:
        """``template`` with this friction's fields (a missing one reads as nothing)."""
        values = defaultdict(str, self.fields)
        return " ".join(template.format_map(values).split())


@dataclass(frozen=True)
class _Event:
    ts: datetime | None
    text: str
    name: str
    code: str | None
    failure: bool
    source: JourneyEvent | None
    ignored: bool = False


def words(value: str) -> str:
    """``value`` as lower-case words: camelCase, dots, slashes, dashes and underscores split."""
    return " ".join(_SEPARATORS.sub(" ", _CAMEL.sub(" ", value)).lower().split())


def journey_time(journey: JourneyContext, rules: FrictionRules, now: datetime | None) -> datetime:
    """The moment the journey describes: ``now`` when given; else the current time, unless the
    newest event is older than ``rules.recording_after_hours`` (a recorded journey), then its time."""
    if now is not None:
        return now if now.tzinfo else now.replace(tzinfo=UTC)
    current = datetime.now(UTC)
    stamps = [e.ts for e in journey.events if e.ts is not None]
    if stamps and current - max(stamps) > timedelta(hours=rules.recording_after_hours):
        return max(stamps)
    return current


def detect(journey: JourneyContext | None, rules: FrictionRules, *, now: datetime | None = None) -> list[Friction]:
    """Every friction the rules find in ``journey``, highest priority and newest first."""
    if journey is None:
        return []
    at = journey_time(journey, rules, now)
    events = _retries([_view(e, rules) for e in journey.events], rules)
    recent = [
        e for e in events
        if not e.ignored and (e.ts is None or at - timedelta(minutes=rules.lookback_minutes) <= e.ts <= at + _SKEW)
    ]
    stage_phrase = rules.stage_words.get(journey.stage, journey.stage.value.replace("_", " ")) if journey.stage else ""
    found: list[Friction] = []
    for rule in rules.rules:
        if rule.kind is RuleKind.REPEATED_FAILURE:
            found.extend(_repeated(rule, recent, events, rules, stage_phrase))
        elif rule.kind is RuleKind.ERROR_CODE:
            found.extend(_failures(rule, recent, events, rules, stage_phrase))
        elif rule.kind is RuleKind.EVENTS:
            found.extend(_events(rule, events, journey, at, rules, stage_phrase))
        elif rule.kind is RuleKind.WAIT:
            found.extend(_wait(rule, journey, events, at, rules, stage_phrase))
    # an error code that is the repeated failure's own is one friction, not two
    repeated = {f.key for f in found if f.rule.kind is RuleKind.REPEATED_FAILURE}
    found = [f for f in found if f.rule.kind is not RuleKind.ERROR_CODE or f.key not in repeated]
    newest = datetime.min.replace(tzinfo=UTC)
    found.sort(key=lambda f: (-f.rule.priority, -((f.at or newest) - newest).total_seconds()))
    return found


def _view(event: JourneyEvent, rules: FrictionRules) -> _Event:
    text = words(" ".join(p for p in (event.name, event.code, event.detail) if p))
    name = words(event.name or "")
    code = event.code.strip() if event.code and event.code.strip() else None
    # what the driver reads (a help article, a search) or toggles, or a call that succeeded, is not friction
    ignored = rules.content.search(name) is not None or (code is not None and _HTTP_OK.match(code) is not None)
    coded = code is not None and (bool(rules.error_code.search(code)) or bool(_HTTP_ERROR.match(code)))
    failed = _fails(text, rules) and rules.success.search(text) is None
    return _Event(
        ts=event.ts, text=text, name=name, code=code.upper() if code else None,
        failure=not ignored and (event.type is EventType.ERROR or coded or failed), source=event, ignored=ignored,
    )


def _retries(events: list[_Event], rules: FrictionRules) -> list[_Event]:
    """``events`` with the driver's retries marked as failures: the same action, with the same
    detail, ``rules.retries.count`` times within ``rules.retries.within_minutes`` (tapping "Go
    online" again and again means it is not working), unless it is an action drivers repeat
    anyway (``rules.retries.exclude``: scanning items, calling the customer)."""
    spec = rules.retries
    runs: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, event in enumerate(events):
        source = event.source
        if source is None or source.type is not EventType.ACTION or event.ignored or event.ts is None:
            continue
        if spec.exclude.search(event.name):
            continue
        runs[(event.name, words(source.detail or ""))].append(i)
    marked = set()
    window = timedelta(minutes=spec.within_minutes)
    for indexes in runs.values():
        for start in range(len(indexes)):
            run = [j for j in indexes[start:] if events[j].ts - events[indexes[start]].ts <= window]  # type: ignore[operator]
            if len(run) >= spec.count:
                marked.update(run)
    return [replace(e, failure=True) if i in marked else e for i, e in enumerate(events)]


_NO_VALUE = frozenset(("0", "none", "zero", "false", "null"))


def _said(pattern: re.Pattern[str], text: str, rules: FrictionRules) -> bool:
    """Whether ``text`` says what ``pattern`` matches, not negated by the words around it: "not
    invalid", "prevent screen timeout", and a field with no value ("failed deliveries 0",
    "did crash false", "offers received 0") say nothing happened."""
    for hit in pattern.finditer(text):
        before = text[: hit.start()].split()[-3:]
        after = text[hit.end():].split()[:4]
        if not any(rules.negation.fullmatch(w) for w in before) and not any(w in _NO_VALUE for w in after):
            return True
    return False


def _fails(text: str, rules: FrictionRules) -> bool:
    """Whether ``text`` reports a failure (a failure word, not negated)."""
    return _said(rules.failure, text, rules)


def _recovered(group: list[_Event], events: list[_Event], rules: FrictionRules) -> bool:
    """Whether the driver got through after the group's last failure: a later event about the
    same action (at least half the words of one failure's action) that succeeded, with a 2xx
    status or a success word ("completeDelivery" failing, then "deliveryCompleted" 200)."""
    stamps = [e.ts for e in group if e.ts is not None]
    if not stamps:
        return False
    last = max(stamps)
    actions = [tokens for tokens in (set(action_of(e, rules).split()) for e in group) if tokens]
    for event in events:
        if event.ts is None or event.ts <= last or event.failure or event.source is None:
            continue
        if rules.content.search(event.name):  # reading about it is not doing it
            continue
        if not ((event.code and _HTTP_OK.match(event.code)) or rules.success.search(event.text)):
            continue
        done = set(action_of(event, rules).split())
        if any(2 * len(tokens & done) >= len(tokens) for tokens in actions):
            return True
    return False


_DATE = re.compile(r"\b(20\d\d)[-/](\d\d)[-/](\d\d)\b")
_IN = re.compile(r"\bin (\d+) (day|week|month|year)s?\b")
_UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}


def _beyond(event: _Event, at: datetime, days: float) -> bool:
    """Whether every date the event names ("expires 2028-03-15", "in 7 months") is more than
    ``days`` after ``at`` (False when it names none)."""
    raw = " ".join(p for p in (event.source.detail, event.source.name) if p) if event.source else event.text
    found: list[float] = []
    for year, month, day in _DATE.findall(raw):
        try:
            found.append((datetime(int(year), int(month), int(day), tzinfo=UTC) - at).total_seconds() / 86400)
        except ValueError:
            continue
    found.extend(int(n) * _UNIT_DAYS[unit] for n, unit in _IN.findall(event.text))
    return bool(found) and min(found) > days


def action_of(event: _Event, rules: FrictionRules) -> str:
    """What the driver was trying to do: the event's name without failure words, ids, numbers
    and API noise, in the singular ("POST /v2/deliveries/ab12/complete" -> "delivery complete")."""
    kept = [
        _singular(w) for w in event.name.split()
        if not rules.failure.fullmatch(w) and not rules.ignore_words.match(w) and not any(c.isdigit() for c in w)
        and len(w) > 1
    ]
    return " ".join(kept[:4]) or (event.code or "").lower()


def _singular(word: str) -> str:
    """``photos`` -> ``photo``, so an endpoint and an event name for one action agree."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")) else word


def summary(events: list[_Event], rules: FrictionRules, limit: int = 20) -> str:
    """What the app logged about a friction, as search words: names and details without ids,
    numbers, API noise or repeats (newest last, at most ``limit`` words)."""
    seen: dict[str, None] = {}
    for event in events:
        for word in event.text.split():
            if any(c.isdigit() for c in word) or len(word) < 2 or rules.ignore_words.match(word):
                continue
            seen.pop(word, None)
            seen[word] = None
    return " ".join(list(seen)[-limit:])


def _fields(stage: str, **values: object) -> dict[str, str]:
    out = {"stage": stage}
    out.update({k: str(v) for k, v in values.items() if v is not None})
    return out


def failure_groups(events: list[_Event], rules: FrictionRules) -> list[tuple[str, str, list[_Event]]]:
    """The failures of one thing together: failures sharing an error code or a word of their
    action ("photo upload", "POST /v1/photos" and "photoUpload" are one), oldest group first.
    Each group comes with its key (its error code, else its most frequent action) and action."""
    failures = [e for e in events if e.failure]
    parent = list(range(len(failures)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, event in enumerate(failures):
        tokens = set(action_of(event, rules).split())
        if event.code and rules.error_code.search(event.code):
            tokens.add(f"code {event.code}")
        for token in tokens:
            if token in first:
                parent[root(i)] = root(first[token])
            else:
                first[token] = i
    grouped: dict[int, list[_Event]] = {}
    for i, event in enumerate(failures):
        grouped.setdefault(root(i), []).append(event)
    out = []
    for group in grouped.values():
        codes = Counter(e.code for e in group if e.code and rules.error_code.search(e.code))
        actions = Counter(a for a in (action_of(e, rules) for e in group) if a and a.upper() not in codes)
        action = max(actions, key=lambda a: (actions[a], len(a))) if actions else ""
        key = codes.most_common(1)[0][0] if codes else action
        if key:
            out.append((key.lower(), action, group))
    return out


def _repeated(rule: Rule, events: list[_Event], every: list[_Event], rules: FrictionRules, stage: str) -> list[Friction]:
    """One friction per thing that failed ``rule.min_count`` times within ``rule.within_minutes``
    and has not succeeded since (``every``: all of the journey's events)."""
    out = []
    for key, action, group in failure_groups(events, rules):
        span = _densest(group, rule.min_count, rule.within_minutes)
        if span is None or _recovered(group, every, rules):
            continue
        codes = sorted({e.code for e in span if e.code})
        out.append(Friction(
            rule=rule, key=key,
            fields=_fields(
                stage, action=action or key, count=len(span), minutes=_minutes_between(span), code=" ".join(codes),
                events=summary(span, rules),
            ),
            at=span[-1].ts, codes=frozenset(codes), endpoints=frozenset(_endpoints(span)),
        ))
    return out


def _failures(rule: Rule, events: list[_Event], every: list[_Event], rules: FrictionRules, stage: str) -> list[Friction]:
    """One friction per failing thing (see :func:`failure_groups`) that has not succeeded since."""
    out = []
    for key, action, group in failure_groups(events, rules):
        if _recovered(group, every, rules):
            continue
        codes = sorted({e.code for e in group if e.code})
        out.append(Friction(
            rule=rule, key=key,
            fields=_fields(stage, code=" ".join(codes), action=action, count=len(group), events=summary(group, rules)),
            at=group[-1].ts, codes=frozenset(codes), endpoints=frozenset(_endpoints(group)),
        ))
    return out


def _events(
    rule: Rule, events: list[_Event], journey: JourneyContext, at: datetime, rules: FrictionRules, stage: str
) -> list[Friction]:
    pool = [
        e for e in events
        if not e.ignored and (e.ts is None or at - timedelta(minutes=rule.within_minutes) <= e.ts <= at + _SKEW)
        and not (rule.horizon_days is not None and _beyond(e, at, rule.horizon_days))
    ]
    status: _Event | None = None
    if rule.account_status and journey.account_status:
        text = words(journey.account_status)
        status = _Event(ts=at, text=text, name=text, code=None, failure=False, source=None)
        pool.append(status)
    matched: list[_Event] = []
    subject = ""
    for event in pool:
        if rule.exclude is not None and rule.exclude.search(event.text):
            continue
        if rule.failure and not event.failure:
            continue
        hits = [p.search(event.text) for p in rule.match]
        by_code = rule.codes is not None and event.code is not None and rule.codes.search(event.code) is not None
        if (rule.match and all(hits)) or by_code:
            matched.append(event)
            subject = _subject(rule, event.text) or subject
    if len(matched) < rule.min_count or _resolved(rule, matched, [e for e in events if not e.ignored], rules):
        return []
    stamped = [e.ts for e in matched if e.ts is not None]
    waited = at - min(stamped) if stamped else timedelta(0)
    if rule.persist_minutes is not None:
        # the state began with the first event about its subject ("review submitted"), and
        # still holds when the account status or a recent event says so
        recent = at - timedelta(minutes=rules.lookback_minutes)
        holds = status in matched or any(ts >= recent for ts in stamped)
        about = [e.ts for e in pool if e.ts is not None and e.source is not None and rule.match[-1].search(e.text)]
        waited = at - min(about + stamped) if about or stamped else timedelta(0)
        if not holds or waited < timedelta(minutes=rule.persist_minutes):
            return []
    codes = sorted({e.code for e in matched if e.code})
    return [Friction(
        rule=rule, key=words(subject),
        fields=_fields(
            stage, count=len(matched), minutes=_minutes_between(matched) or int(rule.within_minutes),
            subject=subject or "document", code=" ".join(codes), events=summary(matched, rules), wait=_duration(waited),
        ),
        at=max(stamped) if stamped else at, codes=frozenset(codes), endpoints=frozenset(_endpoints(matched)),
    )]


def _subject(rule: Rule, text: str) -> str:
    """What the event is about: the first ``subject`` group a match pattern captures in it."""
    for pattern in rule.match:
        if "subject" in pattern.groupindex:
            for hit in pattern.finditer(text):
                if hit.group("subject"):
                    return hit.group("subject")
    return ""


def _resolved(rule: Rule, matched: list[_Event], later: list[_Event], rules: FrictionRules) -> bool:
    """Whether a later event settles the friction: a success about the same thing (the rule's
    last pattern, its subject), such as the renewed document approved after the expiry reminder."""
    stamped = [e.ts for e in matched if e.ts is not None and e.source is not None]
    if not stamped or not rule.match:
        return False
    last = max(stamped)
    subject = rule.match[-1]
    return any(
        e.ts is not None and e.ts > last and e.source is not None and rules.success.search(e.text) and subject.search(e.text)
        for e in later
    )


def _wait(
    rule: Rule, journey: JourneyContext, events: list[_Event], at: datetime, rules: FrictionRules, stage: str
) -> list[Friction]:
    if journey.stage is None or journey.stage not in rule.stages:
        return []
    watch = rule.stages[journey.stage]
    began = journey.stage_since if watch.since == "stage" else None
    if began is None and watch.start is not None:
        after = journey.stage_since
        starts = [e.ts for e in events
                  if e.ts is not None and (after is None or e.ts >= after) and watch.start.search(e.text)]
        began = min(starts) if starts else None
    if began is None:
        return []
    if watch.end is not None and any(e.ts is not None and e.ts >= began and _said(watch.end, e.text, rules) for e in events):
        return []
    waited = at - began
    if waited < timedelta(minutes=watch.minutes):
        return []
    order = journey.order.id if journey.order and journey.order.id else None
    since = [e for e in events if e.ts is not None and e.ts >= began]
    if journey.account_status:
        text = words(journey.account_status)
        since.append(_Event(ts=at, text=text, name=text, code=None, failure=False, source=None))
    return [Friction(
        rule=rule.model_copy(update={"query": watch.query, "why": watch.why}),
        key=":".join(p for p in (journey.stage.value, order) if p),
        fields=_fields(
            stage, minutes=int(waited.total_seconds() // 60), wait=_duration(waited), events=summary(since, rules)
        ), at=at,
    )]


def _densest(group: list[_Event], count: int, within_minutes: float) -> list[_Event] | None:
    """The latest run of at least ``count`` events within ``within_minutes`` (events without a
    time count as one run)."""
    if len(group) < count:
        return None
    if any(e.ts is None for e in group):
        return group
    ordered = sorted(group, key=lambda e: e.ts or datetime.min.replace(tzinfo=UTC))
    window = timedelta(minutes=within_minutes)
    best: list[_Event] | None = None
    start = 0
    for end in range(len(ordered)):
        while ordered[end].ts - ordered[start].ts > window:  # type: ignore[operator]
            start += 1
        if end - start + 1 >= count:
            best = ordered[start : end + 1]
    return best


def _minutes_between(events: list[_Event]) -> int:
    stamps = [e.ts for e in events if e.ts is not None]
    if len(stamps) < 2:
        return 0
    return max(1, round((max(stamps) - min(stamps)).total_seconds() / 60))


def _endpoints(events: list[_Event]) -> list[str]:
    return [e.source.name.strip().lower() for e in events if e.source is not None and e.source.name and e.source.name.strip()]


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} minutes"
    if minutes < 48 * 60:
        return f"{minutes // 60} hours"
    return f"{minutes // (24 * 60)} days"
