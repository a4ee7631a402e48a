from datetime import UTC, date, datetime

from assistant import JourneyContext
from assistant.retrieval.journey import (
    JourneySignals,
    allowed_documents,
    chunk_boosts,
    doc_boosts,
    market_named_in,
)
from assistant.retrieval.manifest import DocEntry, IndexManifest


def _entry(markets: list[str], *, variant_of: str | None = None, supersedes: list[str] | None = None, tags=None, stages=None) -> DocEntry:
    return DocEntry(
        path="x.md", sha256="0", title="t", version=1, effective_date=date(2025, 1, 1),
        journey_stages=stages or [], markets=markets, tags=tags or [], supersedes=supersedes or [],
        variant_of=variant_of, chunk_ids=[],
    )


MANIFEST = IndexManifest(
    generation=1, collection="c-g1", store_dir="store-g1", embedding_model="m", dimension=3, chunker="x",
    built_at=datetime.now(UTC), corpus_dir=".",
    documents={
        "payouts": _entry(["all"]),
        "payouts-north": _entry(["north"], variant_of="payouts"),
        "north-bonus": _entry(["north"]),
        "south-only": _entry(["south"]),
        "cashout-old": _entry(["all"]),
        "cashout": _entry(["all"], supersedes=["cashout-old"]),
    },
)


def _allowed(journey: JourneyContext | None, use_journey: bool = True) -> set[str]:
    signals = JourneySignals.from_journey(journey) if use_journey else JourneySignals()
    return set(allowed_documents(MANIFEST, signals))


def test_market_variant_replaces_the_general_document_in_its_market():
    allowed = _allowed(JourneyContext(market="north"))
    assert "payouts-north" in allowed and "payouts" not in allowed
    assert "north-bonus" in allowed and "south-only" not in allowed


def test_other_markets_keep_the_general_rule():
    allowed = _allowed(JourneyContext(market="south"))
    assert "payouts" in allowed and "payouts-north" not in allowed and "south-only" in allowed


def test_unknown_market_uses_general_rules_but_keeps_market_only_documents():
    allowed = _allowed(None)
    assert "payouts" in allowed and "payouts-north" not in allowed
    assert {"north-bonus", "south-only"} <= allowed


def test_superseded_documents_are_always_excluded():
    for journey in (None, JourneyContext(market="north")):
        allowed = _allowed(journey)
        assert "cashout" in allowed and "cashout-old" not in allowed


def test_journey_boosts_name_their_facts():
    journey = JourneyContext.model_validate(
        {"stage": "at_dropoff", "market": "north", "order": {"type": "alcohol"},
         "events": [{"type": "error", "code": "loc-203", "name": "dropoff_failed"}]}
    )
    signals = JourneySignals.from_journey(journey)
    facts = [b.fact for b in doc_boosts(_entry(["north"], tags=["alcohol"], stages=["at_dropoff"]), signals)]
    assert facts == ["stage: at_dropoff", "order: alcohol", "market: north"]
    chunk = [b.fact for b in chunk_boosts("Alcohol is never left. Error LOC-203 means too far.", signals)]
    assert chunk == ["order: alcohol", "app error: LOC-203"]
    assert "LOC-203" in signals.query_terms() and "dropoff failed" in signals.query_terms()
    assert signals.context_phrase() == "alcohol order"


MARKET_NAMES = {"north": ["Northland", "North City"], "south": ["Southland"]}


def test_a_place_named_in_the_message_picks_its_market():
    assert market_named_in("do i pay tax in north city?", MARKET_NAMES) == "north"
    assert market_named_in("NORTHLAND rules pls", MARKET_NAMES) == "north"
    # only whole names count, and two markets named at once is no answer
    assert market_named_in("northlander here", MARKET_NAMES) is None
    assert market_named_in("northland or southland?", MARKET_NAMES) is None
    assert market_named_in("how do payouts work", MARKET_NAMES) is None


def test_a_group_of_markets_is_a_name_of_each_and_never_picks_one(tmp_path):
    from assistant.ingestion.documents import load_market_names

    (tmp_path / "markets.yaml").write_text(
        "us-ca: {name: California, groups: [US markets]}\nus-ny: {name: New York City, groups: [US markets]}\n"
        "ca-on: {name: Ontario}\n", encoding="utf-8",
    )
    names, problem = load_market_names(tmp_path)
    assert problem is None and names["us-ca"] == ["California", "US markets"]
    assert market_named_in("what are the rules in us markets", names) is None
    assert market_named_in("rules in california", names) == "us-ca"


def test_a_named_market_overrides_the_journey_and_says_so():
    signals = JourneySignals.from_journey(JourneyContext(market="south"))
    asked = signals.with_market_named_in("how does it work in northland", MARKET_NAMES)
    assert asked.market == "north" and asked.market_from_message
    assert "payouts-north" in allowed_documents(MANIFEST, asked)
    same = signals.with_market_named_in("rules in southland?", MARKET_NAMES)
    assert same is signals and not same.market_from_message
