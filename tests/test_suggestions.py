"""Help cards: friction rules over the journey (fast tier), cards quoting the corpus, dismissals
in the store, the incident card, ``POST /v1/suggestions`` and ``assistant suggest`` (integration)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from assistant import Assistant, ConfigurationError, HelpCard, JourneyContext, Settings
from assistant.evals.suggestions import (
    CaseResult,
    SuggestionCase,
    load_suggestion_cases,
    score_suggestions,
)
from assistant.response import Citation
from assistant.store import ConversationStore
from assistant.suggestions import detect, load_rules
from assistant.suggestions.friction import journey_time, words
from assistant.suggestions.rules import DEFAULT_RULES
from tests.conftest import CORPUS

RULES = load_rules()
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def journey(*events: tuple[int, str, str] | tuple[int, str, str, str | None, str | None], **fields: Any) -> JourneyContext:
    """A journey whose events are ``(minute, type, name[, code, detail])`` after :data:`T0`."""
    rows = []
    for event in events:
        minute, type_, name, *rest = event
        code, detail = ([*rest, None, None])[:2]
        rows.append({"ts": (T0 + timedelta(minutes=minute)).isoformat(), "type": type_, "name": name,
                     "code": code, "detail": detail})
    return JourneyContext.model_validate({**fields, "events": rows})


def fired(j: JourneyContext, now: datetime | None = None) -> list[tuple[str, str]]:
    return [(f.rule.id, f.key) for f in detect(j, RULES, now=now)]


# -- reading events ---------------------------------------------------------------------------

def test_event_names_of_every_style_read_as_the_same_words() -> None:
    assert words("declineOffer") == "decline offer"
    assert words("offer.decline") == words("offer-decline") == words("OFFER_DECLINE") == "offer decline"
    assert words("POST /v2/deliveries/ab12/complete") == "post v2 deliveries ab12 complete"


def test_the_same_action_failing_three_times_is_one_friction_whatever_the_naming() -> None:
    j = journey((0, "api", "POST /v1/photos/upload", "500", None), (1, "error", "photoUpload", None, "timeout"),
                (2, "action", "photo_upload_failed"), stage="at_dropoff")
    [friction] = detect(j, RULES)
    assert (friction.rule.id, friction.key) == ("repeated_failure", "photo upload")
    assert friction.fields["count"] == "3" and "photo upload keeps failing" in friction.render(friction.rule.query)


def test_an_error_code_the_repeated_failure_carries_is_not_a_second_friction() -> None:
    j = journey(*((m, "error", "photo_upload", "UPL-500", None) for m in range(3)), (4, "error", "sign_in", "AUTH-401", None))
    assert fired(j) == [("repeated_failure", "upl-500"), ("error_code", "auth-401")]


def test_failures_of_one_action_named_differently_are_one_group() -> None:
    j = journey((0, "error", "photo_upload", "UPL-500", None), (1, "api", "POST /v1/photos", "503", None),
                (2, "error", "photoUpload", None, "timeout"), (3, "error", "go_online_failed"))
    assert fired(j) == [("repeated_failure", "upl-500"), ("error_code", "go online")]


def test_one_failure_with_or_without_a_code_is_friction_and_a_success_is_not() -> None:
    assert fired(journey((0, "error", "complete_delivery", "LOC-203", None))) == [("error_code", "loc-203")]
    assert fired(journey((0, "api", "PUT /v2/deliveries/x9/complete", "503", "Service Unavailable"))) == [
        ("error_code", "delivery complete")]
    assert fired(journey((0, "api", "POST /v1/cashout", "200", "ok"), (1, "action", "upload_succeeded"))) == []


def test_declined_offers_count_only_past_the_threshold_and_a_declined_card_is_not_one() -> None:
    three = [(m * 5, "action", name) for m, name in enumerate(("offer_declined", "declineOffer", "offer.reject"))]
    assert fired(journey(*three)) == []
    assert fired(journey(*three, (20, "action", "tap_decline"))) == [("declined_offers", "")]
    cards = [(m, "action", "card_payment_declined") for m in range(4)]
    assert "declined_offers" not in [r for r, _ in fired(journey(*cards))]


def test_a_long_wait_needs_the_stage_threshold_from_stage_since_or_an_arrival_event() -> None:
    short = journey((0, "action", "arrivedAtStore"), (12, "screen", "order_status"), stage="at_pickup")
    assert fired(short) == []
    long = journey((0, "action", "arrivedAtStore"), (26, "screen", "order_status"), stage="at_pickup",
                   order={"id": "ord-7"})
    assert fired(long) == [("long_wait", "at_pickup:ord-7")]
    since = journey((30, "screen", "map"), stage="online_waiting", stage_since=T0.isoformat())
    assert fired(since) == []  # 30 minutes online is not yet a long wait (45)
    assert fired(journey((50, "screen", "map"), stage="online_waiting", stage_since=T0.isoformat())) == [
        ("long_wait", "online_waiting")]


def test_a_recorded_journey_is_read_at_its_newest_event_and_a_live_one_now() -> None:
    old = journey((0, "action", "arrivedAtStore"), (5, "screen", "order_status"), stage="at_pickup")
    assert journey_time(old, RULES, None) == T0 + timedelta(minutes=5)
    assert fired(old) == []
    live = JourneyContext(stage="at_pickup", stage_since=datetime.now(UTC) - timedelta(minutes=40))
    assert fired(live) == [("long_wait", "at_pickup")]


def test_an_expiring_document_fires_from_a_reminder_or_the_account_status_until_renewed() -> None:
    reminder = journey((0, "system", "documentExpiryReminder", None, "Auto insurance expires 2026-06-20"))
    assert fired(reminder) == [("expiring_document", "insurance")]
    assert fired(JourneyContext(account_status="drivers_license_expired")) == [("expiring_document", "drivers license")]
    renewed = journey((0, "system", "document_expiry_reminder", None, "insurance expires soon"),
                      (60, "system", "document_approved", None, "insurance valid until 2027"))
    assert fired(renewed) == []


def test_a_review_pending_longer_than_it_takes_is_friction_and_a_fresh_one_is_not() -> None:
    fresh = journey((0, "system", "selfie.manual_review.queued"), (60, "screen", "home", None, "Selfie under review"))
    assert fired(fresh) == []
    stale = journey((0, "system", "selfie.manual_review.queued"), (240, "screen", "home", None, "Selfie under review"))
    assert fired(stale) == [("pending_identity", "selfie")]


def test_a_payout_failure_is_one_friction_from_its_words_or_its_code() -> None:
    assert ("failed_payout", "") in fired(journey((0, "system", "cashout_status", None, "failed - funds returned")))
    assert ("failed_payout", "") in fired(journey((0, "api", "POST /v1/payouts", "PAY-402", None)))
    assert fired(journey((0, "system", "payout_sent", None, "completed"))) == []


def test_what_the_driver_reads_and_calls_that_succeeded_are_not_friction() -> None:
    reading = journey((0, "screen", "FAQ", None, "title='Why do payouts fail?'"),
                      (1, "action", "help_search", None, "query='error codes'"),
                      (2, "api", "GET /v1/payouts?status=failed", "200", "0 results"),
                      (3, "action", "toggle_setting", None, "Prevent screen timeout while navigating: ON"))
    assert fired(reading) == []


def test_negated_failure_words_are_not_failures() -> None:
    assert fired(journey((0, "api", "POST /v1/pickups/scan", None, "barcode valid - not invalid"))) == []
    assert fired(journey((0, "screen", "Ratings", None, "failed deliveries this month: 0"))) == []
    assert fired(journey((0, "api", "POST /v1/pickups/scan", None, "barcode invalid"))) != []


def test_a_field_with_no_value_is_not_a_failure_nor_an_end_and_a_product_name_is_no_failure_word() -> None:
    assert fired(journey((0, "system", "Crashlytics.previousSession", None, "didCrash=false"),
                         (1, "system", "Sentry.breadcrumb", None, "errors=null"))) == []
    assert fired(journey((0, "system", "Crashlytics.session", None, "didCrash=true"))) != []
    polled = journey((0, "system", "driverOnline"), *((m, "system", "offerPollSummary", None, "offersReceived=0")
                     for m in (30, 60, 90)), stage="online_waiting")
    assert fired(polled) == [("long_wait", "online_waiting")]


def test_a_failure_the_driver_got_through_is_not_friction() -> None:
    # the same action succeeding afterwards, under another naming: a 2xx status or a success word
    assert fired(journey((0, "error", "completeDelivery", "LOC-203", "Too far from drop-off"),
                         (1, "api", "deliveryCompleted", "200", None))) == []
    assert fired(journey((0, "error", "item_scan", "SCN-422", None),
                         (1, "action", "item_type_number", None, "7/15 confirmed"))) == []
    retried = journey(*((m, "error", "photo_upload", "UPL-500", None) for m in range(3)),
                      (4, "api", "POST /v1/photos/upload", "201", None))
    assert fired(retried) == []
    # success of something else, or reading about it, settles nothing
    assert fired(journey((0, "error", "photo_upload", "UPL-500", None), (1, "api", "GET /v1/orders", "200", None),
                         (2, "screen", "help_article_photo_upload", None, "ok"))) == [("error_code", "upl-500")]
    # a success before the failure settles nothing either
    assert fired(journey((0, "api", "deliveryCompleted", "200", None),
                         (1, "error", "completeDelivery", "LOC-203", None))) == [("error_code", "loc-203")]


def test_a_wait_on_something_in_particular_counts_from_its_start_event_not_the_stage() -> None:
    steady = journey(*((m, "action", "item_scanned") for m in range(0, 16, 2)), stage="shopping",
                     stage_since=T0.isoformat())
    assert fired(steady) == []
    waiting = journey((0, "action", "item_scanned"), (4, "action", "cant_find_item"), (5, "action", "message_customer"),
                      (14, "screen", "chat"), stage="shopping", stage_since=T0.isoformat())
    assert fired(waiting) == [("long_wait", "shopping")]


def test_an_expiry_far_ahead_is_not_friction_yet() -> None:
    far = journey((0, "screen", "AlcoholSettings", None, "Certificate: valid, expires 2028-03-15"))
    assert fired(far) == []
    near = journey((0, "screen", "Documents", None, "Certificate expires 2026-06-20"))
    assert fired(near) == [("expiring_document", "certificate")]
    assert fired(journey((0, "system", "reminder", None, "Insurance expires in 7 months"))) == []
    assert fired(journey((0, "system", "reminder", None, "Insurance expires in 9 days"))) == [("expiring_document", "insurance")]


def test_tapping_the_same_button_again_and_again_counts_as_it_failing() -> None:
    taps = journey(*((m, "action", "tap_go_online") for m in range(4)), stage="offline")
    assert fired(taps) == [("repeated_failure", "go online")]
    scans = journey(*((m, "action", "scan_item") for m in range(6)), stage="shopping")
    assert fired(scans) == []


def test_a_wait_ends_with_its_end_event() -> None:
    served = journey((0, "action", "arrived_at_store"), (15, "action", "order_picked_up"), (30, "screen", "nav"),
                     stage="at_pickup")
    assert fired(served) == []
    confirmed = journey((0, "action", "arrivedAtStore"), (15, "action", "confirm_pickup"), (30, "screen", "nav"),
                        stage="at_pickup")
    assert fired(confirmed) == []
    offered = journey((0, "action", "go_online"), (30, "action", "offer_accept"), (60, "screen", "map"),
                      stage="online_waiting")
    assert fired(offered) == []


def test_a_calm_journey_of_ordinary_traffic_has_no_friction() -> None:
    calm = journey((0, "action", "go_online"), (3, "action", "offer_accepted"), (4, "action", "offer_declined"),
                   (15, "action", "arrived_at_store"), (19, "action", "picked_up"), (35, "action", "photo_upload"),
                   (36, "api", "POST /v1/deliveries/ab/complete", "200", "ok"), stage="post_delivery")
    assert fired(calm) == []


# -- the rules file ---------------------------------------------------------------------------

def test_a_broken_rules_file_fails_at_load_naming_the_problem(tmp_path: Path) -> None:
    good = DEFAULT_RULES.read_text(encoding="utf-8")
    cases = {
        "regex": good.replace("failure: '", "failure: '(unclosed", 1),
        "template": good.replace("{count} offers declined", "{counts} offers declined"),
        "yaml": "rules: [",
    }
    for name, text in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigurationError, match=str(path)):
            load_rules(path)


def test_a_platform_rules_file_changes_what_fires(tmp_path: Path) -> None:
    text = DEFAULT_RULES.read_text(encoding="utf-8").replace("min_count: 4", "min_count: 2")
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    two = journey((0, "action", "offer_declined"), (5, "action", "offer_declined"))
    assert [f.rule.id for f in detect(two, load_rules(path))] == ["declined_offers"]
    assert fired(two) == []


# -- scoring ----------------------------------------------------------------------------------

def test_hit_at_3_and_calm_journeys_are_scored_per_split() -> None:
    def card(doc: str) -> HelpCard:
        return HelpCard(id=doc, kind="x", title="t", body="b", why="w",
                        citations=[Citation(doc_id=doc, title="T", section="S", chunk_id=f"{doc}:1", score=0.5)])

    def case(id_: str, docs: list[str], split: str) -> SuggestionCase:
        return SuggestionCase(id=id_, journey=JourneyContext(), calm=not docs, friction="none" if not docs else "error_code",
                              expected_doc_ids=docs, split=split)  # type: ignore[arg-type]

    report = score_suggestions([
        CaseResult(case=case("a", ["tips"], "tuning"), cards=[card("x"), card("y"), card("tips")]),
        CaseResult(case=case("b", ["tips"], "tuning"), cards=[card("x"), card("y"), card("z"), card("tips")]),
        CaseResult(case=case("c", [], "sealed"), cards=[]),
        CaseResult(case=case("d", [], "sealed"), cards=[card("x")]),
    ])
    assert report.metrics["tuning.hit@3"] == 0.5 and report.metrics["tuning.hit@1"] == 0.0
    assert report.metrics["sealed.calm_no_card"] == 0.5 and report.metrics["all.calm_journeys"] == 2
    assert len(report.failures) == 2


def test_the_shipped_journey_sets_load_with_both_splits() -> None:
    cases = load_suggestion_cases(Path(__file__).resolve().parent.parent / "evals" / "suggestions")
    assert len(cases) >= 60 and {c.split.value for c in cases} == {"tuning", "sealed"}
    assert sum(c.calm for c in cases) >= 20


# -- dismissals in the store --------------------------------------------------------------------

def test_dismissals_are_kept_per_driver_once(store: ConversationStore) -> None:
    assert store.dismiss_card("drv-1", "error_code:upl-500") is True
    assert store.dismiss_card("drv-1", "error_code:upl-500") is False
    store.dismiss_card("drv-2", "declined_offers")
    assert store.dismissed_cards("drv-1") == {"error_code:upl-500"}
    assert store.dismissed_cards("drv-3") == frozenset()


# -- cards from the shipped corpus (integration) ------------------------------------------------

UPLOAD = {"stage": "at_dropoff", "market": "us-ca", "app_version": "5.4.1", "platform": "android",
          "events": [{"type": "action", "name": "photo_submit"},
                     {"type": "error", "name": "photo_upload", "code": "UPL-500", "detail": "upload failed"}]}


def _corpus_text() -> str:
    return " ".join(" ".join(p.read_text(encoding="utf-8").split()) for p in CORPUS.glob("*.md"))


@pytest.mark.integration
def test_cards_quote_the_corpus_with_citations_and_why(shipped_assistant: Assistant) -> None:
    cards = shipped_assistant.suggest(JourneyContext.model_validate(UPLOAD))
    assert cards and cards[0].id == "error_code:upl-500"
    top = cards[0]
    assert top.citations[0].doc_id in {"app-error-codes", "dropoff-and-photo-proof"}
    assert "UPL-500" in top.why
    corpus = _corpus_text().replace("**", "")
    for sentence in top.body.replace("\n", " ").split(". "):
        assert " ".join(sentence.split()).strip(". ") in corpus  # a quote, not a paraphrase
    assert shipped_assistant.suggest(JourneyContext(stage="online_waiting", market="us-ca")) == []
    assert shipped_assistant.suggest(None) == []


@pytest.mark.integration
def test_a_dismissed_card_is_not_shown_again_without_a_store(shipped_index: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(shipped_index, data)
    assistant = Assistant(Settings(data_dir=data, corpus_dir=CORPUS))
    j = JourneyContext.model_validate(UPLOAD)
    first = assistant.suggest(j, driver_id="drv-1")
    assistant.dismiss("drv-1", first[0].id)
    assert first[0].id not in [c.id for c in assistant.suggest(j, driver_id="drv-1")]
    assert first[0].id in [c.id for c in assistant.suggest(j, driver_id="drv-2")]
    assert len(assistant.suggest(j, limit=1)) == 1 and assistant.suggest(j, limit=0) == []


@pytest.mark.integration
def test_suggestions_over_http_with_an_open_incident_first_and_dismissals_shared(shipped_index: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from assistant import create_app
    from assistant.incidents import IncidentDetector

    data = tmp_path / "data"
    shutil.copytree(shipped_index, data)
    settings = Settings(data_dir=data, corpus_dir=CORPUS, rate_limit_per_minute=0, review_sample_rate=0.0,
                        incident_scan_seconds=0, incident_cache_seconds=0)
    app = create_app(settings)
    with TestClient(app) as client:
        before = client.post("/v1/suggestions", json={"journey": UPLOAD}).json()["cards"]
        assert before and before[0]["kind"] == "error_code" and set(before[0]) >= {"title", "body", "citations", "why"}
        assert client.post("/v1/suggestions", json={"journey": {"stage": "at_dropoff"}}).json() == {"cards": []}
        assert client.post("/v1/suggestions", json={"journey": {"stag": "x"}}).status_code == 422

        for n in range(7):  # seven drivers report the same failure: an incident opens
            client.post("/v1/answer", json={"message": "photo upload keeps failing", "journey": UPLOAD, "driver_id": f"d{n}"})
        detector = IncidentDetector(app.state.service.store)
        [incident] = detector.scan().opened
        detector.annotate(incident.id, note="Photo uploads are failing for many drivers; we're fixing it.",
                          workaround="Tap Complete without photo; you are paid in full.")
        cards = client.post("/v1/suggestions", json={"journey": UPLOAD, "driver_id": "drv-9"}).json()["cards"]
        assert cards[0]["kind"] == "incident" and cards[0]["incident_id"] == incident.id
        assert "Complete without photo" in cards[0]["body"] and "we're fixing it" in cards[0]["body"]
        assert "UPL-500" in cards[0]["why"]

        assert client.post("/v1/suggestions/dismiss", json={"driver_id": "drv-9", "card_id": cards[0]["id"]}).status_code == 204
        assert client.post("/v1/suggestions/dismiss", json={"driver_id": "drv-9", "card_id": cards[0]["id"]}).status_code == 204
        after = client.post("/v1/suggestions", json={"journey": UPLOAD, "driver_id": "drv-9"}).json()["cards"]
        assert cards[0]["id"] not in [c["id"] for c in after]
    # another worker over the same database honours the dismissal
    with TestClient(create_app(settings)) as other:
        again = other.post("/v1/suggestions", json={"journey": UPLOAD, "driver_id": "drv-9"}).json()["cards"]
        assert cards[0]["id"] not in [c["id"] for c in again]


@pytest.mark.integration
def test_assistant_suggest_prints_cards_as_json(shipped_index: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(shipped_index, data)
    path = tmp_path / "journey.json"
    path.write_text(json.dumps(UPLOAD), encoding="utf-8")
    env = {"ASSISTANT_DATA_DIR": str(data), "ASSISTANT_CORPUS_DIR": str(CORPUS), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "assistant.cli", "suggest", "--journey", str(path), "--json"],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    cards = json.loads(run.stdout)["cards"]
    assert cards and {"title", "body", "citations", "why"} <= set(cards[0])
    calm = tmp_path / "calm.json"
    calm.write_text(json.dumps({"stage": "online_waiting"}), encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "assistant.cli", "suggest", "--journey", str(calm), "--json"],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert json.loads(run.stdout) == {"cards": []}
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "assistant.cli", "suggest", "--journey", str(bad)],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert run.returncode == 2 and "not valid JSON" in run.stderr


@pytest.mark.integration
def test_cards_are_quoted_offline_when_answers_come_from_a_custom_composer(shipped_index: Path) -> None:
    from assistant.generation.base import Draft

    class Echo:
        """A caller's own composer (answers only; cards never use it)."""

        def compose(self, question: str, passages: list[Any], signals: Any, *, request: Any = None) -> Draft:
            return Draft(text=question)

    assistant = Assistant(Settings(data_dir=shipped_index, corpus_dir=CORPUS), composer=Echo())
    first = assistant.suggest(JourneyContext.model_validate(UPLOAD))
    composer = assistant._card_composer
    assert first and first[0].citations and composer is not None
    assert assistant.suggest(JourneyContext.model_validate(UPLOAD)) == first and assistant._card_composer is composer
