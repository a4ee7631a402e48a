from pathlib import Path

from assistant.ingestion.chunking import Chunker, chunk_id_for
from assistant.ingestion.documents import load_corpus
from assistant.ingestion.units import split_units
from assistant.tokens import count_tokens

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def test_chunks_follow_headings_and_token_budget():
    docs = load_corpus(CORPUS).documents
    chunker = Chunker(chunk_tokens=120, chunk_overlap=20)
    for doc in docs[:10]:
        chunks = chunker.split(doc)
        assert chunks, doc.id
        for chunk in chunks:
            assert count_tokens(chunk.page_content) <= 120
            assert chunk.metadata["doc_id"] == doc.id and chunk.metadata["section"]
        assert [c.metadata["position"] for c in chunks] == list(range(len(chunks)))


def test_chunk_ids_are_stable_content_hashes():
    doc = load_corpus(CORPUS).documents[0]
    first = [c.metadata["chunk_id"] for c in Chunker(chunk_tokens=200, chunk_overlap=20).split(doc)]
    second = [c.metadata["chunk_id"] for c in Chunker(chunk_tokens=200, chunk_overlap=20).split(doc)]
    assert first == second and len(set(first)) == len(first)
    assert chunk_id_for("a", "s", "text") != chunk_id_for("a", "s", "text!")
    assert chunk_id_for("a", "s", "text").startswith("a:")


def test_units_keep_procedures_with_their_lead_in_and_render_table_rows():
    text = (
        "Do this first. Then read on:\n\n"
        "When the timer ends:\n1. Leave the order.\n2. Take a **photo**.\n\n"
        "| Code | Meaning |\n|---|---|\n| LOC-203 | Too far |\n"
    )
    units = split_units(text)
    assert units[0] == "Do this first."
    assert "When the timer ends:\n1. Leave the order.\n2. Take a photo." in units
    assert "LOC-203 (Meaning: Too far)" in units
    bullets = split_units("Check that:\n- the app is **updated**\n- location is on")
    assert bullets == ["Check that:", "- the app is updated", "- location is on"]
