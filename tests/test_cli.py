"""The CLI as a user runs it: a real subprocess, the JSON contract, exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parent.parent
CONTRACT_KEYS = {"route", "reasons", "answer", "citations", "confidence", "journey_used", "handoff",
                 "conversation_id", "prompt_version", "usage"}


def run(args: list[str], data_dir: Path, cwd: Path = REPO, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(data_dir), "ASSISTANT_CORPUS_DIR": str(REPO / "corpus"),
           **{f"ASSISTANT_{k.upper()}": v for k, v in settings.items()}}
    return subprocess.run([sys.executable, "-m", "assistant.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_ask_json_prints_exactly_one_contract_object(copy_of_shipped_index: Path, tmp_path: Path):
    journey = tmp_path / "journey.json"
    journey.write_text(json.dumps({"stage": "at_dropoff", "market": "us-ca", "order": {"type": "alcohol", "flags": ["alcohol"]}}))
    history = tmp_path / "history.json"
    history.write_text(json.dumps([{"role": "driver", "text": "hi"}, {"role": "assistant", "text": "Hello!"}]))
    result = run(["ask", "customer not answering", "--journey", str(journey), "--history", str(history), "--json"], copy_of_shipped_index)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == CONTRACT_KEYS and result.stdout.count("\n") == 1
    assert data["route"] in ("answer", "escalate", "decline")
    assert 0.0 <= data["confidence"] <= 1.0


def test_stage_and_market_flags_override_the_file(copy_of_shipped_index: Path):
    result = run(["ask", "when do i get paid", "--market", "ca-on", "--stage", "post_delivery", "--json"], copy_of_shipped_index)
    data = json.loads(result.stdout)
    assert data["citations"][0]["doc_id"] == "payout-schedule-ca-on"


def test_bad_journey_is_a_usage_error_with_one_line(copy_of_shipped_index: Path, tmp_path: Path):
    journey = tmp_path / "journey.json"
    journey.write_text('{"stage": "at_dropoff", "colour": "red"}')
    result = run(["ask", "hello", "--journey", str(journey)], copy_of_shipped_index)
    assert result.returncode == 2
    assert "unknown field 'colour'" in result.stderr and "Traceback" not in result.stderr
    missing = run(["ask", "hello", "--journey", str(tmp_path / "nope.json")], copy_of_shipped_index)
    assert missing.returncode == 2 and "cannot read journey file" in missing.stderr


def test_escalation_and_decline_still_exit_zero(copy_of_shipped_index: Path):
    result = run(["ask", "let me talk to a real person", "--json"], copy_of_shipped_index)
    assert result.returncode == 0 and json.loads(result.stdout)["route"] == "escalate"
    result = run(["ask", "what's the capital of france", "--json"], copy_of_shipped_index)
    assert result.returncode == 0 and json.loads(result.stdout)["route"] == "decline"


def test_ask_before_any_ingest_builds_the_index(tmp_path: Path):
    # (without the multilingual pivots, which this English question does not need: a faster build)
    result = run(["ask", "how much is fast pay", "--json"], tmp_path / "fresh", multilingual="false")
    assert result.returncode == 0, result.stderr
    assert "building it" in result.stderr
    assert json.loads(result.stdout)["citations"][0]["doc_id"] == "instant-cashout"


def test_ingest_reports_up_to_date(copy_of_shipped_index: Path):
    result = run(["ingest", str(REPO / "corpus"), "-q"], copy_of_shipped_index)
    assert result.returncode == 0 and "up to date" in result.stdout
    bad = run(["ingest", str(REPO / "no-such-folder")], copy_of_shipped_index)
    assert bad.returncode == 1 and "does not exist" in bad.stderr


def test_db_upgrade_then_conversations_list_and_show_read_the_store(copy_of_shipped_index: Path, tmp_path: Path):
    data = copy_of_shipped_index
    fresh = run(["conversations", "list"], data)
    assert fresh.returncode == 2 and "assistant db upgrade" in fresh.stderr
    upgraded = run(["db", "upgrade"], data)
    from assistant.store.database import head_revision

    assert upgraded.returncode == 0 and f"revision {head_revision()} (sqlite)" in upgraded.stdout, upgraded.stderr
    from assistant import Assistant, HelpRequest, Settings

    assistant = Assistant(Settings(data_dir=data, corpus_dir=REPO / "corpus", database_url=f"sqlite:///{data / 'assistant.db'}"))
    first = assistant.answer(HelpRequest(message="when do i get paid", driver_id="drv-1"))
    assistant.answer(HelpRequest(message="i was in a crash, call me at 415-555-0132", driver_id="drv-2"))
    assistant.close()
    listed = run(["conversations", "list", "--json"], data)
    rows = json.loads(listed.stdout)
    assert [r["driver_id"] for r in rows] == ["drv-2", "drv-1"]
    assert json.loads(run(["conversations", "list", "--json", "--route", "escalate"], data).stdout)[0]["driver_id"] == "drv-2"
    shown = run(["conversations", "show", first.conversation_id, "--json"], data)
    conversation = json.loads(shown.stdout)
    assert conversation["history"][0]["citations"] and conversation["turns"][0]["text"] == "when do i get paid"
    text = run(["conversations", "show", rows[0]["id"]], data).stdout
    assert "[PHONE]" in text and "415-555-0132" not in text and "handoff: safety" in text
    missing = run(["conversations", "show", "nope"], data)
    assert missing.returncode == 1 and "no conversation" in missing.stderr


def test_serve_refuses_to_listen_beyond_loopback_without_api_keys(tmp_path: Path):
    refused = run(["serve", "--host", "0.0.0.0"], tmp_path)
    assert refused.returncode == 2 and "ASSISTANT_API_KEYS" in refused.stderr


def test_demo_keeps_its_conversations_and_says_how_to_start_the_service(copy_of_shipped_index: Path):
    demo = run(["demo", "--quiet"], copy_of_shipped_index)
    assert demo.returncode == 0, demo.stderr
    assert "assistant serve" in demo.stdout and "assistant.db" in demo.stdout
    listed = json.loads(run(["conversations", "list", "--json", "--limit", "100"], copy_of_shipped_index).stdout)
    from assistant.demo import load_scenarios, load_traffic

    assert len(listed) == len(load_scenarios()) + len(load_traffic())
    # the demo's console login is printed and signs in (a lead)
    import re

    from assistant.console import ConsoleUsers
    from assistant.store import ConversationStore

    found = re.search(r"sign in as (\S+) with the password (\S+)", demo.stdout)
    assert found and "http://127.0.0.1:8000/console" in demo.stdout
    store = ConversationStore.from_url(f"sqlite:///{copy_of_shipped_index / 'assistant.db'}")
    _, session = ConsoleUsers(store).sign_in(found.group(1), found.group(2))
    assert session.role == "lead"
    again = run(["demo", "--quiet"], copy_of_shipped_index)  # a second demo gives a new password
    second = re.search(r"with the password (\S+)", again.stdout)
    assert second and second.group(1) != found.group(2)


def test_review_list_claim_resolve_export_and_the_export_runs_as_an_eval(copy_of_shipped_index: Path, tmp_path: Path):
    data = copy_of_shipped_index
    from assistant import Assistant, HelpRequest, Settings

    assistant = Assistant(Settings(data_dir=data, corpus_dir=REPO / "corpus", database_url=f"sqlite:///{data / 'assistant.db'}",
                                   review_sample_rate=0.0))
    assistant.answer(HelpRequest(message="i want to talk to a real person please"))
    assistant.answer(HelpRequest(message="i was in a crash, someone is hurt", journey={"stage": "en_route_to_customer"}))
    assistant.close()
    listed = json.loads(run(["review", "list", "--json"], data).stdout)
    assert listed[0]["priority"] == "urgent" and len(listed) == 2  # the crash comes first
    text = run(["review", "list"], data).stdout
    assert "escalation" in text or "low_confidence" in text
    first = listed[0]["id"]
    assert run(["review", "claim", str(first), "--as", "sam"], data).returncode == 0
    done = run(["review", "resolve", str(first), "--as", "sam", "--route-right", "--answer-wrong",
                "--correct-doc", "accidents-and-incident-reporting", "--note", "called the driver"], data)
    assert done.returncode == 0, done.stderr
    shown = json.loads(run(["review", "show", str(first), "--json"], data).stdout)
    assert shown["status"] == "resolved" and [h["action"] for h in shown["history"]] == ["claim", "label", "resolved"]
    assert run(["review", "claim", str(first), "--as", "alex"], data).returncode == 2  # closed
    cases = tmp_path / "reviewed.jsonl"
    exported = run(["review", "export", "--out", str(cases)], data)
    assert exported.returncode == 0 and "1 reviewed case" in exported.stdout
    case = json.loads(cases.read_text(encoding="utf-8"))
    assert case["expected_route"] == "escalate" and case["relevant_doc_ids"] == ["accidents-and-incident-reporting"]
    assert "safety" in case["expected_reasons"]
    evaluated = run(["eval", "run", "-d", str(cases), "--out", str(tmp_path / "run"), "--quiet"], data)
    assert evaluated.returncode == 0, evaluated.stderr
    assert (tmp_path / "run" / "results.jsonl").read_text(encoding="utf-8").count("\n") == 1


def test_users_add_list_passwd_and_disable(tmp_path: Path):
    def users(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ASSISTANT_DATA_DIR": str(tmp_path)}
        return subprocess.run([sys.executable, "-m", "assistant.cli", "users", *args], input=stdin, capture_output=True,
                              text=True, env=env, cwd=REPO, timeout=120)

    added = users("add", "kim", "--role", "lead", "--password-stdin", stdin="a long passphrase\n")
    assert added.returncode == 0 and "kim (lead) added" in added.stdout, added.stderr
    assert users("add", "kim", "--password-stdin", stdin="a long passphrase\n").returncode == 2
    short = users("add", "lee", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 10" in short.stderr
    assert users("add", "lee", "--role", "admin", "--password-stdin", stdin="a long passphrase\n").returncode == 2
    assert users("passwd", "kim", "--password-stdin", stdin="another long one\n").returncode == 0
    assert users("disable", "kim").returncode == 0
    assert users("disable", "nobody").returncode == 2
    listed = json.loads(users("list", "--json").stdout)
    assert [(u["name"], u["role"], u["active"]) for u in listed] == [("kim", "lead", False)]
