"""Help-card evaluation: journeys with the cards they call for (``evals/suggestions/*.jsonl``).

Each line: ``{"id", "journey", "calm", "friction", "expected_doc_ids", "split", "tags"}``. A
friction journey is a hit when one of its first three cards cites an expected document
(``hit@3``; ``hit@1`` for the first card alone); a calm journey passes when it gets no card (``calm_no_card``). Every metric is
reported per split: ``tuning`` (what the rules were developed against) and ``sealed`` (run only
to report). The gates are the ``suggestions:`` block of ``evals/thresholds.yaml``, named
``<split>.<metric>``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from assistant.errors import InputError
from assistant.evals.dataset import Split
from assistant.request import JourneyContext
from assistant.suggestions.cards import HelpCard

HIT_AT = 3


class SuggestionCase(BaseModel):
    """One journey and the help it calls for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    journey: JourneyContext
    calm: bool
    friction: str = Field(description="The kind of friction the journey shows ('none' when calm).")
    expected_doc_ids: list[str] = Field(default_factory=list)
    split: Split
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> SuggestionCase:
        if self.calm != (not self.expected_doc_ids):
            raise ValueError("a calm journey expects no document, a friction journey at least one")
        return self


class CaseResult(BaseModel):
    """What the assistant suggested for one case."""

    case: SuggestionCase
    cards: list[HelpCard]

    def hit(self, at: int) -> bool:
        """Whether one of the first ``at`` cards cites an expected document."""
        cited = {c.doc_id for card in self.cards[:at] for c in card.citations}
        return bool(cited & set(self.case.expected_doc_ids))

    @property
    def passed(self) -> bool:
        """No card for a calm journey; an expected document among the first cards' citations otherwise."""
        if self.case.calm:
            return not self.cards
        return self.hit(HIT_AT)


class SuggestionReport(BaseModel):
    """Metrics per split, and per friction kind."""

    metrics: dict[str, float | int]
    by_friction: dict[str, dict[str, float | int]]
    failures: list[str]


def load_suggestion_cases(path: Path) -> list[SuggestionCase]:
    """Read a JSONL file of cases, or every ``*.jsonl`` file of a folder, raising
    :class:`InputError` with the file, line and reason of a bad case or a repeated id."""
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    cases: list[SuggestionCase] = []
    seen: set[str] = set()
    for file in files:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {file}: {exc}") from exc
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                case = SuggestionCase.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as exc:
                raise InputError(f"{file}:{number}: {exc}") from exc
            if case.id in seen:
                raise InputError(f"{file}:{number}: case id {case.id!r} appears twice")
            seen.add(case.id)
            cases.append(case)
    if not cases:
        raise InputError(f"{path}: no cases")
    return cases


def score_suggestions(results: Iterable[CaseResult]) -> SuggestionReport:
    """hit@3 of the friction journeys and the calm journeys without a card, per split and overall."""
    groups: dict[str, list[CaseResult]] = defaultdict(list)
    friction: dict[str, list[CaseResult]] = defaultdict(list)
    failures = []
    for result in results:
        for scope in ("all", result.case.split.value):
            groups[scope].append(result)
        friction[result.case.friction].append(result)
        if not result.passed:
            shown = "; ".join(f"{c.kind}: {c.citations[0].doc_id if c.citations else '-'}" for c in result.cards) or "no card"
            want = "no card" if result.case.calm else ", ".join(result.case.expected_doc_ids)
            failures.append(f"{result.case.id} [{result.case.split.value}] {result.case.friction}: got {shown}; want {want}")
    metrics: dict[str, float | int] = {}
    for scope, rows in groups.items():
        busy = [r for r in rows if not r.case.calm]
        calm = [r for r in rows if r.case.calm]
        metrics[f"{scope}.friction_journeys"] = len(busy)
        metrics[f"{scope}.calm_journeys"] = len(calm)
        if busy:
            metrics[f"{scope}.hit@{HIT_AT}"] = round(sum(r.passed for r in busy) / len(busy), 4)
            metrics[f"{scope}.hit@1"] = round(sum(r.hit(1) for r in busy) / len(busy), 4)
            metrics[f"{scope}.carded"] = round(sum(bool(r.cards) for r in busy) / len(busy), 4)
        if calm:
            metrics[f"{scope}.calm_no_card"] = round(sum(r.passed for r in calm) / len(calm), 4)
    by_friction = {
        kind: {"cases": len(rows), "passed": round(sum(r.passed for r in rows) / len(rows), 4)}
        for kind, rows in sorted(friction.items())
    }
    return SuggestionReport(metrics=metrics, by_friction=by_friction, failures=failures)
