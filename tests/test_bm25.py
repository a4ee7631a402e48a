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


def test_the_same_texts_build_the_same_index_in_every_process(tmp_path: Path) -> None:
    # bm25s orders its vocabulary as a set does, by the process's hash seed; a typo's correction
    # among equally close terms followed it, so two ingests of one corpus could answer differently
    import os
    import subprocess
    import sys

    code = (
        "import sys\nfrom pathlib import Path\nfrom assistant.retrieval.bm25 import Bm25Index\n"
        "texts = ['the driver waited for payment', 'payout schedule weekly deposit', 'customer unavailable timer',"
        " 'deposit a check', 'the payments team']\n"
        "index = Bm25Index.build([str(i) for i in range(len(texts))], texts)\n"
        "index.save(Path(sys.argv[1]))\nprint(index.correct('paymant'))\n"
    )
    outputs = []
    for seed in ("1", "2", "3"):
        folder = tmp_path / seed
        done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed})
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
        outputs.append((done.stdout, files))
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0][0].strip() in ("payment", "payout")
