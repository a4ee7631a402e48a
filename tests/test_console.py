"""The support-lead console: users and sessions on SQLite and PostgreSQL, the pages through
httpx (sign-in, CSRF, roles, PII kept out of URLs), and a real headless chromium (Debian's,
through Playwright) working the queue against `assistant serve` on loopback.

The browser test saves screenshots of the queue, conversation and analytics pages in
``tests/artifacts/console/`` (or ``$ASSISTANT_TEST_ARTIFACTS/console``)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from assistant import AuthError, ConfigurationError, NotFoundError, Settings, create_app
from assistant.console import ConsoleUsers
from assistant.store import ConversationStore
from tests.conftest import CORPUS, REPO, free_port, serving

PASSWORD = "correct horse battery"
PHONE = "415-555-0132"
DEFECT_JOURNEY = {
    "stage": "at_dropoff", "market": "us-ca", "app_version": "5.4.1", "platform": "android",
    "events": [
        {"ts": "2026-01-05T18:00:00Z", "type": "action", "name": "photo_submit"},
        {"ts": "2026-01-05T18:00:03Z", "type": "error", "name": "photo_upload", "code": "UPL-500",
         "detail": "upload failed: 500"},
    ],
}


# -- users and sessions (library) ------------------------------------------------------------


def test_a_user_signs_in_with_an_argon2_hashed_password_and_signs_out(store: ConversationStore) -> None:
    users = ConsoleUsers(store)
    added = users.add("sam", PASSWORD, role="lead")
    assert added.role == "lead" and added.active
    from sqlalchemy import text

    with store._session() as session:
        stored_hash = session.execute(text("SELECT password_hash FROM console_users WHERE name = 'sam'")).scalar_one()
    assert stored_hash.startswith("$argon2id$") and PASSWORD not in stored_hash

    token, session = users.sign_in("sam", PASSWORD, client="10.0.0.1")
    assert session.user == "sam" and session.is_lead and len(session.csrf) >= 32
    found = users.session(token)
    assert found is not None and found.csrf == session.csrf
    with store._session() as db:  # the database holds a digest of the token, never the token
        assert token not in str(db.execute(text("SELECT token_hash FROM console_sessions")).all())
    users.sign_out(token)
    assert users.session(token) is None
    assert [e.action for e in users.audit()][:3] == ["sign_out", "sign_in", "user_add"]


def test_accounts_refuse_bad_names_short_passwords_duplicates_and_unknown_roles(store: ConversationStore) -> None:
    users = ConsoleUsers(store)
    users.add("sam", PASSWORD)
    with pytest.raises(ConfigurationError, match="exists"):
        users.add("sam", PASSWORD)
    with pytest.raises(ConfigurationError, match="at least 10"):
        users.add("kim", "short")
    with pytest.raises(ConfigurationError, match="user name"):
        users.add("<script>", PASSWORD)
    with pytest.raises(ConfigurationError, match="unknown role"):
        users.add("kim", PASSWORD, role="admin")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        users.set_password("nobody", PASSWORD)
    assert [u.name for u in users.all()] == ["sam"]


def test_failed_sign_ins_are_throttled_per_account_and_a_disabled_user_loses_its_sessions(store: ConversationStore) -> None:
    users = ConsoleUsers(store, max_failures=3)
    users.add("sam", PASSWORD)
    token, _ = users.sign_in("sam", PASSWORD)
    for _ in range(3):
        with pytest.raises(AuthError) as refused:
            users.sign_in("sam", "wrong password!", client="10.0.0.9")
        assert refused.value.retry_after is None
    with pytest.raises(AuthError) as throttled:  # even the right password waits now
        users.sign_in("sam", PASSWORD, client="10.0.0.10")
    assert throttled.value.retry_after is not None and 0 < throttled.value.retry_after <= 15 * 60
    with pytest.raises(AuthError, match="wrong name or password"):  # an unknown name reads the same
        users.sign_in("nobody", PASSWORD, client="10.0.0.11")

    assert users.session(token) is not None
    users.set_active("sam", False)
    assert users.session(token) is None


# -- the pages through httpx ------------------------------------------------------------------


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def _sign_in(client: TestClient, name: str, password: str = PASSWORD) -> None:
    form = client.get("/console/login")
    reply = client.post("/console/login", data={"name": name, "password": password, "csrf_token": _csrf(form.text)},
                        follow_redirects=False)
    assert reply.status_code == 303, reply.text
    client.cookies.set("assistant_console", reply.cookies["assistant_console"], path="/console")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, shipped_index: Path) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("console") / "data"
    shutil.copytree(shipped_index, data)
    app = create_app(Settings(data_dir=data, corpus_dir=CORPUS, rate_limit_per_minute=0, review_sample_rate=0.0))
    with TestClient(app) as client:
        for message, journey in [
            ("photo wont upload, keeps failing", DEFECT_JOURNEY),
            (f"i want to talk to a real person, call me at {PHONE}", {"market": "us-ca", "stage": "en_route_to_customer"}),
            ("when do i get paid", {"market": "us-ca"}),
        ]:
            assert client.post("/v1/answer", json={"message": message, "journey": journey, "driver_id": "drv-1"}).status_code == 200
        users = ConsoleUsers(app.state.service.store)
        users.add("lead1", PASSWORD, role="lead")
        users.add("rev1", PASSWORD, role="reviewer")
        yield client


@pytest.mark.integration
def test_pages_need_a_session_and_the_sign_in_form_its_token(console: TestClient) -> None:
    console.cookies.clear()
    assert console.get("/console/queue", follow_redirects=False).headers["location"] == "/console/login"
    forged = console.post("/console/login", data={"name": "lead1", "password": PASSWORD, "csrf_token": "x"})
    assert forged.status_code == 403 and "Form refused" in forged.text
    form = console.get("/console/login")
    wrong = console.post("/console/login", data={"name": "lead1", "password": "not it at all", "csrf_token": _csrf(form.text)})
    assert wrong.status_code == 401 and "wrong name or password" in wrong.text
    _sign_in(console, "lead1")
    page = console.get("/console/queue")
    assert page.status_code == 200 and "Review queue" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"


@pytest.mark.integration
def test_session_cookie_is_httponly_samesite_and_secure_over_https(console: TestClient) -> None:
    form = console.get("/console/login")
    reply = console.post("/console/login", data={"name": "lead1", "password": PASSWORD, "csrf_token": _csrf(form.text)},
                         follow_redirects=False)
    cookie = reply.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie.split("assistant_console_login")[0]
    tls = TestClient(console.app, base_url="https://testserver")
    form = tls.get("/console/login")
    reply = tls.post("/console/login", data={"name": "lead1", "password": PASSWORD, "csrf_token": _csrf(form.text)},
                     follow_redirects=False)
    assert "; secure" in reply.headers["set-cookie"].lower()


@pytest.mark.integration
def test_a_form_without_its_csrf_token_changes_nothing(console: TestClient) -> None:
    _sign_in(console, "rev1")
    item_id = re.findall(r"/console/items/(\d+)", console.get("/console/queue").text)[0]
    refused = console.post(f"/console/items/{item_id}/resolve", data={})
    assert refused.status_code == 403
    refused = console.post(f"/console/items/{item_id}/resolve", data={"csrf_token": "a" * 43})
    assert refused.status_code == 403
    assert "s-resolved" not in console.get(f"/console/items/{item_id}").text


@pytest.mark.integration
def test_a_reviewer_is_refused_user_management_and_exports_a_lead_is_not(console: TestClient) -> None:
    _sign_in(console, "rev1")
    assert console.get("/console/users").status_code == 403
    assert console.get("/console/analytics.json").status_code == 403
    assert console.get("/console/reviews.jsonl").status_code == 403
    assert console.get("/console/analytics").status_code == 200
    _sign_in(console, "lead1")
    page = console.get("/console/users")
    assert page.status_code == 200 and "rev1" in page.text
    added = console.post("/console/users", data={"action": "add", "name": "rev2", "role": "reviewer",
                                                 "password": PASSWORD, "csrf_token": _csrf(page.text)})
    assert added.status_code == 200 and "rev2" in added.text
    assert console.get("/console/reviews.jsonl").status_code == 200
    exported = console.get("/console/analytics.json").json()
    assert exported["totals"]["total"] >= 3 and "self_service" in exported and "content_gaps" in exported


@pytest.mark.integration
def test_content_gaps_come_as_entries_for_the_corpus_list_of_unanswered_questions(
    tmp_path: Path, shipped_index: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(shipped_index, data)
    app = create_app(Settings(data_dir=data, corpus_dir=CORPUS, rate_limit_per_minute=0, review_sample_rate=0.0))
    with TestClient(app) as client:
        asked = ["who is the ceo of courio", "whos the ceo of courio", "who is courio's ceo right now"]
        for message in asked:
            reply = client.post("/v1/answer", json={"message": message, "journey": {"market": "us-tx"}, "driver_id": "drv-9"})
            assert reply.json()["route"] != "answer", reply.json()["reasons"]
        ConsoleUsers(app.state.service.store).add("lead9", PASSWORD, role="lead")
        _sign_in(client, "lead9")
        page = client.get("/console/analytics").text
    block = re.search(r"<pre>(questions:.*?)</pre>", page, re.S)
    assert block, "the content gaps come with entries for corpus/gaps.yaml"
    entries = yaml.safe_load(html.unescape(block.group(1)))["questions"]
    assert len(entries) == 1 and entries[0]["text"] in asked


@pytest.mark.integration
def test_no_pii_in_urls_pages_or_the_label(console: TestClient) -> None:
    _sign_in(console, "lead1")
    search = console.get(f"/console/queue?q=call+me+at+{PHONE}", follow_redirects=False)
    assert search.status_code == 303 and PHONE not in search.headers["location"]
    queue = console.get("/console/queue?status=any").text
    assert PHONE not in queue
    item_id = re.findall(r"/console/items/(\d+)", queue)[0]
    page = console.get(f"/console/items/{item_id}")
    console.post(f"/console/items/{item_id}/label", data={"notes": f"driver said {PHONE}", "csrf_token": _csrf(page.text)})
    assert PHONE not in console.get(f"/console/items/{item_id}").text


@pytest.mark.integration
def test_sign_in_is_rate_limited_over_http(console: TestClient) -> None:
    console.cookies.clear()
    replies = []
    for _ in range(6):  # five failures per account (or client address) within 15 minutes, then 429
        form = console.get("/console/login")
        replies.append(console.post("/console/login", data={"name": "rev2-missing", "password": "guess guess guess",
                                                           "csrf_token": _csrf(form.text)}))
    statuses = [r.status_code for r in replies]
    assert statuses[0] == 401 and statuses[-1] == 429, statuses
    first = statuses.index(429)
    assert set(statuses[first:]) == {429} and first <= 5  # an earlier test's failure counts for this client too
    assert 0 < int(replies[-1].headers["retry-after"]) <= 15 * 60
    from sqlalchemy import delete

    from assistant.store import schema

    with console.app.state.service.store._session(write=True) as session:  # the window passes (for later tests)
        session.execute(delete(schema.LoginAttempt))
    _sign_in(console, "rev1")


# -- the browser ------------------------------------------------------------------------------


def _artifacts() -> Path:
    root = Path(os.environ.get("ASSISTANT_TEST_ARTIFACTS") or REPO / "tests" / "artifacts")
    folder = root / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.integration
def test_a_lead_works_the_queue_in_headless_chromium(shipped_index: Path, tmp_path: Path, loopback: None) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("Debian chromium is not installed; run `make install` (it runs .ci/install-browser)")
    data = tmp_path / "data"
    shutil.copytree(shipped_index, data)
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(data), "ASSISTANT_CORPUS_DIR": str(CORPUS),
           "ASSISTANT_REVIEW_SAMPLE_RATE": "0"}
    cli = [sys.executable, "-m", "assistant.cli"]
    for name, role in (("lead1", "lead"), ("rev1", "reviewer")):
        subprocess.run([*cli, "users", "add", name, "--role", role, "--password-stdin"], input=PASSWORD + "\n",
                       text=True, env=env, check=True, capture_output=True, timeout=120)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    shots = _artifacts()
    log = (tmp_path / "serve.log").open("w")
    command = [*cli, "serve", "--port", str(port)]
    with serving(command, probe=f"{base}/healthz", seconds=120, what="assistant serve", output=log, env=env):
        import httpx

        for message, journey in [
            ("photo wont upload, keeps failing", DEFECT_JOURNEY),
            ("i want to talk to a real person", {"market": "us-ca", "stage": "en_route_to_customer"}),
            ("when do i get paid", {"market": "us-ca"}),
            ("do you offer health insurance for drivers", {"market": "us-ca"}),
            ("is there health insurance for us drivers", {"market": "us-ca"}),
        ]:
            reply = httpx.post(f"{base}/v1/answer", json={"message": message, "journey": journey, "driver_id": "drv-1"}, timeout=60)
            assert reply.status_code == 200, reply.text

        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            page.goto(f"{base}/console/queue")
            assert page.url.endswith("/console/login")
            page.fill("input[name=name]", "lead1")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/console/queue")
            # filter the queue to escalations from the form, as a person would
            page.select_option("select[name=reason]", "escalation")
            page.click("form.filters button[type=submit]")
            page.wait_for_url("**reason=escalation**")
            rows = page.locator("#queue tbody tr")
            assert rows.count() >= 1
            assert all("escalation" in rows.nth(i).inner_text() for i in range(rows.count()))
            page.screenshot(path=str(shots / "queue.png"), full_page=True)

            # open the escalated defect report and read its journey timeline
            page.locator("#queue tbody tr", has_text="photo").locator("a").first.click()
            page.wait_for_url("**/console/items/**")
            timeline = page.locator("#journey .timeline").inner_text()
            assert "photo_submit" in timeline and "UPL-500" in timeline
            assert timeline.index("photo_submit") < timeline.index("UPL-500")  # time order
            assert page.locator("#item-status").inner_text() in ("open", "claimed")
            assert "Handoff packet" in page.content()
            page.screenshot(path=str(shots / "conversation.png"), full_page=True)
            item_url = page.url

            # label it and resolve it, then reload and find it resolved
            page.check("input[name=route_right][value=yes]")
            page.check("input[name=defect_confirmed][value=yes]")
            page.fill("textarea[name=notes]", "upload defect, known workaround")
            page.click("button[data-action=label-resolve]")
            page.wait_for_url("**done=**")
            page.goto(item_url)
            assert page.locator("#item-status").inner_text() == "resolved"
            assert page.locator("input[name=defect_confirmed][value=yes]").is_checked()
            assert "lead1 resolved" in page.locator("ol.log").inner_text()
            # the lead downloads the labelled reviews as eval cases
            export = page.request.get(f"{base}/console/reviews.jsonl")
            assert export.status == 200
            [case] = [json.loads(line) for line in export.text().splitlines()]
            assert case["expected_route"] == "escalate" and "defect_confirmed" in case["expected_reasons"]

            # keyboard: '/' focuses the search box on the queue
            page.goto(f"{base}/console/queue")
            page.keyboard.press("/")
            assert page.evaluate("document.activeElement.name") == "q"

            page.goto(f"{base}/console/analytics?days=7")
            assert "self-service resolution" in page.locator("#self-service").inner_text()
            assert page.locator(".chart rect").count() >= 1
            page.screenshot(path=str(shots / "analytics.png"), full_page=True)

            assert not errors, errors  # no failed resource, no script error on the lead's pages

            # a reviewer is refused the user-management page
            page.click("button.link")  # sign out
            page.wait_for_url("**/console/login")
            page.fill("input[name=name]", "rev1")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/console/queue")
            assert page.locator("nav a", has_text="Users").count() == 0
            refused = page.goto(f"{base}/console/users")
            assert refused is not None and refused.status == 403
            # a form posted without its CSRF token is refused, and changes nothing
            forged = page.request.post(f"{base}/console/items/1/dismiss", form={"note": "forged"})
            assert forged.status == 403
            browser.close()
    log.close()
    served = (tmp_path / "serve.log").read_text()
    assert PASSWORD not in served
    for name in ("queue.png", "conversation.png", "analytics.png"):
        assert (shots / name).stat().st_size > 10_000
    print(f"screenshots: {shots}")


@pytest.mark.integration
def test_incidents_page_shows_an_open_incident_and_a_lead_attaches_a_workaround(console: TestClient) -> None:
    from assistant.incidents import IncidentDetector

    for n in range(7):  # a burst of the same defect from seven drivers
        reply = console.post("/v1/answer", json={"message": "the photo upload keeps failing", "journey": DEFECT_JOURNEY,
                                                 "driver_id": f"drv-burst-{n}"})
        assert reply.json()["route"] == "escalate"
    IncidentDetector(console.app.state.service.store).scan()  # what each worker's scanner does every minute
    _sign_in(console, "rev1")
    page = console.get("/console/incidents")
    assert page.status_code == 200 and "code:UPL-500" in page.text and "drivers" in page.text
    incident_id = re.search(r"#(\d+) code:UPL-500", page.text)
    assert incident_id
    form = {"workaround": "Tap Complete without photo", "csrf_token": _csrf(console.get("/console/queue").text)}
    assert console.post(f"/console/incidents/{incident_id.group(1)}", data=form).status_code == 403  # reviewers read
    _sign_in(console, "lead1")
    form["csrf_token"] = _csrf(console.get("/console/incidents").text)
    saved = console.post(f"/console/incidents/{incident_id.group(1)}", data=form)
    assert saved.status_code == 200 and "Tap Complete without photo" in saved.text
    example = re.search(r'href="(/console/conversations/[^"]+)"', saved.text)
    assert example and console.get(example.group(1)).url.path.startswith("/console/items/")
