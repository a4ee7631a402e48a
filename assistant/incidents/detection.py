"""Incident detection over the conversation store: a defect noticed from the pattern of contacts.

Every escalated contact that the guardrails judged a defect carries a signature (error code,
endpoint, app version, platform, stage, market), and the store counts contacts per signature per
hour (``signature_counts``), so every service worker sees the same numbers. A scan:

1. groups related signatures: the same error code across app versions, platforms and markets;
   without a code, the same failing endpoint (event name) across markets;
2. estimates each group's own baseline rate for each hour of the day from the preceding
   ``baseline_days`` (shrunk toward the group's daily mean, and that toward a small prior rate, so
   a signature never seen before has a low baseline and a busy hour of the day is not an alarm),
   times a day-of-week factor pooled over all groups (busier weekends are not an alarm either);
3. runs a Poisson CUSUM over the last ``window_hours``, ``step_minutes`` at a time on the
   contacts' own times (the current step counted against the elapsed part of its baseline): it
   accumulates the log-likelihood ratio of
   "rate is ``shift`` times the baseline (at least ``min_shift_per_hour`` more)" against "rate is
   the baseline", and opens an incident when that sum crosses ``threshold`` with at least
   ``min_contacts`` contacts from ``min_drivers`` distinct drivers in the run, and those contacts
   are unlikely under the baseline (a Poisson tail probability at most ``alpha``), which keeps
   quiet groups from alarming on a chance handful or one driver retrying; the run must still be
   going at the scan (a burst whose CUSUM has since fallen back to zero is over, and re-testing
   it at every scan against a re-estimated baseline would only give chance more tries);
4. closes an open incident when its last ``close_after_hours`` complete hours were each at or
   below the CUSUM's break-even count (the rate is back to its baseline).

At most one incident is open per group (a unique index), so workers scanning at once agree.

>>> detector = IncidentDetector(store)
>>> result = detector.scan()            # opens and closes incidents as of now
>>> [i.signature["error_code"] for i in detector.incidents(status="open")]
['UPL-500']
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select

from assistant.errors import ConfigurationError, NotFoundError
from assistant.guardrails.pii import redact
from assistant.store import schema
from assistant.store.store import ConversationStore, RecordRejected, _utc

HOUR = timedelta(hours=1)
_LIST_FIELDS = ("app_version", "platform", "market", "stage")


class DetectionConfig(BaseModel):
    """The detector's settings (the defaults are discussed in the module docstring)."""

    model_config = ConfigDict(frozen=True)

    baseline_days: int = Field(14, ge=1, le=90, description="History that sets each group's hour-of-day baseline.")
    window_hours: int = Field(24, ge=1, le=168, description="Hours the CUSUM runs over.")
    step_minutes: int = Field(5, ge=1, le=60, description="The CUSUM's step (a divisor of 60).")
    prior_rate_per_hour: float = Field(0.05, gt=0, description="Baseline of a group never seen (about one a day).")
    prior_weight_days: float = Field(1.0, gt=0, description="Days of evidence the prior (and a group's daily mean) is worth.")
    weekday_prior_days: float = Field(
        2.0, gt=0, description="Average days a day of the week's factor is shrunk toward 1 by (fewer: trust the history more)."
    )
    shift: float = Field(3.0, gt=1, description="The rate, as a multiple of the baseline, the CUSUM looks for.")
    min_shift_per_hour: float = Field(
        3.0, gt=0,
        description="... and at least this many more contacts an hour (the size of defect worth an incident: "
        "a lower value lets a slight, slow excess keep a run alive for hours, and long runs are where chance "
        "alarms come from).",
    )
    threshold: float = Field(4.0, gt=0, description="CUSUM decision interval (log-likelihood units).")
    min_contacts: int = Field(3, ge=1, description="Never open an incident on fewer contacts than this.")
    min_drivers: int = Field(3, ge=1, description="... nor from fewer distinct drivers (one driver retrying is not a defect).")
    alpha: float = Field(
        2e-5, gt=0, le=1,
        description="... nor unless the run's contacts are this unlikely under the baseline (Poisson tail). "
        "A group watched in 5-minute steps makes about 2,000 such tests a week, so 2e-5 allows roughly "
        "one chance alarm a week among 25 groups (overlapping runs make it somewhat more).",
    )
    close_after_hours: int = Field(3, ge=1, description="Quiet complete hours before an incident closes.")
    slices: tuple[str, ...] = Field(
        ("market", "app_version"),
        description="Signature fields whose values are also watched on their own (a defect in one market or "
        "one app version stands out sooner against that slice's share of the baseline); each slice's "
        "test gets alpha divided by the group's number of slices.",
    )

    @field_validator("step_minutes")
    @classmethod
    def _divides_the_hour(cls, value: int) -> int:
        if 60 % value:
            raise ValueError("step_minutes must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60)")
        return value


class Incident(BaseModel):
    """A detected platform defect."""

    model_config = ConfigDict(frozen=True)

    id: int
    group: str = Field(description="What ties its signatures together: 'code:UPL-500' or 'endpoint:photo_upload'.")
    status: Literal["open", "closed"]
    signature: dict[str, Any] = Field(
        description="error_code and endpoint, and the app versions, platforms, markets and stages seen."
    )
    signatures: list[str] = Field(description="Keys of the stored signatures merged into this incident.")
    first_contact_at: datetime
    opened_at: datetime
    closed_at: datetime | None
    contacts: int = Field(description="Contacts since the first one of the run that opened it.")
    drivers: int = Field(description="Distinct drivers among those contacts.")
    examples: list[str] = Field(description="Conversation ids of the earliest contacts.")
    score: float = Field(description="The CUSUM when it was opened.")
    baseline_per_hour: float
    note: str | None = Field(None, description="A lead's note for drivers (redacted).")
    workaround: str | None = Field(None, description="A lead's workaround for drivers (redacted).")


class ScanResult(BaseModel):
    """What one scan changed."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    opened: list[Incident]
    closed: list[Incident]
    open: list[Incident]


def group_of(fields: dict[str, Any]) -> str | None:
    """The group a signature belongs to: its error code, else its endpoint; None without either."""
    code = str(fields.get("error_code") or "").strip()
    if code:
        return f"code:{code.upper()}"
    endpoint = str(fields.get("endpoint") or "").strip()
    return f"endpoint:{endpoint.lower()}" if endpoint else None


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class _Group:
    """The hourly counts of one group of signatures."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.counts: dict[datetime, int] = defaultdict(int)  # per hour (signature_counts)
        self.recent: list[tuple[datetime, str, str]] = []  # each contact's time, driver, signature in the CUSUM's window
        self.signatures: set[str] = set()
        self.fields: dict[str, set[str]] = defaultdict(set)
        self.signature_fields: dict[str, dict[str, Any]] = {}
        self.signature_counts: dict[str, list[tuple[datetime, int]]] = defaultdict(list)

    def add(self, signature: str, bucket: datetime, contacts: int, fields: dict[str, Any]) -> None:
        self.counts[bucket] += contacts
        self.signatures.add(signature)
        self.signature_fields[signature] = fields
        self.signature_counts[signature].append((bucket, contacts))
        for name, value in fields.items():
            if value:
                self.fields[name].add(str(value))

    def merged(self) -> dict[str, Any]:
        merged: dict[str, Any] = {
            "error_code": min(self.fields["error_code"]) if self.fields.get("error_code") else None,
            "endpoint": min(self.fields["endpoint"]) if self.fields.get("endpoint") else None,
        }
        for name in _LIST_FIELDS:
            merged[name + "s"] = sorted(self.fields.get(name, ()))
        return merged


def weekday_factors(counts: dict[datetime, int], *, start: datetime, end: datetime, prior_days: float = 2.0) -> list[float]:
    """How busy each day of the week is (Monday first, 1.0 = an average day), pooled over every
    group's counts in ``[start, end)`` and shrunk toward 1 by ``prior_days`` average days; all
    1.0 until a full week of history holds at least 100 contacts."""
    days = (end - start).days
    total = sum(n for bucket, n in counts.items() if start <= bucket < end)
    if days < 7 or total < 100:
        return [1.0] * 7
    per_weekday = [0.0] * 7
    for bucket, n in counts.items():
        if start <= bucket < end:
            per_weekday[bucket.weekday()] += n
    seen = [0] * 7
    for offset in range(days):
        seen[(start + timedelta(days=offset)).weekday()] += 1
    mean_day = total / days
    return [(per_weekday[d] + prior_days * mean_day) / ((seen[d] + prior_days) * mean_day) for d in range(7)]


def baseline_by_hour(
    counts: dict[datetime, int], *, start: datetime, end: datetime, observed_days: float, config: DetectionConfig,
    weekdays: list[float] | None = None,
) -> list[float]:
    """Expected contacts per hour for each hour of the day (0-23, UTC) on an average day, from the
    counts in ``[start, end)`` (each divided by its weekday's factor, when ``weekdays`` is given):
    each hour's mean shrunk toward the group's hourly mean, and that toward the prior rate, each
    by ``prior_weight_days`` of evidence."""
    by_hour = [0.0] * 24
    for bucket, n in counts.items():
        if start <= bucket < end:
            by_hour[bucket.hour] += n / (weekdays[bucket.weekday()] if weekdays else 1.0)
    w = config.prior_weight_days
    mean = (sum(by_hour) + config.prior_rate_per_hour * 24 * w) / (24 * (observed_days + w))
    return [(c + mean * w) / (observed_days + w) for c in by_hour]


class _Baseline:
    """A group's expected contacts an hour: its hour-of-day profile times the day of the week's factor."""

    def __init__(self, by_hour: list[float], weekdays: list[float]) -> None:
        self.by_hour, self.weekdays = by_hour, weekdays

    def at(self, bucket: datetime) -> float:
        return self.by_hour[bucket.hour] * self.weekdays[bucket.weekday()]


class _Share:
    """A slice's part of a group's baseline."""

    def __init__(self, baseline: _Baseline, share: float) -> None:
        self.baseline, self.share = baseline, share

    def at(self, bucket: datetime) -> float:
        return self.baseline.at(bucket) * self.share


def poisson_tail(k: int, mean: float) -> float:
    """P(X >= k) for X ~ Poisson(``mean``), summed from k upwards (accurate when it is tiny)."""
    if k <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    total, i = 0.0, k
    while True:
        term = math.exp(i * math.log(mean) - mean - math.lgamma(i + 1))
        total += term
        if i > mean and term < 1e-17 * max(total, 1e-300):
            return min(1.0, total)
        i += 1


def _alternative(
    lam0: np.ndarray[Any, np.dtype[np.float64]], fraction: np.ndarray[Any, np.dtype[np.float64]], config: DetectionConfig
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]:
    """For ``lam0`` expected contacts in ``fraction`` of an hour (each at least 1e-9), the CUSUM's
    alternative (``shift`` times the baseline, at least ``min_shift_per_hour`` more): what each
    contact adds (the log of the rate ratio) and what the step takes away (the rate difference)."""
    lam1 = np.maximum(config.shift * lam0, lam0 + config.min_shift_per_hour * fraction)
    return np.log(lam1 / lam0), lam1 - lam0


def _llr(x: float, expected: float, config: DetectionConfig, fraction: float) -> tuple[float, float]:
    """The Poisson log-likelihood ratio of ``x`` contacts (shifted rate vs baseline), and the
    break-even count below which a bucket pulls the CUSUM down."""
    log_ratio, drift = _alternative(np.array([max(expected * fraction, 1e-9)]), np.array([fraction]), config)
    return x * float(log_ratio[0]) - float(drift[0]), float(drift[0] / log_ratio[0])


class IncidentDetector:
    """Open, follow and close incidents from the store's per-signature contact counts."""

    def __init__(self, store: ConversationStore, config: DetectionConfig | None = None) -> None:
        self.store = store
        self.config = config or DetectionConfig()

    # -- scanning ---------------------------------------------------------------------------

    def scan(self, now: datetime | None = None) -> ScanResult:
        """Look at every group of signatures as of ``now`` (default: the current time): open an
        incident where the contact rate rose above its baseline, update open incidents' counts,
        close those whose rate is back to baseline."""
        now = (now or datetime.now(UTC)).astimezone(UTC)
        config = self.config
        current = hour_floor(now)
        window_start = current - (config.window_hours - 1) * HOUR
        history_start = window_start - timedelta(days=config.baseline_days)
        groups, earliest = self._groups(history_start, now)
        pooled: dict[datetime, int] = defaultdict(int)
        for group in groups.values():
            for bucket, n in group.counts.items():
                pooled[bucket] += n
        weekdays = weekday_factors(pooled, start=max(history_start, hour_floor(earliest) if earliest else history_start),
                                   end=window_start, prior_days=config.weekday_prior_days)
        self._attach_recent(groups, window_start, now)
        open_rows = {row.group_key: row for row in self._open_rows()}
        last_closed = self._last_closed(window_start)
        opened: list[Incident] = []
        closed: list[Incident] = []
        for key, group in groups.items():
            observed = 0.0 if earliest is None else max(0.0, min(
                float(config.baseline_days), (window_start - hour_floor(earliest)).total_seconds() / 86400))
            by_hour = baseline_by_hour(group.counts, start=history_start, end=window_start,
                                       observed_days=observed, config=config, weekdays=weekdays)
            baseline = _Baseline(by_hour, weekdays)
            row = open_rows.pop(key, None)
            if row is None:
                # after an incident closes, its contacts do not open it again: start after it
                start = max(window_start, hour_floor(last_closed[key]) + HOUR) if key in last_closed else window_start
                alarm = self._alarm(group.recent, baseline.at, start, now, config.alpha)
                if alarm is None:
                    alarm = self._slice_alarm(group, baseline, history_start, window_start, start, now)
                if alarm is not None:
                    incident = self._open(group, alarm, baseline, now)
                    if incident is not None:
                        opened.append(incident)
            elif self._quiet(group, baseline, row, current):
                closed.append(self._close(row.id, now))
            else:
                self._refresh(row, group, now)
        for row in open_rows.values():  # no contact at all in the window: quiet
            if _utc(row.opened_at) <= current - config.close_after_hours * HOUR:
                closed.append(self._close(row.id, now))
        return ScanResult(at=now, opened=opened, closed=closed, open=self.incidents(status="open"))

    def _groups(self, since: datetime, now: datetime) -> tuple[dict[str, _Group], datetime | None]:
        statement = select(schema.SignatureCount).where(
            schema.SignatureCount.bucket >= since, schema.SignatureCount.bucket <= now
        )
        groups: dict[str, _Group] = {}
        with self.store._session() as session:
            for row in session.scalars(statement):
                key = group_of(row.fields)
                if key is None:
                    continue
                groups.setdefault(key, _Group(key)).add(row.signature, _utc(row.bucket), row.contacts, row.fields)
            earliest = session.scalar(select(func.min(schema.SignatureCount.bucket)))
        return groups, _utc(earliest) if earliest is not None else None

    def _attach_recent(self, groups: dict[str, _Group], since: datetime, now: datetime) -> None:
        """Each group's contact times since ``since`` (from the responses, to the second)."""
        owner = {signature: group for group in groups.values() for signature in group.signatures}
        response = schema.Response
        statement = select(response.defect_signature, response.created_at, response.driver_id, response.record_id).where(
            response.created_at >= since, response.created_at <= now, response.defect_signature.is_not(None)
        )
        with self.store._session() as session:
            for signature, at, driver, record_id in session.execute(statement).tuples():
                group = owner.get(str(signature))
                if group is not None:  # a contact without a driver id counts as its own driver
                    group.recent.append((_utc(at), driver or f"record:{record_id}", str(signature)))

    def _slice_alarm(
        self, group: _Group, baseline: _Baseline, history_start: datetime, window_start: datetime, start: datetime,
        now: datetime,
    ) -> tuple[datetime, float] | None:
        """An alarm on one slice of the group (one market, one app version): the slice's contacts
        against its share of the group's baseline (its share of the history, add-one smoothed),
        at ``alpha`` divided by the number of slices tested."""
        dimensions: list[dict[str, set[str]]] = []
        for name in self.config.slices:
            values: dict[str, set[str]] = defaultdict(set)
            for signature, fields in group.signature_fields.items():
                if fields.get(name):
                    values[str(fields[name])].add(signature)
            if len(values) >= 2:
                dimensions.append(values)
        if not dimensions:
            return None
        history = {
            sig: sum(n for bucket, n in group.signature_counts[sig] if history_start <= bucket < window_start)
            for sig in group.signatures
        }
        total = sum(history.values())
        slices = [
            (signatures, (sum(history[sig] for sig in signatures) + 1) / (total + len(by_value)))
            for by_value in dimensions for signatures in by_value.values()
        ]
        alpha = self.config.alpha / max(1, len(slices))
        for signatures, share in slices:
            recent = [c for c in group.recent if c[2] in signatures]
            if len(recent) < self.config.min_contacts:
                continue
            alarm = self._alarm(recent, _Share(baseline, share).at, start, now, alpha)
            if alarm is not None:
                return alarm
        return None

    def _alarm(
        self, recent: list[tuple[datetime, str, str]], rate_at: Callable[[datetime], float], window_start: datetime,
        now: datetime, alpha: float,
    ) -> tuple[datetime, float] | None:
        """The start of the run that crossed the threshold, and the CUSUM, or None (also when that
        run has ended before ``now``: the burst is over). The CUSUM steps
        ``step_minutes`` at a time through the window, on the contacts' own times, against the
        expected contacts an hour ``rate_at(bucket)`` (read once per hour of the window).

        Only a step with contacts can raise the CUSUM or set off an alarm (an empty step lowers
        the sum and adds to the run's expected count), so the walk jumps from one such step to
        the next and applies the empty steps between them at once: the same decisions as
        stepping through every bucket, at a cost that grows with the contacts, not the window."""
        config = self.config
        step = timedelta(minutes=config.step_minutes)
        if now < window_start:
            return None
        steps = (now - window_start) // step + 1  # buckets window_start + i * step <= now
        per_hour = 60 // config.step_minutes
        first_hour = hour_floor(window_start)
        offset = (window_start - first_hour) // step
        hour_of = (offset + np.arange(steps)) // per_hour
        hourly = np.array([rate_at(first_hour + h * HOUR) for h in range(int(hour_of[-1]) + 1)])
        fraction = np.full(steps, config.step_minutes / 60)  # of an hour; the current step: its elapsed part
        fraction[-1] = min(step, max(now - (window_start + (steps - 1) * step), timedelta(minutes=1))) / HOUR
        expected = hourly[hour_of] * fraction
        log_ratio, drift = _alternative(np.maximum(expected, 1e-9), fraction, config)
        # the sums of the drift and of the expected count over steps [0, i): an empty stretch in O(1)
        drift_before = np.concatenate(([0.0], np.cumsum(drift)))
        expected_before = np.concatenate(([0.0], np.cumsum(expected)))
        fine: dict[int, list[str]] = defaultdict(list)
        for at, driver, _ in recent:
            if window_start <= at <= now:
                fine[(at - window_start) // step].append(driver)
        score, run_start, run_contacts, run_expected = 0.0, 0, 0, 0.0
        run_drivers: set[str] = set()
        after = 0  # the first step not yet applied
        crossed: tuple[datetime, float] | None = None  # the alarm of the current run, once it has crossed
        for i in sorted(fine):
            if score > 0 and i > after:  # the empty steps since the last contact
                fall = float(drift_before[i] - drift_before[after])
                if score - fall > 0:
                    score -= fall
                    run_expected += float(expected_before[i] - expected_before[after])
                else:
                    score, crossed = 0.0, None
            drivers = fine[i]
            if score == 0.0:
                run_start, run_contacts, run_expected, run_drivers = i, 0, 0.0, set()
            score = max(0.0, score + len(drivers) * float(log_ratio[i]) - float(drift[i]))
            if score > 0:
                run_contacts, run_expected = run_contacts + len(drivers), run_expected + float(expected[i])
                run_drivers.update(drivers)
            else:
                run_contacts, run_expected, run_drivers, crossed = 0, 0.0, set(), None
            after = i + 1
            if (crossed is None and score >= config.threshold and run_contacts >= config.min_contacts
                    and len(run_drivers) >= config.min_drivers
                    and poisson_tail(run_contacts, run_expected) <= alpha):
                crossed = window_start + run_start * step, score
        if crossed is not None and score - float(drift_before[steps] - drift_before[after]) <= 0:
            return None  # that run has ended: the rate came back down before now (a past burst)
        return crossed

    def _quiet(self, group: _Group, baseline: _Baseline, row: schema.Incident, current: datetime) -> bool:
        """True when each of the last complete hours (at least ``close_after_hours`` of them since
        it opened) was at or below the break-even count."""
        hours = self.config.close_after_hours
        if hour_floor(_utc(row.opened_at)) > current - (hours + 1) * HOUR:
            return False
        for back in range(1, hours + 1):
            bucket = current - back * HOUR
            _, break_even = _llr(0, baseline.at(bucket), self.config, 1.0)
            if group.counts.get(bucket, 0) > break_even:
                return False
        return True

    # -- writing ----------------------------------------------------------------------------

    def _contacts(self, signatures: set[str], since: datetime) -> tuple[datetime | None, int, int, list[str]]:
        """First contact time, contacts, distinct drivers and example conversations since ``since``."""
        response = schema.Response
        where = (response.defect_signature.in_(sorted(signatures)), response.created_at >= since)
        with self.store._session() as session:
            first, contacts, drivers = session.execute(
                select(func.min(response.created_at), func.count(), func.count(func.distinct(response.driver_id))).where(*where)
            ).one()
            examples = session.scalars(
                select(response.conversation_id).where(*where).order_by(response.created_at).limit(5)
            ).all()
        return (_utc(first) if first else None), int(contacts or 0), int(drivers or 0), list(examples)

    def _open(self, group: _Group, alarm: tuple[datetime, float], baseline: _Baseline, now: datetime) -> Incident | None:
        run_start, score = alarm
        first, contacts, drivers, examples = self._contacts(group.signatures, run_start)
        if contacts == 0:  # counts without their response rows (e.g. hand-made counts): the run's sum
            contacts = sum(n for bucket, n in group.counts.items() if bucket >= run_start)
        row = schema.Incident(
            group_key=group.key, status="open", fields=group.merged(), signatures=sorted(group.signatures),
            first_contact_at=first or run_start, opened_at=now, closed_at=None, updated_at=now,
            contacts=contacts, drivers=drivers, examples=examples, score=round(score, 3),
            baseline_per_hour=round(sum(baseline.by_hour) / 24, 4),
        )
        try:
            with self.store._session(write=True) as session:
                session.add(row)
                session.flush()
                created = row.id
        except RecordRejected:  # another worker opened it a moment ago
            return None
        return self.get(created)

    def _refresh(self, row: schema.Incident, group: _Group, now: datetime) -> None:
        _, contacts, drivers, examples = self._contacts(group.signatures, _utc(row.first_contact_at))
        with self.store._session(write=True) as session:
            live = session.get(schema.Incident, row.id)
            if live is None:
                return
            live.fields, live.signatures = group.merged(), sorted(group.signatures)
            if contacts:
                live.contacts, live.drivers, live.examples = contacts, drivers, examples
            live.updated_at = now

    def _close(self, incident_id: int, now: datetime) -> Incident:
        with self.store._session(write=True) as session:
            row = session.get(schema.Incident, incident_id)
            if row is not None and row.status == "open":
                row.status, row.closed_at, row.updated_at = "closed", now, now
        return self.get(incident_id)

    # -- reading and annotating ------------------------------------------------------------

    def _last_closed(self, since: datetime) -> dict[str, datetime]:
        statement = (
            select(schema.Incident.group_key, func.max(schema.Incident.closed_at))
            .where(schema.Incident.status == "closed", schema.Incident.closed_at >= since)
            .group_by(schema.Incident.group_key)
        )
        with self.store._session() as session:
            return {key: _utc(at) for key, at in session.execute(statement).tuples() if at is not None}

    def _open_rows(self) -> list[schema.Incident]:
        with self.store._session() as session:
            return list(session.scalars(select(schema.Incident).where(schema.Incident.status == "open")))

    def incidents(self, *, status: Literal["open", "closed"] | None = None, limit: int = 100) -> list[Incident]:
        """Incidents, newest first."""
        statement = select(schema.Incident).order_by(schema.Incident.opened_at.desc(), schema.Incident.id.desc())
        if status is not None:
            statement = statement.where(schema.Incident.status == status)
        with self.store._session() as session:
            return [_view(row) for row in session.scalars(statement.limit(limit))]

    def get(self, incident_id: int) -> Incident:
        with self.store._session() as session:
            row = session.get(schema.Incident, incident_id)
            if row is None:
                raise NotFoundError(f"no incident {incident_id}")
            return _view(row)

    def annotate(self, incident_id: int, *, note: str | None = None, workaround: str | None = None) -> Incident:
        """Attach a driver-facing note and/or workaround (redacted; an empty string removes it)."""
        if note is None and workaround is None:
            raise ConfigurationError("give a note, a workaround or both")
        with self.store._session(write=True) as session:
            row = session.get(schema.Incident, incident_id)
            if row is None:
                raise NotFoundError(f"no incident {incident_id}")
            if note is not None:
                row.note = redact(note).text[:2000] if note.strip() else None
            if workaround is not None:
                row.workaround = redact(workaround).text[:2000] if workaround.strip() else None
        return self.get(incident_id)


def _view(row: schema.Incident) -> Incident:
    return Incident(
        id=row.id, group=row.group_key, status=row.status,  # type: ignore[arg-type]
        signature=row.fields, signatures=list(row.signatures), first_contact_at=_utc(row.first_contact_at),
        opened_at=_utc(row.opened_at), closed_at=_utc(row.closed_at) if row.closed_at else None,
        contacts=row.contacts, drivers=row.drivers, examples=list(row.examples), score=row.score,
        baseline_per_hour=row.baseline_per_hour, note=row.note, workaround=row.workaround,
    )
