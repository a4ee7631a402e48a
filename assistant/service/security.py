"""Bearer API keys, per-key rate limits and the request-body limit of the HTTP service."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import SecretStr

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ApiKeys:
    """The keys the service accepts; each is compared in constant time."""

    def __init__(self, keys: list[SecretStr]) -> None:
        self._keys = [k.get_secret_value().encode() for k in keys if k.get_secret_value()]

    @property
    def enabled(self) -> bool:
        """False when no key is configured (the service then accepts every caller)."""
        return bool(self._keys)

    def match(self, presented: str) -> str | None:
        """An id for the key ``presented`` (a hash prefix, safe to log), or ``None``."""
        given = presented.encode()
        found = False
        for key in self._keys:  # every key is compared, so timing does not tell which matched
            found |= hmac.compare_digest(given, key)
        return hashlib.sha256(given).hexdigest()[:12] if found else None


class RateLimiter:
    """A token bucket per caller: ``per_minute`` requests a minute, bursts up to that many."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, caller: str) -> float:
        """Take one token for ``caller``: 0 when allowed, else seconds until the next one."""
        if self.per_minute <= 0:
            return 0.0
        rate = self.per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(caller, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[caller] = (tokens - 1.0, now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            return (1.0 - tokens) / rate


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 before the app reads it all."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        seen = 0
        refused = False  # the 413 went out; whatever the app sends after it is dropped

        async def limited() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    await _too_large(send, self.max_bytes)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not refused:
                raise


async def _too_large(send: Send, max_bytes: int) -> None:
    body = json.dumps({"error": {"type": "payload_too_large", "message": f"request body over {max_bytes} bytes"}}).encode()
    await send({
        "type": "http.response.start", "status": 413,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
