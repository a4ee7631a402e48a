from pathlib import Path

import numpy as np
import pytest

from assistant.errors import IndexNotReadyError
from assistant.retrieval.bm25 import Bm25Index


def test_bm25_ranks_persists_and_filters(tmp_path: Path):
    index = Bm25Index.build(
        ["a", "b", "c"],
        ["Payouts arrive on Wednesday by direct deposit", "Error UPL-500 means the photo upload failed", "Tips are final after 24 hours"],
    )
    index.save(tmp_path / "bm25")
    loaded = Bm25Index.load(tmp_path / "bm25")
    assert loaded.search("when are payouts paid", k=3)[0][0] == "a"
    assert loaded.search("upl-500", k=3)[0][0] == "b"
    assert loaded.search("payouts", k=3, allowed={"b", "c"}) == []
    assert loaded.search("zzzz unknown", k=3) == []
    # a row mask filters as the ids do
    mask = np.asarray([False, True, True])
    assert loaded.search("payouts upload tips", k=3, mask=mask) == loaded.search("payouts upload tips", k=3, allowed={"b", "c"})
    assert {c for c, _ in loaded.search("payouts upload tips", k=3, mask=mask)} == {"b", "c"}


def test_missing_bm25_index_is_a_typed_error(tmp_path: Path):
    with pytest.raises(IndexNotReadyError, match="rebuild"):
        Bm25Index.load(tmp_path / "nothing")


def test_a_typo_is_matched_to_the_corpus_term_one_edit_away():
    index = Bm25Index.build(["a", "b"], ["The order disappeared from the screen", "Tips arrive within an hour"])
    assert index.correct(index.tokenize(["disapeared"])[0][0]) is not None
    assert index.search("ordr disapeared", k=2)[0][0] == "a"
    # known terms stay; short unknown words are never "corrected" into something else
    assert index.correct("tip") == "tip"
    assert index.correct("tap") is None
    assert index.correct("zzzzzzzzzz") is None


def test_tokens_are_those_bm25s_makes():
    """The index's own tokenizer (memoised stems, no per-call vocabulary) gives exactly the tokens
    of ``bm25s.tokenize`` with the same stopwords and stemmer, on every line of the corpus."""
    import bm25s
    import Stemmer

    from assistant.retrieval.bm25 import _expand_codes

    corpus = Path(__file__).resolve().parent.parent / "corpus"
    lines = [line for f in sorted(corpus.rglob("*.md")) for line in f.read_text(encoding="utf-8").splitlines()]
    lines += ["UPL-500 won't go away!!", "Café naïve résumé", "¿Dónde está mi pago?", "", "a b c"]
    stemmer = Stemmer.Stemmer("english")
    expected = bm25s.tokenize([_expand_codes(t) for t in lines], stopwords="en", stemmer=stemmer.stemWords,
                              return_ids=False, show_progress=False)
    assert Bm25Index.tokenize(lines) == [list(t) for t in expected]
    assert len(lines) > 1000
