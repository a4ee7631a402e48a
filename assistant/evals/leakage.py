"""Leakage between what the assistant learns from and the eval cases that score it.

Three kinds of training material must stay apart from the eval cases:

* the corpus's search-only driver questions (an article's ``questions:``, see
  :mod:`assistant.retrieval.questions`): a question that restates a case lets retrieval score
  that case from a copy of it; and the questions it does not answer (``gaps.yaml``): one that
  restates a case tells the confidence that this very case is not answered; and the situations
  of drivers in danger (``safety-situations.yaml``): one that restates a case picks that case's
  safety steps from a copy of it;
* the guardrail classifiers' labelled examples (``assistant/guardrails/examples*.yaml``): an
  example that restates a case lets the classifier recognise that case rather than its kind;
* the guardrail policy's patterns (``assistant/guardrails/policy.yaml``): a pattern alternative
  that matches exactly one eval case and no training example was most likely written for that
  case. These are *findings* to review, not proof.

:func:`find_leaks` finds close (text, case) pairs, by shared words and, given an embedder, by
meaning; :func:`pattern_findings` finds the single-case pattern alternatives.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict

from assistant.evals.dataset import EvalCase
from assistant.guardrails.classifier import (
    ACCOUNT_EXAMPLES,
    ACTION_EXAMPLES,
    APP_TROUBLE_EXAMPLES,
    AUTHORITY_EXAMPLES,
    AUTHORITY_LOOKALIKES,
    DEFAULT_EXAMPLES,
    DEFECT_EXAMPLES,
    MISUSE_EXAMPLES,
    MISUSE_LOOKALIKES,
    MISUSE_SCHEMES,
    REDTEAM_EXAMPLES,
    SAFETY_EXAMPLES,
    load_examples,
)
from assistant.guardrails.multilingual import (
    MULTILINGUAL_ACTION_EXAMPLES,
    MULTILINGUAL_AUTHORITY_EXAMPLES,
    MULTILINGUAL_AUTHORITY_LOOKALIKES,
    MULTILINGUAL_EXAMPLES,
    MULTILINGUAL_MISUSE_EXAMPLES,
    MULTILINGUAL_SAFETY_EXAMPLES,
)
from assistant.ingestion.documents import PolicyDocument
from assistant.retrieval.questions import normalised

#: Share of distinct words two texts have in common (Jaccard) from which they count as the same.
WORD_OVERLAP = 0.4
#: Cosine similarity of their embeddings from which they count as the same.
COSINE = 0.8
#: Policy keys whose values are lists of regular expressions matched against driver messages.
PATTERN_KEYS = frozenset({
    "injection_patterns", "harmful_patterns", "offtopic_patterns", "patterns", "not_safety", "contact_markers", "strong_markers",
    "markers",
})



class TrainingText(BaseModel):
    """One piece of training material: where it comes from and its text."""

    model_config = ConfigDict(frozen=True)

    source: str  # "corpus:<doc id>" or "examples:<label>"
    text: str


class Leak(BaseModel):
    """A training text too close to an eval case's message."""

    model_config = ConfigDict(frozen=True)

    source: str
    text: str
    case: str
    message: str
    word_overlap: float
    cosine: float | None = None


class PatternFinding(BaseModel):
    """A pattern alternative that matches exactly one eval case and no training example."""

    model_config = ConfigDict(frozen=True)

    key: str
    alternative: str
    case: str
    message: str


def corpus_questions(
    documents: Sequence[PolicyDocument], gaps: Sequence[str] = (), situations: Sequence[str] = ()
) -> list[TrainingText]:
    """The corpus's driver questions, the questions it does not answer (``gaps.yaml``) and the
    situations of drivers in danger (``safety-situations.yaml``), as training texts."""
    return [
        *(TrainingText(source=f"corpus:{doc.id}", text=q) for doc in documents for q in doc.questions),
        *(TrainingText(source="corpus:gaps.yaml", text=q) for q in gaps),
        *(TrainingText(source="corpus:safety-situations.yaml", text=q) for q in situations),
    ]


def guardrail_examples(
    paths: Sequence[Path] = (
        DEFAULT_EXAMPLES, ACTION_EXAMPLES, ACCOUNT_EXAMPLES, AUTHORITY_LOOKALIKES, AUTHORITY_EXAMPLES, MISUSE_EXAMPLES, MISUSE_LOOKALIKES,
        MISUSE_SCHEMES, REDTEAM_EXAMPLES, DEFECT_EXAMPLES, SAFETY_EXAMPLES, APP_TROUBLE_EXAMPLES,
        MULTILINGUAL_EXAMPLES, MULTILINGUAL_AUTHORITY_EXAMPLES, MULTILINGUAL_AUTHORITY_LOOKALIKES,
        MULTILINGUAL_MISUSE_EXAMPLES, MULTILINGUAL_ACTION_EXAMPLES, MULTILINGUAL_SAFETY_EXAMPLES,
    ),
) -> list[TrainingText]:
    """The guardrail classifiers' labelled examples (the screen's, the account-action, authority,
    misuse, defect-report and present-danger ones' and those in other languages) as training texts."""
    return [
        TrainingText(source=f"{path.stem}:{label}", text=t)
        for path in paths for label, texts in load_examples(path).items() for t in texts
    ]


def _words(text: str) -> frozenset[str]:
    """Distinct words in any script: runs of letters, digits, combining marks and apostrophes
    (``\\w`` alone splits Devanagari and Arabic words at their vowel signs, so unrelated Hindi
    sentences shared their fragments)."""
    kept = (c if c == "'" or unicodedata.category(c)[0] in "LNM" else " " for c in text.lower())
    return frozenset("".join(kept).split())


def word_overlap(a: str, b: str) -> float:
    """Jaccard overlap of the distinct lower-cased words of ``a`` and ``b``."""
    wa, wb = _words(a), _words(b)
    return len(wa & wb) / len(wa | wb) if wa and wb else 0.0


def find_leaks(
    texts: Sequence[TrainingText],
    cases: Sequence[EvalCase],
    *,
    embeddings: Embeddings | None = None,
    max_overlap: float = WORD_OVERLAP,
    max_cosine: float = COSINE,
) -> list[Leak]:
    """Every (training text, case) pair at or above ``max_overlap`` shared words or, with
    ``embeddings``, at or above ``max_cosine``; the closest case per text."""
    messages = [c for c in cases if c.message.strip()]
    if not texts or not messages:
        return []
    cosines = None
    if embeddings is not None:
        q = normalised(np.asarray(embeddings.embed_documents([t.text for t in texts])))
        m = normalised(np.asarray(embeddings.embed_documents([c.message for c in messages])))
        cosines = q @ m.T
    case_words = [_words(c.message) for c in messages]
    leaks = []
    for i, item in enumerate(texts):
        words = _words(item.text)
        overlaps = [len(words & w) / len(words | w) if words and w else 0.0 for w in case_words]
        j = int(np.argmax(overlaps))
        if cosines is not None and cosines[i].max() >= max_cosine and overlaps[j] < max_overlap:
            j = int(np.argmax(cosines[i]))
        cosine = float(cosines[i, j]) if cosines is not None else None
        if overlaps[j] >= max_overlap or (cosine is not None and cosine >= max_cosine):
            leaks.append(
                Leak(
                    source=item.source, text=item.text, case=f"{messages[j].dataset}/{messages[j].id}",
                    message=messages[j].message, word_overlap=round(overlaps[j], 3),
                    cosine=None if cosine is None else round(cosine, 3),
                )
            )
    return leaks


def alternatives(pattern: str) -> list[str]:
    """The top-level alternatives of a regular expression (``a|b(c|d)`` -> ``a``, ``b(c|d)``)."""
    parts: list[str] = []
    depth = 0
    start = 0
    escaped = False
    in_class = False
    for i, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
    parts.append(pattern[start:])
    return [p for p in parts if p.strip()]


def policy_patterns(path: Path) -> Iterator[tuple[str, str]]:
    """(dotted key, pattern) for every pattern list of a guardrail policy file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))

    def walk(node: Any, key: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, Mapping):
            for name, value in node.items():
                yield from walk(value, f"{key}.{name}" if key else str(name))
        elif isinstance(node, list) and key.rsplit(".", 1)[-1] in PATTERN_KEYS:
            yield from ((key, p) for p in node if isinstance(p, str))

    yield from walk(data, "")


def pattern_findings(policy: Path, cases: Sequence[EvalCase], training: Sequence[TrainingText]) -> list[PatternFinding]:
    """Pattern alternatives of ``policy`` that match exactly one eval case and no training text."""
    findings: list[PatternFinding] = []
    messages = [c for c in cases if c.message.strip()]
    for key, pattern in policy_patterns(policy):
        for alternative in alternatives(pattern):
            try:
                compiled = re.compile(alternative, re.IGNORECASE | re.MULTILINE)
            except re.error:
                continue  # a fragment that only parses as part of the whole pattern
            hits = [c for c in messages if compiled.search(c.message)]
            if len(hits) == 1 and not any(compiled.search(t.text) for t in training):
                findings.append(PatternFinding(
                    key=key, alternative=alternative, case=f"{hits[0].dataset}/{hits[0].id}", message=hits[0].message
                ))
    return findings
