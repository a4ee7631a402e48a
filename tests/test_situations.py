"""Safety situations: a driver escalated for safety is quoted the steps for their situation."""

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from assistant import Assistant, HelpRequest, JourneyContext, Route, Settings
from assistant.errors import IndexNotReadyError
from assistant.ingestion.documents import load_corpus, load_situations
from assistant.ingestion.indexer import Indexer
from assistant.retrieval.embeddings import make_embeddings
from assistant.retrieval.questions import IndexedQuestion, SituationIndex
from tests.conftest import CORPUS, write_doc


def _index() -> SituationIndex:
    situations = [
        IndexedQuestion(text="crash 1", doc_id="safety", chunk_id="safety:crash"),
        IndexedQuestion(text="crash 2", doc_id="safety", chunk_id="safety:crash"),
        IndexedQuestion(text="threat", doc_id="safety", chunk_id="safety:threat"),
        IndexedQuestion(text="storm", doc_id="weather", chunk_id="weather:storm"),
    ]
    vectors = np.asarray([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0]])
    return SituationIndex(situations, vectors)


def test_the_section_most_of_the_nearest_situations_point_to_wins() -> None:
    index = _index()
    # the single nearest situation is the threat (0.99), but two of the three nearest are crashes
    query = [0.95, 0.2, 0.0]
    assert index.steps(query, doc_ids={"safety", "weather"}, votes=1) == "safety:threat"
    assert index.steps(query, doc_ids={"safety", "weather"}) == "safety:crash"
    assert index.steps([0.0, 0.1, 1.0], doc_ids={"safety", "weather"}, votes=1) == "weather:storm"


def test_only_situations_of_documents_that_apply_vote() -> None:
    index = _index()
    assert index.steps([1.0, 0.0, 0.0], doc_ids={"weather"}) == "weather:storm"
    assert index.steps([1.0, 0.0, 0.0], doc_ids=set()) is None
    assert SituationIndex([], np.zeros((0, 0))).steps([1.0, 0.0], doc_ids={"safety"}) is None


def test_situations_round_trip_and_damage_is_a_clear_error(tmp_path: Path) -> None:
    _index().write(tmp_path)
    again = SituationIndex.read(tmp_path)
    assert [s.text for s in again.questions] == ["crash 1", "crash 2", "threat", "storm"]
    assert again.steps([0.0, 0.0, 1.0], doc_ids={"weather"}) == "weather:storm"
    assert len(SituationIndex.read(tmp_path / "none")) == 0, "an index built without situations has none"
    (tmp_path / "situations.jsonl").write_text("{not json\n", encoding="utf-8")
    with pytest.raises(IndexNotReadyError, match="ingest --rebuild"):
        SituationIndex.read(tmp_path)


def test_the_situations_file_is_read_tidied_and_a_bad_one_is_reported_not_fatal(tmp_path: Path) -> None:
    assert load_situations(tmp_path) == ([], None)
    (tmp_path / "safety-situations.yaml").write_text(
        "situations:\n"
        "  - {text: \"my car   is on fire\", doc_id: safety, section: Vehicle fire}\n"
        "  - {text: my car is on fire, doc_id: safety, section: Threats}\n"
        "  - {text: \"\", doc_id: safety, section: Threats}\n",
        encoding="utf-8",
    )
    situations, problem = load_situations(tmp_path)
    assert problem is None
    assert [(s.text, s.section) for s in situations] == [("my car is on fire", "Vehicle fire")], "each text once, the first"
    (tmp_path / "safety-situations.yaml").write_text("situations: [{text: no section}]\n", encoding="utf-8")
    situations, problem = load_situations(tmp_path)
    assert situations == [] and problem is not None and "safety-situations.yaml" in problem.path


def test_every_shipped_situation_points_at_a_heading_of_its_article() -> None:
    corpus = load_corpus(CORPUS)
    assert len(corpus.situations) >= 300
    headings = {
        doc.id: set(re.findall(r"^#{2,3} (.+?)\s*$", doc.body, flags=re.MULTILINE)) for doc in corpus.documents
    }
    wrong = [(s.doc_id, s.section) for s in corpus.situations if s.section not in headings.get(s.doc_id, set())]
    assert not wrong
    assert len({s.section for s in corpus.situations}) >= 8, "the situations cover the safety articles' sections"


SAFETY_BODY = """
    # Safety on the road
    ## In an emergency, call 911 first
    If you or anyone else is in immediate danger or hurt, call 911 first. Then open the Safety toolkit.
    ## Vehicle fire
    If your vehicle starts smoking or catches fire, stop, turn off the engine and get everyone out.
    Move at least 30 m away from the vehicle and call 911. Don't open the hood.
    ## Threats and aggressive people
    If someone threatens you, don't argue. Walk away to your vehicle or a public place and call 911.
    ## Reporting a safety incident
    Report every incident within 24 hours through Safety toolkit > Report a safety incident.
    """

SITUATIONS = """
situations:
  - {text: "smoke is pouring out from under my hood", doc_id: safety, section: Vehicle fire}
  - {text: "flames coming from the engine while i was driving", doc_id: safety, section: Vehicle fire}
  - {text: "my car started burning at a red light", doc_id: safety, section: Vehicle fire}
  - {text: "guy at the door is screaming he will hurt me", doc_id: safety, section: Threats and aggressive people}
  - {text: "a customer pulled a knife and is threatening me", doc_id: safety, section: Threats and aggressive people}
  - {text: "store worker keeps shouting threats at me", doc_id: safety, section: Threats and aggressive people}
  - {text: "i think i'm having a heart attack", doc_id: safety, section: "In an emergency, call 911 first"}
  - {text: "someone collapsed at the drop-off", doc_id: safety, section: "In an emergency, call 911 first"}
"""


@pytest.mark.integration
def test_a_driver_in_danger_is_quoted_the_steps_for_their_situation(
    small_corpus: Path, make_settings: Callable[..., Settings]
) -> None:
    write_doc(small_corpus, "safety", SAFETY_BODY, tags="[safety]", journey_stages="[en_route_to_customer, account]")
    settings = make_settings()
    journey = JourneyContext(stage="en_route_to_customer", market="south")

    Assistant(settings).ingest(small_corpus)  # first without situations
    fire = HelpRequest(message="my car is on fire, there is smoke everywhere", journey=journey)
    threat = HelpRequest(message="a man at the door is threatening me with a knife", journey=journey)

    (small_corpus / "safety-situations.yaml").write_text(SITUATIONS, encoding="utf-8")
    report = Indexer(settings, make_embeddings(settings)).ingest(small_corpus)
    assert report.changed and report.situations_total == 8, "editing the situations alone rebuilds"
    assistant = Assistant(settings)
    # (without the situations, the section model quotes the 911 section first for the knife)
    for request, heading in ((fire, "Vehicle fire"), (threat, "Threats and aggressive people")):
        response = assistant.answer(request)
        assert response.route is Route.ESCALATE and [r.code.value for r in response.reasons] == ["safety"]
        assert response.citations[0].section == heading
        assert response.citations[0].score > 0, "cited with its article's retrieval score"
        steps = response.answer.split("\n\n", 1)[1]
        assert steps.startswith(f"{heading}:"), "the situation's steps come first, after the safety message"
    # a question is answered as before: the situations are read only for a driver in danger
    answered = assistant.answer(HelpRequest(message="when do weekly payouts arrive?", journey=journey))
    assert answered.route is Route.ANSWER and answered.citations[0].doc_id.startswith("payouts")


@pytest.mark.integration
def test_a_situation_whose_section_the_corpus_lacks_is_reported(
    small_corpus: Path, make_settings: Callable[..., Settings]
) -> None:
    write_doc(small_corpus, "safety", SAFETY_BODY, tags="[safety]")
    (small_corpus / "safety-situations.yaml").write_text(
        SITUATIONS + "  - {text: tornado sirens are going off, doc_id: safety, section: Severe weather}\n", encoding="utf-8"
    )
    settings = make_settings()
    report = Indexer(settings, make_embeddings(settings)).ingest(small_corpus)
    assert report.situations_total == 8
    assert [p.reason for p in report.problems if "safety-situations.yaml" in p.path] == [
        "1 situation(s) point at 'safety' > 'Severe weather', which the corpus does not have"
    ]
