"""Search-only driver questions: the index of question vectors, and what they do to retrieval."""

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from assistant import Assistant, Settings
from assistant.errors import IndexNotReadyError
from assistant.ingestion.documents import load_corpus, load_gap_questions, parse_document
from assistant.ingestion.indexer import Indexer
from assistant.retrieval.embeddings import make_embeddings
from assistant.retrieval.hybrid import HybridRetriever
from assistant.retrieval.questions import GapIndex, IndexedQuestion, QuestionIndex, nearest_chunks
from tests.conftest import write_doc


def _index() -> QuestionIndex:
    questions = [
        IndexedQuestion(text="a1", doc_id="a", chunk_id="a:1"),
        IndexedQuestion(text="a2", doc_id="a", chunk_id="a:1"),
        IndexedQuestion(text="b1", doc_id="b", chunk_id="b:1"),
        IndexedQuestion(text="c1", doc_id="c", chunk_id="c:2"),
    ]
    vectors = np.asarray([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
    return QuestionIndex(questions, vectors)


def test_search_ranks_chunks_by_their_best_question_once_each() -> None:
    hits = _index().search([1.0, 0.0, 0.0], k=10, doc_ids={"a", "b", "c"})
    assert [c for c, _ in hits] == ["a:1", "b:1", "c:2"]
    assert hits[0][1] == pytest.approx(1.0) and hits[1][1] == pytest.approx(0.6)


def test_search_counts_only_questions_of_allowed_documents_and_stops_at_k() -> None:
    index = _index()
    assert [c for c, _ in index.search([1.0, 0.0, 0.0], k=10, doc_ids={"b", "c"})] == ["b:1", "c:2"]
    assert [c for c, _ in index.search([1.0, 0.0, 0.0], k=1, doc_ids={"a", "b", "c"})] == ["a:1"]
    assert index.search([1.0, 0.0, 0.0], k=5, doc_ids=set()) == []


def test_nearest_chunks_points_each_question_at_the_closest_chunk() -> None:
    chunks = np.asarray([[1.0, 0.0], [0.0, 2.0]])
    assert nearest_chunks(np.asarray([[0.1, 0.9], [3.0, 0.2]]), chunks) == [1, 0]
    assert nearest_chunks(np.zeros((0, 2)), chunks) == []
    # a question whose section is named looks only at that section's rows
    assert nearest_chunks(np.asarray([[0.1, 0.9], [3.0, 0.2]]), chunks, [[0], []]) == [0, 0]


def test_write_and_read_round_trip(tmp_path: Path) -> None:
    index = _index()
    index.write(tmp_path)
    again = QuestionIndex.read(tmp_path)
    assert again.questions == index.questions
    assert again.search([0.0, 0.0, 1.0], k=1, doc_ids={"c"}) == [("c:2", pytest.approx(1.0, abs=1e-3))]


def test_an_index_without_questions_reads_as_empty_and_a_corrupt_one_is_a_clear_error(tmp_path: Path) -> None:
    empty = QuestionIndex.read(tmp_path)
    assert len(empty) == 0 and empty.search([1.0, 0.0], k=3, doc_ids={"a"}) == []
    _index().write(tmp_path)
    (tmp_path / "question_vectors.npy").write_bytes(b"not numpy")
    with pytest.raises(IndexNotReadyError, match="ingest --rebuild"):
        QuestionIndex.read(tmp_path)
    # vectors without their questions are damage too, not an index without questions
    _index().write(tmp_path)
    (tmp_path / "questions.jsonl").unlink()
    with pytest.raises(IndexNotReadyError, match="ingest --rebuild"):
        QuestionIndex.read(tmp_path)


def test_front_matter_questions_are_tidied(tmp_path: Path) -> None:
    raw = (
        "---\nid: doc\ntitle: Doc\nversion: 1\neffective_date: 2025-01-01\n"
        "questions:\n  - \"  can my   wife see where i am \"\n  - \"can my wife see where i am\"\n  - \"\"\n---\n# Doc\nBody text.\n"
    )
    doc = parse_document(tmp_path / "doc.md", raw.encode())
    assert doc.questions == ["can my wife see where i am"]
    single = parse_document(tmp_path / "one.md", raw.replace("questions:\n", "questions: why\nx:\n").encode())
    assert single.questions == ["why"]


def test_a_question_may_name_the_section_that_answers_it(tmp_path: Path) -> None:
    raw = (
        "---\nid: doc\ntitle: Doc\nversion: 1\neffective_date: 2025-01-01\nquestions:\n"
        "  - {text: \"can my  wife see where i am\", section: Share trip}\n  - how do i add a contact\n---\n# Doc\nBody.\n"
    )
    doc = parse_document(tmp_path / "doc.md", raw.encode())
    assert doc.questions == ["can my wife see where i am", "how do i add a contact"]
    assert doc.question_sections == {"can my wife see where i am": "Share trip"}
    with pytest.raises(ValueError, match="text"):
        parse_document(tmp_path / "bad.md", raw.replace("{text: ", "{words: ").encode())


def test_every_shipped_question_names_a_heading_of_its_article() -> None:
    corpus = load_corpus(Path(__file__).resolve().parents[1] / "corpus")
    wrong = []
    for doc in corpus.documents:
        headings = {doc.title, *re.findall(r"^#{1,3} (.+?)\s*$", doc.body, flags=re.MULTILINE)}
        wrong += [(doc.id, q, s) for q, s in doc.question_sections.items() if s not in headings]
    assert not wrong
    assert sum(len(d.question_sections) for d in corpus.documents) == sum(len(d.questions) for d in corpus.documents)


SHARING_BODY = """
    # Trip sharing
    ## Trusted contacts
    Add up to five trusted contacts under Account, then Safety, then Trusted contacts.
    ## Share trip
    Share trip sends a link by text message that shows your live position until you go offline.
    """
SHARING_QUESTIONS = '["can my wife see where i am when im out late", "how do i let family follow me on shift"]'


@pytest.mark.integration
def test_questions_are_indexed_apart_from_the_text_and_pointed_at_the_answering_section(
    small_corpus: Path, make_settings: Callable[..., Settings]
) -> None:
    write_doc(small_corpus, "trip-sharing", SHARING_BODY, questions=SHARING_QUESTIONS, tags="[safety]")
    settings = make_settings()
    embeddings = make_embeddings(settings)
    report = Indexer(settings, embeddings).ingest(small_corpus)
    assert report.questions_embedded == report.questions_total == 2

    retriever = HybridRetriever.open(settings, embeddings)
    pointed = {q.text: retriever.store.get(q.chunk_id) for q in retriever.questions.questions}
    assert set(pointed) == {"can my wife see where i am when im out late", "how do i let family follow me on shift"}
    assert all(chunk is not None and chunk.metadata["doc_id"] == "trip-sharing" for chunk in pointed.values())
    assert not any("wife" in chunk.page_content for chunk in retriever.store.chunks.values()), "questions are never quoted"

    # A question that names its section points into that section, even where another is nearer.
    path = small_corpus / "trip-sharing.md"
    path.write_text(path.read_text().replace(
        '"how do i let family follow me on shift"', '{text: "how do i let family follow me on shift", section: Trusted contacts}'
    ))
    named = Indexer(settings, embeddings).ingest(small_corpus)
    assert named.updated == ["trip-sharing"] and named.questions_embedded == 0
    retriever = HybridRetriever.open(settings, embeddings)
    sections = {q.text: retriever.store.get(q.chunk_id).metadata["section"] for q in retriever.questions.questions}
    assert sections["how do i let family follow me on shift"] == "Trusted contacts"

    # Editing only the questions re-embeds the new question, not the unchanged text or question.
    path = small_corpus / "trip-sharing.md"
    path.write_text(path.read_text().replace("how do i let family follow me on shift", "can my mom watch my location"))
    edited = Indexer(settings, embeddings).ingest(small_corpus)
    assert edited.updated == ["trip-sharing"] and edited.chunks_embedded == 0 and edited.questions_embedded == 1


@pytest.mark.integration
def test_a_matching_question_lifts_its_article_but_the_best_text_match_stays_first(
    small_corpus: Path, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    for doc_id, body in {
        "going-online": "# Going online\n## Zones\nTap Go online in your zone to start receiving offers.",
        "ratings": "# Ratings\n## Customer ratings\nCustomers rate each delivery from one to five stars.",
        "vehicles": "# Vehicles\n## Cars\nYour car must be insured and registered for deliveries late at night.",
    }.items():
        write_doc(small_corpus, doc_id, body)
    plain = small_corpus.parent / "plain"
    plain.mkdir()
    for path in small_corpus.glob("*.md"):
        (plain / path.name).write_text(path.read_text())
    write_doc(plain, "trip-sharing", SHARING_BODY, tags="[safety]")
    write_doc(small_corpus, "trip-sharing", SHARING_BODY, questions=SHARING_QUESTIONS, tags="[safety]")

    message = "how can my husband see where im at when im driving late at night"

    def ranked(corpus: Path, data: str) -> list[str]:
        assistant = Assistant(make_settings(data_dir=tmp_path / data, top_k=20))
        assistant.ingest(corpus)
        return list(dict.fromkeys(p.doc_id for p in assistant.retrieve(message).passages))

    without = ranked(plain, "plain-index")
    with_questions = ranked(small_corpus, "questions-index")
    assert with_questions.index("trip-sharing") < without.index("trip-sharing")
    assert with_questions[0] == without[0], "the article whose text matches best stays first"


# -- questions the help centre does not answer (gaps.yaml) --------------------------------------


def test_a_gap_index_gives_the_best_similarity_and_round_trips(tmp_path: Path) -> None:
    gaps = GapIndex(["does courio offer dental", "can i pay in crypto"], np.asarray([[1.0, 0.0], [0.0, 2.0]]))
    assert gaps.best_similarity([0.6, 0.8]) == pytest.approx(0.8)
    assert gaps.best_similarity([1.0, 0.0]) == pytest.approx(1.0)
    gaps.write(tmp_path)
    again = GapIndex.read(tmp_path)
    assert again.questions == gaps.questions
    assert again.best_similarity([0.0, 1.0]) == pytest.approx(1.0, abs=1e-3)
    assert GapIndex.read(tmp_path / "none").best_similarity([1.0, 0.0]) == 0.0, "an index without gaps has none"
    (tmp_path / "gap_vectors.npy").write_bytes(b"not numpy")
    with pytest.raises(IndexNotReadyError, match="ingest --rebuild"):
        GapIndex.read(tmp_path)


def test_gaps_yaml_is_read_tidied_and_a_bad_one_is_reported_not_fatal(tmp_path: Path) -> None:
    assert load_gap_questions(tmp_path) == ([], None)
    (tmp_path / "gaps.yaml").write_text(
        "questions:\n  - text: \"does courio   offer dental\"\n    near: insurance\n  - can i pay in crypto\n"
        "  - does courio offer dental\n  - \"\"\n", encoding="utf-8",
    )
    assert load_gap_questions(tmp_path) == (["does courio offer dental", "can i pay in crypto"], None)
    (tmp_path / "gaps.yaml").write_text("questions: [{near: x}]\n", encoding="utf-8")
    questions, problem = load_gap_questions(tmp_path)
    assert questions == [] and problem is not None and "gaps.yaml" in problem.path and "text" in problem.reason


def test_the_shipped_gap_questions_are_not_questions_an_article_lists() -> None:
    corpus = load_corpus(Path(__file__).resolve().parents[1] / "corpus")
    answered = {q.lower() for doc in corpus.documents for q in doc.questions}
    assert len(corpus.gap_questions) >= 300
    assert not [q for q in corpus.gap_questions if q.lower() in answered]
    assert not [p for p in corpus.problems if "gaps" in p.path]


@pytest.mark.integration
def test_gap_questions_are_indexed_and_editing_them_alone_rebuilds_reusing_every_vector(
    small_corpus: Path, make_settings: Callable[..., Settings]
) -> None:
    write_doc(small_corpus, "trip-sharing", SHARING_BODY, questions=SHARING_QUESTIONS, tags="[safety]")
    (small_corpus / "gaps.yaml").write_text("questions:\n  - does courio give drivers free dental\n", encoding="utf-8")
    settings = make_settings()
    embeddings = make_embeddings(settings)
    report = Indexer(settings, embeddings).ingest(small_corpus)
    assert report.gap_questions_total == 1 and report.questions_embedded == 3
    retriever = HybridRetriever.open(settings, embeddings)
    assert retriever.gaps.questions == ["does courio give drivers free dental"]

    unchanged = Indexer(settings, embeddings).ingest(small_corpus)
    assert not unchanged.changed
    (small_corpus / "gaps.yaml").write_text(
        "questions:\n  - does courio give drivers free dental\n  - is there a courio credit card\n", encoding="utf-8"
    )
    edited = Indexer(settings, embeddings).ingest(small_corpus)
    assert edited.changed and edited.generation == report.generation + 1
    assert edited.chunks_embedded == 0 and edited.questions_embedded == 1, "only the new gap question is embedded"
    assert HybridRetriever.open(settings, embeddings).gaps.questions[-1] == "is there a courio credit card"
