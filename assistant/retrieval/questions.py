"""Search-only driver questions: what an article answers, in the words drivers use.

Drivers describe situations ("can my wife see where i am when i'm out late") in words the
article never uses ("Share trip sends a link to trusted contacts"). An article's front matter may
list ``questions:``, the questions it answers as drivers would type them, each optionally with
the section that answers it (``{text, section}``). At ingest each question is embedded and
pointed at the chunk nearest to it in meaning of that section, else of the whole article: the
part that answers it. At query time the message is compared with the questions of the documents that apply; the
documents of the closest questions get one more vote when documents are ranked, and a document
no other search found joins the candidates with the chunk its question points at (a
doc2query-style expansion, kept beside the chunks instead of inside them).

Questions are never shown to the driver nor quoted in an answer, and a question only ever points
into its own article, so filters (market, superseded versions) apply to it unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from pydantic import BaseModel, ConfigDict

from assistant.errors import IndexNotReadyError
from assistant.retrieval.exact import DocumentMasks, top_rows

QUESTIONS_FILE = "questions.jsonl"
QUESTION_VECTORS_FILE = "question_vectors.npy"

Matrix = np.ndarray[Any, np.dtype[Any]]


class IndexedQuestion(BaseModel):
    """One search-only question and the chunk of its article that answers it."""

    model_config = ConfigDict(frozen=True)

    text: str
    doc_id: str
    chunk_id: str


def normalised(matrix: Matrix) -> Matrix:
    """``matrix`` as float32 rows of length 1 (all-zero rows stay zero)."""
    rows = np.asarray(matrix, dtype=np.float32)
    if rows.size == 0:
        return rows
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.asarray(rows / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def write_rows(folder: Path, text_file: str, vector_file: str, lines: Iterable[str], vectors: Matrix) -> None:
    """Write one JSON text per line and the rows' vectors (float16) into an index generation's
    folder, each file through a temporary one, the vectors first."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{text_file}.tmp"
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    vec_tmp = folder / f".{vector_file}.tmp.npy"
    np.save(vec_tmp, np.asarray(vectors).astype(np.float16))
    os.replace(vec_tmp, folder / vector_file)
    os.replace(tmp, folder / text_file)


def read_rows(folder: Path, text_file: str, vector_file: str, what: str) -> tuple[list[str], Matrix] | None:
    """What :func:`write_rows` wrote: the non-blank lines and the vectors as float32; ``None``
    when neither file exists; one without the other, or an unreadable one, is damage
    (:class:`IndexNotReadyError` naming ``what`` and the repair)."""
    path = folder / text_file
    if not path.exists() and not (folder / vector_file).exists():
        return None
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return lines, np.load(folder / vector_file).astype(np.float32)
    except (OSError, ValueError, EOFError) as exc:
        raise IndexNotReadyError(
            f"the {what} in {folder} are missing or corrupt ({exc}); rebuild them with `assistant ingest --rebuild`"
        ) from exc


def nearest_chunks(
    question_vectors: Matrix, chunk_vectors: Matrix, allowed: Sequence[Sequence[int]] | None = None
) -> list[int]:
    """For each question row, the index of the most similar chunk row (cosine), among the rows
    ``allowed[question]`` lists when it lists any (the first of equals)."""
    if len(question_vectors) == 0 or len(chunk_vectors) == 0:
        return []
    similarity = normalised(question_vectors) @ normalised(chunk_vectors).T
    if allowed is not None:
        for row, rows in enumerate(allowed):
            if rows:
                keep = np.zeros(similarity.shape[1], dtype=bool)
                keep[list(rows)] = True
                similarity[row, ~keep] = -np.inf
    return [int(i) for i in np.argmax(similarity, axis=1)]


class QuestionIndex:
    """Question vectors of one index generation, searched by brute-force cosine (they are few)."""

    #: The index generation's files it is written to, and what they hold (for the repair message).
    TEXT_FILE = QUESTIONS_FILE
    VECTOR_FILE = QUESTION_VECTORS_FILE
    WHAT = "driver questions"

    def __init__(self, questions: Sequence[IndexedQuestion], vectors: Matrix) -> None:
        if len(questions) != len(vectors):
            raise ValueError(f"{len(questions)} questions but {len(vectors)} vectors")
        self.questions = list(questions)
        self._vectors = normalised(vectors)
        # each question's chunk and document as a number, so a search's filter and per-chunk
        # maxima are array operations however many questions there are
        self._masks = DocumentMasks([q.doc_id for q in self.questions])
        self._docs = self._masks.names
        self._doc_index = self._masks.row_doc
        self._chunks = sorted({q.chunk_id for q in self.questions})
        chunk_number = {c: i for i, c in enumerate(self._chunks)}
        self._chunk_index = np.asarray([chunk_number[q.chunk_id] for q in self.questions], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.questions)

    def vector_of(self) -> dict[str, Matrix]:
        """Each question's text -> its (normalised) vector, for reuse by the next ingest."""
        return {q.text: self._vectors[i] for i, q in enumerate(self.questions)}

    def search(self, vector: Sequence[float], *, k: int, doc_ids: Collection[str]) -> list[tuple[str, float]]:
        """Chunks pointed at by the questions most similar to ``vector``, best first, each chunk
        once with its best question's similarity; only questions of ``doc_ids`` count."""
        if not self.questions:
            return []
        query = normalised(np.asarray([vector], dtype=np.float32))[0]
        similarity = self._vectors @ query
        mask = self._masks.mask(list(doc_ids))
        masked = np.where(mask, similarity, -np.inf)
        allowed = int(mask.sum())
        hits: dict[str, float] = {}
        # the best few questions nearly always point at k different chunks; all of them if not
        for depth in (min(allowed, 4 * k), allowed):
            hits = {}
            for index in top_rows(masked, depth):
                if len(hits) == k:
                    break
                hits.setdefault(self.questions[index].chunk_id, float(similarity[index]))
            if len(hits) == k:
                break
        return list(hits.items())

    def best_similarities(self, vector: Sequence[float]) -> tuple[dict[str, float], dict[str, float]]:
        """The best similarity of ``vector`` to a question pointing at each chunk, and to a
        question of each document."""
        if not self.questions:
            return {}, {}
        query = normalised(np.asarray([vector], dtype=np.float32))[0]
        similarity = self._vectors @ query
        by_chunk = np.full(len(self._chunks), -np.inf, dtype=np.float32)
        by_doc = np.full(len(self._docs), -np.inf, dtype=np.float32)
        np.maximum.at(by_chunk, self._chunk_index, similarity)
        np.maximum.at(by_doc, self._doc_index, similarity)
        return dict(zip(self._chunks, by_chunk.tolist(), strict=True)), dict(zip(self._docs, by_doc.tolist(), strict=True))

    def write(self, folder: Path) -> None:
        """Write the questions and their vectors into an index generation's folder."""
        write_rows(folder, self.TEXT_FILE, self.VECTOR_FILE, (q.model_dump_json() for q in self.questions), self._vectors)

    @classmethod
    def read(cls, folder: Path) -> Self:
        """Load what :meth:`write` wrote; an index built without questions has none."""
        rows = read_rows(folder, cls.TEXT_FILE, cls.VECTOR_FILE, cls.WHAT)
        if rows is None:
            return cls([], np.zeros((0, 0), dtype=np.float32))
        lines, vectors = rows
        try:
            return cls([IndexedQuestion.model_validate_json(line) for line in lines], vectors)
        except ValueError as exc:
            raise IndexNotReadyError(
                f"the {cls.WHAT} in {folder} are missing or corrupt ({exc}); rebuild them with `assistant ingest --rebuild`"
            ) from exc


GAPS_FILE = "gaps.jsonl"
GAP_VECTORS_FILE = "gap_vectors.npy"


class GapIndex:
    """Questions drivers ask that the help centre does **not** answer (a corpus's ``gaps.yaml``),
    with their vectors.

    A driver question close to one of them (a benefit, a setting, a rule the articles never
    state) sits near an article that is about its subject but does not answer it, and
    retrieval alone scores it as well as a question that article answers. How much closer a
    question is to a gap question than to what the articles answer is a feature of the offline
    answer's confidence (``gap_margin``)."""

    def __init__(self, questions: Sequence[str], vectors: Matrix) -> None:
        if len(questions) != len(vectors):
            raise ValueError(f"{len(questions)} gap questions but {len(vectors)} vectors")
        self.questions = list(questions)
        self._vectors = normalised(vectors)

    def __len__(self) -> int:
        return len(self.questions)

    def vector_of(self) -> dict[str, Matrix]:
        """Each question's text -> its (normalised) vector, for reuse by the next ingest."""
        return {q: self._vectors[i] for i, q in enumerate(self.questions)}

    def best_similarity(self, vector: Sequence[float]) -> float:
        """The best cosine between ``vector`` and a gap question (0.0 without any)."""
        if not self.questions:
            return 0.0
        query = normalised(np.asarray([vector], dtype=np.float32))[0]
        return float((self._vectors @ query).max())

    def write(self, folder: Path) -> None:
        """Write the questions and their vectors into an index generation's folder."""
        write_rows(folder, GAPS_FILE, GAP_VECTORS_FILE, (json.dumps(q, ensure_ascii=False) for q in self.questions), self._vectors)

    @classmethod
    def read(cls, folder: Path) -> GapIndex:
        """Load what :meth:`write` wrote; an index built without gap questions has none."""
        rows = read_rows(folder, GAPS_FILE, GAP_VECTORS_FILE, "unanswered questions")
        if rows is None:
            return cls([], np.zeros((0, 0), dtype=np.float32))
        lines, vectors = rows
        try:
            return cls([str(json.loads(line)) for line in lines], vectors)
        except ValueError as exc:
            raise IndexNotReadyError(
                f"the unanswered questions in {folder} are corrupt ({exc}); rebuild them with `assistant ingest --rebuild`"
            ) from exc


SITUATIONS_FILE = "situations.jsonl"
SITUATION_VECTORS_FILE = "situation_vectors.npy"
#: How many of the nearest situations vote for the section a driver in danger is quoted.
SITUATION_VOTES = 3


class SituationIndex(QuestionIndex):
    """Situations of drivers in danger (a corpus's ``safety-situations.yaml``), each pointing at
    the first chunk of the section whose steps it needs first, with their vectors.

    A message escalated for safety is quoted the section its nearest situations point to
    (:meth:`steps`): retrieval and the section model read a driver's question, and a crash, a
    knife or chest pain told in a few words is nearer to the generic steps of every safety
    article than to the one for it; a driver in the same situation is nearer still."""

    TEXT_FILE = SITUATIONS_FILE
    VECTOR_FILE = SITUATION_VECTORS_FILE
    WHAT = "safety situations"

    def steps(self, vector: Sequence[float], *, doc_ids: Collection[str], votes: int = SITUATION_VOTES) -> str | None:
        """The chunk that most of the ``votes`` situations nearest to ``vector`` point at (each
        vote weighed by its similarity), among those of ``doc_ids``; ``None`` without any."""
        if not self.questions:
            return None
        query = normalised(np.asarray([vector], dtype=np.float32))[0]
        similarity = self._vectors @ query
        masked = np.where(self._masks.mask(list(doc_ids)), similarity, -np.inf)
        tally: dict[str, float] = {}
        for index in top_rows(masked, votes):
            if np.isfinite(masked[index]):
                chunk = self.questions[index].chunk_id
                tally[chunk] = tally.get(chunk, 0.0) + max(float(similarity[index]), 0.0)
        return max(tally, key=lambda c: tally[c]) if tally else None
