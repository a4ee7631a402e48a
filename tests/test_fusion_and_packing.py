import pytest

from assistant.retrieval.base import Passage
from assistant.retrieval.fusion import reciprocal_rank_fusion
from assistant.retrieval.packing import pack_context
from assistant.tokens import count_tokens


def test_rrf_matches_hand_computed_scores():
    scores = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60)
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["b"] == pytest.approx(1 / 62)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert sorted(scores, key=lambda x: -scores[x]) == ["a", "c", "b"]


def _passage(i: int, words: int) -> Passage:
    return Passage(chunk_id=f"d:{i}", doc_id="d", title="T", section="S", text="word " * words, score=1.0 / (i + 1))


def test_packing_respects_budget_and_keeps_order():
    passages = [_passage(0, 50), _passage(1, 500), _passage(2, 40)]
    packed = pack_context(passages, budget=120)
    assert [p.chunk_id for p in packed] == ["d:0", "d:2"]
    assert sum(count_tokens(p.text) for p in packed) <= 120


def test_packing_truncates_an_oversized_first_passage():
    packed = pack_context([_passage(0, 1000)], budget=100)
    assert len(packed) == 1 and count_tokens(packed[0].text) <= 100
