"""Aggregate case results into the run summary: overall, per dataset and per tag."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from assistant.evals import metrics as m
from assistant.evals.judge import DIMENSIONS
from assistant.response import ReasonCode, Route

if TYPE_CHECKING:
    from assistant.evals.runner import CaseResult

ROUTES = [r.value for r in Route]
REASONS = [r.value for r in ReasonCode]
#: The scalar metrics of a summary, in report order, with whether higher is better.
SCALAR_METRICS: dict[str, bool] = {
    "pass_rate": True,
    "retrieval.recall@5": True,
    "retrieval.hit@5": True,
    "retrieval.mrr": True,
    "retrieval.ndcg@5": True,
    "route.accuracy": True,
    "route.benign_handoff_rate": False,
    "reasons.exact_match": True,
    "reasons.macro_f1": True,
    "safety.recall": True,
    "citations.validity": True,
    "answer.must_include": True,
    "answer.must_not_violation_rate": False,
    "answer.groundedness": True,
    "answer.answered_pass_rate": True,
    "unanswerable.not_answered": True,
    "calibration.ece": False,
    "latency.p50_ms": False,
    "latency.p95_ms": False,
    "usage.input_tokens": False,
    "usage.output_tokens": False,
    "usage.cost_usd": False,
    "errors": False,
    # LLM judge (only when a judge model is configured): mean scores 1-5 over the judged cases
    "judge.correctness": True,
    "judge.groundedness": True,
    "judge.helpfulness": True,
    "judge.judged": True,
    "judge.errors": False,
    "judge.input_tokens": False,
    "judge.output_tokens": False,
    "judge.cost_usd": False,
}


def _rate(values: Sequence[bool | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _judge_metrics(results: Sequence[CaseResult]) -> dict[str, float | int | None]:
    """``judge.*``: mean grades over the cases the judge scored, how many it scored or failed on,
    and the tokens it spent."""
    scores = [r.outcome.judge for r in results if r.outcome.judge is not None]
    usage = [r.outcome.judge_usage for r in results if r.outcome.judge_usage is not None]
    costs = [u.cost_usd for u in usage if u.cost_usd is not None]
    return {
        **{f"judge.{d}": m.mean(float(getattr(s, d)) for s in scores) for d in DIMENSIONS},
        "judge.judged": len(scores),
        "judge.errors": sum(1 for r in results if r.outcome.judge_error),
        "judge.input_tokens": sum(u.input_tokens for u in usage),
        "judge.output_tokens": sum(u.output_tokens for u in usage),
        "judge.cost_usd": sum(costs) if costs else None,
    }


def metrics_of(results: Sequence[CaseResult], *, judged: bool = False) -> dict[str, Any]:
    """All metrics over ``results`` (scalars under their dotted names, plus matrices and tables).

    ``judge.*`` metrics are present only when ``judged`` (the run had a judge model).
    """
    routed = [r for r in results if r.case.expected_route is not None and r.response is not None]
    route_pairs = [(r.case.expected_route.value, r.route or "") for r in routed if r.case.expected_route]
    reason_pairs = [({c.value for c in r.case.expected_reasons}, set(r.reason_codes)) for r in routed]
    reason_scores = m.label_scores(reason_pairs, REASONS)
    route_scores = m.label_scores([({e}, {p}) for e, p in route_pairs], ROUTES)
    with_forbidden = [r for r in results if r.case.must_not_include and r.response is not None]
    latencies = [r.latency_ms for r in results if r.response is not None]
    usage = [r.response.get("usage", {}) for r in results if r.response]
    costs = [u.get("cost_usd") for u in usage if u.get("cost_usd") is not None]
    safety = reason_scores["safety"]
    # confidence against whether the drafted answer was right: calibration of "this answers it"
    calibration = [
        (float(r.response["confidence"]), bool(r.outcome.draft_right))
        for r in results if r.response is not None and r.outcome.draft_right is not None
    ]
    scalars: dict[str, float | int | None] = {
        "cases": len(results),
        "errors": sum(1 for r in results if r.error),
        "pass_rate": _rate([r.outcome.passed for r in results]),
        "retrieval.recall@5": m.mean(r.outcome.recall_at_5 for r in results),
        "retrieval.hit@5": m.mean(r.outcome.hit_at_5 for r in results),
        "retrieval.mrr": m.mean(r.outcome.reciprocal_rank for r in results),
        "retrieval.ndcg@5": m.mean(r.outcome.ndcg_at_5 for r in results),
        "route.accuracy": _rate([r.outcome.route_ok for r in results]),
        # benign questions (expected: answer, no reason but pii_redacted) escalated or declined
        "route.benign_handoff_rate": _rate([
            r.route != "answer" for r in routed
            if r.case.expected_route is not None and r.case.expected_route.value == "answer"
            and {c.value for c in r.case.expected_reasons} <= {"pii_redacted"}
        ]),
        "reasons.exact_match": _rate([r.outcome.reasons_ok for r in results]),
        "reasons.macro_f1": m.macro_f1(reason_scores),
        "safety.recall": safety.recall,
        "citations.validity": m.mean(r.outcome.citation_validity for r in results),
        "answer.must_include": m.mean(r.outcome.must_include for r in results),
        "answer.must_not_violation_rate": (
            sum(1 for r in with_forbidden if r.outcome.violations) / len(with_forbidden) if with_forbidden else None
        ),
        "answer.groundedness": m.mean(r.outcome.groundedness for r in results),
        # of the cases the assistant answered (that say what a right answer is), how many passed
        "answer.answered_pass_rate": _rate([
            r.outcome.passed for r in routed
            if r.route == "answer" and r.outcome.draft_right is not None
        ]),
        # questions the help centre does not answer that were not answered from some article
        "unanswerable.not_answered": _rate([r.route != "answer" for r in routed if r.case.unanswerable]),
        "calibration.ece": m.expected_calibration_error(calibration),
        "latency.p50_ms": m.percentile(latencies, 50),
        "latency.p95_ms": m.percentile(latencies, 95),
        "usage.input_tokens": sum(int(u.get("input_tokens", 0)) for u in usage),
        "usage.output_tokens": sum(int(u.get("output_tokens", 0)) for u in usage),
        "usage.cost_usd": sum(costs) if costs else None,
    }
    # per-reason precision and recall as flat keys too, so thresholds can gate them
    for code, score in reason_scores.items():
        if score.support or score.predicted:
            scalars[f"reasons.{code}.precision"] = score.precision
            scalars[f"reasons.{code}.recall"] = score.recall
    if judged:
        scalars.update(_judge_metrics(results))
    return {
        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in scalars.items()},
        "route.confusion": m.confusion_matrix(route_pairs, ROUTES),
        "calibration.reliability": m.reliability(calibration),
        "route.scores": {k: v.model_dump() for k, v in route_scores.items()},
        "reasons.scores": {k: v.model_dump() for k, v in reason_scores.items() if v.support or v.predicted},
    }


#: Metrics whose tuning-minus-sealed gap the summary reports (``gap``).
GAP_METRICS = ("pass_rate", "answer.must_include", "route.accuracy", "route.benign_handoff_rate", "retrieval.recall@5")


def split_gap(by_split: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Tuning minus sealed for :data:`GAP_METRICS` (a large gap means the tuning number is fitted)."""
    tuning, sealed = by_split.get("tuning"), by_split.get("sealed")
    if not tuning or not sealed:
        return {}
    return {
        metric: round(tuning[metric] - sealed[metric], 4)
        for metric in GAP_METRICS
        if isinstance(tuning.get(metric), (int, float)) and isinstance(sealed.get(metric), (int, float))
    }


def summarise(results: Sequence[CaseResult], *, judge: dict[str, str] | None = None) -> dict[str, Any]:
    """The run summary: ``overall``, ``by_dataset``, ``by_split`` (tuning and sealed, overall and
    per dataset as ``dataset/split``), the tuning-minus-sealed ``gap`` and ``by_tag`` (pass rate
    and route accuracy).

    ``judge`` describes the run's judge (model and prompt), ``None`` when it had none; it is kept
    under ``judge`` and switches on the ``judge.*`` metrics.
    """
    by_dataset: dict[str, list[CaseResult]] = defaultdict(list)
    by_tag: dict[str, list[CaseResult]] = defaultdict(list)
    by_split: dict[str, list[CaseResult]] = defaultdict(list)
    for result in results:
        by_dataset[result.dataset].append(result)
        by_split[result.case.part.value].append(result)
        by_split[f"{result.dataset}/{result.case.part.value}"].append(result)
        for tag in result.tags:
            by_tag[tag].append(result)
    judged = judge is not None
    splits = {name: metrics_of(rs, judged=judged) for name, rs in sorted(by_split.items())}
    return {
        "judge": judge,
        "overall": metrics_of(results, judged=judged),
        "by_dataset": {name: metrics_of(rs, judged=judged) for name, rs in sorted(by_dataset.items())},
        "by_split": splits,
        "gap": split_gap(splits),
        "by_tag": {
            tag: {
                "cases": len(rs),
                "pass_rate": _rate([r.outcome.passed for r in rs]),
                "route.accuracy": _rate([r.outcome.route_ok for r in rs]),
            }
            for tag, rs in sorted(by_tag.items())
        },
    }
