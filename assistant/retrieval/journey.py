"""How the driver's journey shapes retrieval: which documents apply, and which rank higher.

Filters (hard):
  * superseded documents never apply;
  * in a known market, documents for other markets do not apply, and a general document gives
    way to its market variant (``variant_of``) for that market;
  * with no market known, market variants of a general document are left out (the general rule
    is the safe answer) while market-only documents stay.

Market named in the message: when the driver names a place that belongs to exactly one market
("do i pay hst in ottawa?"), that market is the one the question is about, whatever the journey
says; :func:`market_named_in` finds it from the corpus's ``markets.yaml`` names.

Boosts (multiplicative, on the fused score): the driver's stage, the order's type or flags
(alcohol, pharmacy, batched, shopping), a rule written for the driver's market, and error codes
the app just logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache

from assistant.request import EventType, JourneyContext
from assistant.retrieval.manifest import DocEntry, IndexManifest

STAGE_BOOST = 0.15
ORDER_DOC_BOOST = 0.45
ORDER_CHUNK_BOOST = 0.25
MARKET_BOOST = 0.25
EVENT_CODE_BOOST = 0.6
#: How many of the most recent events count as "recent".
RECENT_EVENTS = 8

# Words a chunk uses for each order flag (matched as word prefixes, case-insensitive).
_FLAG_WORDS = {
    "alcohol": ("alcohol", "age-restricted", "beer", "wine", "liquor"),
    "pharmacy": ("pharmac", "prescription", "medication"),
    "batched": ("batch", "stacked"),
    "shopping": ("shopping", "shop", "substitut", "scan"),
}


@dataclass(frozen=True)
class Boost:
    """A multiplier and the journey fact that earned it."""

    factor: float
    fact: str


@dataclass
class JourneySignals:
    """The parts of a journey that ranking uses, extracted once per request."""

    market: str | None = None
    stage: str | None = None
    order_flags: frozenset[str] = frozenset()
    has_order: bool = False
    error_codes: list[str] = field(default_factory=list)
    event_terms: list[str] = field(default_factory=list)
    #: True when ``market`` comes from a place the driver named, not from the journey.
    market_from_message: bool = False

    @classmethod
    def from_journey(cls, journey: JourneyContext | None) -> JourneySignals:
        """Signals of ``journey`` (empty for ``None``)."""
        if journey is None:
            return cls()
        recent = journey.events[-RECENT_EVENTS:]
        codes: list[str] = []
        terms: list[str] = []
        for event in recent:
            if event.code and event.code.upper() not in codes:
                codes.append(event.code.upper())
            if event.type in (EventType.ERROR, EventType.API) and event.name:
                terms.append(re.sub(r"[_\-.]+", " ", event.name))
        return cls(
            market=journey.market,
            stage=journey.stage.value if journey.stage else None,
            order_flags=journey.order_flags,
            has_order=journey.order is not None,
            error_codes=codes,
            event_terms=terms,
        )

    def with_market_named_in(self, text: str, market_names: dict[str, list[str]]) -> JourneySignals:
        """These signals, with the market the driver names in ``text`` (if exactly one)."""
        named = market_named_in(text, market_names)
        if named is None or named == self.market:
            return self
        return replace(self, market=named, market_from_message=True)

    def context_phrase(self) -> str:
        """A short description of the order, appended to the question for a second dense query."""
        if not self.order_flags:
            return ""
        return " ".join(f"{flag} order" for flag in sorted(self.order_flags))

    def query_terms(self) -> str:
        """Extra keyword-search terms: the recent error codes and error event names."""
        return " ".join([*self.error_codes, *self.event_terms])


def market_named_in(text: str, market_names: dict[str, list[str]]) -> str | None:
    """The market whose name or place appears in ``text``; ``None`` when none or several do.

    Lines are read in order and the first line that names exactly one market decides, so a query
    built as "current message, then the earlier turn" follows the market the driver names now.
    """
    patterns = [(code, _any_name(tuple(names))) for code, names in market_names.items() if names]
    for line in text.splitlines():
        found = {code for code, pattern in patterns if pattern.search(line)}
        if len(found) == 1:
            return found.pop()
    return None


def allowed_documents(manifest: IndexManifest, signals: JourneySignals) -> list[str]:
    """Ids of the documents that apply to this driver (see the module docstring)."""
    superseded = manifest.superseded_ids
    docs = {doc_id: e for doc_id, e in manifest.documents.items() if doc_id not in superseded}
    market = signals.market
    if market is None:
        return sorted(d for d, e in docs.items() if not (e.variant_of and e.variant_of in docs))
    in_market = {d: e for d, e in docs.items() if e.is_general or market in e.markets}
    replaced = {e.variant_of for e in in_market.values() if e.variant_of and not e.is_general}
    return sorted(d for d in in_market if d not in replaced)


@lru_cache(maxsize=1024)
def _any_name(names: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern for any of a market's names, as whole words."""
    return re.compile("|".join(rf"(?<!\w){re.escape(name)}(?!\w)" for name in names), re.IGNORECASE)


@lru_cache(maxsize=8192)
def _has_word(text: str, stems: tuple[str, ...]) -> bool:
    """Whether a word of ``text`` starts with one of ``stems`` (cached: a request scores the same
    candidate chunks for the same order flags as the requests before it)."""
    return _word_start(stems).search(text) is not None


@lru_cache(maxsize=256)
def _word_start(stems: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(rf"\b{re.escape(stem)}" for stem in stems), re.IGNORECASE)


def doc_boosts(entry: DocEntry, signals: JourneySignals) -> list[Boost]:
    """Document-level boosts for one document."""
    boosts: list[Boost] = []
    if signals.stage and any(s.value == signals.stage for s in entry.journey_stages):
        boosts.append(Boost(STAGE_BOOST, f"stage: {signals.stage}"))
    for flag in sorted(signals.order_flags):
        if any(tag == flag or tag.startswith(f"{flag}-") or tag.startswith(flag) for tag in entry.tags):
            boosts.append(Boost(ORDER_DOC_BOOST, f"order: {flag}"))
    if signals.market and not entry.is_general and signals.market in entry.markets:
        boosts.append(Boost(MARKET_BOOST, f"market: {signals.market}"))
    return boosts


def chunk_boosts(text: str, signals: JourneySignals) -> list[Boost]:
    """Chunk-level boosts: the chunk talks about the order's kind or the logged error code."""
    boosts: list[Boost] = []
    for flag in sorted(signals.order_flags):
        words = _FLAG_WORDS.get(flag, (flag,))
        if _has_word(text, words):
            boosts.append(Boost(ORDER_CHUNK_BOOST, f"order: {flag}"))
    upper = text.upper() if signals.error_codes else ""
    for code in signals.error_codes:
        if code in upper:
            boosts.append(Boost(EVENT_CODE_BOOST, f"app error: {code}"))
    return boosts
