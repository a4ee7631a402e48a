"""Eval datasets: JSONL (one case per line) or YAML (a list of cases) files in ``evals/datasets/``.

A case that does not validate is reported with its file, line and reason and left out; the other
cases still run. The dataset's name is its file name without the extension.

**Tuning and sealed.** Every case belongs to one split: ``tuning`` (what changes to the code,
rules and thresholds are developed against, and what learned weights are fitted on) or
``sealed`` (run only to report: nobody looks at a sealed case's failures to change the code).
A case may state its split; otherwise it is drawn from a hash of ``dataset/id``, so the split is
stable and a new case lands on either side by chance. ``assistant eval run`` reports both side
by side; their gap is how much of the tuning number is fitted to its own cases.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from assistant.request import HelpRequest, JourneyContext, Turn
from assistant.response import ReasonCode, Route

DATASET_SUFFIXES = (".jsonl", ".yaml", ".yml")
#: Share (percent) of the cases without an explicit split that are sealed.
SEALED_PERCENT = 30


class Split(StrEnum):
    """Which part of a dataset a case is in (see the module docstring)."""

    TUNING = "tuning"
    SEALED = "sealed"


def drawn_split(dataset: str, case_id: str) -> Split:
    """The split of a case that does not state one: a stable draw from its key."""
    digest = int(hashlib.sha256(f"{dataset}/{case_id}".encode()).hexdigest()[:8], 16)
    return Split.SEALED if digest % 100 < SEALED_PERCENT else Split.TUNING


class EvalCase(BaseModel):
    """One driver case and what a good response to it looks like.

    Every expectation is optional: a retrieval-only case gives ``relevant_doc_ids`` and no
    ``expected_route``; metrics skip the cases that do not state what they measure.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    message: str
    journey: JourneyContext | None = None
    history: list[Turn] = Field(default_factory=list)
    expected_route: Route | None = None
    expected_reasons: list[ReasonCode] = Field(default_factory=list)
    relevant_doc_ids: list[str] = Field(default_factory=list)
    must_include: list[str] = Field(default_factory=list, description="Facts the answer must state.")
    must_not_include: list[str] = Field(default_factory=list, description="Text the answer must not contain.")
    tags: list[str] = Field(default_factory=list)
    split: Split | None = Field(None, description="tuning or sealed; drawn from the key when not given.")
    dataset: str = Field("", description="Filled in by the loader: the file the case came from.")

    @field_validator("must_include", "must_not_include")
    @classmethod
    def _no_blank(cls, value: list[str]) -> list[str]:
        if any(not v.strip() for v in value):
            raise ValueError("blank string in the list")
        return value

    @property
    def part(self) -> Split:
        """The case's split: stated, or drawn from its key."""
        return self.split or drawn_split(self.dataset, self.id)

    @property
    def unanswerable(self) -> bool:
        """A question the help centre does not answer: expected ``low_confidence`` and nothing
        else (``pii_redacted`` aside), with no relevant document."""
        return (
            self.expected_route is Route.ESCALATE
            and [r for r in self.expected_reasons if r is not ReasonCode.PII_REDACTED] == [ReasonCode.LOW_CONFIDENCE]
            and not self.relevant_doc_ids
        )

    @property
    def key(self) -> str:
        """Unique across datasets: ``dataset/id``."""
        return f"{self.dataset}/{self.id}"

    def to_request(self) -> HelpRequest:
        """The request the assistant answers for this case."""
        return HelpRequest(message=self.message, journey=self.journey, history=self.history)


class DatasetProblem(BaseModel):
    """A case (or file) that could not be used, and why."""

    path: str
    line: int | None = None
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.reason}"


class LoadedDataset(BaseModel):
    """The usable cases of one or more dataset files, and the problems found."""

    cases: list[EvalCase]
    problems: list[DatasetProblem] = Field(default_factory=list)


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}"


def _raw_cases(path: Path) -> list[tuple[int | None, object]] | DatasetProblem:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return DatasetProblem(path=str(path), reason=f"unreadable: {exc}")
    if path.suffix == ".jsonl":
        rows: list[tuple[int | None, object]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("//"):
                continue
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                rows.append((number, DatasetProblem(path=str(path), line=number, reason=f"not JSON: {exc.msg}")))
        return rows
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return DatasetProblem(path=str(path), reason=f"bad YAML: {exc}")
    if not isinstance(data, list):
        return DatasetProblem(path=str(path), reason="expected a YAML list of cases")
    return [(None, item) for item in data]


def dataset_files(paths: list[Path]) -> list[Path]:
    """Dataset files under ``paths`` (files as given, folders searched for dataset files)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in DATASET_SUFFIXES))
        else:
            files.append(path)
    return files


def load_datasets(
    paths: list[Path], *, tags: list[str] | None = None, split: Split | None = None
) -> LoadedDataset:
    """Load the cases of the dataset files (or folders) in ``paths``.

    ``tags`` keeps only cases with at least one of the tags, ``split`` only the cases of that
    split. Duplicate ids within a dataset are problems (the first case wins).
    """
    cases: list[EvalCase] = []
    problems: list[DatasetProblem] = []
    for path in dataset_files(paths):
        if not path.exists():
            problems.append(DatasetProblem(path=str(path), reason="no such dataset file"))
            continue
        raw = _raw_cases(path)
        if isinstance(raw, DatasetProblem):
            problems.append(raw)
            continue
        seen: set[str] = set()
        for index, (line, item) in enumerate(raw, start=1):
            if isinstance(item, DatasetProblem):
                problems.append(item)
                continue
            where = line if line is not None else index
            if not isinstance(item, dict):
                problems.append(DatasetProblem(path=str(path), line=where, reason="a case must be an object"))
                continue
            try:
                case = EvalCase.model_validate({**item, "dataset": path.stem})
            except ValidationError as exc:
                problems.append(DatasetProblem(path=str(path), line=where, reason=_reason(exc)))
                continue
            if case.id in seen:
                problems.append(DatasetProblem(path=str(path), line=where, reason=f"duplicate id {case.id!r}"))
                continue
            seen.add(case.id)
            if tags and not set(tags) & set(case.tags):
                continue
            if split is not None and case.part is not split:
                continue
            cases.append(case)
    return LoadedDataset(cases=cases, problems=problems)
