"""The offline default composer: answers by quoting the best-supported part of the passages.

Every sentence of the answer is copied from a retrieved chunk (markdown removed) and followed by
its citation number, so the composer cannot state anything the corpus does not say.

1. Each unit (sentence, numbered procedure or table row) of the top passages is scored by
   meaning (cosine to the question; unit vectors are precomputed at ingest), shared keywords
   and the journey: a unit about the driver's kind of order or logged error code rises, one about
   another kind of order or another market falls.
2. The best passage is chosen from the top few by its retrieval rank and its best unit; a
   help-centre introduction, or a section written for another market, is a weaker choice.
3. The answer quotes a window of that passage's units in document order (a section of a help
   article reads well as written), leaving out units about another situation, and adds the best
   unit of a second passage when it is nearly as strong.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from assistant.generation.base import Draft
from assistant.ingestion.chunking import unit_embedding_text
from assistant.ingestion.units import split_units
from assistant.request import HelpRequest
from assistant.retrieval.base import Passage
from assistant.retrieval.bm25 import Bm25Index
from assistant.retrieval.journey import JourneySignals, chunk_boosts

Matrix = np.ndarray[Any, np.dtype[Any]]
logger = logging.getLogger(__name__)

#: Words that mark a sentence as being about a kind of order.
ORDER_WORDS = {
    "alcohol": r"\b(alcohol|age-restricted|beer|wine|liquor|spirits)\b",
    "pharmacy": r"\b(pharmac\w*|prescriptions?|medications?)\b",
    "batched": r"\b(batch\w*|stacked)\b",
    "shopping": r"\b(shopping|substitut\w*)\b",
}
RESTRICTED = frozenset({"alcohol", "pharmacy"})
_ORDINARY = re.compile(r"\b(ordinary|regular|non-restricted|standard|normal) (food|grocery|orders?|deliver\w*)", re.I)
_RESTRICTED_WORDS = re.compile(r"\b(restricted|alcohol|pharmac\w*|prescriptions?)\b", re.I)
_META = re.compile(
    r"\b(this|the following) (article|page|guide|section)\b|\bread on\b"
    r"|\b(see|listed|shown|described|explained|covered|as) below\b|\bbelow\s*:",
    re.I,
)

#: Expected answer types: what a question asks for, and what a sentence that answers it contains.
_ASKS = {
    "money": re.compile(
        r"\bhow much\b|\b(cost|costs|fee|fees|charge[sd]?|price|(pay|hourly|per[- ]mile|mileage) rate|rate of pay|take a cut)\b|\$", re.I
    ),
    "time": re.compile(
        r"\bhow (long|soon|fast|quick(ly)?)\b|\bwhen\b|\bwhat time\b|\bhow many (days|hours|minutes|weeks)\b"
        r"|\b(deadline|cut-?off)\b",
        re.I,
    ),
    "age": re.compile(r"\bhow old\b|\b(age|minimum age)\b", re.I),
    "count": re.compile(r"\bhow many\b|\b(limit|max(imum)?|min(imum)?)\b", re.I),
    "distance": re.compile(r"\bhow (close|far|near)\b|\b(distance|radius|range)\b", re.I),
    "size": re.compile(r"\bhow (big|large|heavy)\b|\b(file size|size limit|weight limit)\b", re.I),
}
_HAS = {
    "money": re.compile(r"(CA)?\$\s?\d|\b\d+(\.\d+)?\s?(%|percent|cents?|dollars?)|\bfree\b|\bno fee\b", re.I),
    "time": re.compile(
        r"\b\d+\s?(-|to)?\s?\d*\s?(seconds?|minutes?|mins?|hours?|hrs?|days?|business days|weeks?|months?)\b"
        r"|\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday|daily|weekly|instantly|immediately)\b"
        r"|\b\d{1,2}(:\d{2})?\s?(a\.?m\.?|p\.?m\.?)\b|\b(january|february|march|april|may|june|july|august|"
        r"september|october|november|december)\b",
        re.I,
    ),
    "age": re.compile(r"\b(1[6-9]|2[0-5])\b.{0,20}\b(old|older|age|years)\b|\b(1[6-9]|2[0-5])\+", re.I),
    "count": re.compile(r"\b\d+\b"),
    "distance": re.compile(r"\b\d+(\.\d+)?\s?(m|metres?|meters?|km|kilomet(re|er)s?|feet|ft|miles?|blocks?)\b", re.I),
    "size": re.compile(r"\b\d+(\.\d+)?\s?(kb|mb|gb|megabytes?|gigabytes?|lbs?|pounds?|kg|kilograms?)\b", re.I),
}
#: Headings of troubleshooting sections ("When the app misbehaves during a cancellation").
_TROUBLESHOOTING = re.compile(
    r"\b(misbehav\w*|doesn'?t work|don'?t work|not working|isn'?t working|fails?|failed|errors?|stuck|"
    r"frozen|freezes|crash\w*|glitch\w*)\b",
    re.I,
)
#: A message that reports something wrong with the app (or an error code).
_APP_TROUBLE = re.compile(
    r"\b(app|error|button|screen|stuck|froze|frozen|freez\w*|crash\w*|glitch\w*|bug\w*|loading|spinning|"
    r"gr[ea]yed|blank|upload\w*|fail\w*|won'?t (load|open|work|let)|doesn'?t (load|open|work|show)|"
    r"not (loading|working|showing|updating|going through)|keeps? (closing|crashing|failing))\b"
    r"|\b[A-Za-z]{2,5}-\d{3}\b",
    re.I,
)
#: Quality lost by a troubleshooting section when the driver reports no app problem.
TROUBLESHOOTING_PENALTY = 0.1
#: A unit that points elsewhere ("see below") is a signpost only when it is this short.
META_MAX_WORDS = 25
#: Score bonus for a sentence holding the kind of fact the question asks for.
ANSWER_TYPE_BONUS = 0.15


def answer_types(question: str) -> set[str]:
    """What kinds of fact ``question`` asks for (money, time, age, count, distance, size)."""
    return {kind for kind, pattern in _ASKS.items() if pattern.search(question)}


def answer_type_bonus(text: str, wanted: set[str]) -> float:
    """:data:`ANSWER_TYPE_BONUS` when ``text`` holds a fact of a kind in ``wanted``."""
    return ANSWER_TYPE_BONUS if any(_HAS[kind].search(text) for kind in wanted) else 0.0


CANDIDATE_PASSAGES = 3
#: The composer reads every section of this many top documents, not only the retrieved chunks.
READ_DOCUMENTS = 2
#: A section found by reading a document counts this much of its document's retrieved section.
SIBLING_WEIGHT = 0.85
#: Relevance of a candidate section by the rank of its document in the retrieval results.
DOC_RANK_WEIGHTS = (1.0, 0.8, 0.65, 0.55, 0.5)
#: Journey adjustments count toward choosing a section only for units this close to the question.
ON_TOPIC_BASE = 0.3
INTRO_PENALTY = 0.2
MAX_WORDS = 130
#: A unit joins the answer window only if it scores above this (its marginal value).
UNIT_THRESHOLD = 0.1
SECOND_PASSAGE_RATIO = 1.0
OFF_TOPIC = -0.1
#: A unit that opens (within this many characters) with another market than the driver's, and
#: does not name the driver's, falls below OFF_TOPIC.
MARKET_LEAD_CHARS = 24
OTHER_MARKET_PENALTY = 0.15


class UnitSource(Protocol):
    """Where precomputed answer units and their vectors come from (the index's chunk store)."""

    def units(self, chunk_id: str) -> list[str]: ...

    def unit_vectors(self, chunk_id: str) -> Matrix: ...

    def doc_chunks(self, doc_id: str) -> list[Document]: ...


@dataclass
class _Unit:
    position: int
    text: str
    words: int
    similarity: float
    score: float
    adjustment: float


@dataclass
class _Scored:
    rank: int
    passage: Passage
    units: list[_Unit]
    quality: float


class ExtractiveComposer:
    """Quotes the passages; see the module docstring."""

    def __init__(
        self,
        embeddings: Embeddings,
        units: UnitSource | None = None,
        *,
        market_names: dict[str, list[str]] | None = None,
        max_units: int = 4,
    ) -> None:
        self.embeddings = embeddings
        self.source = units
        self.market_names = market_names or {}
        self.max_units = max_units

    def _units_of(self, passage: Passage) -> tuple[list[str], Matrix]:
        if self.source is not None:
            units = self.source.units(passage.chunk_id)
            if units:
                return units, self.source.unit_vectors(passage.chunk_id)
        units = split_units(passage.text)
        if not units:
            return [], np.zeros((0, 1), dtype=np.float32)
        texts = [unit_embedding_text(passage.section, u) for u in units]
        return units, np.asarray(self.embeddings.embed_documents(texts), dtype=np.float32)

    def _candidates(self, passages: list[Passage], signals: JourneySignals) -> list[Passage]:
        """The top retrieved passages plus the other sections of the top documents."""
        chosen = list(passages[:CANDIDATE_PASSAGES])
        if self.source is None:
            return chosen
        seen = {p.chunk_id for p in passages}
        top_docs = list(dict.fromkeys(p.doc_id for p in passages))[:READ_DOCUMENTS]
        for doc_id in top_docs:
            anchor = next(p for p in passages if p.doc_id == doc_id)
            doc_facts = [f for f in anchor.boosts if not f.startswith("app error")]
            for chunk in self.source.doc_chunks(doc_id):
                cid = str(chunk.metadata["chunk_id"])
                if cid in seen:
                    continue
                seen.add(cid)
                facts = [*doc_facts, *(b.fact for b in chunk_boosts(chunk.page_content, signals))]
                chosen.append(_sibling(anchor, chunk, list(dict.fromkeys(facts))))
        return chosen

    def _market_pattern(self, signals: JourneySignals, *, own: bool) -> re.Pattern[str] | None:
        """Names (and codes, such as ``us-ca``) of the driver's market (``own``) or of the others."""
        names = [
            n
            for code, ns in self.market_names.items()
            if (code == signals.market) == own
            for n in (*ns, code)
        ]
        if not names:
            return None
        return re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b", re.I)

    def compose(
        self, question: str, passages: list[Passage], signals: JourneySignals, *, request: HelpRequest | None = None
    ) -> Draft:
        """An answer quoting the passages (empty text when nothing is worth quoting)."""
        if not passages:
            return Draft(text="", cited=[], support=0.0)
        query = np.asarray(self.embeddings.embed_query(question), dtype=np.float32)
        query_terms = set(Bm25Index.tokenize([question])[0])
        wanted = answer_types(question)
        other_markets = self._market_pattern(signals, own=False)
        # an error the app logged (not a notice such as ORD-410 "order cancelled") or one the driver reports
        app_trouble = bool(signals.event_terms or _APP_TROUBLE.search(question))
        own_market = self._market_pattern(signals, own=True) if signals.market else None
        doc_rank = {d: i for i, d in enumerate(dict.fromkeys(p.doc_id for p in passages))}
        retrieved = {p.chunk_id for p in passages}

        scored: list[_Scored] = []
        candidates = self._candidates(passages, signals)
        read = [p.chunk_id for p in candidates]
        for rank, passage in enumerate(candidates):
            texts, vectors = self._units_of(passage)
            if not texts:
                continue
            similarities = vectors @ query
            # A unit shares its article's and section's topic words ("Fast Pay", "Fees").
            context_terms = set(Bm25Index.tokenize([f"{passage.title} {passage.section}"])[0])
            units = []
            for position, (text, sim, terms) in enumerate(
                zip(texts, similarities, Bm25Index.tokenize(texts), strict=True)
            ):
                overlap = len(query_terms & (set(terms) | context_terms)) / len(query_terms) if query_terms else 0.0
                adjustment = _journey_adjustment(text, signals) + answer_type_bonus(text, wanted)
                if other_markets is not None and signals.market and (found := other_markets.search(text)):
                    # A unit that opens with another market ("In California, ...") is about that
                    # market and is left out; one that mentions it later ("$0.99; in Ontario
                    # CA$1.29") states the general rule first and only weakens a little.
                    opens = found.start() <= MARKET_LEAD_CHARS and not (own_market and own_market.search(text))
                    adjustment -= OTHER_MARKET_PENALTY if opens else 0.05
                words = len(text.split())
                if _META.search(text) and words < META_MAX_WORDS:
                    adjustment -= 0.25  # a signpost ("this article explains"), not content
                if words < 6:
                    adjustment -= 0.1
                base = 0.65 * float(sim) + 0.35 * overlap
                units.append(_Unit(position, text, words, float(sim), base + adjustment, adjustment))
            # Journey adjustments only help a section whose unit is about the question at all.
            best_unit = max(u.score if u.score - u.adjustment >= ON_TOPIC_BASE else min(u.score, u.score - u.adjustment) for u in units)
            weight = DOC_RANK_WEIGHTS[min(doc_rank.get(passage.doc_id, 4), len(DOC_RANK_WEIGHTS) - 1)]
            relevance = weight * (1.0 if passage.chunk_id in retrieved else SIBLING_WEIGHT)
            quality = 0.5 * relevance + 0.5 * best_unit
            if passage.position == 0 and passage.section == passage.title:
                quality -= INTRO_PENALTY  # an article's introduction rarely holds the answer
            if other_markets is not None and other_markets.search(passage.section):
                quality -= 0.3  # a section written for another market
            if not app_trouble and _TROUBLESHOOTING.search(passage.section):
                quality -= TROUBLESHOOTING_PENALTY  # "when the app misbehaves", for a policy question
            scored.append(_Scored(rank, passage, units, quality))
        if not scored:
            return Draft(text="", cited=[], support=0.0)

        if logger.isEnabledFor(logging.DEBUG):
            for s in scored:
                best = max(u.score for u in s.units)
                logger.debug("candidate %.3f %s | %s | best unit %.3f", s.quality, s.passage.doc_id, s.passage.section, best)
        main = max(scored, key=lambda s: s.quality)
        window = _window(main.units, self.max_units)
        parts = [(main, window)]
        best_main = max(u.score for u in window)
        # A second quote must come from another section (another part of the same section would repeat it).
        others = [s for s in scored if (s.passage.doc_id, s.passage.section) != (main.passage.doc_id, main.passage.section)]
        extra = max(
            ((s, u) for s in others for u in s.units if u.adjustment > OFF_TOPIC),
            key=lambda pair: pair[1].score,
            default=None,
        )
        words = sum(u.words for u in window)
        if extra is not None and extra[1].score >= SECOND_PASSAGE_RATIO * best_main and words + extra[1].words <= MAX_WORDS + 40:
            parts.append((extra[0], [extra[1]]))

        paragraphs = []
        cited: list[Passage] = []
        for number, (part, units) in enumerate(parts, start=1):
            paragraphs.append(f"{_render([u.text for u in units])} [{number}]")
            cited.append(part.passage)
        lead = _lead_in(signals, cited)
        text = "\n\n".join(paragraphs)
        support = max(u.similarity for _, units in parts for u in units)
        return Draft(text=f"{lead}\n\n{text}" if lead else text, cited=cited, support=support, read=read)


def _sibling(anchor: Passage, chunk: Document, facts: list[str]) -> Passage:
    meta = chunk.metadata
    return Passage(
        chunk_id=str(meta["chunk_id"]),
        doc_id=anchor.doc_id,
        title=anchor.title,
        section=str(meta.get("section", anchor.title)),
        text=chunk.page_content,
        position=int(meta.get("position", 0)),
        score=anchor.score * SIBLING_WEIGHT,
        boosts=facts,
    )


def _window(units: list[_Unit], max_units: int) -> list[_Unit]:
    """The contiguous run of on-topic units, within the word budget, that adds the most value.

    A unit adds ``score - UNIT_THRESHOLD``: weak units at the edges are left out, a weak unit
    between two strong ones stays so the passage still reads as written.
    """
    usable = [u for u in units if u.adjustment > OFF_TOPIC] or units
    best: list[_Unit] = []
    best_value = float("-inf")
    for start in range(len(usable)):
        run: list[_Unit] = []
        words = 0
        blocks = 0
        for unit in usable[start:]:
            # the items of a list count as one unit with their lead-in ("you need:"), so a short
            # list is quoted whole (the word budget still applies)
            continues = bool(run) and _is_item(unit.text) and (_is_item(run[-1].text) or run[-1].text.rstrip().endswith(":"))
            if run and (words + unit.words > MAX_WORDS or (not continues and blocks >= max_units)):
                break
            run.append(unit)
            words += unit.words
            blocks += 0 if continues else 1
            value = sum(u.score - UNIT_THRESHOLD for u in run)
            if value > best_value:
                best, best_value = list(run), value
    return best


def _is_item(text: str) -> bool:
    """True for a list item ("- ...") or a numbered step ("2. ...")."""
    return text.startswith(("- ", "* ")) or re.match(r"\d+[.)]\s", text) is not None


def _mentions(text: str, flag: str) -> bool:
    return re.search(ORDER_WORDS.get(flag, rf"\b{flag}"), text, re.I) is not None


def _journey_adjustment(text: str, signals: JourneySignals) -> float:
    """Raise units about the driver's kind of order or logged error; lower those about another kind."""
    adjustment = 0.0
    flags = signals.order_flags
    if flags:
        if any(_mentions(text, f) for f in flags):
            adjustment += 0.12
        if flags & RESTRICTED and _ORDINARY.search(text):
            adjustment -= 0.15
    if signals.has_order and not flags & RESTRICTED:
        if _ORDINARY.search(text):
            adjustment += 0.1
        elif _RESTRICTED_WORDS.search(text):
            adjustment -= 0.15
    upper = text.upper()
    if any(code in upper for code in signals.error_codes):
        adjustment += 0.15
    return adjustment


def _render(texts: list[str]) -> str:
    """Units as prose: sentences run on, list items and procedures start on their own line."""
    out = ""
    for text in texts:
        block = "\n" in text or text.startswith("- ") or text[:3].rstrip(".) ").isdigit()
        if not out or out.endswith("\n"):
            out += text
        elif block:
            out += "\n" + text
        else:
            out += " " + text
        if block:
            out += "\n"
    return out.strip()


def _lead_in(signals: JourneySignals, cited: list[Passage]) -> str:
    """A short line naming the journey facts the cited passages were chosen for."""
    facts = {fact for p in cited for fact in p.boosts}
    parts = []
    flags = sorted(f for f in signals.order_flags if f"order: {f}" in facts)
    if flags:
        parts.append(f"for an order with {' and '.join(flags)}")
    if signals.market and f"market: {signals.market}" in facts:
        parts.append(f"in market {signals.market}")
    return f"Here is what applies {', '.join(parts)}:" if parts else ""
