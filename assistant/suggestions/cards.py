"""Help cards: help shown before the driver asks, for the friction their journey shows.

:func:`~assistant.suggestions.friction.detect` finds the friction; each friction's query is then
answered like a driver's question (the same retrieval, journey filters and section choice as
:meth:`assistant.Assistant.answer`), and the card quotes the chosen section. An open incident
matching the journey's failures comes first, with the lead's note and workaround. A calm journey
gets no card, and a card the driver dismissed is not shown again.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from assistant.generation.extractive import Candidate, ExtractiveComposer
from assistant.guardrails.defects import IncidentLookup, LiveIncident
from assistant.guardrails.pii import redact
from assistant.request import JourneyContext
from assistant.response import Citation
from assistant.retrieval.base import Retriever
from assistant.retrieval.journey import JourneySignals
from assistant.suggestions.friction import Friction, detect
from assistant.suggestions.rules import FrictionRules

_SLUG = re.compile(r"[^a-z0-9]+")


class HelpCard(BaseModel):
    """One piece of help shown before the driver asks.

    ``id`` is stable for the same friction (rule and what it is about), so a dismissed card stays
    dismissed: pass it to :meth:`assistant.Assistant.dismiss`.
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Stable id of the card: its rule and what it is about ('error_code:upl-500').")
    kind: str = Field(description="The friction rule that raised it, or 'incident'.")
    title: str
    body: str = Field(description="A short quote from the corpus (or the incident's note and workaround).")
    citations: list[Citation] = Field(default_factory=list)
    why: str = Field(description="The friction that triggered the card, in the driver's terms.")
    incident_id: int | None = Field(None, description="The open incident the card is about, if any.")


def card_id(kind: str, key: str) -> str:
    """The id of the card of rule ``kind`` about ``key`` (just ``kind`` when it is about nothing more)."""
    slug = _SLUG.sub("-", key.lower()).strip("-")[:80]
    return f"{kind}:{slug}" if slug else kind


class Suggester:
    """Turns a journey into help cards; see the module docstring."""

    def __init__(
        self,
        rules: FrictionRules,
        retriever: Retriever,
        composer: ExtractiveComposer,
        *,
        top_k: int = 8,
        incidents: IncidentLookup | None = None,
        use_journey: bool = True,
    ) -> None:
        self.rules = rules
        self.retriever = retriever
        self.composer = composer
        self.top_k = top_k
        self.incidents = incidents
        self.use_journey = use_journey

    def suggest(
        self,
        journey: JourneyContext | None,
        *,
        dismissed: frozenset[str] = frozenset(),
        limit: int | None = None,
        now: datetime | None = None,
    ) -> list[HelpCard]:
        """Up to ``limit`` (default ``rules.max_cards``) cards for ``journey``, best first; none
        for a calm journey. Cards whose id is in ``dismissed`` are left out; ``now`` is the
        journey's time (see :func:`~assistant.suggestions.friction.journey_time`)."""
        limit = self.rules.max_cards if limit is None else limit
        if journey is None or limit <= 0:
            return []
        frictions = detect(journey, self.rules, now=now)
        if not frictions:
            return []
        cards: list[HelpCard] = []
        sections: set[tuple[str, str]] = set()
        incident_card = self._incident_card(journey, frictions, dismissed, sections)
        if incident_card is not None:
            cards.append(incident_card)
        seconds: list[HelpCard] = []
        for friction in frictions:
            if len(cards) >= limit:
                break
            cid = card_id(friction.rule.id, friction.key)
            if cid in dismissed or any(c.id == cid for c in cards):
                continue
            made = self._cards(cid, friction, journey, sections)
            if made:
                cards.append(made[0])
                seconds.extend(made[1:])
        # slots left: the section each friction's answer would quote second, as an answer would
        for card in seconds:
            if len(cards) >= limit:
                break
            if card.id not in dismissed and (card.citations[0].doc_id, card.citations[0].section) not in sections:
                sections.add((card.citations[0].doc_id, card.citations[0].section))
                cards.append(card)
        return cards[:limit]

    # -- one card -------------------------------------------------------------------------------

    def _ranked(self, friction: Friction, journey: JourneyContext, taken: set[tuple[str, str]]) -> list[tuple[Candidate, str]]:
        """The sections for the friction's query that no earlier card quotes, with their quotes:
        the best, and the runner-up when the section model rates it nearly as high (from another
        document, the same rule as an answer's second section)."""
        query = redact(friction.render(friction.rule.query)).text
        retrieval = self.retriever.retrieve(query, k=self.top_k, journey=journey if self.use_journey else None)
        if not retrieval.passages:
            return []
        signals = JourneySignals.from_journey(journey) if self.use_journey else JourneySignals()
        ranking = self.composer.rank(query, retrieval.passages, signals)
        found: list[tuple[Candidate, str]] = []
        for candidate in ranking.candidates:
            if candidate.section.key in taken:
                continue
            if found:
                best = found[0][0]
                if candidate.probability < self.composer.model.second_section_ratio * best.probability:
                    break
                if candidate.section.doc_id == best.section.doc_id:
                    continue
            body = self.composer.excerpt(candidate.section, ranking.question, self.rules.card_words)
            if body:
                found.append((candidate, body))
                if len(found) == 2:
                    break
        return found

    def _cards(self, cid: str, friction: Friction, journey: JourneyContext, taken: set[tuple[str, str]]) -> list[HelpCard]:
        """The friction's card, and its runner-up (see :meth:`_ranked`), which only fills a free slot."""
        cards = []
        for number, (candidate, body) in enumerate(self._ranked(friction, journey, taken)):
            if number == 0:
                taken.add(candidate.section.key)
            title = friction.render(friction.rule.title) if friction.rule.title and number == 0 else candidate.section.heading
            cards.append(HelpCard(
                id=cid if number == 0 else f"{cid}+{candidate.section.doc_id}", kind=friction.rule.id, title=title, body=body,
                citations=[_citation(candidate)], why=redact(friction.render(friction.rule.why)).text,
            ))
        return cards

    def _incident_card(
        self, journey: JourneyContext, frictions: list[Friction], dismissed: frozenset[str], taken: set[tuple[str, str]]
    ) -> HelpCard | None:
        if self.incidents is None:
            return None
        for friction in frictions:
            if not friction.codes and not friction.endpoints:
                continue
            incident = self.incidents.match(codes=set(friction.codes), endpoints=set(friction.endpoints), message="")
            if incident is None or card_id("incident", str(incident.id)) in dismissed:
                continue
            return self._for_incident(incident, friction, journey, taken)
        return None

    def _for_incident(
        self, incident: LiveIncident, friction: Friction, journey: JourneyContext, taken: set[tuple[str, str]]
    ) -> HelpCard:
        spec = self.rules.incident
        parts = [incident.note or spec.message]
        citations: list[Citation] = []
        if incident.workaround:
            parts.append(incident.workaround)
        else:  # the help centre's passage for the friction is the workaround
            found = self._ranked(friction, journey, taken)
            if found:
                candidate, body = found[0]
                taken.add(candidate.section.key)
                parts.append(body)
                citations.append(_citation(candidate))
        return HelpCard(
            id=card_id("incident", str(incident.id)), kind="incident", title=friction.render(spec.title),
            body="\n\n".join(parts), citations=citations, why=redact(friction.render(spec.why)).text,
            incident_id=incident.id,
        )


def _citation(candidate: Candidate) -> Citation:
    p = candidate.passage
    return Citation(doc_id=p.doc_id, title=p.title, section=candidate.section.heading, chunk_id=p.chunk_id, score=round(p.score, 4))
