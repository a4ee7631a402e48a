"""The service as it runs in production: `assistant serve` in its own process on loopback, killed
with SIGKILL under load (SQLite stays consistent, nothing answered is missing), stopped with
SIGTERM mid-request (the request finishes); and a PostgreSQL outage that loses no record."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from assistant import Assistant, HelpRequest, Settings
from assistant.store import ConversationStore, SqlSink
from tests.conftest import CORPUS, REPO, PostgresServer, free_port, wait_until_serving
from tests.openai_stub import OpenAIStub, Reply

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("loopback")]


def start_service(data_dir: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "ASSISTANT_DATA_DIR": str(data_dir), "ASSISTANT_CORPUS_DIR": str(CORPUS),
                   "ASSISTANT_RATE_LIMIT_PER_MINUTE": "0", **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "serve", "--port", str(port)], env=environment, cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_until_serving(f"http://127.0.0.1:{port}/readyz", process, seconds=180, what="assistant serve")
    return process


def test_sigkill_under_load_leaves_sqlite_consistent_with_every_answered_request_stored(copy_of_shipped_index: Path) -> None:
    port = free_port()
    process = start_service(copy_of_shipped_index, port)
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            i = 0
            while not stop.is_set():
                try:
                    reply = http.post("/v1/answer", json={"message": f"when do i get paid {n}-{i}"})
                except httpx.HTTPError:
                    return  # the server is gone
                if reply.status_code == 200:
                    with lock:
                        answered.append(reply.json()["conversation_id"])
                i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answered) >= 10
    database = copy_of_shipped_index / "assistant.db"
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        responses = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        turns = db.execute("SELECT COUNT(*) FROM turns").fetchone()[0]
        counted = db.execute("SELECT SUM(responses) FROM conversations").fetchone()[0]
    assert turns == 2 * responses and counted == responses  # every transaction whole or absent
    stored = {c.id for c in ConversationStore.from_url(f"sqlite:///{database}").list_conversations(limit=100_000)}
    assert set(answered) <= stored  # an answer is sent only after its record is written


def test_sigterm_lets_an_in_flight_request_finish(copy_of_shipped_index: Path) -> None:
    reply_text = json.dumps({"answer": "Payouts arrive every Wednesday.", "citations": [1], "can_answer": True})
    with OpenAIStub([Reply(reply_text, delay=2.0)]) as stub:
        port = free_port()
        process = start_service(
            copy_of_shipped_index, port, ASSISTANT_GENERATOR="openai", ASSISTANT_OPENAI_BASE_URL=stub.url,
            ASSISTANT_OPENAI_API_KEY="test", ASSISTANT_PROMPTS_DIR=str(REPO / "prompts"),
        )
        assert not stub.requests  # starting up loads every stage without calling the model
        result: list[httpx.Response] = []
        request = threading.Thread(target=lambda: result.append(
            httpx.post(f"http://127.0.0.1:{port}/v1/answer", json={"message": "when do i get paid"}, timeout=60)))
        request.start()
        deadline = time.monotonic() + 30
        while not stub.requests and time.monotonic() < deadline:  # the request is now waiting on the model
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        request.join(timeout=60)
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once done
    assert result and result[0].status_code == 200
    assert result[0].json()["answer"].startswith("Payouts arrive every Wednesday")


def test_a_postgresql_outage_loses_no_record_and_replays_each_once(postgres_server: PostgresServer, postgres_url: str,
                                                                   shipped_index: Path, tmp_path: Path) -> None:
    store = ConversationStore.from_url(postgres_url)
    store.upgrade()
    sink = SqlSink(store, spool_dir=tmp_path / "spool", retries=1, backoff=0.01, retry_interval=0.2)
    assistant = Assistant(Settings(data_dir=shipped_index, corpus_dir=CORPUS), sink=sink)
    questions = ["when do i get paid", "how do ratings work", "customer not home", "can i deliver alcohol"]
    ids = [assistant.answer(HelpRequest(message=q)).conversation_id for q in questions]
    postgres_server.stop()
    try:
        during = [assistant.answer(HelpRequest(message=f"{q} (outage)")) for q in questions * 3]
        assert all(r.answer for r in during)  # the drivers still got their answers
        ids += [r.conversation_id for r in during]
        assert sink.spool.pending() == 12
    finally:
        postgres_server.start()
    deadline = time.monotonic() + 30
    while sink.spool.has_pending() and time.monotonic() < deadline:  # the replay thread catches up
        time.sleep(0.1)
    assert not sink.spool.has_pending()
    ids += [assistant.answer(HelpRequest(message="after the outage")).conversation_id]
    stored = store.record_ids()
    assert len(stored) == len(set(stored)) == len(ids) == 17
    assert [c.id for c in sorted(store.list_conversations(limit=100), key=lambda c: c.created_at)] == ids
    sink.close()
