"""Metric functions against values worked out by hand."""

import math

import pytest

from assistant.evals import metrics as m


def test_recall_hit_and_reciprocal_rank():
    ranked = ["a", "b", "c", "d", "e", "f"]
    assert m.recall_at_k(ranked, ["b", "f"], 5) == 0.5  # b is in the top 5, f is 6th
    assert m.recall_at_k(ranked, ["b", "f"], 6) == 1.0
    assert m.hit_at_k(ranked, ["f"], 5) == 0.0
    assert m.hit_at_k(ranked, ["e"], 5) == 1.0
    assert m.reciprocal_rank(ranked, ["c", "e"]) == pytest.approx(1 / 3)
    assert m.reciprocal_rank(ranked, ["z"]) == 0.0
    with pytest.raises(ValueError):
        m.recall_at_k(ranked, [], 5)


def test_ndcg_with_binary_relevance():
    # relevant at ranks 1 and 3 of two relevant docs: DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3)
    expected = 1.5 / (1 + 1 / math.log2(3))
    assert m.ndcg_at_k(["a", "x", "b"], ["a", "b"], 5) == pytest.approx(expected)
    assert m.ndcg_at_k(["a", "b"], ["a", "b"], 5) == pytest.approx(1.0)
    assert m.ndcg_at_k(["x", "y"], ["a"], 5) == 0.0


def test_label_scores_and_macro_f1():
    pairs = [
        ({"safety"}, {"safety"}),  # tp safety
        ({"safety"}, set()),  # fn safety
        (set(), {"safety", "pii_redacted"}),  # fp safety, fp pii
        ({"pii_redacted"}, {"pii_redacted"}),  # tp pii
    ]
    scores = m.label_scores(pairs, ["safety", "pii_redacted", "out_of_scope"])
    assert scores["safety"].precision == pytest.approx(0.5)
    assert scores["safety"].recall == pytest.approx(0.5)
    assert scores["safety"].f1 == pytest.approx(0.5)
    assert scores["pii_redacted"].precision == pytest.approx(0.5)
    assert scores["pii_redacted"].recall == pytest.approx(1.0)
    assert scores["pii_redacted"].f1 == pytest.approx(2 / 3)
    assert scores["out_of_scope"].precision is None and scores["out_of_scope"].support == 0
    # macro over labels with support: (0.5 + 2/3) / 2
    assert m.macro_f1(scores) == pytest.approx((0.5 + 2 / 3) / 2)


def test_confusion_matrix_counts_expected_by_predicted():
    matrix = m.confusion_matrix([("answer", "answer"), ("answer", "escalate"), ("decline", "answer")], ["answer", "escalate", "decline"])
    assert matrix["answer"] == {"answer": 1, "escalate": 1, "decline": 0}
    assert matrix["decline"]["answer"] == 1
    assert sum(sum(row.values()) for row in matrix.values()) == 3


def test_must_include_and_must_not_include():
    answer = "Fast Pay costs  $1.99 per cash-out and arrives within 30 MINUTES."
    share, missing = m.must_include_coverage(answer, ["$1.99", "30 minutes", "$0.99"])
    assert share == pytest.approx(2 / 3) and missing == ["$0.99"]
    assert m.must_not_violations(answer, ["$0.99", "fast pay costs $1.99"]) == ["fast pay costs $1.99"]
    assert m.contains_fact("Don\u2019t leave it", "don't leave it")


def test_citation_validity():
    share, bad = m.citation_validity(["c1", "c2", "c3", "c4"], known={"c1", "c2", "c3"}, retrieved={"c1", "c3"})
    assert share == pytest.approx(0.5) and bad == ["c2", "c4"]


def test_grounded_share():
    evidence = {"tip", "appear", "hour", "deliveri"}
    sentences = [["tip", "appear", "hour"], ["tip", "lottery", "win", "car"], ["ok"]]
    share, bad = m.grounded_share(sentences, evidence)
    # third sentence has one term: not judged; first grounded (3/3), second not (1/4 < 0.7)
    assert share == pytest.approx(0.5) and bad == [1]
    assert m.grounded_share([["ok"]], evidence) == (None, [])


def test_percentile_and_mean():
    assert m.percentile([10, 20, 30, 40], 50) == pytest.approx(25)
    assert m.percentile([10, 20, 30, 40], 95) == pytest.approx(38.5)
    assert m.percentile([], 50) is None
    assert m.mean([1.0, None, 3.0]) == pytest.approx(2.0)
    assert m.mean([None]) is None


def test_right_answer_needs_every_fact_and_nothing_forbidden():
    assert m.right_answer("Fee: $0.99 per cash-out.", ["$0.99"], ["CA$1.29"])
    assert not m.right_answer("Fee: $0.99, CA$1.29 in Ontario.", ["$0.99"], ["CA$1.29"])
    assert not m.right_answer("You need a debit card.", ["$0.99"])


def test_reliability_and_expected_calibration_error():
    # bin 0.8-0.9: two cases at 0.8, one right (accuracy 0.5); bin 0.2-0.3: two at 0.2, none right
    pairs = [(0.8, True), (0.8, False), (0.2, False), (0.2, False)]
    table = m.reliability(pairs, bins=10)
    assert [(r["low"], r["cases"], r["confidence"], r["accuracy"]) for r in table] == [
        (0.2, 2, 0.2, 0.0), (0.8, 2, 0.8, 0.5)
    ]
    assert m.expected_calibration_error(pairs, bins=10) == pytest.approx((2 * 0.2 + 2 * 0.3) / 4)
    assert m.expected_calibration_error([(1.0, True), (0.0, False)]) == 0.0
    assert m.expected_calibration_error([]) is None
