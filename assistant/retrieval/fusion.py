"""Reciprocal rank fusion: combine rankings by summing ``1 / (k + rank)``."""

from __future__ import annotations

from collections.abc import Sequence


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], *, k: int = 60) -> dict[str, float]:
    """Fused scores by id; ranks are 1-based, an id missing from a ranking adds nothing.

    >>> reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=1)
    {'a': 0.5, 'b': 0.8333333333333333, 'c': 0.3333333333333333}
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return scores
