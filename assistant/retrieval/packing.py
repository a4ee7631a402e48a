"""Context packing: keep the best passages that fit a token budget."""

from __future__ import annotations

from functools import lru_cache

from assistant.retrieval.base import Passage
from assistant.tokens import count_tokens, truncate_tokens


def pack_context(passages: list[Passage], *, budget: int) -> list[Passage]:
    """Passages in rank order until ``budget`` tokens are used.

    The first passage is always kept (cut to the budget if it alone is too long); a later
    passage that does not fit is skipped so that a smaller one after it may still fit.
    """
    packed: list[Passage] = []
    used = 0
    for passage in passages:
        tokens = _passage_tokens(passage.text)
        if not packed and tokens > budget:
            packed.append(passage.model_copy(update={"text": truncate_tokens(passage.text, budget)}))
            break
        if used + tokens <= budget:
            packed.append(passage)
            used += tokens
    return packed


@lru_cache(maxsize=8192)
def _passage_tokens(text: str) -> int:
    """Tokens of a passage's text, memoised: passages are chunks of the index, which come back
    request after request (bounded, so a changing index cannot grow it)."""
    return count_tokens(text)
