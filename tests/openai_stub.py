"""An OpenAI-protocol server on 127.0.0.1 for tests: scripted replies, recorded requests.

It speaks real HTTP, so the real ``openai`` client (through ``langchain-openai``) talks to it as
to any OpenAI-compatible server. Each request pops the next scripted reply (the last one repeats).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted reply."""

    content: str = ""
    status: int = 200
    delay: float = 0.0
    raw_body: str | None = None  # sent as is (malformed replies)
    chunk_delay: float = 0.0  # between streamed chunks
    first_piece: int = 0  # if set, the first streamed chunk is content[:first_piece]
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150})


def completion(content: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub", "object": "chat.completion", "created": int(time.time()), "model": "stub-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": usage,
    }


class OpenAIStub:
    """Start with ``with OpenAIStub([...]) as stub:``; ``stub.url`` is the base URL (``.../v1``)."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        self.first_token_at: list[float] = []  # perf_counter when each stream's first token was sent
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with stub._lock:
                    stub.requests.append({"path": self.path, "body": body})
                    reply = stub.replies.pop(0) if len(stub.replies) > 1 else stub.replies[0]
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status == 200 and body.get("stream") and reply.raw_body is None:
                    self._stream(reply, body)
                    return
                if reply.status != 200:
                    payload = json.dumps({"error": {"message": f"stub status {reply.status}", "type": "stub"}}).encode()
                else:
                    payload = (reply.raw_body if reply.raw_body is not None else json.dumps(completion(reply.content, reply.usage))).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _stream(self, reply: Reply, body: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                head = reply.content[: reply.first_piece] if reply.first_piece else ""
                rest = reply.content[len(head) :]
                pieces = ([head] if head else []) + [rest[i : i + 12] for i in range(0, len(rest), 12)] or [""]
                base = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": int(time.time()), "model": "stub-model"}
                events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
                events += [{**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
                events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                if (body.get("stream_options") or {}).get("include_usage"):
                    events.append({**base, "choices": [], "usage": reply.usage})
                try:
                    for index, event in enumerate(events):
                        if index == 1:  # the first chunk with content is about to leave the server
                            stub.first_token_at.append(time.perf_counter())
                        self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                        self.wfile.flush()
                        time.sleep(reply.chunk_delay)
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> OpenAIStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
