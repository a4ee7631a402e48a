"""Precision and recall of PII redaction per kind, on a labelled set (``evals/redaction/pii.jsonl``).

Each line: ``{"id", "text", "pii": [{"kind", "value"}], "tags"}``; ``value`` is a substring of
``text``. A found span counts for a kind when it overlaps a labelled value of that kind.
``protected`` is the share of labelled values whose characters are at least 80 % covered by
some redaction, whatever kind it was given: what matters for privacy.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from assistant.errors import InputError
from assistant.guardrails.pii import PiiKind, find_pii

COVERED = 0.8


class PiiLabel(BaseModel):
    """One labelled piece of PII."""

    kind: PiiKind
    value: str = Field(min_length=1)


class PiiCase(BaseModel):
    """A labelled message."""

    id: str
    text: str
    pii: list[PiiLabel] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class KindScore(BaseModel):
    """Scores of one kind."""

    labelled: int = 0
    found: int = 0
    precision: float | None = None
    recall: float | None = None


class RedactionReport(BaseModel):
    """Per-kind scores, overall protection and the misses."""

    cases: int
    kinds: dict[str, KindScore]
    protected: float
    false_positive_cases: int
    misses: list[str] = Field(default_factory=list, description="case id: kind 'value' not redacted")
    false_positives: list[str] = Field(default_factory=list, description="case id: kind 'text' redacted wrongly")


def load_pii_cases(path: Path) -> list[PiiCase]:
    """Read the labelled set; a bad line raises :class:`InputError` with file and line."""
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            case = PiiCase.model_validate(json.loads(line))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise InputError(f"{path}:{number}: {exc}") from exc
        for label in case.pii:
            if label.value not in case.text:
                raise InputError(f"{path}:{number}: value {label.value!r} is not in the text")
        cases.append(case)
    return cases


def _label_spans(case: PiiCase) -> list[tuple[PiiKind, int, int]]:
    spans = []
    used: set[int] = set()
    for label in case.pii:
        start = case.text.find(label.value)
        while start in used:
            start = case.text.find(label.value, start + 1)
        used.add(start)
        spans.append((label.kind, start, start + len(label.value)))
    return spans


def score_redaction(cases: list[PiiCase]) -> RedactionReport:
    """Score :func:`assistant.guardrails.pii.find_pii` on ``cases``."""
    labelled = dict.fromkeys(PiiKind, 0)
    recalled = dict.fromkeys(PiiKind, 0)
    found = dict.fromkeys(PiiKind, 0)
    correct = dict.fromkeys(PiiKind, 0)
    protected = total = 0
    fp_cases = 0
    misses: list[str] = []
    false_positives: list[str] = []
    for case in cases:
        gold = _label_spans(case)
        predicted = find_pii(case.text)
        for kind, start, end in gold:
            total += 1
            labelled[kind] += 1
            if any(p.kind is kind and p.start < end and start < p.end for p in predicted):
                recalled[kind] += 1
            covered = sum(1 for i in range(start, end) if any(p.start <= i < p.end for p in predicted))
            if covered / (end - start) >= COVERED:
                protected += 1
            else:
                misses.append(f"{case.id}: {kind.value} {case.text[start:end]!r} not redacted")
        wrong = False
        for p in predicted:
            found[p.kind] += 1
            if any(kind is p.kind and p.start < end and start < p.end for kind, start, end in gold):
                correct[p.kind] += 1
            elif not any(p.start < end and start < p.end for _, start, end in gold):
                wrong = True
                false_positives.append(f"{case.id}: {p.kind.value} {case.text[p.start:p.end]!r}")
        fp_cases += wrong
    kinds = {
        k.value: KindScore(
            labelled=labelled[k],
            found=found[k],
            precision=correct[k] / found[k] if found[k] else None,
            recall=recalled[k] / labelled[k] if labelled[k] else None,
        )
        for k in PiiKind
    }
    return RedactionReport(
        cases=len(cases), kinds=kinds, protected=protected / total if total else 1.0,
        false_positive_cases=fp_cases, misses=misses, false_positives=false_positives,
    )
