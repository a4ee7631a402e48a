"""Reading policy documents: Markdown files with YAML front matter.

A malformed file becomes a :class:`DocumentProblem` naming the file and the reason; the rest of
the corpus still loads.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path

import frontmatter
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from assistant.request import Stage

_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,127}$")
ALL_MARKETS = "all"


class PolicyDocument(BaseModel):
    """One help-centre document with its front matter."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    version: int = Field(ge=1)
    effective_date: date
    journey_stages: list[Stage] = Field(default_factory=list)
    markets: list[str] = Field(default_factory=lambda: [ALL_MARKETS])
    tags: list[str] = Field(default_factory=list)
    supersedes: list[str] = Field(default_factory=list)
    variant_of: str | None = None
    #: Questions the article answers, in drivers' words; searched, never shown or quoted
    #: (see :mod:`assistant.retrieval.questions`).
    questions: list[str] = Field(default_factory=list)
    #: The section that answers a question, where the front matter names it (``- {text: ...,
    #: section: ...}``): the heading as written, or the title for the introduction.
    question_sections: dict[str, str] = Field(default_factory=dict)
    body: str
    path: str
    sha256: str

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _ID_PATTERN.match(value):
            raise ValueError("must be lowercase letters, digits, '.', '_' or '-' (2-128 chars)")
        return value

    @field_validator("markets", mode="before")
    @classmethod
    def _markets(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and value.strip().lower() == ALL_MARKETS):
            return [ALL_MARKETS]
        if isinstance(value, str):
            return [value]
        return value

    @field_validator("markets")
    @classmethod
    def _lower_markets(cls, value: list[str]) -> list[str]:
        markets = [m.strip().lower() for m in value if m and m.strip()]
        return markets or [ALL_MARKETS]

    @field_validator("supersedes", "tags", mode="before")
    @classmethod
    def _listify(cls, value: object) -> object:
        if value is None:
            return []
        if isinstance(value, str | int | float):
            return [str(value)]
        if isinstance(value, list):  # YAML reads a tag such as 911 as a number
            return [str(v) if isinstance(v, int | float) else v for v in value]
        return value

    @model_validator(mode="before")
    @classmethod
    def _sections_of_questions(cls, data: object) -> object:
        """A question written ``{text, section}`` is its text, and its section is remembered."""
        if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
            return data
        texts: list[object] = []
        sections: dict[str, str] = {}
        for item in data["questions"]:
            if isinstance(item, dict):
                if not isinstance(item.get("text"), str):
                    raise ValueError(f"a question must be a string or have a text: {item!r}")
                text = " ".join(item["text"].split())
                if text and isinstance(item.get("section"), str) and item["section"].strip():
                    sections.setdefault(text, " ".join(item["section"].split()))
                texts.append(text)
            else:
                texts.append(item)
        return {**data, "questions": texts, "question_sections": sections}

    @field_validator("questions", mode="before")
    @classmethod
    def _question_list(cls, value: object) -> object:
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            texts = [" ".join(str(v).split()) for v in value if v is not None]
            return list(dict.fromkeys(t for t in texts if t))
        return value

    @property
    def is_general(self) -> bool:
        """True when the document applies in every market."""
        return ALL_MARKETS in self.markets


class DocumentProblem(BaseModel):
    """A file that could not be used, and why."""

    model_config = ConfigDict(frozen=True)

    path: str
    reason: str


class LoadedCorpus(BaseModel):
    """The usable documents of a corpus folder, its market names and the problems found."""

    model_config = ConfigDict(frozen=True)

    documents: list[PolicyDocument]
    problems: list[DocumentProblem]
    market_names: dict[str, list[str]] = Field(default_factory=dict)
    #: Questions drivers ask that the help centre does not answer (``gaps.yaml``).
    gap_questions: list[str] = Field(default_factory=list)
    #: Situations of drivers in danger, each with the section whose steps they need first
    #: (``safety-situations.yaml``).
    situations: list[Situation] = Field(default_factory=list)


class Situation(BaseModel):
    """A driver's account of a safety situation and the article section whose steps it needs first."""

    model_config = ConfigDict(frozen=True)

    text: str
    doc_id: str
    section: str = Field(description="The section's heading as written in the article (a `##` or `###` heading).")


MARKETS_FILE = "markets.yaml"
GAPS_FILE = "gaps.yaml"
SITUATIONS_FILE = "safety-situations.yaml"


def load_market_names(folder: Path) -> tuple[dict[str, list[str]], DocumentProblem | None]:
    """``markets.yaml`` of a corpus: market code -> the names documents use for it (its name,
    aliases, and the names of groups it belongs to, such as "US markets")."""
    path = folder / MARKETS_FILE
    if not path.exists():
        return {}, None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError("expected a mapping of market code -> {name, aliases}")
        names: dict[str, list[str]] = {}
        for code, info in data.items():
            info = info if isinstance(info, dict) else {"name": info}
            values = [info.get("name"), *(info.get("aliases") or []), *(info.get("groups") or [])]
            names[str(code).strip().lower()] = list(dict.fromkeys(str(v) for v in values if v))
        return names, None
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, AttributeError) as exc:
        return {}, DocumentProblem(path=str(path), reason=f"unreadable market list: {exc}")


def load_gap_questions(folder: Path) -> tuple[list[str], DocumentProblem | None]:
    """``gaps.yaml`` of a corpus: questions drivers ask that its articles do not answer
    (``questions:``, each a string or ``{text, near}``), in file order, each once. The offline
    answer's confidence reads how close a driver's question is to one of them (see
    :class:`assistant.retrieval.questions.GapIndex`)."""
    path = folder / GAPS_FILE
    if not path.exists():
        return [], None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict) or not isinstance(data.get("questions", []), list):
            raise ValueError("expected a mapping with a list of questions")
        texts = []
        for item in data.get("questions") or []:
            text = item.get("text") if isinstance(item, dict) else item
            if not isinstance(text, str):
                raise ValueError(f"a question must be a string or have a text: {item!r}")
            if text.strip():
                texts.append(" ".join(text.split()))
        return list(dict.fromkeys(texts)), None
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
        return [], DocumentProblem(path=str(path), reason=f"unreadable list of unanswered questions: {exc}")


def load_situations(folder: Path) -> tuple[list[Situation], DocumentProblem | None]:
    """``safety-situations.yaml`` of a corpus (``situations:``, each ``{text, doc_id, section}``),
    in file order, each text once: which section's steps a driver escalated for safety is quoted
    (see :class:`assistant.retrieval.questions.SituationIndex`)."""
    path = folder / SITUATIONS_FILE
    if not path.exists():
        return [], None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict) or not isinstance(data.get("situations", []), list):
            raise ValueError("expected a mapping with a list of situations")
        found: dict[str, Situation] = {}
        for item in data.get("situations") or []:
            if not isinstance(item, dict):
                raise ValueError(f"a situation must have a text, a doc_id and a section: {item!r}")
            situation = Situation.model_validate(item)
            text = " ".join(situation.text.split())
            if text:
                found.setdefault(text, situation.model_copy(update={"text": text}))
        return list(found.values()), None
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
        return [], DocumentProblem(path=str(path), reason=f"unreadable list of safety situations: {exc}")


def parse_document(path: Path, raw: bytes) -> PolicyDocument:
    """Parse one Markdown file. Raises ``ValueError`` with a readable reason."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (byte {exc.start})") from exc
    if not text.strip():
        raise ValueError("empty file")
    if not text.lstrip("\ufeff").startswith("---"):
        raise ValueError("no YAML front matter (the file must start with '---')")
    try:
        post = frontmatter.loads(text.lstrip("\ufeff"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"bad front matter{where}: {getattr(exc, 'problem', exc)}") from exc
    meta = dict(post.metadata)
    if not meta.get("id"):
        raise ValueError("front matter has no 'id'")
    if not post.content.strip():
        raise ValueError("no body text after the front matter")
    try:
        return PolicyDocument(
            **meta,
            body=post.content,
            path=str(path),
            sha256=hashlib.sha256(raw).hexdigest(),
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"front matter field {field!r}: {err['msg']}") from exc
    except TypeError as exc:  # front matter that is not a mapping of names
        raise ValueError(f"bad front matter: {exc}") from exc


def load_corpus(folder: Path) -> LoadedCorpus:
    """Load every ``*.md`` under ``folder`` (sorted, recursive), skipping and reporting bad ones."""
    documents: list[PolicyDocument] = []
    problems: list[DocumentProblem] = []
    seen: dict[str, str] = {}
    for path in sorted(folder.rglob("*.md")):
        if path.name.lower() == "readme.md":
            continue
        try:
            doc = parse_document(path, path.read_bytes())
        except OSError as exc:
            problems.append(DocumentProblem(path=str(path), reason=f"unreadable: {exc.strerror}"))
            continue
        except ValueError as exc:
            problems.append(DocumentProblem(path=str(path), reason=str(exc)))
            continue
        if doc.id in seen:
            problems.append(
                DocumentProblem(path=str(path), reason=f"duplicate id {doc.id!r} (also in {seen[doc.id]})")
            )
            continue
        seen[doc.id] = str(path)
        documents.append(doc)
    market_names, problem = load_market_names(folder)
    if problem is not None:
        problems.append(problem)
    gap_questions, problem = load_gap_questions(folder)
    if problem is not None:
        problems.append(problem)
    situations, problem = load_situations(folder)
    if problem is not None:
        problems.append(problem)
    return LoadedCorpus(
        documents=documents, problems=problems, market_names=market_names, gap_questions=gap_questions,
        situations=situations,
    )
