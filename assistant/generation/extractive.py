"""The offline default composer: answers by quoting the section of a help article that answers.

The answer unit is the *section* (a heading and its text): help articles are written so that one
section answers one question, and a section quoted as written keeps its lead-ins, conditions and
lists together, so the driver never reads a rule without the sentence that frames it.

1. Candidates are every section of the top retrieved documents and the sections of the
   retrieved passages (:mod:`assistant.generation.sections`).
2. Each (question, section) pair is described by general features (similarities, shared words,
   retrieval rank, the kind of fact asked for, the journey) and scored by a learned model
   (:mod:`assistant.generation.answer_model`): P(this section answers it).
3. The best section is quoted whole, or, when it is long, its best run of blocks (a list always
   with its lead-in), cut only at sentence or list boundaries. A second section is added when the
   model rates it nearly as high (a question that spans two).
4. A second learned model turns how sure the ranking is into the draft's confidence: the
   probability that this answer is right. Every quote is followed by its citation number.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.embeddings import Embeddings

from assistant.generation.answer_model import CONFIDENCE_FEATURES, AnswerModel, load_answer_model
from assistant.generation.base import Draft
from assistant.generation.sections import (
    FEATURES,
    Block,
    Question,
    Section,
    SectionSource,
    blocks_of,
    features,
    inverse_document_frequencies,
    retrieved_scores,
    sections_of,
)
from assistant.ingestion.chunking import unit_embedding_text
from assistant.ingestion.units import split_units
from assistant.request import HelpRequest
from assistant.retrieval.base import Passage
from assistant.retrieval.journey import JourneySignals
from assistant.retrieval.questions import GapIndex, QuestionIndex, normalised

if TYPE_CHECKING:
    from assistant.retrieval.multilingual import Answerability, CrossLingual

Matrix = np.ndarray[Any, np.dtype[Any]]
logger = logging.getLogger(__name__)

#: The composer reads every section of this many top documents, besides the retrieved passages.
READ_DOCUMENTS = 3
#: A section up to this many words is quoted whole; a longer one is cut to its best run of blocks.
MAX_SECTION_WORDS = 160
#: Words of the whole answer, two sections included.
MAX_ANSWER_WORDS = 240
#: A block joins the quoted run of a long section only if it is this similar to the question.
BLOCK_THRESHOLD = 0.15

_FEATURE_INDEX = {name: i for i, name in enumerate(FEATURES)}


@dataclass
class Candidate:
    """A section with its features, the model's probability that it answers the question and
    its rank score among the question's candidates (higher first)."""

    section: Section
    features: list[float]
    probability: float
    passage: Passage
    score: float = math.nan  # NaN: ranked by ``probability``

    @property
    def order(self) -> float:
        """What candidates are sorted by: ``score``, or ``probability`` without one."""
        return self.probability if self.score != self.score else self.score

    def feature(self, name: str) -> float:
        return self.features[_FEATURE_INDEX[name]]


@dataclass
class Ranking:
    """Every candidate section for one question, best first, and the confidence features."""

    question: Question
    candidates: list[Candidate]
    #: Share of the question's terms the corpus never uses.
    unknown_words: float = 0.0
    #: Best similarity between the question and each article's driver questions; ``None`` when the
    #: corpus lists none (``driver_question`` then reads as NaN: the answer model's average).
    driver_questions: dict[str, float] | None = field(default_factory=dict)
    #: Best similarity between the question and a question the help centre does not answer;
    #: ``None`` when the corpus lists none (its ``gaps.yaml``): the gap margin then reads as NaN,
    #: which the answer model takes for its average (no evidence either way).
    gap_question: float | None = None
    #: For a message in another language (searched through English pivots): its
    #: ``driver_question`` and ``gap_margin`` measured by the multilingual model, which the
    #: answer model's ``answerable_rendered`` reads; ``None`` for a question asked in English.
    rendered: dict[str, float] | None = None

    def confidence_features(self, passages: list[Passage]) -> list[float]:
        """The :data:`~assistant.generation.answer_model.CONFIDENCE_FEATURES` of the best
        candidate, in that order."""
        values = self.confidence_values(passages)
        return [values[name] for name in CONFIDENCE_FEATURES]

    def confidence_values(self, passages: list[Passage]) -> dict[str, float]:
        """The same by name (an answer model fitted on fewer features reads only those)."""
        if not self.candidates or not passages:
            return dict.fromkeys(CONFIDENCE_FEATURES, 0.0) | {
                "driver_question": math.nan if self.driver_questions is None else 0.0,
                "gap_margin": math.nan if self.gap_question is None else 0.0,
            }
        best = self.candidates[0]
        runner_up = self.candidates[1].probability if len(self.candidates) > 1 else 0.0
        asked = math.nan if self.driver_questions is None else max(self.driver_questions.values(), default=0.0)
        # how close the question is to what the corpus answers: a driver question or the quoted section's best sentence
        answered = best.feature("unit_max") if math.isnan(asked) else max(asked, best.feature("unit_max"))
        top = passages[0]
        values = [
            best.probability,
            best.probability - runner_up,
            max((p.dense_similarity or 0.0) for p in passages),
            1.0 if top.dense_similarity is not None and top.bm25_score is not None else 0.0,
            best.feature("unit_max"),
            best.feature("keywords"),
            best.feature("answer_type_miss"),
            math.log1p(len(self.question.text.split())),
            best.feature("keywords_idf"),
            self.unknown_words,
            asked,
            math.nan if self.gap_question is None else self.gap_question - answered,
            max(c.feature("error_code") for c in self.candidates),
        ]
        return dict(zip(CONFIDENCE_FEATURES, values, strict=True))


#: The section features a message in another language reads from the multilingual model
#: (:func:`measured_across_languages`), in the order of ``CrossLingual.unit_similarities``.
CROSS_LINGUAL_FEATURES = ("unit_max", "unit_top2", "centroid")


def measured_across_languages(rows: list[list[float]], measured: Sequence[tuple[float, ...] | None]) -> None:
    """Replace, in place, the :data:`CROSS_LINGUAL_FEATURES` of a message in another language's
    candidate sections (``rows``) by the same similarities measured on the driver's own words in
    the multilingual model's space (``measured``, one per row, ``None`` where none of a section's
    sentences was measured).

    The English rendering of such a message is the help centre's closest sentences, so how close
    it is to a section's sentences mostly says which sentences were picked, not what the driver
    asked. The multilingual model's similarities keep the driver's question, but on their own
    scale (they crowd between 0.8 and 0.9), which the section model was not fitted on. So each
    feature keeps its mean and spread over the candidates, as the rendering measured them, and
    takes its order from the multilingual model: a candidate ``z`` spreads above the mean in
    that model stands ``z`` spreads above the rendering's mean. Fewer than three measured
    candidates, or no spread, leave the rendering's values."""
    pairs = [(i, m) for i, m in enumerate(measured) if m is not None]
    if len(pairs) < 3:
        return
    kept = [i for i, _ in pairs]
    for j, name in enumerate(CROSS_LINGUAL_FEATURES):
        column = _FEATURE_INDEX[name]
        rendered = np.asarray([rows[i][column] for i in kept], dtype=np.float64)
        own = np.asarray([m[j] for _, m in pairs], dtype=np.float64)
        spread = float(own.std())
        if spread <= 1e-9:
            continue
        mapped = rendered.mean() + rendered.std() * (own - own.mean()) / spread
        for i, value in zip(kept, mapped.tolist(), strict=True):
            rows[i][column] = value


def heading_text(section: Section) -> str:
    """What the composer embeds for a section's heading: its title and heading."""
    return f"{section.title} - {section.heading}" if section.heading != section.title else section.title


def heading_texts(
    source: SectionSource,
) -> tuple[dict[str, list[Section]], list[tuple[str, str]], list[str], list[tuple[str, str]]]:
    """Every document's sections, their keys and the texts the composer embeds for them (the
    section's title and heading, one per section, and each document's title)."""
    doc_ids = sorted({str(c.metadata["doc_id"]) for c in source.chunks.values()})
    by_doc = {doc_id: sections_of(source, doc_id) for doc_id in doc_ids}
    keys = [s.key for sections in by_doc.values() for s in sections]
    texts = [heading_text(s) for sections in by_doc.values() for s in sections]
    titles = [(doc_id, sections[0].title) for doc_id, sections in by_doc.items() if sections]
    return by_doc, keys, texts, titles


class ExtractiveComposer:
    """Quotes the section that answers; see the module docstring."""

    def __init__(
        self,
        embeddings: Embeddings,
        units: SectionSource | None = None,
        *,
        market_names: dict[str, list[str]] | None = None,
        questions: QuestionIndex | None = None,
        gaps: GapIndex | None = None,
        model: AnswerModel | None = None,
        answerability: Callable[[str], Answerability] | None = None,
        cross_lingual: Callable[[str], CrossLingual] | None = None,
    ) -> None:
        """``units`` is the index's chunk store (sections and unit vectors); without it the
        composer reads only the passages it is given and embeds their units itself.
        ``questions`` are the corpus's driver questions and ``gaps`` the questions it does not
        answer (features when present). ``model`` replaces the shipped answer model.
        ``answerability`` measures a message in another language against both kinds of question
        in the multilingual model's space (:meth:`assistant.retrieval.hybrid.HybridRetriever.answerability`);
        ``cross_lingual`` measures it against each section's sentences in that space
        (:meth:`~assistant.retrieval.hybrid.HybridRetriever.cross_lingual`, see :func:`measured_across_languages`)."""
        self.answerability = answerability
        self.cross_lingual = cross_lingual
        self.embeddings = embeddings
        self.source = units
        self.questions = questions
        self.gaps = gaps
        self.market_names = market_names or {}
        self.model = model or load_answer_model()
        self.idf = inverse_document_frequencies([c.page_content for c in units.chunks.values()]) if units else {}
        self._rare = max(self.idf.values(), default=1.0)  # the weight of a term the corpus never uses
        self._sections: dict[str, list[Section]] = {}
        self._headings: dict[tuple[str, str], Matrix] = {}
        self._titles: dict[str, Matrix] = {}

    # -- candidates ---------------------------------------------------------------------------

    def _doc_sections(self, doc_id: str) -> list[Section]:
        """The sections of one document, built on its first use (a request reads a handful of
        documents, so an index of 100k chunks does not hold every section in memory), with their
        heading and title vectors from the index (computed at ingest; embedded here only for an
        index built without them)."""
        if self.source is None:
            return []
        sections = self._sections.get(doc_id)
        if sections is None:
            sections = sections_of(self.source, doc_id)
            if sections:
                known: dict[str, Matrix] = getattr(self.source, "heading_vectors", {})
                texts = [heading_text(s) for s in sections] + [sections[0].title]
                missing = list(dict.fromkeys(t for t in texts if t not in known))
                fresh = dict(zip(missing, self.embeddings.embed_documents(missing), strict=True)) if missing else {}
                vectors = normalised(np.asarray([known[t] if t in known else fresh[t] for t in texts], dtype=np.float32))
                for section, vector in zip(sections, vectors, strict=False):
                    self._headings[section.key] = vector
                self._titles[doc_id] = vectors[-1]
            self._sections[doc_id] = sections
        return sections

    def _passage_section(self, passage: Passage) -> Section:
        """A section made of one passage alone (when the composer has no chunk store)."""
        units = split_units(passage.text)
        texts = [unit_embedding_text(passage.section, u) for u in units]
        vectors = normalised(np.asarray(self.embeddings.embed_documents(texts), dtype=np.float32)) if texts else np.zeros((0, 1))
        return Section(
            doc_id=passage.doc_id, title=passage.title, heading=passage.section, position=passage.position,
            chunk_ids=[passage.chunk_id], units=units, vectors=vectors, blocks=blocks_of(units),
        )

    def _candidate_sections(self, passages: list[Passage]) -> list[tuple[Section, Passage]]:
        """Sections of the top documents and of every retrieved passage, each with the passage it
        is cited through (the retrieved chunk of it, or its own first chunk)."""
        out: list[tuple[Section, Passage]] = []
        seen: set[tuple[str, str]] = set()
        top_docs = list(dict.fromkeys(p.doc_id for p in passages))[:READ_DOCUMENTS]
        docs = list(dict.fromkeys([*top_docs, *(p.doc_id for p in passages)]))
        for doc_id in docs:
            anchor = next(p for p in passages if p.doc_id == doc_id)
            retrieved = {p.section: p for p in passages if p.doc_id == doc_id}
            sections = self._doc_sections(doc_id)
            if not sections:  # no chunk store: the retrieved passages are the sections
                for passage in retrieved.values():
                    if (doc_id, passage.section) not in seen:
                        seen.add((doc_id, passage.section))
                        out.append((self._passage_section(passage), passage))
                continue
            for section in sections:
                if section.key in seen or (doc_id not in top_docs and section.heading not in retrieved):
                    continue
                seen.add(section.key)
                out.append((section, retrieved.get(section.heading) or _cite(anchor, section, self.source)))
        return out

    # -- ranking ------------------------------------------------------------------------------

    def rank(
        self, question: str, passages: list[Passage], signals: JourneySignals, *, rendered_from: str | None = None
    ) -> Ranking:
        """Every candidate section for ``question``, scored by the section model, best first;
        ``rendered_from``: the driver's message in another language that ``question`` renders in
        English (its answerability is then measured on the message itself)."""
        vector = normalised(np.asarray([self.embeddings.embed_query(question)], dtype=np.float32))[0]
        q = Question.of(question, vector, signals, self.market_names)
        doc_rank = {d: i for i, d in enumerate(dict.fromkeys(p.doc_id for p in passages))}
        retrieved = retrieved_scores(passages)
        questions = self.questions if self.questions is not None and len(self.questions) else None
        by_chunk, by_doc = questions.best_similarities(vector) if questions is not None else ({}, {})
        scored = [
            (section, passage, features(
                q, section, heading_vector=self._headings.get(section.key), title_vector=self._titles.get(section.doc_id),
                doc_rank=doc_rank.get(section.doc_id, len(doc_rank)), retrieved_score=retrieved.get(section.key, 0.0),
                idf=self.idf, rare=self._rare,
                question_similarity=max((by_chunk.get(c, 0.0) for c in section.chunk_ids), default=0.0),
                doc_question_similarity=by_doc.get(section.doc_id, 0.0),
            ))
            for section, passage in self._candidate_sections(passages)
        ]
        if rendered_from is not None and self.cross_lingual is not None and scored:
            view = self.cross_lingual(rendered_from)
            measured = [view.unit_similarities(section.doc_id, section.units) for section, _, _ in scored]
            measured_across_languages([values for _, _, values in scored], measured)
        candidates = []
        for section, passage, values in scored:
            probability = self.model.section_probability(values)
            candidates.append(Candidate(section, values, probability, passage, self.model.section_score(values, probability)))
        candidates.sort(key=lambda c: (-c.order, c.section.doc_id, c.section.position))
        if logger.isEnabledFor(logging.DEBUG):
            for c in candidates[:6]:
                logger.debug("section %.3f %s | %s", c.probability, c.section.doc_id, c.section.heading)
        unknown = len([t for t in q.terms if t not in self.idf]) / len(q.terms) if q.terms and self.idf else 0.0
        gap = self.gaps.best_similarity(vector) if self.gaps is not None and len(self.gaps) else None
        rendered = (
            self.answerability(rendered_from).values() if rendered_from is not None and self.answerability is not None else None
        )
        return Ranking(
            q, candidates, unknown_words=unknown, driver_questions=by_doc if questions is not None else None,
            gap_question=gap, rendered=rendered,
        )

    # -- the answer ---------------------------------------------------------------------------

    def compose(
        self, question: str, passages: list[Passage], signals: JourneySignals, *, request: HelpRequest | None = None
    ) -> Draft:
        """An answer quoting the section that answers (empty text when nothing is worth quoting);
        ``draft.confidence`` is the confidence model's probability that it is right."""
        if not passages:
            return Draft(text="", cited=[], support=0.0)
        # the question differs from the driver's message only when it renders a message in
        # another language in English (the help centre's own sentences)
        rendered_from = request.message if request is not None and request.message != question else None
        return self.draft(self.rank(question, passages, signals, rendered_from=rendered_from), passages, signals)

    def draft(self, ranking: Ranking, passages: list[Passage], signals: JourneySignals) -> Draft:
        """The answer for a :meth:`rank` ing: the best section, and a second one the model rates
        nearly as high."""
        if not ranking.candidates:
            return Draft(text="", cited=[], support=0.0)
        best = ranking.candidates[0]
        parts = [(best, self._quote(best.section, ranking.question, MAX_SECTION_WORDS))]
        used = sum(len(u.split()) for u in parts[0][1])
        for other in ranking.candidates[1:2]:
            if other.probability < self.model.second_section_ratio * best.probability:
                break
            units = self._quote(other.section, ranking.question, MAX_ANSWER_WORDS - used)
            if units:
                parts.append((other, units))
        paragraphs = []
        cited: list[Passage] = []
        for number, (candidate, units) in enumerate(parts, start=1):
            paragraphs.append(_paragraph(candidate.section, units, number))
            cited.append(candidate.passage)
        read = list(dict.fromkeys(cid for c in ranking.candidates for cid in c.section.chunk_ids))
        lead = _lead_in(signals, cited)
        text = "\n\n".join(paragraphs)
        return Draft(
            text=f"{lead}\n\n{text}" if lead else text,
            cited=cited,
            support=best.feature("unit_max"),
            read=read,
            confidence=round(self.model.confidence_of(ranking.confidence_values(passages), ranking.rendered), 4),
            min_confidence=self.model.threshold,
        )

    def quote_sections(
        self, chosen: Sequence[tuple[str, str]], question: str, signals: JourneySignals, passages: Sequence[Passage] = ()
    ) -> tuple[str, list[Passage]] | None:
        """The sections that hold the chunks of ``chosen`` (document, chunk), each once, quoted
        for ``question`` as an answer quotes its sections ("Heading:\ntext [n]", the first within
        the best section's words, the rest within the answer's), with the passages they are
        cited through (scored as their document's first retrieved passage in ``passages``);
        ``None`` when the index has none of them. For sections chosen by something else than
        the section model (the steps for a driver's safety situation)."""
        sections: list[Section] = []
        for doc_id, chunk_id in chosen:
            section = next((s for s in self._doc_sections(doc_id) if chunk_id in s.chunk_ids), None)
            if section is not None and all(section.key != s.key for s in sections):
                sections.append(section)
        if not sections:
            return None
        vector = normalised(np.asarray([self.embeddings.embed_query(question)], dtype=np.float32))[0]
        q = Question.of(question, vector, signals, self.market_names)
        paragraphs: list[str] = []
        cited: list[Passage] = []
        used = 0
        for section in sections:
            budget = MAX_SECTION_WORDS if not paragraphs else MAX_ANSWER_WORDS - used
            units = self._quote(section, q, budget) if budget > 0 else []
            if units:
                used += sum(len(u.split()) for u in units)
                anchor = next((p for p in passages if p.doc_id == section.doc_id), None)
                cited.append(_cite(anchor, section, self.source))
                paragraphs.append(_paragraph(section, units, len(cited)))
        return ("\n\n".join(paragraphs), cited) if paragraphs else None

    def excerpt(self, section: Section, question: Question, budget: int) -> str:
        """What this composer quotes of ``section`` for ``question`` in at most ``budget`` words
        (whole sentences and list items, as an answer quotes them), rendered as prose."""
        return _render(self._quote(section, question, budget))

    def quotable(self, section: Section, question: Question) -> str:
        """Everything of ``section`` this composer would quote for ``question`` (no word budget)."""
        return "\n".join(self._quote(section, question, budget=10**6))

    def _quote(self, section: Section, question: Question, budget: int) -> list[str]:
        """The section's units to quote: all of them when they fit ``budget`` words, else the
        run of whole blocks most similar to the question (a long list keeps its lead-in). A unit
        about another market than the driver's is left out: a sentence, a list item, or a list
        whose lead-in is (the cut falls at their boundaries, never inside a sentence), and so are
        a table row's cells and a labelled aside for another market (:meth:`Question.for_market`)."""
        sims = section.vectors @ question.vector if section.vectors.size else np.zeros(len(section.units))
        # each kept block with its similarity to the question (its best unit, read before filtering)
        blocks = [
            (
                Block(units=[question.for_market(u) for u in (b.units[0], *(u for u in b.units[1:] if not question.about_other_market(u)))],
                      start=b.start),
                float(max(sims[b.start : b.start + len(b.units)])),
            )
            for b in section.blocks
            if not question.about_other_market(b.units[0])
        ]
        if sum(b.words for b, _ in blocks) <= budget:
            return [u for b, _ in blocks for u in b.units]
        best: list[Block] = []
        best_value = float("-inf")
        for start in range(len(blocks)):
            run: list[Block] = []
            words = 0
            value = 0.0
            for block, similarity in blocks[start:]:
                if run and words + block.words > budget:
                    break
                run.append(block)
                words += block.words
                value += similarity - BLOCK_THRESHOLD
                if value > best_value:
                    best, best_value = list(run), value
        units = [u for block in best for u in block.units]
        if sum(len(u.split()) for u in units) > budget:  # one block longer than the budget: cut its list
            kept: list[str] = []
            for unit in units:
                if kept and sum(len(u.split()) for u in kept) + len(unit.split()) > budget:
                    break
                kept.append(unit)
            units = kept
        return units


def _paragraph(section: Section, units: list[str], number: int) -> str:
    """How an answer quotes a section: "Heading:", its units, and the citation number."""
    return f"{section.heading}:\n{_render(units)} [{number}]"


def _cite(anchor: Passage | None, section: Section, source: SectionSource | None) -> Passage:
    """The passage a section found by reading its document is cited through: its first chunk
    (with the score and journey facts of ``anchor``, the retrieved passage of its document)."""
    chunk = source.chunks.get(section.chunk_ids[0]) if source else None
    return Passage(
        chunk_id=section.chunk_ids[0],
        doc_id=section.doc_id,
        title=section.title,
        section=section.heading,
        text=chunk.page_content if chunk is not None else "\n".join(section.units),
        position=section.position,
        score=anchor.score if anchor is not None else 0.0,
        boosts=[f for f in anchor.boosts if not f.startswith("app error")] if anchor is not None else [],
    )


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
