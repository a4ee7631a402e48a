"""The corpus's driver questions stay apart from the eval cases (no case is scored from a copy)."""

from pathlib import Path

import pytest

from assistant import Settings
from assistant.evals.dataset import EvalCase, load_datasets
from assistant.evals.leakage import find_leaks, word_overlap
from assistant.ingestion.documents import load_corpus, parse_document
from assistant.retrieval.embeddings import make_embeddings

REPO = Path(__file__).resolve().parent.parent


def _doc(tmp_path: Path, *questions: str):
    listed = "".join(f'\n  - "{q}"' for q in questions)
    raw = f"---\nid: doc\ntitle: Doc\nversion: 1\neffective_date: 2025-01-01\nquestions:{listed}\n---\n# Doc\nText.\n"
    return parse_document(tmp_path / "doc.md", raw.encode())


def test_word_overlap() -> None:
    assert word_overlap("When do I get PAID?", "when do i get paid") == 1.0
    assert word_overlap("when do i get paid", "is my car insured") == 0.0
    assert word_overlap("", "anything") == 0.0


def test_a_question_that_restates_a_case_is_found(tmp_path: Path) -> None:
    doc = _doc(tmp_path, "how far ahead can i book my shifts", "what does the shield icon do")
    cases = [
        EvalCase(id="c1", message="how far ahead can i book shifts", dataset="answers"),
        EvalCase(id="c2", message="my car broke down mid delivery", dataset="answers"),
    ]
    leaks = find_leaks([doc], cases)
    assert [(leak.question, leak.case) for leak in leaks] == [("how far ahead can i book my shifts", "answers/c1")]
    assert find_leaks([doc], cases, max_overlap=1.01) == []


def _shipped() -> tuple[list, list[EvalCase]]:
    corpus = load_corpus(REPO / "corpus")
    loaded = load_datasets([REPO / "evals" / "datasets"])
    return corpus.documents, loaded.cases


def test_shipped_questions_share_few_words_with_any_eval_case() -> None:
    documents, cases = _shipped()
    assert sum(len(d.questions) for d in documents) >= 300
    leaks = find_leaks(documents, cases)
    assert leaks == [], "\n".join(f"{x.doc_id}: {x.question!r} ~ {x.case} {x.message!r}" for x in leaks)


@pytest.mark.integration
def test_shipped_questions_are_not_paraphrases_of_any_eval_case(tmp_path: Path) -> None:
    documents, cases = _shipped()
    embeddings = make_embeddings(Settings(data_dir=tmp_path))
    leaks = find_leaks(documents, cases, embeddings=embeddings)
    assert leaks == [], "\n".join(f"{x.doc_id}: {x.question!r} ~ {x.case} {x.message!r} ({x.cosine})" for x in leaks)
