import numpy as np
import pytest

from assistant.errors import BackendError, ConfigurationError
from assistant.retrieval import embeddings as emb_module
from assistant.retrieval.embeddings import DIMENSION, LocalMiniLMEmbeddings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def embedder() -> LocalMiniLMEmbeddings:
    return LocalMiniLMEmbeddings(batch_size=4, cache_size=8)


def test_vectors_are_normalised_and_meaningful(embedder: LocalMiniLMEmbeddings):
    pay, deposit, fire = (np.asarray(v) for v in embedder.embed_documents(
        ["When do I get paid?", "Weekly payouts arrive by direct deposit on Wednesday.", "My car is on fire"]
    ))
    assert pay.shape == (DIMENSION,)
    assert np.linalg.norm(pay) == pytest.approx(1.0, abs=1e-4)
    assert float(pay @ deposit) > float(pay @ fire) + 0.2


def test_batching_gives_the_same_vectors_as_one_by_one(embedder: LocalMiniLMEmbeddings):
    texts = [f"driver question number {i} about {'tips' if i % 2 else 'payouts'}" for i in range(10)]
    batched = np.asarray(embedder.embed_documents(texts))
    single = np.asarray([embedder.embed_documents([t])[0] for t in texts])
    assert np.allclose(batched, single, atol=1e-4)


def test_query_cache_answers_repeats(embedder: LocalMiniLMEmbeddings):
    before = embedder.cache.hits
    first = embedder.embed_query("cache me please")
    again = embedder.embed_query("cache me please")
    assert first == again and embedder.cache.hits == before + 1


def test_checksum_mismatch_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(emb_module, "MODEL_SHA256", "0" * 64)
    with pytest.raises(ConfigurationError, match="sha256"):
        emb_module.local_model_files()


def test_tokenizer_checksum_mismatch_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(emb_module, "TOKENIZER_SHA256", "f" * 64)
    with pytest.raises(ConfigurationError, match="tokenizer"):
        emb_module.local_model_files()


def test_concurrent_calls_give_the_same_vectors_as_sequential_ones(embedder: LocalMiniLMEmbeddings):
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"how do i {verb} my {thing}" for verb in ("update", "check", "fix", "find")
             for thing in ("payout", "rating", "vehicle", "documents", "schedule")]
    sequential = np.asarray(embedder.embed_documents(texts))
    with ThreadPoolExecutor(8) as pool:  # no lock around the model: overlapping calls run at once
        concurrent = np.asarray(list(pool.map(lambda t: embedder.embed_documents([t])[0], texts)))
    assert np.allclose(concurrent, sequential, atol=1e-4)
    assert embedder._running == 0


def _model_calls(embedder: LocalMiniLMEmbeddings, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The texts of each model call the embedder makes from now on."""
    calls: list[list[str]] = []
    run = embedder._run
    monkeypatch.setattr(embedder, "_run", lambda texts, **kw: calls.append(texts) or run(texts, **kw))
    return calls


def test_long_texts_are_embedded_in_smaller_batches_with_the_same_vectors(monkeypatch: pytest.MonkeyPatch):
    embedder = LocalMiniLMEmbeddings(batch_size=32, cache_size=0)
    calls = _model_calls(embedder, monkeypatch)
    short = [f"short question {i}" for i in range(40)]
    long = [f"{i} " + "the customer was not at the door so I waited and called and texted " * 12 for i in range(20)]
    batched = np.asarray(embedder.embed_documents(short + long))
    rows = [len(texts) for texts in calls]
    assert rows[0] == 32  # short texts: full batches
    assert max(rows[-2:]) <= emb_module.BATCH_CHARACTERS // len(long[0]) + 1  # long ones: fewer rows a call
    single = np.asarray([embedder.embed_documents([t])[0] for t in short[:3] + long[:3]])
    assert np.allclose(batched[[0, 1, 2, 40, 41, 42]], single, atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_length_batches_cover_every_text_once_in_length_order_within_the_budget(seed: int):
    rng = np.random.default_rng(seed)
    texts = ["x" * int(n) for n in rng.integers(0, 3000, size=int(rng.integers(1, 300)))]
    batches = list(emb_module.length_batches(texts, 32, characters=6400, longest_read=1200))
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(texts)))
    assert [len(texts[i]) for i in flat] == sorted(len(t) for t in texts)
    for batch in batches:
        longest = max(1, min(max(len(texts[i]) for i in batch), 1200))
        assert len(batch) <= 32 and (len(batch) == 1 or len(batch) * longest <= 6400)


def test_a_request_s_two_texts_run_side_by_side_with_the_vectors_of_a_batch(monkeypatch: pytest.MonkeyPatch):
    embedder = LocalMiniLMEmbeddings(cache_size=0)
    calls = _model_calls(embedder, monkeypatch)
    texts = ["the customer isnt answering the door", "the customer isnt answering the door (alcohol order)"]
    each = np.asarray(embedder.embed_documents(texts))
    assert sorted(calls) == [[texts[0]], [texts[1]]]  # one model call a text
    assert np.allclose(each, embedder._embed_batch(texts), atol=1e-4)
    assert embedder._running == 0


def test_a_failing_text_side_by_side_raises_a_backend_error_and_stops_counting(monkeypatch: pytest.MonkeyPatch):
    embedder = LocalMiniLMEmbeddings(cache_size=0)
    run = embedder._run

    def failing(texts: list[str], **kw: bool) -> tuple[np.ndarray, np.ndarray]:
        if texts == ["bad"]:
            raise BackendError("local embedding model failed: test")
        return run(texts, **kw)

    monkeypatch.setattr(embedder, "_run", failing)
    for pair in (["bad", "fine"], ["fine", "bad"]):
        with pytest.raises(BackendError):
            embedder.embed_documents(pair)
        assert embedder._running == 0
