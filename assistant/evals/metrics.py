"""Metric functions. Each is pure and small, so its unit test can check a hand-computed value.

Retrieval metrics work on documents: the ranked passages collapsed to distinct document ids.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from pydantic import BaseModel

# -- retrieval -----------------------------------------------------------------------------


def distinct(ranked: Iterable[str]) -> list[str]:
    """``ranked`` with repeats removed, first occurrence kept."""
    return list(dict.fromkeys(ranked))


def recall_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Share of the relevant ids found in the first ``k`` of ``ranked``."""
    wanted = set(relevant)
    if not wanted:
        raise ValueError("recall needs at least one relevant id")
    return len(wanted & set(ranked[:k])) / len(wanted)


def hit_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """1.0 when any relevant id is in the first ``k``."""
    return 1.0 if set(relevant) & set(ranked[:k]) else 0.0


def reciprocal_rank(ranked: Sequence[str], relevant: Iterable[str]) -> float:
    """1 / rank of the first relevant id, 0.0 when none is ranked."""
    wanted = set(relevant)
    for rank, item in enumerate(ranked, start=1):
        if item in wanted:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Binary-relevance nDCG@k: DCG of ``ranked`` over the DCG of a perfect ranking."""
    wanted = set(relevant)
    dcg = sum(1.0 / math.log2(i + 2) for i, item in enumerate(ranked[:k]) if item in wanted)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(wanted), k)))
    return dcg / ideal if ideal else 0.0


# -- classification (routes and reasons) ---------------------------------------------------


class LabelScore(BaseModel):
    """Precision, recall and F1 of one label; ``None`` where the denominator is zero."""

    precision: float | None
    recall: float | None
    f1: float | None
    support: int
    predicted: int


def label_scores(pairs: Sequence[tuple[set[str], set[str]]], labels: Iterable[str]) -> dict[str, LabelScore]:
    """Per-label scores over (expected labels, predicted labels) pairs (multi-label aware)."""
    scores: dict[str, LabelScore] = {}
    for label in labels:
        tp = sum(1 for exp, pred in pairs if label in exp and label in pred)
        fp = sum(1 for exp, pred in pairs if label not in exp and label in pred)
        fn = sum(1 for exp, pred in pairs if label in exp and label not in pred)
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        if precision is None or recall is None:
            f1 = None
        else:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[label] = LabelScore(precision=precision, recall=recall, f1=f1, support=tp + fn, predicted=tp + fp)
    return scores


def confusion_matrix(pairs: Sequence[tuple[str, str]], labels: Sequence[str]) -> dict[str, dict[str, int]]:
    """``matrix[expected][predicted]`` counts over (expected, predicted) pairs."""
    matrix = {e: dict.fromkeys(labels, 0) for e in labels}
    for expected, predicted in pairs:
        matrix.setdefault(expected, dict.fromkeys(labels, 0))
        matrix[expected][predicted] = matrix[expected].get(predicted, 0) + 1
    return matrix


def macro_f1(scores: dict[str, LabelScore]) -> float | None:
    """Mean F1 over labels that occur in the expectations (support > 0); unpredicted labels count 0."""
    values = [s.f1 if s.f1 is not None else 0.0 for s in scores.values() if s.support]
    return sum(values) / len(values) if values else None


# -- answers ---------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    text = text.lower().replace("\u2019", "'").replace("\u2013", "-").replace("\u2014", "-")
    return re.sub(r"\s+", " ", text)


def contains_fact(answer: str, fact: str) -> bool:
    """True when ``fact`` occurs in ``answer`` (case, whitespace and quote style ignored)."""
    return _normalise(fact).strip() in _normalise(answer)


def must_include_coverage(answer: str, facts: Sequence[str]) -> tuple[float, list[str]]:
    """(share of ``facts`` stated in ``answer``, the missing facts)."""
    if not facts:
        raise ValueError("no facts to check")
    missing = [f for f in facts if not contains_fact(answer, f)]
    return 1 - len(missing) / len(facts), missing


def must_not_violations(answer: str, forbidden: Sequence[str]) -> list[str]:
    """The forbidden strings that occur in ``answer``."""
    return [f for f in forbidden if contains_fact(answer, f)]


def right_answer(answer: str, facts: Sequence[str], forbidden: Sequence[str] = ()) -> bool:
    """True when ``answer`` states every fact and none of the forbidden strings."""
    return all(contains_fact(answer, f) for f in facts) and not must_not_violations(answer, forbidden)


def citation_validity(cited: Sequence[str], known: set[str], retrieved: set[str]) -> tuple[float, list[str]]:
    """(share of citations that exist in the index and were retrieved for this request, the bad ones)."""
    if not cited:
        raise ValueError("no citations to check")
    bad = [c for c in cited if c not in known or c not in retrieved]
    return 1 - len(bad) / len(cited), bad


def grounded_share(
    sentences: Sequence[list[str]], evidence: set[str], *, min_overlap: float = 0.7, min_terms: int = 2
) -> tuple[float | None, list[int]]:
    """Share of answer sentences whose content terms are mostly found in the evidence.

    ``sentences`` are the answer's sentences as content terms (e.g. stemmed, stop words out);
    a sentence with fewer than ``min_terms`` terms is not judged. Returns (share or ``None`` when no
    sentence was judged, indexes of the ungrounded sentences).
    """
    judged = 0
    ungrounded: list[int] = []
    for index, terms in enumerate(sentences):
        unique = set(terms)
        if len(unique) < min_terms:
            continue
        judged += 1
        if len(unique & evidence) / len(unique) < min_overlap:
            ungrounded.append(index)
    if not judged:
        return None, []
    return 1 - len(ungrounded) / judged, ungrounded


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` percentile (0-100) by linear interpolation; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not ``None``; ``None`` when there are none."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def reliability(pairs: Sequence[tuple[float, bool]], bins: int = 10) -> list[dict[str, float | int]]:
    """Per equal-width confidence bin: its range, cases, mean confidence and share right."""
    out: list[dict[str, float | int]] = []
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [(c, ok) for c, ok in pairs if low <= c < high or (b == bins - 1 and c == 1.0)]
        if inside:
            out.append({
                "low": low, "high": high, "cases": len(inside),
                "confidence": round(sum(c for c, _ in inside) / len(inside), 4),
                "accuracy": round(sum(ok for _, ok in inside) / len(inside), 4),
            })
    return out


def expected_calibration_error(pairs: Sequence[tuple[float, bool]], bins: int = 10) -> float | None:
    """Mean |confidence - share right| over equal-width bins, weighted by the bins' sizes."""
    if not pairs:
        return None
    table = reliability(pairs, bins)
    return round(sum(abs(float(r["confidence"]) - float(r["accuracy"])) * int(r["cases"]) for r in table) / len(pairs), 4)
