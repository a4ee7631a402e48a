"""Incremental ingestion, malformed input and interruption, on a small corpus with real Chroma."""

from collections.abc import Callable
from pathlib import Path

import pytest

from assistant import Assistant, IndexMismatchError, Settings
from assistant.errors import IndexNotReadyError
from assistant.ingestion.indexer import Indexer
from assistant.retrieval.embeddings import make_embeddings
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
