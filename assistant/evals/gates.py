"""Quality gates: minimum (or maximum) values for summary metrics, read from ``evals/thresholds.yaml``.

    overall:                       # over every case of the run
      retrieval.recall@5: {min: 0.88}
    datasets:                      # over one dataset's cases
      retrieval:
        retrieval.recall@5: {min: 0.88}
    splits:                        # over one split ("sealed") or one dataset's split ("heldout/sealed")
      heldout/sealed:
        answer.must_include: {min: 0.65}

A gate on a metric the run did not produce (no case states that expectation) fails, so a gate
can never pass by accident. The one exception: a gate on a ``judge.*`` metric is skipped, with a
note, when the run had no judge model (``ASSISTANT_JUDGE_MODEL`` unset), so one thresholds file
serves runs with and without a judge; with a judge, a missing judge metric fails like any other.
Thresholds only move up; lowering one needs a CHANGELOG line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from assistant.errors import ConfigurationError


class Bound(BaseModel):
    """A lower and/or upper bound."""

    model_config = ConfigDict(extra="forbid")

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("a gate needs min or max")
        return self


class Thresholds(BaseModel):
    """The parsed thresholds file."""

    model_config = ConfigDict(extra="forbid")

    overall: dict[str, Bound] = {}
    datasets: dict[str, dict[str, Bound]] = {}
    splits: dict[str, dict[str, Bound]] = {}
    #: gates of ``assistant eval suggestions``: ``<split>.<metric>`` (``sealed.hit@3``)
    suggestions: dict[str, Bound] = {}


class GateResult(BaseModel):
    """One gate's verdict."""

    scope: str
    metric: str
    value: float | None
    bound: Bound
    passed: bool
    skipped: str | None = None  # why the gate was not checked (it counts as passed)

    def __str__(self) -> str:
        want = " and ".join(
            part for part in (
                f">= {self.bound.min}" if self.bound.min is not None else "",
                f"<= {self.bound.max}" if self.bound.max is not None else "",
            ) if part
        )
        if self.skipped:
            return f"skip {self.scope} {self.metric} (want {want}): {self.skipped}"
        shown = "missing" if self.value is None else f"{self.value:.4g}"
        return f"{'ok  ' if self.passed else 'FAIL'} {self.scope} {self.metric} = {shown} (want {want})"


def load_thresholds(path: Path) -> Thresholds:
    """Read a thresholds file, raising :class:`ConfigurationError` with the file and reason."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return Thresholds.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigurationError(f"{path}: unreadable thresholds: {exc}") from exc


JUDGE_PREFIX = "judge."
NO_JUDGE = "no judge model in this run (set ASSISTANT_JUDGE_MODEL or --judge-model)"


def _check(scope: str, metrics: dict[str, Any] | None, gates: dict[str, Bound], *, judged: bool) -> list[GateResult]:
    results = []
    for name, bound in gates.items():
        if name.startswith(JUDGE_PREFIX) and not judged:
            results.append(GateResult(scope=scope, metric=name, value=None, bound=bound, passed=True, skipped=NO_JUDGE))
            continue
        raw = (metrics or {}).get(name)
        value = float(raw) if isinstance(raw, (int, float)) else None
        passed = value is not None and (bound.min is None or value >= bound.min) and (
            bound.max is None or value <= bound.max
        )
        results.append(GateResult(scope=scope, metric=name, value=value, bound=bound, passed=passed))
    return results


def check_metrics(scope: str, metrics: dict[str, Any], gates: dict[str, Bound]) -> list[GateResult]:
    """Every gate's verdict on a flat ``metrics`` mapping (a gate on a missing metric fails)."""
    return _check(scope, metrics, gates, judged=True)


def check_gates(summary: dict[str, Any], thresholds: Thresholds) -> list[GateResult]:
    """Every gate's verdict on ``summary``. Gates of datasets (or splits) absent from the run are
    left out; ``judge.*`` gates of a run without a judge are skipped (see the module docstring)."""
    judged = bool(summary.get("judge"))
    results = _check("overall", summary.get("overall"), thresholds.overall, judged=judged)
    for dataset, gates in thresholds.datasets.items():
        if dataset in summary.get("by_dataset", {}):
            results += _check(dataset, summary["by_dataset"][dataset], gates, judged=judged)
    for split, gates in thresholds.splits.items():
        if split in summary.get("by_split", {}):
            results += _check(split, summary["by_split"][split], gates, judged=judged)
    return results
