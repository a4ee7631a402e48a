"""Sections of help articles as answer units, and what a question and a section share.

A help article is written in sections, each under a heading that says what it answers ("How
much Fast Pay costs"). The offline composer answers with the section that answers the question,
quoted as written, so this module:

* rebuilds sections from the index's chunks (a section is one or more chunks under one heading;
  overlapping text between chunks is kept once) with the precomputed unit vectors;
* groups a section's units into *blocks* that must be quoted whole: a list with the sentence that
  introduces it ("Don't:" and its items), so a list is never quoted without its lead-in;
* describes a (question, section) pair as a small vector of general features, which a learned
  model (:mod:`assistant.generation.answer_model`) turns into "this section answers it".

Nothing here is specific to one corpus: the features are similarities, shared words, the
retrieval rank, the kind of fact asked for and the journey.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any, Protocol, TypeVar

import numpy as np
from langchain_core.documents import Document

from assistant.retrieval.base import Passage
from assistant.retrieval.bm25 import Bm25Index
from assistant.retrieval.journey import JourneySignals

Matrix = np.ndarray[Any, np.dtype[Any]]
_T = TypeVar("_T")

#: Words that mark a text as being about a kind of order.
ORDER_WORDS = {
    "alcohol": r"\b(alcohol|age-restricted|beer|wine|liquor|spirits)\b",
    "pharmacy": r"\b(pharmac\w*|prescriptions?|medications?)\b",
    "batched": r"\b(batch\w*|stacked)\b",
    "shopping": r"\b(shopping|substitut\w*)\b",
}
RESTRICTED = frozenset({"alcohol", "pharmacy"})
_RESTRICTED_WORDS = re.compile(r"\b(restricted|alcohol|pharmac\w*|prescriptions?)\b", re.I)

#: What a question asks for, and what a text that answers it contains.
_ASKS = {
    "money": re.compile(
        r"\bhow much\b|\b(cost|costs|fee|fees|charge[sd]?|price|(pay|hourly|per[- ]mile|mileage) rate|rate of pay|take a cut)\b|\$",
        re.I,
    ),
    "time": re.compile(
        r"\bhow (long|soon|fast|quick(ly)?)\b|\bwhen\b|\bwhat time\b|\bhow many (days|hours|minutes|weeks)\b"
        r"|\b(deadline|cut-?off)\b",
        re.I,
    ),
    "age": re.compile(r"\bhow old\b|\b(age|minimum age)\b", re.I),
    "count": re.compile(r"\bhow many\b|\b(limit|max(imum)?|min(imum)?)\b", re.I),
    "distance": re.compile(r"\bhow (close|far|near)\b|\b(distance|radius|range)\b", re.I),
}
_HAS = {
    "money": re.compile(r"(CA)?\$\s?\d|\b\d+(\.\d+)?\s?(%|percent|cents?|dollars?)|\bfree\b|\bno fee\b", re.I),
    "time": re.compile(
        r"\b\d+\s?(-|to)?\s?\d*\s?(seconds?|minutes?|mins?|hours?|hrs?|days?|business days|weeks?|months?)\b"
        r"|\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday|daily|weekly|instantly|immediately)\b"
        r"|\b\d{1,2}(:\d{2})?\s?(a\.?m\.?|p\.?m\.?)\b",
        re.I,
    ),
    "age": re.compile(r"\b(1[6-9]|2[0-5])\b.{0,20}\b(old|older|age|years)\b|\b(1[6-9]|2[0-5])\+", re.I),
    "count": re.compile(r"\b\d+\b"),
    "distance": re.compile(r"\b\d+(\.\d+)?\s?(m|metres?|meters?|km|kilomet(re|er)s?|feet|ft|miles?|blocks?)\b", re.I),
}
#: A message that reports something wrong with the app (or names an error code).
APP_TROUBLE = re.compile(
    r"\b(app|error|button|screen|stuck|froze|frozen|freez\w*|crash\w*|glitch\w*|bug\w*|loading|spinning|"
    r"gr[ea]yed|blank|upload\w*|fail\w*|won'?t (load|open|work|let)|doesn'?t (load|open|work|show)|"
    r"not (loading|working|showing|updating|going through)|keeps? (closing|crashing|failing))\b"
    r"|\b[A-Za-z]{2,5}-\d{3}\b",
    re.I,
)
#: Headings of troubleshooting sections ("When the app misbehaves during a cancellation").
_TROUBLESHOOTING = re.compile(
    r"\b(misbehav\w*|doesn'?t work|don'?t work|not working|isn'?t working|fails?|failed|errors?|stuck|"
    r"frozen|freezes|crash\w*|glitch\w*|troubleshoot\w*)\b",
    re.I,
)

#: A unit that names another market within this many characters of its start is about that market.
MARKET_LEAD_CHARS = 24
#: A parenthesis without nested ones, with the space before it.
_ASIDE = re.compile(r"\s?\(([^()]*)\)")
#: Where one sentence of a unit ends and the next begins.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
#: An amount of money ("$0.20", "CA$3.50", "$1,200"), and the unit that may follow it ("per mile", "/km").
_MONEY = re.compile(r"(?:CA)?\$\d[\d,]*(?:\.\d+)?")
_MONEY_UNIT = re.compile(r"(?:\s*/\s*\w+|\s+per\s+\w+|\s+an?\s+(?:mile|minute|hour|km|order|delivery|day|week))?")
#: A unit ending in a parenthesis of labelled parts: "Rate (US markets: $0.20; Ontario (ca-on): CA$0.25)"
#: (a table row as :func:`assistant.ingestion.units.split_units` renders it) or "... (Ontario: CA$3.50)".
_LABELLED_PARTS = re.compile(r"^(?P<head>.*?\S)\s\((?P<body>(?:[^()]|\([^()]*\))+)\)(?P<tail>[.;,]?)$", re.S)

#: The features of a (question, section) pair, in vector order.
FEATURES = (
    "unit_max",          # best cosine between the question and one unit of the section
    "unit_top2",         # mean cosine of the section's two best units
    "centroid",          # cosine between the question and the section's mean unit vector
    "heading",           # cosine between the question and the section's heading
    "title",             # cosine between the question and the title of the section's article
    "keywords",          # share of the question's (stemmed) words found in heading and text
    "keywords_idf",      # the same, each word weighted by how rare it is in the corpus (IDF)
    "question",          # best cosine between the question and the drivers' questions that point into the section
    "doc_question",      # the same over the drivers' questions of the whole article
    "doc_rank",          # 1 / (1 + rank of the section's document among the retrieved ones)
    "retrieved",         # best fused score of a retrieved chunk of the section, relative to the top one
    "answer_type",       # the question asks for a kind of fact (money, time, ...) the section states
    "answer_type_miss",  # it asks for one the section does not state
    "order_match",       # the section is about the driver's kind of order
    "order_conflict",    # it is about a restricted kind of order the driver does not have (or vice versa)
    "error_code",        # its heading names an error code the app just logged (it is about that error)
    "other_market",      # its heading names another market than the driver's
    "intro",             # it is the article's introduction
    "troubleshooting",   # a troubleshooting section for a driver who reports no app problem
)


class SectionSource(Protocol):
    """Where chunks, their answer units and unit vectors come from (the index's chunk store)."""

    chunks: dict[str, Document]

    def units(self, chunk_id: str) -> list[str]: ...

    def unit_vectors(self, chunk_id: str) -> Matrix: ...

    def doc_chunks(self, doc_id: str) -> list[Document]: ...


@dataclass
class Block:
    """Units quoted together: a sentence, or a list with its lead-in."""

    units: list[str]
    start: int  # index of the first unit in the section

    @property
    def words(self) -> int:
        return sum(len(u.split()) for u in self.units)


@dataclass
class Section:
    """One section of one article: its heading, units (in reading order) and their vectors."""

    doc_id: str
    title: str
    heading: str
    position: int
    chunk_ids: list[str]
    units: list[str]
    vectors: Matrix
    blocks: list[Block] = field(default_factory=list)
    #: What the features read of the section, computed on first use (a section is not changed
    #: once built), so no request recomputes it.
    _memo: dict[object, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.doc_id, self.heading)

    def memo(self, key: object, compute: Callable[[], _T]) -> _T:
        """``compute()``, once per section and ``key``."""
        if key not in self._memo:
            self._memo[key] = compute()
        value: _T = self._memo[key]
        return value

    @property
    def text(self) -> str:
        return self.memo("text", lambda: "\n".join(self.units))

    @property
    def words(self) -> int:
        return sum(len(u.split()) for u in self.units)

    @property
    def is_intro(self) -> bool:
        return self.position == 0 and self.heading == self.title


def is_item(text: str) -> bool:
    """True for a list item ("- ...") or a numbered step ("2. ...")."""
    return text.startswith(("- ", "* ")) or re.match(r"\d+[.)]\s", text) is not None


def blocks_of(units: Sequence[str]) -> list[Block]:
    """Group units into blocks: list items stay with each other and with the sentence ending in
    ":" that introduces them."""
    blocks: list[Block] = []
    for index, unit in enumerate(units):
        previous = blocks[-1] if blocks else None
        joins = previous is not None and is_item(unit) and (
            is_item(previous.units[-1]) or previous.units[-1].rstrip().endswith(":")
        )
        if joins and previous is not None:
            previous.units.append(unit)
        else:
            blocks.append(Block(units=[unit], start=index))
    return blocks


def sections_of(source: SectionSource, doc_id: str) -> list[Section]:
    """The sections of one document, in reading order, rebuilt from its chunks."""
    sections: list[Section] = []
    by_heading: dict[str, Section] = {}
    for chunk in source.doc_chunks(doc_id):
        meta = chunk.metadata
        cid = str(meta["chunk_id"])
        heading = str(meta.get("section") or meta.get("title") or doc_id)
        section = by_heading.get(heading)
        if section is None:
            section = Section(
                doc_id=doc_id, title=str(meta.get("title", doc_id)), heading=heading,
                position=int(meta.get("position", 0)), chunk_ids=[], units=[], vectors=np.zeros((0, 0), dtype=np.float32),
            )
            by_heading[heading] = section
            sections.append(section)
        section.chunk_ids.append(cid)
        units = source.units(cid)
        vectors = source.unit_vectors(cid)
        # chunk overlap: a unit already read whole, or the opening lines of a list the last unit
        # ended with (a list cut across two chunks repeats its items at the second one's start)
        units = [_past_overlap(u, section.units[-1]) if section.units else u for u in units]
        keep = [i for i, u in enumerate(units) if u and not any(u in seen for seen in section.units)]
        if not keep:
            continue
        section.units.extend(units[i] for i in keep)
        rows = np.asarray(vectors[keep], dtype=np.float32)
        section.vectors = rows if section.vectors.size == 0 else np.vstack([section.vectors, rows])
    for section in sections:
        section.blocks = blocks_of(section.units)
    return [s for s in sections if s.units]


def _past_overlap(unit: str, previous: str) -> str:
    """``unit`` without its first lines when they are the last lines of ``previous`` (empty when
    every line is)."""
    lines, before = unit.split("\n"), previous.split("\n")
    for size in range(min(len(lines), len(before)), 0, -1):
        if lines[:size] == before[-size:]:
            return "\n".join(lines[size:])
    return unit


def answer_types(question: str) -> set[str]:
    """What kinds of fact ``question`` asks for (money, time, age, count, distance)."""
    return {kind for kind, pattern in _ASKS.items() if pattern.search(question)}


def states(text: str, kind: str) -> bool:
    """True when ``text`` states a fact of ``kind``."""
    return _HAS[kind].search(text) is not None


def mentions_order(text: str, flag: str) -> bool:
    """True when ``text`` is about orders of kind ``flag``."""
    return re.search(ORDER_WORDS.get(flag, rf"\b{re.escape(flag)}"), text, re.I) is not None


def terms(text: str) -> frozenset[str]:
    """The stemmed keyword terms of ``text``."""
    return Bm25Index.term_set(text)


@dataclass
class Question:
    """What the features need to know about the question, computed once per request."""

    text: str
    vector: Matrix
    terms: frozenset[str]
    wanted: set[str]
    app_trouble: bool
    signals: JourneySignals
    other_markets: re.Pattern[str] | None
    own_market: re.Pattern[str] | None
    _weights: dict[tuple[int, float], float] = field(default_factory=dict, repr=False)

    def weight(self, idf: dict[str, float], rare: float) -> float:
        """The summed IDF of the question's terms (a term ``idf`` lacks weighs ``rare``); the
        same for every section, so computed once per weighting."""
        key = (id(idf), rare)
        if key not in self._weights:
            self._weights[key] = sum(idf.get(t, rare) for t in self.terms)
        return self._weights[key]

    def about_other_market(self, text: str) -> bool:
        """True when ``text`` opens with another market than the driver's ("In Ontario (ca-on),
        the fee is ...") and does not name the driver's: a rule for someone else."""
        if self.other_markets is None:
            return False
        found = self.other_markets.search(text)
        return bool(found and found.start() <= MARKET_LEAD_CHARS and not (self.own_market and self.own_market.search(text)))

    def names_other_market(self, text: str) -> bool:
        """True when ``text`` (a table header, an aside's label) names another market than the
        driver's and not the driver's own."""
        return bool(self.other_markets and self.other_markets.search(text) and not (self.own_market and self.own_market.search(text)))

    def for_market(self, unit: str) -> str:
        """``unit`` without the parts labelled for another market: a table row's cells under
        another market's column ("Rate (US markets: $0.20 per minute; Ontario (ca-on): CA$0.25 per
        minute)" for a driver in Ontario keeps the Ontario cell), or an aside labelled for one
        ("$3.00 + $0.50 per mile (Ontario: ...)" for a driver elsewhere), and any other parenthesis
        that names another market and not the driver's ("(CA$0.25 in Ontario)"). Unchanged when
        the market is unknown or nothing names another market; a table row whose every cell is
        another market's is left whole."""
        if self.other_markets is None:
            return unit
        unit = self._without_other_sentences(unit)
        if "(" not in unit:
            return unit
        row = _LABELLED_PARTS.match(unit)
        if row is None:
            return self._own_amounts(self._without_other_asides(unit))
        parts = row["body"].split("; ")
        labelled = [part.partition(": ") for part in parts]
        if not all(sep and label.strip() for label, sep, _ in labelled):
            return self._own_amounts(self._without_other_asides(unit))
        kept = [part for part, (label, _, _) in zip(parts, labelled, strict=True) if not self.names_other_market(label)]
        if len(kept) == len(parts):
            return self._own_amounts(unit)
        if not kept:  # an aside on a sentence goes; a table row's label alone would say nothing
            return f"{row['head']}{row['tail'] or ''}" if len(row["head"].split()) >= 4 else unit
        return f"{row['head']} ({'; '.join(kept)}){row['tail']}"

    def _without_other_sentences(self, unit: str) -> str:
        """``unit`` (a list item of several sentences) without the sentences that open with another
        market than the driver's ("- Fee: $0.99 per cash-out. In Ontario (ca-on), the fee is
        CA$1.29." for a driver in California); unchanged when none or all of them do."""
        sentences = _SENTENCE_BREAK.split(unit)
        if len(sentences) < 2:
            return unit
        kept = [sentence for sentence in sentences if not self.about_other_market(sentence)]
        return " ".join(kept) if kept and len(kept) < len(sentences) else unit

    def _own_amounts(self, unit: str) -> str:
        """``unit`` with the amounts an aside gives for the driver's own market in place of the
        ones it follows: "at $0.20 per minute (CA$0.25 in Ontario), up to 30 minutes" reads "at
        CA$0.25 per minute, up to 30 minutes" for a driver in Ontario, "$3.00 + $0.50 per mile
        (Ontario: CA$3.50 + CA$0.35/km)" reads "CA$3.50 + CA$0.35/km", and in an aside of several
        parts "($0.20 per minute, ca-on CA$0.25, starting ...)" reads "(CA$0.25 per minute, starting
        ...)". Only an aside (or part) that names the driver's market and no other, states an
        amount, and follows an amount in the same clause; one that gives fewer units than it
        replaces takes the unit of the amount before it, and any other is left as written."""
        if self.own_market is None:
            return unit
        own = self.own_market
        name = re.compile(r"(?:\bin\s+)?" + own.pattern + r"\s*[:,]?", re.I)
        for aside in reversed(list(_ASIDE.finditer(unit))):
            text = aside.group(1)
            if not own.search(text) or (self.other_markets and self.other_markets.search(text)):
                continue
            before = unit[: aside.start()]
            clause = max(before.rfind(mark) for mark in ",;:") + 1
            replaced = _in_place_of(before, clause, name.sub(" ", text).strip(" ,;:"))
            if replaced is not None:
                unit = replaced + unit[aside.end():]
                continue
            for separator in ("; ", ", "):  # the driver's market's part after the general one
                parts = text.split(separator)
                changed = False
                i = 1
                while i < len(parts):
                    if own.search(parts[i]) and not own.search(parts[i - 1]):
                        previous = _in_place_of(parts[i - 1], 0, name.sub(" ", parts[i]).strip(" ,;:"))
                        if previous is not None:
                            parts[i - 1 : i + 1] = [previous]
                            changed = True
                            continue
                    i += 1
                if changed:
                    unit = unit[: aside.start()] + aside.group(0).replace(text, separator.join(parts)) + unit[aside.end():]
                    break
        return unit

    def _without_other_asides(self, unit: str) -> str:
        """``unit`` without its parentheses that name another market and not the driver's
        ("$0.20 per minute (CA$0.25 in Ontario)" for a driver in New York), or, in an aside of
        several parts ("($3.00 + $0.50 per mile; ca-on CA$3.50 + CA$0.35/km)"), without the parts
        that do."""

        def kept(aside: re.Match[str]) -> str:
            text = aside.group(1)
            if not self.names_other_market(text):
                return aside.group(0)
            for separator in ("; ", ", "):
                parts = text.split(separator)
                mine = [part for part in parts if not self.names_other_market(part)]
                # each part that names another market states its own value ("ca-on CA$0.25"), not
                # a lead-in for the next part ("in Ontario, CA$3.50 ...")
                own_values = all(re.search(r"\d", part) for part in parts if self.names_other_market(part))
                if len(parts) > 1 and mine and own_values:
                    return aside.group(0).replace(text, separator.join(mine))
            return ""

        return _ASIDE.sub(kept, unit)

    @classmethod
    def of(
        cls, text: str, vector: Matrix, signals: JourneySignals, market_names: dict[str, list[str]]
    ) -> Question:
        return cls(
            text=text, vector=vector, terms=terms(text), wanted=answer_types(text),
            app_trouble=bool(signals.event_terms or signals.error_codes or APP_TROUBLE.search(text)),
            signals=signals, other_markets=_names(market_names, signals.market, own=False),
            own_market=_names(market_names, signals.market, own=True),
        )


def _names(market_names: dict[str, list[str]], market: str | None, *, own: bool) -> re.Pattern[str] | None:
    """A pattern for the names (and codes, such as ``us-ca``) of the driver's market (``own``) or
    of every other market; ``None`` when the market is unknown."""
    if market is None:
        return None
    names = tuple(n for code, ns in market_names.items() if (code == market) == own for n in (*ns, code))
    return _alternation(names) if names else None


@lru_cache(maxsize=256)
def _alternation(names: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b", re.I)


def _in_place_of(before: str, clause: int, values: str) -> str | None:
    """``before`` with the amounts of its last clause (from ``clause``) replaced by ``values`` (an
    aside's amounts for the driver's market), or ``None`` when either states none or they do not
    line up: ``values`` that state their own unit replace the amounts and their unit; a single
    bare amount replaces a single amount and keeps its unit."""
    new = _MONEY.findall(values)
    old = list(_MONEY.finditer(before, clause))
    if not new or not old or not _MONEY.match(values):  # amounts, not a sentence about them
        return None
    unit_after = _MONEY_UNIT.match(before, old[-1].end())
    end = unit_after.end() if unit_after else old[-1].end()
    if re.search(r"[A-Za-z/]", values[values.rfind(new[-1]) + len(new[-1]):]):
        replacement = values  # it states its own unit ("CA$3.50 + CA$0.35/km")
    elif len(new) == len(old) == 1:
        replacement = values + before[old[0].end():end]  # "CA$0.25" + " per minute"
    else:
        return None
    return before[: old[0].start()] + replacement + before[end:]


def features(
    question: Question,
    section: Section,
    *,
    heading_vector: Matrix | None,
    title_vector: Matrix | None,
    doc_rank: int,
    retrieved_score: float,
    idf: dict[str, float],
    question_similarity: float,
    doc_question_similarity: float,
    rare: float | None = None,
) -> list[float]:
    """The :data:`FEATURES` of one (question, section) pair. ``idf`` weighs terms (a term it does
    not know counts as ``rare``, by default its largest value, which a caller scoring many
    sections passes once); the question similarities come from the corpus's driver questions."""
    sims = (section.vectors @ question.vector).tolist() if section.vectors.size else [0.0]
    best = max(sims)
    second = sorted(sims)[-2] if len(sims) > 1 else best
    centroid = section.memo("centroid", lambda: _unit_centroid(section.vectors))
    centroid_sim = float(centroid @ question.vector) if centroid is not None else 0.0
    text = section.text
    section_terms = section.memo("terms", lambda: terms(f"{section.title} {section.heading}") | terms(text))
    rare = max(idf.values(), default=1.0) if rare is None else rare
    shared = question.terms & section_terms
    total = question.weight(idf, rare)
    keywords_idf = sum(idf.get(t, rare) for t in shared) / total if total else 0.0
    keywords = len(shared) / len(question.terms) if question.terms else 0.0
    wanted = question.wanted
    has_type = any(section.memo(("states", kind), partial(states, text, kind)) for kind in sorted(wanted))
    signals = question.signals
    flags = signals.order_flags
    order_match = bool(flags) and any(section.memo(("order", f), partial(mentions_order, text, f)) for f in sorted(flags))
    restricted_heading = section.memo("restricted", lambda: bool(_RESTRICTED_WORDS.search(section.heading)))
    restricted_other = restricted_heading and signals.has_order and not flags & RESTRICTED
    heading_upper = section.memo("heading upper", section.heading.upper)
    troubleshooting = section.memo("troubleshooting", lambda: _TROUBLESHOOTING.search(section.heading) is not None)
    return [
        best,
        (best + second) / 2,
        centroid_sim,
        float(heading_vector @ question.vector) if heading_vector is not None else best,
        float(title_vector @ question.vector) if title_vector is not None else best,
        keywords,
        keywords_idf,
        question_similarity,
        doc_question_similarity,
        1.0 / (1.0 + doc_rank),
        retrieved_score,
        1.0 if wanted and has_type else 0.0,
        1.0 if wanted and not has_type else 0.0,
        1.0 if order_match else 0.0,
        1.0 if restricted_other else 0.0,
        1.0 if any(code in heading_upper for code in signals.error_codes) else 0.0,
        1.0 if (other := question.other_markets) is not None and section.memo(
            ("other markets", other), lambda: other.search(section.heading) is not None
        ) else 0.0,
        1.0 if section.is_intro else 0.0,
        1.0 if not question.app_trouble and troubleshooting else 0.0,
    ]


def _unit_centroid(vectors: Matrix) -> Matrix | None:
    """The unit-length mean of a section's unit vectors (``None`` when it has none)."""
    if not vectors.size:
        return None
    centroid = vectors.mean(axis=0)
    norm = float(np.linalg.norm(centroid))
    return centroid / norm if norm > 0 else None


def inverse_document_frequencies(texts: Sequence[str]) -> dict[str, float]:
    """Smoothed IDF of every term of ``texts`` (one text per chunk)."""
    counts: dict[str, int] = {}
    for text in texts:
        for term in terms(text):
            counts[term] = counts.get(term, 0) + 1
    n = len(texts)
    return {term: float(np.log((n + 1) / (count + 0.5))) for term, count in counts.items()}


def retrieved_scores(passages: Sequence[Passage]) -> dict[tuple[str, str], float]:
    """Each retrieved section's best fused score, relative to the best passage's."""
    top = max((p.score for p in passages), default=0.0) or 1.0
    scores: dict[tuple[str, str], float] = {}
    for passage in passages:
        key = (passage.doc_id, passage.section)
        scores[key] = max(scores.get(key, 0.0), passage.score / top)
    return scores
