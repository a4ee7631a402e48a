from pathlib import Path

from assistant.ingestion.documents import load_corpus
from tests.conftest import write_doc


def test_valid_documents_load_with_front_matter(small_corpus: Path):
    corpus = load_corpus(small_corpus)
    assert {d.id for d in corpus.documents} == {"payouts", "payouts-north", "cashout-old", "cashout"}
    north = next(d for d in corpus.documents if d.id == "payouts-north")
    assert north.markets == ["north"] and north.variant_of == "payouts" and not north.is_general
    assert next(d for d in corpus.documents if d.id == "cashout").supersedes == ["cashout-old"]
    assert corpus.problems == []


def test_malformed_documents_are_reported_and_skipped(tmp_path: Path):
    write_doc(tmp_path, "good", "## Section\nA real sentence about pay.")
    (tmp_path / "no-front.md").write_text("# Just a title\nbody", encoding="utf-8")
    (tmp_path / "bad-yaml.md").write_text("---\nid: [unclosed\n---\nbody", encoding="utf-8")
    (tmp_path / "no-id.md").write_text("---\ntitle: T\nversion: 1\neffective_date: 2025-01-01\n---\nbody", encoding="utf-8")
    (tmp_path / "latin1.md").write_bytes("---\nid: x\n---\ncaf\xe9".encode("latin-1"))
    (tmp_path / "empty.md").write_text("", encoding="utf-8")
    (tmp_path / "zz-dupe.md").write_text((tmp_path / "good.md").read_text(encoding="utf-8"), encoding="utf-8")
    write_doc(tmp_path, "bad-date", "body text", effective_date="someday")
    corpus = load_corpus(tmp_path)
    assert [d.id for d in corpus.documents] == ["good"]
    reasons = {Path(p.path).name: p.reason for p in corpus.problems}
    assert "no YAML front matter" in reasons["no-front.md"]
    assert "bad front matter" in reasons["bad-yaml.md"]
    assert "no 'id'" in reasons["no-id.md"]
    assert "not UTF-8" in reasons["latin1.md"]
    assert "empty" in reasons["empty.md"]
    assert "duplicate id 'good'" in reasons["zz-dupe.md"]
    assert "effective_date" in reasons["bad-date.md"]


def test_numeric_tags_are_read_as_text(tmp_path: Path):
    write_doc(tmp_path, "safety", "Call 911.", tags="[safety, 911]")
    assert load_corpus(tmp_path).documents[0].tags == ["safety", "911"]


def test_shipped_corpus_is_clean_and_complete():
    corpus = load_corpus(Path(__file__).resolve().parent.parent / "corpus")
    assert corpus.problems == []
    assert len(corpus.documents) >= 40
    ids = {d.id for d in corpus.documents}
    assert any(d.supersedes for d in corpus.documents)
    variants = [d for d in corpus.documents if d.variant_of]
    assert {v.variant_of for v in variants} <= ids and len({m for v in variants for m in v.markets}) >= 1
    markets = {m for d in corpus.documents for m in d.markets if m != "all"}
    assert len(markets) >= 2
    assert set(corpus.market_names) >= markets
