"""Sections as the answer unit: blocks keep lists with their lead-ins, quotes are cut only at
unit boundaries, another market's rules are left out, and the learned models load and score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from assistant.errors import ConfigurationError
from assistant.evals.dataset import EvalCase
from assistant.evals.fit import (
    FOLDS,
    _calibration,
    _confidence_models,
    _ConfidenceData,
    _product,
    choose_threshold,
    compare,
    fold_of_case,
)
from assistant.generation.answer_model import (
    ANSWERABLE_FEATURES,
    CONFIDENCE_FEATURES,
    DEFAULT_PATH,
    RENDERED_FEATURES,
    AnswerModel,
    LogisticModel,
    load_answer_model,
)
from assistant.generation.extractive import ExtractiveComposer
from assistant.generation.sections import (
    FEATURES,
    Question,
    answer_types,
    blocks_of,
    sections_of,
    states,
)
from assistant.retrieval.journey import JourneySignals

MARKETS = {"us-ca": ["California"], "ca-on": ["Ontario", "Toronto"]}


class _Store:
    """A chunk store over hand-made chunks; unit vectors are one-hot per unit."""

    def __init__(self, chunks: list[tuple[str, str, list[str]]]) -> None:
        self.chunks: dict[str, Document] = {}
        self._units: dict[str, list[str]] = {}
        for position, (cid, section, units) in enumerate(chunks):
            meta = {"chunk_id": cid, "doc_id": "doc", "title": "Doc", "section": section, "position": position}
            self.chunks[cid] = Document(page_content="\n".join(units), metadata=meta)
            self._units[cid] = units
        self.dim = sum(len(u) for u in self._units.values()) + 1

    def units(self, chunk_id: str) -> list[str]:
        return self._units[chunk_id]

    def unit_vectors(self, chunk_id: str) -> np.ndarray:
        offset = 0
        for cid, units in self._units.items():
            if cid == chunk_id:
                rows = np.zeros((len(units), self.dim), dtype=np.float32)
                for i in range(len(units)):
                    rows[i, offset + i] = 1.0
                return rows
            offset += len(units)
        raise KeyError(chunk_id)

    def doc_chunks(self, doc_id: str) -> list[Document]:
        return list(self.chunks.values())


def _question(text: str, vector: np.ndarray, market: str | None = None) -> Question:
    return Question.of(text, vector, JourneySignals(market=market), MARKETS)


def test_a_list_is_one_block_with_its_lead_in() -> None:
    units = ["Customers trust you with their details.", "Don't:", "- Contact the customer after delivery.",
             "- Share their address.", "Report problems in the app."]
    blocks = blocks_of(units)
    assert [b.units for b in blocks] == [
        ["Customers trust you with their details."],
        ["Don't:", "- Contact the customer after delivery.", "- Share their address."],
        ["Report problems in the app."],
    ]
    assert blocks[1].start == 1


def test_sections_are_rebuilt_from_chunks_without_the_overlap() -> None:
    store = _Store([
        ("c1", "Fees", ["Fee: $0.99 per cash-out.", "The fee is taken from the amount."]),
        ("c2", "Fees", ["The fee is taken from the amount.", "Limit: 5 per day."]),
        ("c3", "Eligibility", ["You need a debit card."]),
    ])
    sections = sections_of(store, "doc")
    assert [(s.heading, s.units) for s in sections] == [
        ("Fees", ["Fee: $0.99 per cash-out.", "The fee is taken from the amount.", "Limit: 5 per day."]),
        ("Eligibility", ["You need a debit card."]),
    ]
    assert sections[0].vectors.shape[0] == 3


def test_a_list_cut_across_two_chunks_is_read_once() -> None:
    # the second chunk repeats the list's last item (the chunk overlap) inside a unit of its own
    store = _Store([
        ("c1", "Tips", ["If the tip is missing:\n1. Open Earnings.\n2. Tap Report a pay issue."]),
        ("c2", "Tips", ["2. Tap Report a pay issue.\n3. Report within 14 days.", "Reviews take 3 days."]),
    ])
    [section] = sections_of(store, "doc")
    text = "\n".join(section.units)
    assert text.count("2. Tap Report a pay issue.") == 1
    assert section.units[1:] == ["3. Report within 14 days.", "Reviews take 3 days."]
    assert section.vectors.shape[0] == len(section.units)


def test_questions_are_typed_by_the_fact_they_ask_for() -> None:
    assert answer_types("how much does fast pay cost") == {"money"}
    assert "time" in answer_types("how long do i wait at the door")
    assert answer_types("how old do u have to be for beer orders") == {"age"}
    assert answer_types("can i bring my dog") == set()
    assert answer_types("can i drop it without killing my completion rate") == set()
    assert states("Fee: $0.99 per cash-out.", "money") and not states("You need a debit card.", "money")
    assert states("You must be within 150 m of the pin.", "distance")


def _composer(store: _Store) -> ExtractiveComposer:
    return ExtractiveComposer(DeterministicFakeEmbedding(size=store.dim), store, market_names=MARKETS)


def test_a_long_section_is_cut_at_block_boundaries_and_keeps_a_list_whole() -> None:
    filler = [f"Sentence number {i} says something long enough to count for words here." for i in range(12)]
    units = [*filler, "Never:", "- Leave alcohol at the door.", "- Hand it to someone under 21."]
    store = _Store([("c1", "Rules", units)])
    section = sections_of(store, "doc")[0]
    target = np.zeros(store.dim, dtype=np.float32)
    target[len(filler) + 1] = 1.0  # the question is about the first item of the list
    quote = _composer(store)._quote(section, _question("can i leave the beer at the door", target), budget=40)
    assert "- Leave alcohol at the door." in quote
    assert quote[quote.index("- Leave alcohol at the door.") - 1] == "Never:", "an item never without its lead-in"
    assert all(u in units for u in quote)


def test_another_markets_sentence_or_item_is_left_out() -> None:
    units = ["Fee: $0.99 per cash-out.", "In Ontario (ca-on), the fee is CA$1.29.", "You need:",
             "- US markets: a US debit card.", "- Ontario (ca-on): a Canadian debit card."]
    store = _Store([("c1", "Fees", units)])
    section = sections_of(store, "doc")[0]
    vector = np.ones(store.dim, dtype=np.float32)
    composer = _composer(store)
    us = composer._quote(section, _question("fee?", vector, market="us-ca"), budget=200)
    assert "In Ontario (ca-on), the fee is CA$1.29." not in us
    assert "- Ontario (ca-on): a Canadian debit card." not in us
    assert "You need:" in us and "- US markets: a US debit card." in us
    ontario = composer._quote(section, _question("fee?", vector, market="ca-on"), budget=200)
    assert "In Ontario (ca-on), the fee is CA$1.29." in ontario
    assert composer._quote(section, _question("fee?", vector), budget=200) == units, "no market: the whole section"


def test_a_table_row_keeps_the_drivers_market_column_and_an_aside_for_another_market_goes() -> None:
    names = {**MARKETS, "us-ca": ["California", "US markets"]}
    vector = np.ones(4, dtype=np.float32)

    def quoted(unit: str, market: str | None) -> str:
        return Question.of("wait pay?", vector, JourneySignals(market=market), names).for_market(unit)

    row = "Rate (US markets: $0.20 per minute; Ontario (ca-on): CA$0.25 per minute)"
    assert quoted(row, "ca-on") == "Rate (Ontario (ca-on): CA$0.25 per minute)"
    assert quoted(row, "us-ca") == "Rate (US markets: $0.20 per minute)"
    assert quoted(row, None) == row
    aside = "Return pay is $3.00 plus $0.50 per mile (Ontario: CA$3.50 plus CA$0.35 per km)."
    assert quoted(aside, "us-ca") == "Return pay is $3.00 plus $0.50 per mile."
    # the driver's own market's amounts take the place of the ones they are an aside to
    assert quoted(aside, "ca-on") == "Return pay is CA$3.50 plus CA$0.35 per km."
    inline = "Wait pay is $0.20 per minute (CA$0.25 in Ontario), up to 30 minutes."
    assert quoted(inline, "us-ca") == "Wait pay is $0.20 per minute, up to 30 minutes."
    assert quoted(inline, "ca-on") == "Wait pay is CA$0.25 per minute, up to 30 minutes."
    lead_in = "You get $3.00 plus $0.50 per mile to the store (in Ontario, CA$3.50 plus CA$0.35 per km)."
    assert quoted(lead_in, "ca-on") == "You get CA$3.50 plus CA$0.35 per km to the store."
    assert quoted(lead_in, "us-ca") == "You get $3.00 plus $0.50 per mile to the store."
    # an aside of several parts loses only the parts that state another market's value
    parts = "Return pay ($3.00 + $0.50 per mile; ca-on CA$3.50 + CA$0.35/km) is added."
    assert quoted(parts, "us-ca") == "Return pay ($3.00 + $0.50 per mile) is added."
    assert quoted(parts, "ca-on") == "Return pay (CA$3.50 + CA$0.35/km) is added."
    listed = "Wait pay ($0.20 per minute, ca-on CA$0.25, starting 8 minutes in) is added."
    assert quoted(listed, "ca-on") == "Wait pay (CA$0.25 per minute, starting 8 minutes in) is added."
    assert quoted(listed, "us-ca") == "Wait pay ($0.20 per minute, starting 8 minutes in) is added."
    item = "- Fee: $0.99 per cash-out. In Ontario (ca-on), the fee is CA$1.29. It is taken from the cash-out."
    assert quoted(item, "us-ca") == "- Fee: $0.99 per cash-out. It is taken from the cash-out."
    assert quoted(item, "ca-on") == item
    sentence = "Fee: $0.99 per cash-out (in Ontario, the fee is CA$1.29)."
    assert quoted(sentence, "ca-on") == sentence, "an aside that is a sentence about the amount is quoted as written"
    both = "The legal age (21 in US markets, 19 in Ontario) applies."
    assert quoted(both, "us-ca") == both and quoted(both, "ca-on") == both, "an aside naming the driver's market stays"
    plain = "Tips (all of them, always) go to you."
    assert quoted(plain, "ca-on") == plain
    assert quoted("Fee (US markets: $0.99)", "ca-on") == "Fee (US markets: $0.99)", "a row's label alone says nothing"


def test_the_shipped_answer_model_matches_the_features() -> None:
    model = load_answer_model()
    assert model.section.features == list(FEATURES)
    assert model.confidence.features == list(CONFIDENCE_FEATURES)
    assert model.answerable is not None and model.answerable.features == list(ANSWERABLE_FEATURES)
    assert model.calibration is not None
    assert 0.0 <= model.threshold <= 1.0
    assert model.fitted.get("split") == "tuning", "fitted on the tuning split only"
    assert model.answerable.coef[ANSWERABLE_FEATURES.index("gap_margin")] < 0, "closer to a gap: less answerable"
    assert model.answerable_rendered is not None and model.answerable_rendered.features == list(RENDERED_FEATURES)
    assert model.answerable_rendered.coef[0] < 0, "in any language too: closer to a gap, less answerable"
    assert model.fitted.get("rendered", 0) > 0 and model.fitted.get("cv_rendered_unanswerable_answered") is not None


def _model(
    answerable: LogisticModel | None = None, calibration: tuple[float, float] | None = None,
    rendered: LogisticModel | None = None,
) -> AnswerModel:
    n = len(CONFIDENCE_FEATURES)
    right = LogisticModel(features=list(CONFIDENCE_FEATURES), mean=[0.0] * n, scale=[1.0] * n, coef=[1.0] + [0.0] * (n - 1), intercept=0.0)
    section = LogisticModel(features=list(FEATURES), mean=[0.0] * len(FEATURES), scale=[1.0] * len(FEATURES),
                            coef=[0.0] * len(FEATURES), intercept=0.0)
    return AnswerModel(embedding_model="x", section=section, confidence=right, answerable=answerable,
                       answerable_rendered=rendered, calibration=calibration, threshold=0.5)


def test_the_confidence_is_the_recalibrated_product_of_right_and_answerable() -> None:
    values = dict.fromkeys(CONFIDENCE_FEATURES, 0.0) | {"section_probability": 2.0, "gap_margin": 0.5}
    right = 1 / (1 + np.exp(-2.0))
    assert _model().confidence_of(values) == pytest.approx(right)
    answerable = LogisticModel(features=["gap_margin"], mean=[0.0], scale=[1.0], coef=[-4.0], intercept=0.0)
    answered = 1 / (1 + np.exp(2.0))
    assert _model(answerable).confidence_of(values) == pytest.approx(right * answered)
    p = right * answered
    z = 2.0 * np.log(p / (1 - p)) + 0.5
    assert _model(answerable, (2.0, 0.5)).confidence_of(values) == pytest.approx(1 / (1 + np.exp(-z)))


def test_a_message_in_another_language_is_judged_answerable_by_the_multilingual_measure() -> None:
    values = dict.fromkeys(CONFIDENCE_FEATURES, 0.0) | {"section_probability": 2.0, "gap_margin": -0.5}
    right = 1 / (1 + np.exp(-2.0))
    answerable = LogisticModel(features=["gap_margin"], mean=[0.0], scale=[1.0], coef=[-4.0], intercept=0.0)
    rendered = LogisticModel(features=["gap_margin"], mean=[0.0], scale=[1.0], coef=[-8.0], intercept=0.0)
    model = _model(answerable, rendered=rendered)
    english = model.confidence_of(values)
    assert english == pytest.approx(right / (1 + np.exp(-2.0)))
    # the English pivots look answered (margin -0.5); the message itself sits nearer a gap (+0.3)
    other = model.confidence_of(values, {"gap_margin": 0.3, "driver_question": 0.8})
    assert other == pytest.approx(right / (1 + np.exp(2.4)))
    assert other < english
    # a model fitted before the multilingual measure reads the English one for every message
    assert _model(answerable).confidence_of(values, {"gap_margin": 0.3, "driver_question": 0.8}) == pytest.approx(english)
    with pytest.raises(ValueError, match="refit"):
        _model(answerable, rendered=answerable.model_copy(update={"features": ["section_probability"]}))


def test_a_feature_not_measured_counts_as_its_mean() -> None:
    model = LogisticModel(features=["a", "b"], mean=[1.0, 3.0], scale=[2.0, 1.0], coef=[1.0, -1.0], intercept=0.5)
    assert model.logit([float("nan"), 5.0]) == pytest.approx(model.logit([1.0, 5.0]))
    assert model.logit([float("nan"), float("nan")]) == pytest.approx(0.5)
    values = dict.fromkeys(CONFIDENCE_FEATURES, 0.2) | {"gap_margin": float("nan")}
    shipped = load_answer_model()
    mean = shipped.confidence.mean[CONFIDENCE_FEATURES.index("gap_margin")]
    assert shipped.confidence_of(values) == pytest.approx(shipped.confidence_of(values | {"gap_margin": mean}), abs=0.05)


def test_a_section_model_fitted_on_some_of_the_features_reads_those_by_name() -> None:
    # a model fitted before a feature joined FEATURES still ranks (and `assistant eval fit` can
    # load it to refit): it reads its own features out of the full vector, by name
    names = [FEATURES[2], FEATURES[0]]
    section = LogisticModel(features=names, mean=[0.0, 0.0], scale=[1.0, 1.0], coef=[1.0, -2.0], intercept=0.1)
    model = _model().model_copy(update={"section": section})
    values = [0.1 * (i + 1) for i in range(len(FEATURES))]
    assert model.section_probability(values) == pytest.approx(section.probability([values[2], values[0]]))
    assert _model().section_probability(values) == pytest.approx(0.5)


def test_a_model_naming_a_feature_this_version_does_not_compute_is_a_configuration_error(tmp_path: Path) -> None:
    data = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    data["confidence"]["features"][-1] = "gap_question_v0"
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigurationError, match="eval fit"):
        load_answer_model(stale)


def test_the_answerable_model_learns_the_gap_from_questions_about_the_work_only() -> None:
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=(n, len(CONFIDENCE_FEATURES)))
    gap = CONFIDENCE_FEATURES.index("gap_margin")
    answerable = x[:, gap] < 0.8  # questions close to a gap are the ones the help centre does not answer
    right = answerable & (x[:, 0] + rng.normal(scale=0.5, size=n) > 0)
    real = np.ones(n, dtype=bool)
    asked = np.ones(n, dtype=bool)
    asked[:50] = False  # rows the answerable model must not read (flipped labels: they would spoil it)
    flipped = answerable.copy()
    flipped[:50] = ~flipped[:50]
    # the multilingual measure of the margin: noisier, and missing for some questions (NaN)
    measured = (x[:, gap] + rng.normal(scale=0.5, size=n)).reshape(n, 1)
    measured[350:] = np.nan
    rendered = np.zeros(n, dtype=bool)
    rendered[300:] = True
    data = _ConfidenceData(x=x, right=right.astype(int), real=real, answerable=flipped, labelled=np.ones(n, dtype=bool), asked=asked,
                           measured=measured, rendered=rendered)
    answered, answered_rendered, confidence = _confidence_models(data)
    assert answered is not None and answered.features == list(ANSWERABLE_FEATURES)
    assert answered.coef[ANSWERABLE_FEATURES.index("gap_margin")] < -1.0
    # the multilingual one reads its measure from every real question that has it, in any language
    assert answered_rendered is not None and answered_rendered.features == list(RENDERED_FEATURES)
    assert answered_rendered.coef[0] < -0.5
    unmeasured = _ConfidenceData(x=x, right=right.astype(int), real=real, answerable=flipped, labelled=np.ones(n, dtype=bool),
                                 asked=asked, measured=np.full((n, 1), np.nan), rendered=rendered)
    assert _confidence_models(unmeasured)[1] is None, "without the multilingual model there is nothing to fit"
    near_gap = np.zeros(len(CONFIDENCE_FEATURES))
    near_gap[gap] = 2.0
    far = np.zeros(len(CONFIDENCE_FEATURES))
    far[gap] = -2.0
    assert _product(answered, confidence, list(near_gap)) < 0.2 < _product(answered, confidence, list(far))
    raw = np.asarray([_product(answered, confidence, list(row)) for row in x])
    slope, _ = _calibration(raw, right.astype(int)) or (0.0, 0.0)
    assert slope > 0, "more raw confidence, more calibrated confidence"
    only_answerable = _ConfidenceData(x=x, right=right.astype(int), real=real, answerable=np.ones(n, dtype=bool),
                                      labelled=np.ones(n, dtype=bool), asked=asked, measured=measured, rendered=rendered)
    assert _confidence_models(only_answerable)[:2] == (None, None), "without both kinds of question there is no answerable model"


def test_a_case_keeps_its_fold_whatever_other_cases_are_added_and_folds_are_near_even() -> None:
    cases = [EvalCase(id=f"c-{i}", message="m", dataset="heldout") for i in range(600)]
    folds = [fold_of_case(c) for c in cases]
    more = [*cases[:300], EvalCase(id="new", message="m", dataset="heldout"), *cases[300:]]
    assert [fold_of_case(c) for c in more if c.id != "new"] == folds  # no other case moves
    sizes = [folds.count(f) for f in range(FOLDS)]
    assert min(sizes) > 0.8 * len(cases) / FOLDS and max(sizes) < 1.2 * len(cases) / FOLDS
    # the same id in another dataset is another case; another seed draws other folds
    assert [fold_of_case(c.model_copy(update={"dataset": "routing"})) for c in cases] != folds
    assert [fold_of_case(c, seed=1) for c in cases] != folds


def test_a_refit_shows_the_threshold_and_scores_it_replaces_beside_the_new_ones() -> None:
    before = _model().model_copy(update={"threshold": 0.2623, "fitted": {"cases": 603, "cv_ece": 0.0491}})
    after = _model().model_copy(update={"threshold": 0.2699, "fitted": {"cases": 604, "cv_ece": 0.0375,
                                                                        "cv_rendered_unanswerable_answered": 0.9}})
    lines = compare(before, after).splitlines()
    assert lines[0].split() == ["before", "after"]
    assert lines[1].split() == ["threshold", "0.2623", "0.2699"]
    assert next(x for x in lines if x.startswith("tuning cases")).split() == ["tuning", "cases", "603", "604"]
    assert next(x for x in lines if x.startswith("calibration error")).split()[-2:] == ["0.0491", "0.0375"]
    # a score one of them never measured reads "-"
    assert next(x for x in lines if "other languages: unanswerable" in x).split()[-2:] == ["-", "0.9"]


def test_a_logistic_model_scores_standardised_features() -> None:
    model = LogisticModel(features=["a", "b"], mean=[1.0, 0.0], scale=[2.0, 1.0], coef=[1.0, -1.0], intercept=0.0)
    assert model.probability([1.0, 0.0]) == pytest.approx(0.5)
    assert model.probability([5.0, 0.0]) == pytest.approx(1 / (1 + np.exp(-2.0)))
    with pytest.raises(ValueError):
        LogisticModel(features=["a"], mean=[0.0, 1.0], scale=[1.0], coef=[1.0], intercept=0.0)


def test_a_broken_answer_model_file_is_a_configuration_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.json"
    bad.write_text(json.dumps({"embedding_model": "x"}), encoding="utf-8")
    with pytest.raises(ConfigurationError, match="answer model"):
        load_answer_model(bad)
    good = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    assert AnswerModel.model_validate(good).threshold == load_answer_model().threshold


def test_the_threshold_hands_off_at_most_the_allowed_share() -> None:
    confidences = [i / 100 for i in range(100)]
    threshold = choose_threshold(confidences, max_handoff=0.05)
    assert threshold == 0.05
    assert sum(c < threshold for c in confidences) <= 5
    assert choose_threshold([], max_handoff=0.05) == 0.0


_NEGATIVE_LEAD = ("don't", "do not", "never", "not ", "avoid", "must not", "can't", "cannot")


@pytest.mark.integration
def test_no_quote_of_the_corpus_drops_the_lead_in_of_a_dont_or_never_list(shipped_assistant) -> None:
    """Every list introduced by a negative lead-in ("Don't:", "Never ...:") in the shipped corpus,
    quoted for a question about each of its items at several word budgets: an item is never
    quoted without the lead-in that reverses it."""
    retriever, composer = shipped_assistant._stages()
    store = retriever.store
    doc_ids = sorted({str(c.metadata["doc_id"]) for c in store.chunks.values()})
    checked = 0
    for doc_id in doc_ids:
        for section in sections_of(store, doc_id):
            for block in section.blocks:
                lead = block.units[0]
                if len(block.units) < 2 or not lead.rstrip().endswith(":") or not any(w in lead.lower() for w in _NEGATIVE_LEAD):
                    continue
                for offset in range(1, len(block.units)):
                    vector = section.vectors[block.start + offset]
                    for market in (None, "us-ca", "ca-on"):
                        question = Question.of(block.units[offset], vector, JourneySignals(market=market), MARKETS)
                        for budget in (15, 40, 160):
                            quote = composer._quote(section, question, budget)
                            items = [u for u in quote if u in block.units[1:]]
                            if items:
                                first = quote.index(items[0])
                                assert first > 0 and quote[first - 1] == lead, (doc_id, section.heading, quote)
                    checked += 1
    assert checked >= 10, f"only {checked} negative-list items found in the corpus"
