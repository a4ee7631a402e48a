"""Incident detection over the store (SQLite; PostgreSQL in the integration tier): a new error
code opens an incident within its first contacts, a busy hour of the day does not, related
signatures merge, an incident closes when the rate is back to baseline and does not reopen on
the same contacts, and a steady Poisson baseline gives no alarm."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from assistant import ConfigurationError, NotFoundError
from assistant.incidents import DetectionConfig, IncidentDetector, group_of
from assistant.incidents.detection import HOUR, _llr, baseline_by_hour, poisson_tail
from assistant.response import Route
from assistant.store import ConversationStore, schema
from assistant.store.store import signature_key
from tests.test_store import make_record

NOW = datetime(2026, 11, 20, 14, 40, tzinfo=UTC)


def contact(store: ConversationStore, at: datetime, *, code: str = "UPL-500", driver: str = "drv-1",
            market: str = "us-ca", version: str = "5.2.0") -> None:
    """One escalated defect contact, through the store's real write path."""
    record = make_record(f"c-{at.timestamp()}-{driver}-{code}", route=Route.ESCALATE, created_at=at, defect_code=code,
                         market=market)
    request = record.request.model_copy(update={
        "driver_id": driver, "journey": record.request.journey.model_copy(update={"app_version": version}),  # type: ignore[union-attr]
    })
    handoff = record.response.handoff
    assert handoff is not None and handoff.defect_signature is not None
    packet = handoff.model_copy(update={"defect_signature": {**handoff.defect_signature, "app_version": version}})
    response = record.response.model_copy(update={"handoff": packet})
    assert store.write(record.model_copy(update={"request": request, "response": response}))


def history(store: ConversationStore, per_hour: dict[int, float], *, days: int = 14, code: str = "UPL-500",
            seed: int = 7, end: datetime = NOW) -> None:
    """``days`` of Poisson contact counts per hour of the day, written as hourly signature counts
    (the table the detector reads; the handoff rows are not needed for a baseline)."""
    rng = np.random.default_rng(seed)
    fields = {"error_code": code, "endpoint": "photo_upload", "app_version": "5.2.0", "platform": "android",
              "stage": "post_delivery", "market": "us-ca"}
    start = (end - timedelta(days=days + 1)).replace(minute=0, second=0, microsecond=0)
    with store._session(write=True) as session:
        bucket = start
        while bucket < end - timedelta(days=1):
            n = int(rng.poisson(per_hour.get(bucket.hour, per_hour.get(-1, 0.0))))
            if n:
                session.add(schema.SignatureCount(signature=signature_key(fields), bucket=bucket, contacts=n, fields=fields))
            bucket += timedelta(hours=1)


def test_groups_merge_a_code_across_versions_and_an_endpoint_across_markets() -> None:
    assert group_of({"error_code": "upl-500", "app_version": "5.1"}) == group_of({"error_code": "UPL-500", "app_version": "5.2"})
    assert group_of({"endpoint": "Photo_Upload", "market": "us-ca"}) == group_of({"endpoint": "photo_upload", "market": "ca-on"})
    assert group_of({"stage": "at_dropoff"}) is None


def test_a_busy_hour_of_the_day_has_a_higher_baseline_and_a_new_group_the_prior() -> None:
    config = DetectionConfig()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    counts = {start + timedelta(days=d, hours=18): 10 for d in range(14)}
    rates = baseline_by_hour(counts, start=start, end=start + timedelta(days=14), observed_days=14, config=config)
    assert rates[18] > 8 and max(rates[:18]) < 1
    empty = baseline_by_hour({}, start=start, end=start + timedelta(days=14), observed_days=0, config=config)
    assert empty == pytest.approx([config.prior_rate_per_hour] * 24)


def test_a_new_error_code_opens_an_incident_within_its_first_contacts(store: ConversationStore) -> None:
    detector = IncidentDetector(store)
    history(store, {-1: 0.3}, code="NET-408")  # another code, steady: never an incident
    opened_at = None
    for n in range(12):  # a new code, a contact every 4 minutes from 14:00, from 6 drivers
        at = NOW.replace(minute=0) + timedelta(minutes=4 * n)
        contact(store, at, driver=f"drv-{n % 6}", version="5.2.0" if n % 2 else "5.3.0",
                market="us-ca" if n % 3 else "ca-on")
        result = detector.scan(at)
        if result.opened:
            opened_at = n + 1
            break
    assert opened_at is not None and opened_at <= 10, "not detected by the tenth contact"
    [incident] = detector.incidents(status="open")
    assert incident.group == "code:UPL-500" and incident.contacts == opened_at
    assert incident.drivers == min(opened_at, 6) and incident.examples
    assert incident.signature["error_code"] == "UPL-500"
    assert incident.signature["app_versions"] == ["5.2.0", "5.3.0"] and "ca-on" in incident.signature["markets"]
    assert incident.first_contact_at == NOW.replace(minute=0)
    # a second scan (another worker) opens nothing new and counts the same contacts
    again = detector.scan(NOW.replace(minute=0) + timedelta(minutes=4 * opened_at))
    assert again.opened == [] and [i.id for i in again.open] == [incident.id]


def test_the_busy_hour_is_not_an_alarm_but_the_same_count_at_night_is(store: ConversationStore) -> None:
    detector = IncidentDetector(store)
    history(store, {18: 10.0, -1: 0.5})
    evening = NOW.replace(hour=18, minute=0) - timedelta(days=1)
    for n in range(12):  # an ordinary evening: about ten contacts at 18:00
        contact(store, evening + timedelta(minutes=5 * n), driver=f"drv-{n}")
    assert detector.scan(evening + timedelta(minutes=59)).opened == []
    night = NOW.replace(hour=3, minute=0)
    found = None
    for n in range(12):
        contact(store, night + timedelta(minutes=5 * n), driver=f"drv-{n}")
        result = detector.scan(night + timedelta(minutes=5 * n + 1))
        if result.opened:
            found = n + 1
            break
    assert found is not None and found <= 10


def test_an_incident_closes_when_the_rate_is_back_and_does_not_reopen_on_the_same_contacts(store: ConversationStore) -> None:
    detector = IncidentDetector(store)
    history(store, {-1: 0.5})
    spike = NOW.replace(hour=9, minute=0)
    for n in range(10):
        contact(store, spike + timedelta(minutes=3 * n), driver=f"drv-{n}")
    assert detector.scan(spike + timedelta(minutes=40)).opened
    for n in range(9):  # still three contacts an hour, six times the baseline, for three hours
        contact(store, spike + timedelta(hours=1 + n // 3, minutes=20 * (n % 3)), driver=f"drv-x{n}")
    still = detector.scan(spike + timedelta(hours=4, minutes=5))
    assert still.closed == [] and still.open[0].contacts == 19 and still.open[0].drivers == 19
    # then three quiet hours: the rate is back to its baseline
    result = detector.scan(spike + timedelta(hours=7, minutes=5))
    [closed] = result.closed
    assert closed.status == "closed" and closed.closed_at == spike + timedelta(hours=7, minutes=5)
    assert detector.scan(spike + timedelta(hours=7, minutes=30)).opened == []  # not reopened on the same contacts
    assert detector.incidents(status="open") == []


def test_a_steady_poisson_baseline_gives_no_alarm_over_a_day_of_scans(store: ConversationStore) -> None:
    detector = IncidentDetector(store)
    profile = {h: 0.4 + 2.5 * np.exp(-((h - 18) ** 2) / 8) for h in range(24)}  # a daily peak at 18:00
    history(store, profile, days=14, seed=11)
    rng = np.random.default_rng(12)  # the day scanned: real contacts at the same rates
    day = (NOW - timedelta(hours=23)).replace(minute=0)
    for hour in range(24):
        start = day + timedelta(hours=hour)
        for n in range(int(rng.poisson(profile[start.hour]))):
            contact(store, start + timedelta(minutes=int(rng.integers(60))), driver=f"drv-{hour}-{n}")
    false_alarms = 0
    for hour in range(24):
        false_alarms += len(detector.scan(NOW - timedelta(hours=23 - hour)).opened)
    assert false_alarms == 0


def test_a_burst_that_is_over_opens_nothing_when_first_scanned_hours_later(store: ConversationStore) -> None:
    detector = IncidentDetector(store)
    history(store, {-1: 0.5})
    burst = NOW.replace(hour=9, minute=0)
    for n in range(10):  # ten drivers in half an hour, then the usual quiet
        contact(store, burst + timedelta(minutes=3 * n), driver=f"drv-{n}")
    assert detector.scan(burst + timedelta(hours=5)).opened == []  # first looked at five hours on: over
    [incident] = detector.scan(burst + timedelta(minutes=40)).opened  # looked at while it lasts: an incident
    assert incident.first_contact_at == burst and incident.contacts == 10


def _stepwise_alarm(config: DetectionConfig, recent: list[tuple[datetime, str, str]], rate_at: Callable[[datetime], float],
                    window_start: datetime, now: datetime, alpha: float) -> tuple[datetime, float] | None:
    """The CUSUM walked through every step of the window (what the detector's walk must equal)."""
    step = timedelta(minutes=config.step_minutes)
    fine: dict[datetime, list[str]] = defaultdict(list)
    for at, driver, _ in recent:
        fine[window_start + ((at - window_start) // step) * step].append(driver)
    score, run_start, run_contacts, run_expected = 0.0, window_start, 0, 0.0
    run_drivers: set[str] = set()
    crossed: tuple[datetime, float] | None = None
    bucket = window_start
    while bucket <= now:
        drivers = fine.get(bucket, [])
        fraction = min(step, max(now - bucket, timedelta(minutes=1))) / HOUR
        llr, _ = _llr(len(drivers), rate_at(bucket), config, fraction)
        if score == 0.0:
            run_start, run_contacts, run_expected, run_drivers = bucket, 0, 0.0, set()
        score = max(0.0, score + llr)
        if score > 0:
            run_contacts, run_expected = run_contacts + len(drivers), run_expected + rate_at(bucket) * fraction
            run_drivers.update(drivers)
        else:
            run_contacts, run_expected, run_drivers, crossed = 0, 0.0, set(), None
        if (crossed is None and score >= config.threshold and run_contacts >= config.min_contacts
                and len(run_drivers) >= config.min_drivers and poisson_tail(run_contacts, run_expected) <= alpha):
            crossed = run_start, score
        bucket += step
    return crossed if score > 0 else None


@pytest.mark.parametrize("step_minutes", [1, 5, 15])
def test_the_cusum_walk_that_skips_empty_steps_decides_as_stepping_through_every_one(step_minutes: int) -> None:
    config = DetectionConfig(step_minutes=step_minutes)
    detector = IncidentDetector(None, config)  # type: ignore[arg-type]  # _alarm reads no store
    rng = np.random.default_rng(step_minutes)
    alarms = 0
    for _ in range(150):
        profile = rng.gamma(1.0, 1.5, size=24)
        window_start = NOW.replace(minute=0) - timedelta(hours=int(rng.integers(1, 24)))
        now = NOW + timedelta(minutes=int(rng.integers(0, 60)), seconds=int(rng.integers(60)))
        span = (now - window_start).total_seconds()
        recent = [(window_start + timedelta(seconds=float(s)), f"drv-{rng.integers(6)}", "sig")
                  for s in rng.uniform(0, span, size=int(rng.integers(0, 12)))]
        centre = rng.uniform(0, span)  # and a burst somewhere in the window
        recent += [(window_start + timedelta(seconds=float(min(span, centre + s))), f"drv-b{n}", "sig")
                   for n, s in enumerate(rng.uniform(0, 1200, size=int(rng.integers(0, 10))))]
        recent.sort()
        alpha = float(10 ** rng.uniform(-6, -2))
        rate_at = lambda bucket, profile=profile: float(profile[bucket.hour])  # noqa: E731
        expected = _stepwise_alarm(config, recent, rate_at, window_start, now, alpha)
        got = detector._alarm(recent, rate_at, window_start, now, alpha)
        assert (got is None) == (expected is None)
        if got is not None and expected is not None:
            alarms += 1
            assert got[0] == expected[0] and got[1] == pytest.approx(expected[1])
    assert alarms >= 15  # the cases include alarms, not only quiet windows


def test_the_step_must_divide_the_hour() -> None:
    with pytest.raises(ValueError, match="divide 60"):
        DetectionConfig(step_minutes=7)


def test_a_lead_attaches_a_note_and_a_workaround_redacted(store: ConversationStore) -> None:
    detector = IncidentDetector(store)
    for n in range(8):
        contact(store, NOW.replace(minute=0) + timedelta(minutes=n), driver=f"drv-{n}")
    [incident] = detector.scan(NOW).opened
    noted = detector.annotate(incident.id, note="Photo upload is failing; we are on it. Call 415-555-0132",
                              workaround="Tap Complete without photo; you are paid in full.")
    assert noted.workaround and noted.note and "415-555-0132" not in noted.note
    with pytest.raises(ConfigurationError):
        detector.annotate(incident.id)
    with pytest.raises(NotFoundError):
        detector.annotate(999, note="x")


@pytest.mark.integration
def test_incidents_list_and_note_from_the_cli(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    store = ConversationStore.from_url(f"sqlite:///{tmp_path / 'assistant.db'}")
    store.upgrade()
    now = datetime.now(UTC)
    for n in range(8):
        contact(store, now - timedelta(minutes=n), driver=f"drv-{n}")
    store.close()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ASSISTANT_DATA_DIR": str(tmp_path)}
        return subprocess.run([sys.executable, "-m", "assistant.cli", "incidents", *args], capture_output=True,
                              text=True, env=env, timeout=120)

    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    [incident] = json.loads(listed.stdout)["incidents"]
    assert incident["group"] == "code:UPL-500" and incident["contacts"] == 8 and incident["drivers"] == 8
    noted = cli("note", str(incident["id"]), "--workaround", "Tap Complete without photo")
    assert noted.returncode == 0, noted.stderr
    text = cli("list").stdout
    assert "code:UPL-500" in text and "Tap Complete without photo" in text
    assert cli("note", "99", "--note", "x").returncode == 2


@pytest.mark.integration
def test_a_contact_matching_an_open_incident_gets_the_known_answer_over_http(shipped_index: Path, tmp_path: Path) -> None:
    import shutil

    from fastapi.testclient import TestClient

    from assistant import Settings, create_app
    from tests.conftest import CORPUS

    data = tmp_path / "data"
    shutil.copytree(shipped_index, data)
    journey = {"stage": "at_dropoff", "market": "us-ca", "app_version": "5.4.1", "platform": "android",
               "events": [{"type": "action", "name": "photo_submit"},
                          {"type": "error", "name": "photo_upload", "code": "UPL-500", "detail": "upload failed"}]}
    settings = Settings(data_dir=data, corpus_dir=CORPUS, rate_limit_per_minute=0, review_sample_rate=0.0,
                        incident_scan_seconds=0, incident_cache_seconds=0)
    app = create_app(settings)
    with TestClient(app) as client:
        for n in range(7):
            reply = client.post("/v1/answer", json={"message": "photo upload keeps failing", "journey": journey,
                                                    "driver_id": f"drv-{n}"}).json()
            assert reply["route"] == "escalate" and reply["handoff"]["defect_signature"]["error_code"] == "UPL-500"
        store = app.state.service.store
        detector = IncidentDetector(store)
        [incident] = detector.scan().opened
        detector.annotate(incident.id, workaround="Tap Complete without photo; you are paid in full.")

        reply = client.post("/v1/answer", json={"message": "cant upload the photo", "journey": journey,
                                                "driver_id": "drv-new"}).json()
        assert reply["route"] == "answer" and reply["handoff"] is None
        assert [r["code"] for r in reply["reasons"]] == ["known_incident"]
        assert f"#{incident.id}" in reply["reasons"][0]["detail"]
        assert "known problem" in reply["answer"] and "Tap Complete without photo" in reply["answer"]
        stored = client.get(f"/v1/conversations/{reply['conversation_id']}").json()
        assert stored["history"][0]["handoff"] is None  # no new case
        from assistant.store import ReviewFilter, ReviewQueue

        assert not [i for i in ReviewQueue(store).items(ReviewFilter(status=None)) if i.conversation_id == reply["conversation_id"]]

        typed = client.post("/v1/answer", json={"message": "getting UPL-500 again", "driver_id": "drv-typed"}).json()
        assert typed["route"] == "answer" and typed["reasons"][0]["code"] == "known_incident"

        detector.scan()
        updated = detector.get(incident.id)
        assert updated.contacts == 9 and updated.drivers == 9  # the answered contacts join the incident


def _replay_file(path: Path) -> list[str]:
    """Two hours of ordinary contacts, then a burst of photo-upload failures from many drivers."""
    import json

    start = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    questions = ["when do i get paid", "how do i change my bank account", "customer not answering",
                 "what is peak pay", "can i pick my own zone"]
    lines = []
    for n in range(24):
        lines.append({"ts": (start + timedelta(minutes=5 * n)).isoformat(), "driver_id": f"drv-{n}",
                      "message": questions[n % len(questions)], "journey": {"market": "us-ca"}})
    burst = start + timedelta(hours=2)
    journey = {"stage": "at_dropoff", "market": "us-ca", "app_version": "5.4.1", "platform": "android",
               "events": [{"type": "action", "name": "photo_submit"},
                          {"type": "error", "name": "photo_upload", "code": "UPL-500"}]}
    for n in range(12):
        lines.append({"ts": (burst + timedelta(minutes=2 * n)).isoformat(), "driver_id": f"drv-b{n}",
                      "message": "photo wont upload", "journey": journey})
    text = [json.dumps(line) for line in lines]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return text


@pytest.mark.integration
def test_replay_detects_the_burst_on_the_contacts_own_clock(shipped_index: Path, tmp_path: Path) -> None:
    import json
    import os
    import shutil
    import subprocess
    import sys

    from assistant import InputError, Settings
    from assistant.incidents.replay import read_contacts, replay
    from tests.conftest import CORPUS

    data = tmp_path / "data"
    shutil.copytree(shipped_index, data)
    lines = _replay_file(tmp_path / "contacts.jsonl")
    report = replay(read_contacts(lines), Settings(data_dir=data, corpus_dir=CORPUS))
    assert report.contacts == 36 and report.routes.get("answer", 0) >= 10
    [incident] = report.incidents
    assert incident.signature["error_code"] == "UPL-500"
    assert incident.first_contact_at == datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    assert incident.opened_at - incident.first_contact_at <= timedelta(minutes=15)
    assert incident.closed_at is None and incident.contacts >= 5 and incident.drivers == incident.contacts
    assert not (data / "assistant.db").exists()  # a fresh store, not the deployment's
    with pytest.raises(InputError, match="line 2"):
        read_contacts(['{"ts": "2026-11-02T08:00:00Z", "driver_id": "d", "message": "hi"}', '{"ts": "nope"}'])

    env = {**os.environ, "ASSISTANT_DATA_DIR": str(data), "ASSISTANT_CORPUS_DIR": str(CORPUS)}
    done = subprocess.run([sys.executable, "-m", "assistant.cli", "incidents", "replay", str(tmp_path / "contacts.jsonl"),
                           "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    [printed] = json.loads(done.stdout)["incidents"]
    assert set(printed) >= {"signature", "opened_at", "closed_at", "contacts", "drivers"}
    assert printed["opened_at"] == incident.opened_at.isoformat().replace("+00:00", "Z")


def test_one_driver_contacting_again_and_again_opens_no_incident(store: ConversationStore) -> None:
    for n in range(8):
        contact(store, NOW - timedelta(minutes=30 - 3 * n), code="ERR-777", driver="drv-same")
    assert IncidentDetector(store).scan(NOW).opened == []
    for n in range(3):
        contact(store, NOW - timedelta(minutes=2 - n / 2), code="ERR-777", driver=f"drv-other-{n}")
    assert [i.group for i in IncidentDetector(store).scan(NOW + timedelta(minutes=1)).opened] == ["code:ERR-777"]


def test_a_burst_in_one_market_stands_out_against_that_markets_share_of_a_busy_code(store: ConversationStore) -> None:
    rng = np.random.default_rng(3)
    start = (NOW - timedelta(days=15)).replace(minute=0, second=0, microsecond=0)
    with store._session(write=True) as session:
        for market in ("us-ca", "us-tx", "us-ny", "ca-on"):
            fields = {"error_code": "UPL-500", "endpoint": "photo_upload", "app_version": "5.2.0", "platform": "android",
                      "stage": "at_dropoff", "market": market}
            bucket = start
            while bucket < NOW - timedelta(days=1):
                n = int(rng.poisson(1.0))
                if n:
                    session.add(schema.SignatureCount(signature=signature_key(fields), bucket=bucket, contacts=n, fields=fields))
                bucket += timedelta(hours=1)
    for n in range(6):  # six drivers in Ontario within 15 minutes: 1 expected code-wide, 0.25 in Ontario
        contact(store, NOW - timedelta(minutes=15 - 2 * n), market="ca-on", driver=f"drv-on-{n}")
    assert IncidentDetector(store, DetectionConfig(slices=())).scan(NOW).opened == []
    [incident] = IncidentDetector(store).scan(NOW).opened
    assert incident.group == "code:UPL-500" and "ca-on" in incident.signature["markets"]
