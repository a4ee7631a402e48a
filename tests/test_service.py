"""The HTTP service through httpx (FastAPI's TestClient runs the app's lifespan): every endpoint,
auth, 413/422/429, SSE framing, the store behind it, redaction, logs, and a schema fuzz."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assistant import HelpResponse, Settings, create_app
from tests.conftest import CORPUS

pytestmark = pytest.mark.integration

PII = {"phone": "415-555-0132", "email": "jordan.lee77@gmail.com", "card": "4111 1111 1111 1111",
       "address": "1842 W Maple Ave"}
DEFECT_JOURNEY = {
    "stage": "at_dropoff", "market": "us-ca", "app_version": "5.4.1", "platform": "android",
    "order": {"id": "o-1", "type": "delivery", "items": [f"gift card {PII['card']}"]},
    "events": [
        {"ts": "2026-01-05T18:00:00Z", "type": "action", "name": "photo_submit"},
        {"ts": "2026-01-05T18:00:03Z", "type": "error", "name": "photo_upload", "code": "UPL-500",
         "detail": f"upload failed for {PII['email']}"},
    ],
}


def service_settings(data_dir: Path, **overrides: object) -> Settings:
    return Settings(data_dir=data_dir, corpus_dir=CORPUS, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def service_dir(tmp_path_factory: pytest.TempPathFactory, shipped_index: Path) -> Path:
    import shutil

    target = tmp_path_factory.mktemp("service") / "data"
    shutil.copytree(shipped_index, target)
    return target


@pytest.fixture(scope="module")
def client(service_dir: Path) -> Iterator[TestClient]:
    app = create_app(service_settings(service_dir, rate_limit_per_minute=0, review_sample_rate=0.0))
    with TestClient(app) as test_client:
        yield test_client


def all_stored_text(data_dir: Path) -> str:
    """Every value of every table of the SQLite store, as one string."""
    with sqlite3.connect(data_dir / "assistant.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(str(row) for t in tables for row in db.execute(f"SELECT * FROM {t}"))


def test_an_answer_over_http_is_stored_and_read_back(client: TestClient) -> None:
    reply = client.post("/v1/answer", json={"message": "when do i get paid", "journey": {"market": "us-ca"}})
    assert reply.status_code == 200, reply.text
    response = HelpResponse.model_validate(reply.json())
    assert response.route == "answer" and response.citations
    assert reply.headers["x-request-id"]
    stored = client.get(f"/v1/conversations/{response.conversation_id}")
    assert stored.status_code == 200
    body = stored.json()
    assert [t["role"] for t in body["turns"]] == ["driver", "assistant"]
    assert body["history"][0]["citations"][0]["doc_id"] == response.citations[0].doc_id
    assert body["history"][0]["model"] == "extractive"
    assert "total_ms" in body["history"][0]["timings_ms"]

    again = client.post("/v1/answer", json={"message": "and if it's missing?", "conversation_id": response.conversation_id})
    assert again.status_code == 200 and again.json()["conversation_id"] == response.conversation_id
    assert client.get(f"/v1/conversations/{response.conversation_id}").json()["responses"] == 2


def test_an_escalation_over_http_is_stored_with_its_handoff_packet_redacted(client: TestClient, service_dir: Path) -> None:
    message = f"photo wont upload, keeps failing. call me {PII['phone']} or i'm at {PII['address']}"
    reply = client.post("/v1/answer", json={
        "message": message, "journey": DEFECT_JOURNEY, "driver_id": "drv-42",
        "history": [{"role": "driver", "text": f"my email is {PII['email']}"}],
    })
    assert reply.status_code == 200
    response = reply.json()
    assert response["route"] == "escalate" and response["handoff"]["category"] == "app_defect"
    stored = client.get(f"/v1/conversations/{response['conversation_id']}").json()
    packet = stored["history"][0]["handoff"]
    assert packet["defect_signature"]["error_code"] == "UPL-500"
    assert packet["priority"] == "high"
    everything = all_stored_text(service_dir) + json.dumps(response) + json.dumps(stored)
    for kind, value in PII.items():
        assert value not in everything, kind
    assert "[PHONE]" in stored["turns"][0]["text"]


def test_server_sent_events_stream_text_then_one_final_response(client: TestClient) -> None:
    with client.stream("POST", "/v1/answer/stream", json={"message": "how do i change my bank account"}) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        raw = "".join(reply.iter_text())
    frames = [f for f in raw.split("\n\n") if f.strip()]
    events = [(f.split("\n")[0].removeprefix("event: "), json.loads(f.split("\n")[1].removeprefix("data: "))) for f in frames]
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "response" and kinds.count("response") == 1
    assert set(kinds[:-1]) == {"delta"}
    final = HelpResponse.model_validate(events[-1][1])
    assert final.citations
    assert "".join(data["text"] for kind, data in events if kind == "delta").strip() == final.answer.strip()


def test_feedback_is_stored_and_unknown_ids_are_404(client: TestClient) -> None:
    conversation = client.post("/v1/answer", json={"message": "how do ratings work"}).json()["conversation_id"]
    reply = client.post("/v1/feedback", json={"conversation_id": conversation, "helpful": False,
                                              "comment": f"no, text me at {PII['phone']}"})
    assert reply.status_code == 201, reply.text
    assert PII["phone"] not in reply.text
    stored = client.get(f"/v1/conversations/{conversation}").json()
    assert [f["helpful"] for f in stored["feedback"]] == [False]
    missing = client.post("/v1/feedback", json={"conversation_id": "nope", "helpful": True})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    assert client.get("/v1/conversations/nope").json() == {
        "error": {"type": "not_found", "message": "no conversation 'nope'"}}


@pytest.mark.parametrize(("body", "where"), [
    (b"{not json", "body"),
    (b"[]", "body"),
    (json.dumps({"message": 5}).encode(), "message"),
    (json.dumps({"message": "hi", "extra": 1}).encode(), "extra"),
    (json.dumps({"message": "hi", "journey": {"stage": "flying"}}).encode(), "journey.stage"),
    (json.dumps({"message": "hi", "conversation_id": "../../etc"}).encode(), "conversation_id"),
])
def test_malformed_requests_get_422_with_one_error_body(client: TestClient, body: bytes, where: str) -> None:
    reply = client.post("/v1/answer", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert error["type"] == "invalid_request" and error["message"].startswith(where.split(".")[0])


def test_oversized_bodies_get_413(client: TestClient) -> None:
    reply = client.post("/v1/answer", json={"message": "x" * 70_000})
    assert reply.status_code == 413
    assert reply.json()["error"]["type"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as the body arrives
        yield b'{"message": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}'

    streamed = client.post("/v1/answer", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


def test_lone_surrogates_and_odd_order_flags_are_answered_not_500(client: TestClient) -> None:
    body = '{"message": "app \\ud800 crashed", "history": [{"role": "driver", "text": "\\udfff"}], "journey": {"order": {"flags": ["a(", "\\ud83d"]}}}'
    reply = client.post("/v1/answer", content=body.encode(), headers={"content-type": "application/json"})
    assert reply.status_code == 200, reply.text


def test_health_readiness_metrics_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True and ready.json()["database_backend"] == "sqlite"
    client.post("/v1/answer", json={"message": "what is the minimum rating"})
    metrics = client.get("/metrics").text
    assert 'assistant_answers_total{reason="none",route="answer"}' in metrics or "assistant_answers_total{" in metrics
    assert 'assistant_stage_seconds_bucket{le="0.005",stage="retrieval"}' in metrics
    assert 'assistant_http_requests_total{method="POST",path="/v1/answer",status="200"}' in metrics
    schema = client.get("/openapi.json").json()
    assert {"/v1/answer", "/v1/answer/stream", "/v1/feedback", "/v1/conversations/{conversation_id}", "/healthz",
            "/readyz", "/metrics"} <= set(schema["paths"])


def test_logs_carry_ids_and_codes_never_driver_text(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "zebra-umbrella-quartz"
    client.post("/v1/answer", json={"message": f"my {secret} app crashed, call {PII['phone']}"})
    client.post("/v1/answer", content=b'{"message": "' + secret.encode() + b'", "x": 1}',
                headers={"content-type": "application/json"})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/v1/answer" in logged
    assert secret not in logged and PII["phone"] not in logged


def test_api_keys_rate_limits_and_cors(service_dir: Path) -> None:
    settings = service_settings(service_dir, api_keys="k-one,k-two", rate_limit_per_minute=2,
                                cors_origins="https://console.example")
    with TestClient(create_app(settings)) as keyed:
        missing = keyed.post("/v1/answer", json={"message": "hi"})
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["type"] == "unauthorized"
        wrong = keyed.post("/v1/answer", json={"message": "hi"}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403 and wrong.json()["error"]["type"] == "forbidden"
        ok = {"Authorization": "Bearer k-two"}
        assert keyed.post("/v1/answer", json={"message": "when do i get paid"}, headers=ok).status_code == 200
        assert keyed.get("/v1/conversations/none", headers=ok).status_code == 404
        limited = keyed.post("/v1/answer", json={"message": "when do i get paid"}, headers=ok)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"]["type"] == "rate_limited"
        other = keyed.post("/v1/answer", json={"message": "when do i get paid"}, headers={"Authorization": "Bearer k-one"})
        assert other.status_code == 200  # the limit is per key
        assert keyed.get("/healthz").status_code == 200  # probes need no key
        preflight = keyed.options("/v1/answer", headers={
            "Origin": "https://console.example", "Access-Control-Request-Method": "POST"})
        assert preflight.headers["access-control-allow-origin"] == "https://console.example"
    with TestClient(create_app(service_settings(service_dir))) as plain:
        preflight = plain.options("/v1/answer", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in preflight.headers


def test_without_an_index_readiness_fails_and_answers_are_503(tmp_path: Path) -> None:
    with TestClient(create_app(service_settings(tmp_path / "empty"))) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["index"] is False and ready.json()["database"] is True
        reply = client.post("/v1/answer", json={"message": "when do i get paid"})
        assert reply.status_code == 503 and reply.json()["error"]["type"] == "index_not_ready"


@pytest.fixture(scope="module")
def live_url(service_dir: Path) -> Iterator[str]:
    """The service under uvicorn on a loopback port, in a thread of this process."""
    import threading
    import time

    import uvicorn

    from tests.conftest import free_port, loopback_works

    if not loopback_works():
        pytest.skip("loopback is down (a fresh `unshare -n` namespace): run `ip link set lo up` first")
    port = free_port()
    app = create_app(service_settings(service_dir, rate_limit_per_minute=0, review_sample_rate=0.0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_schema_fuzzing_finds_no_server_error(live_url: str) -> None:
    """Schemathesis generates valid and invalid requests for every operation from the OpenAPI
    schema; none may get a 5xx (503 only while the index is missing, which it is not here)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{live_url}/openapi.json")
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        has_input = operation.method.upper() == "POST" or "{" in operation.path
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_input else (GenerationMode.POSITIVE,):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                      derandomize=True)
            def call(case: schemathesis.Case) -> None:
                nonlocal calls
                response = case.call(timeout=60)
                calls += 1
                assert response.status_code < 500, (case.method, case.path, case.body, response.text[:300])
                content_type = (response.headers.get("content-type") or [""])[0]
                if response.status_code >= 400 and content_type.startswith("application/json"):
                    assert set(response.json()) == {"error"}, response.text[:300]

            try:
                call()
            except Unsatisfiable:  # a schema that accepts every value has no invalid one to send
                assert mode is GenerationMode.NEGATIVE, (operation.method, operation.path)
    assert calls >= 100


def test_200_requests_from_32_concurrent_clients_lose_no_record(live_url: str, service_dir: Path) -> None:
    import httpx

    from assistant.store import ConversationStore

    questions = ["when do i get paid", "how do i change my bank account", "what if the customer is not home",
                 "my app keeps crashing at pickup", "how do ratings work", "can i deliver alcohol"]

    async def run() -> list[str]:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=live_url, timeout=120, limits=limits) as http:
            gate = asyncio.Semaphore(32)

            async def one(n: int) -> str:
                async with gate:
                    reply = await http.post("/v1/answer", json={"message": f"{questions[n % len(questions)]} #{n}"})
                    assert reply.status_code == 200, reply.text
                    return str(reply.json()["conversation_id"])

            return list(await asyncio.gather(*(one(n) for n in range(200))))

    import asyncio

    ids = asyncio.run(run())
    assert len(set(ids)) == 200
    store = ConversationStore.from_url(f"sqlite:///{service_dir / 'assistant.db'}")
    stored = {c.id for c in store.list_conversations(limit=100_000)}
    assert set(ids) <= stored
