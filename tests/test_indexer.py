"""Incremental ingestion, malformed input and interruption, on a small corpus with real Chroma."""

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant import Assistant, HelpRequest, IndexMismatchError, JourneyContext, Settings
from assistant.errors import IndexNotReadyError
from assistant.ingestion.indexer import Indexer
from assistant.retrieval.chunkstore import CHUNK_VECTORS_FILE
from assistant.retrieval.embeddings import make_embeddings
from assistant.retrieval.exact import ExactSearch
from assistant.retrieval.hybrid import HybridRetriever
from assistant.retrieval.manifest import read_manifest
from tests.conftest import write_doc

pytestmark = pytest.mark.integration


def test_incremental_reindex_embeds_only_what_changed(small_corpus: Path, make_settings: Callable[..., Settings]):
    settings = make_settings()
    embeddings = make_embeddings(settings)
    first = Indexer(settings, embeddings).ingest(small_corpus)
    assert sorted(first.added) == ["cashout", "cashout-old", "payouts", "payouts-north"]
    assert first.chunks_embedded == first.chunks_total > 0

    again = Indexer(settings, embeddings).ingest(small_corpus)
    assert not again.changed and sorted(again.unchanged) == sorted(first.added)
    assert again.chunks_embedded == 0 and again.generation == first.generation

    path = small_corpus / "payouts.md"
    path.write_text(path.read_text(encoding="utf-8").replace("Wednesday", "Tuesday"), encoding="utf-8")
    (small_corpus / "cashout-old.md").unlink()
    write_doc(small_corpus, "tips", "## Tips\nTips are final 24 hours after delivery.")
    third = Indexer(settings, embeddings).ingest(small_corpus)
    assert third.updated == ["payouts"] and third.removed == ["cashout-old"] and third.added == ["tips"]
    # only the edited section of payouts and the new document are embedded again
    assert third.chunks_embedded == 2
    manifest = read_manifest(settings.data_dir)
    assert manifest is not None and manifest.generation == third.generation and "cashout-old" not in manifest.documents
    retriever = HybridRetriever.open(settings, embeddings)
    top = retriever.retrieve("when do payouts arrive", k=3).passages[0]
    assert "Tuesday" in top.text
    assert not list(settings.data_dir.glob("store-g1")), "old generation files are cleaned up"


def test_malformed_files_are_reported_and_the_rest_indexes(small_corpus: Path, make_settings: Callable[..., Settings]):
    (small_corpus / "broken.md").write_text("---\nid: [oops\n---\ntext", encoding="utf-8")
    (small_corpus / "binary.md").write_bytes(b"\xff\xfe\x00garbage")
    report = Assistant(make_settings()).ingest(small_corpus)
    assert len(report.added) == 4
    assert {Path(p.path).name for p in report.problems} == {"broken.md", "binary.md"}


def test_interrupted_ingest_leaves_previous_index_usable(small_corpus: Path, make_settings: Callable[..., Settings]):
    settings = make_settings()
    embeddings = make_embeddings(settings)
    Indexer(settings, embeddings).ingest(small_corpus)
    before = read_manifest(settings.data_dir)

    class Exploding:
        """Embeds the first batch, then dies as if the process were killed."""

        def __init__(self) -> None:
            self.calls = 0

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            self.calls += 1
            if self.calls > 1:
                raise KeyboardInterrupt
            return embeddings.embed_documents(texts)

        def embed_query(self, text: str) -> list[float]:
            return embeddings.embed_query(text)

    write_doc(small_corpus, "new-doc", "## New\n" + "\n\n".join(f"Fresh sentence number {i} about payouts." for i in range(80)))
    with pytest.raises(KeyboardInterrupt):
        Indexer(settings.model_copy(update={"embedding_batch_size": 2}), Exploding()).ingest(small_corpus)  # type: ignore[arg-type]

    assert read_manifest(settings.data_dir) == before
    answer = Assistant(settings).answer("how much does instant cash-out cost")
    assert answer.citations and answer.citations[0].doc_id == "cashout"
    # the next ingest completes and picks up the new document
    report = Indexer(settings, embeddings).ingest(small_corpus)
    assert report.added == ["new-doc"]


def test_index_refuses_a_different_query_model(small_corpus: Path, make_settings: Callable[..., Settings]):
    settings = make_settings()
    Assistant(settings).ingest(small_corpus)
    other = settings.model_copy(update={"embedding_provider": "openai", "embedding_model": "text-embedding-3-small"})
    with pytest.raises(IndexMismatchError, match="all-MiniLM-L6-v2"):
        HybridRetriever.open(other, make_embeddings(settings))


def test_rebuild_re_embeds_everything(small_corpus: Path, make_settings: Callable[..., Settings]):
    assistant = Assistant(make_settings())
    first = assistant.ingest(small_corpus)
    rebuilt = assistant.ingest(small_corpus, rebuild=True)
    assert rebuilt.chunks_embedded == first.chunks_total and rebuilt.generation == first.generation + 1


def test_ingest_rebuilds_a_live_index_whose_files_are_unreadable(small_corpus: Path, make_settings: Callable[..., Settings]):
    settings = make_settings()
    embeddings = make_embeddings(settings)
    first = Indexer(settings, embeddings).ingest(small_corpus)
    manifest = read_manifest(settings.data_dir)
    assert manifest is not None
    (settings.data_dir / manifest.store_dir / "unit_vectors.npy").write_bytes(b"garbage")
    with pytest.raises(IndexNotReadyError, match="ingest --rebuild"):
        HybridRetriever.open(settings, embeddings)

    repaired = Indexer(settings, embeddings).ingest(small_corpus)
    assert repaired.changed and repaired.generation > first.generation
    answer = Assistant(settings).answer("how much does instant cash-out cost")
    assert answer.citations and answer.citations[0].doc_id == "cashout"


def test_exact_dense_search_finds_what_chroma_finds_with_and_without_a_document_filter(
    shipped_index: Path,
) -> None:
    settings = Settings(data_dir=shipped_index)
    embeddings = make_embeddings(settings)
    exact = HybridRetriever.open(settings, embeddings).dense
    hnsw = HybridRetriever.open(settings.model_copy(update={"exact_search_max_chunks": 0}), embeddings).dense
    assert exact.exact and not hnsw.exact
    manifest = read_manifest(shipped_index)
    assert manifest is not None
    some = sorted(manifest.documents)[::3]
    agreed = total = 0
    for question in ("when do i get paid", "customer not answering the door", "can i deliver alcohol in ontario",
                     "app crashes when i upload the photo", "how is my acceptance rate calculated"):
        vector = embeddings.embed_query(question)
        for doc_ids in (None, some):
            found = exact.search(vector, k=10, doc_ids=doc_ids)
            expected = hnsw.search(vector, k=10, doc_ids=doc_ids)
            assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
            if doc_ids is not None:
                assert {d.metadata["doc_id"] for d, _ in found} <= set(doc_ids)
            # HNSW is approximate: the exact top 10 holds what it found, with the same similarity
            exact_sim = {d.metadata["chunk_id"]: s for d, s in found}
            for document, similarity in expected:
                total += 1
                if document.metadata["chunk_id"] in exact_sim:
                    agreed += 1
                    assert abs(exact_sim[document.metadata["chunk_id"]] - similarity) < 1e-4
            assert found[0][0].page_content and found[0][0].metadata["chunk_id"]
    assert agreed >= 0.95 * total
    assert exact.search(embeddings.embed_query("pay"), k=5, doc_ids=[]) == []


def test_a_small_index_is_searched_from_its_own_vectors_without_chroma_and_a_damaged_file_falls_back(
    copy_of_shipped_index: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=copy_of_shipped_index)
    manifest = read_manifest(copy_of_shipped_index)
    assert manifest is not None
    question = HelpRequest(message="how long do i wait when the customer does not answer",
                           journey=JourneyContext(stage="at_dropoff", market="us-ca"))
    through_chroma = Assistant(settings.model_copy(update={"exact_search_max_chunks": 0})).answer(question)
    shutil.move(copy_of_shipped_index / "chroma", copy_of_shipped_index.parent / "chroma-away")
    assert isinstance(HybridRetriever.open(settings, make_embeddings(settings)).dense, ExactSearch)
    answered = Assistant(settings).answer(question)  # Chroma's files are gone: not needed to answer
    assert [c.chunk_id for c in answered.citations] == [c.chunk_id for c in through_chroma.citations]
    assert answered.route is through_chroma.route and answered.answer == through_chroma.answer
    shutil.move(copy_of_shipped_index.parent / "chroma-away", copy_of_shipped_index / "chroma")
    vectors = copy_of_shipped_index / manifest.store_dir / CHUNK_VECTORS_FILE
    vectors.write_bytes(vectors.read_bytes()[:300])
    with caplog.at_level("WARNING"):
        assert Assistant(settings).answer(question).answer == through_chroma.answer
        assert not isinstance(HybridRetriever.open(settings, make_embeddings(settings)).dense, ExactSearch)
    assert "assistant ingest --rebuild" in caplog.text


def test_an_hnsw_search_by_ids_filters_after_the_search_and_falls_back_to_chroma_s_filter(shipped_index: Path) -> None:
    """Ids-only HNSW search (no texts read) with the document filter applied to the nearest
    OVERFETCH * k chunks gives what Chroma's own filter gives; a filter that leaves too few of
    the nearest chunks (one document) is passed to Chroma instead."""
    settings = Settings(data_dir=shipped_index, exact_search_max_chunks=0)
    embeddings = make_embeddings(settings)
    hnsw = HybridRetriever.open(settings, embeddings).dense
    assert not hnsw.exact
    manifest = read_manifest(shipped_index)
    assert manifest is not None
    most = sorted(manifest.documents)[1:]
    one = ["app-error-codes"]
    for question in ("when do i get paid", "photo upload fails with UPL-500", "customer not answering"):
        vector = embeddings.embed_query(question)
        for doc_ids in (None, most, one):
            ids = hnsw.search_ids(vector, k=8, doc_ids=doc_ids)
            full = [(d.metadata["chunk_id"], s) for d, s in hnsw.search(vector, k=8, doc_ids=doc_ids)]
            assert [c for c, _ in ids] == [c for c, _ in full]
            assert all(abs(a - b) < 1e-5 for (_, a), (_, b) in zip(ids, full, strict=True))
            if doc_ids is not None:
                assert set(doc_ids) >= {d for d, e in manifest.documents.items() for c, _ in ids if c in e.chunk_ids}
        assert len(hnsw.search_ids(vector, k=8, doc_ids=one)) == min(8, len(manifest.documents["app-error-codes"].chunk_ids))
