"""Keyword retrieval with BM25 (``bm25s``), Snowball-stemmed, persisted beside the vector index."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from assistant.errors import IndexNotReadyError
from assistant.retrieval.exact import top_rows

_IDS_FILE = "chunk_ids.json"
#: Query terms shorter than this are never typo-corrected.
TYPO_MIN_LENGTH = 5
# Keep error codes such as "UPL-500" together as one token as well as their parts.
_CODE = re.compile(r"\b([A-Za-z]{2,5})-(\d{3})\b")


_WORDS = re.compile(r"(?u)\b\w\w+\b").findall  # bm25s's (and scikit-learn's) token pattern
_STOPWORDS = frozenset(STOPWORDS_EN)
_STEMMER = Stemmer.Stemmer("english")
_STEMMER_LOCK = threading.Lock()  # a PyStemmer object is not safe to share between threads


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    with _STEMMER_LOCK:
        return str(_STEMMER.stemWord(word))


def _expand_codes(text: str) -> str:
    return _CODE.sub(lambda m: f"{m.group(0)} {m.group(1)}{m.group(2)}", text)


class Bm25Index:
    """A BM25 index over chunk texts, addressed by chunk id."""

    def __init__(self, model: bm25s.BM25, chunk_ids: list[str]) -> None:
        self._model = model
        self.chunk_ids = chunk_ids
        self._position = {cid: i for i, cid in enumerate(chunk_ids)}
        self._vocab: dict[str, int] = dict(model.vocab_dict)
        self._vocab_terms = [t for t in self._vocab if t.isalpha() and len(t) >= TYPO_MIN_LENGTH - 1]

    @staticmethod
    def tokenize(texts: list[str]) -> list[list[str]]:
        """Lower-cased, stop-worded, stemmed tokens, the same as ``bm25s.tokenize(texts,
        stopwords="en", stemmer=...)`` gives (its split pattern and stopword list), without its
        per-call vocabulary and progress bars, and with each word's stem memoised."""
        return [
            [_stem(word) for word in _WORDS(_expand_codes(text).lower()) if word not in _STOPWORDS]
            for text in texts
        ]

    @staticmethod
    @lru_cache(maxsize=8192)
    def term_set(text: str) -> frozenset[str]:
        """The distinct tokens of ``text`` (cached: the same texts come back on every request)."""
        return frozenset(Bm25Index.tokenize([text])[0])

    @classmethod
    def build(cls, chunk_ids: list[str], texts: list[str]) -> Bm25Index:
        """Index ``texts`` (one per chunk id)."""
        tokens = cls.tokenize(texts)
        # the vocabulary in sorted order, not bm25s's set order (which follows the process's hash
        # seed): the same corpus gives the same index files, and a typo's correction among equally
        # close corpus terms is the same in every process
        vocab = {term: i for i, term in enumerate(sorted({t for doc in tokens for t in doc}))}
        model = bm25s.BM25()
        model.index(([[vocab[t] for t in doc] for doc in tokens], vocab), show_progress=False)
        return cls(model, list(chunk_ids))

    def save(self, folder: Path) -> None:
        """Write the index files into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        self._model.save(str(folder), show_progress=False)
        tmp = folder / f".{_IDS_FILE}.tmp"
        tmp.write_text(json.dumps(self.chunk_ids), encoding="utf-8")
        os.replace(tmp, folder / _IDS_FILE)

    @classmethod
    def load(cls, folder: Path) -> Bm25Index:
        """Load an index written by :meth:`save`."""
        try:
            logging.getLogger("bm25s").setLevel(logging.ERROR)
            model = bm25s.BM25.load(str(folder), load_vocab=True, show_progress=False)
            chunk_ids = json.loads((folder / _IDS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError) as exc:
            raise IndexNotReadyError(
                f"the BM25 index in {folder} is missing or corrupt ({exc}); "
                "rebuild it with `assistant ingest --rebuild`"
            ) from exc
        return cls(model, chunk_ids)

    def correct(self, term: str) -> str | None:
        """``term`` if the corpus uses it, else the closest corpus term a typo away, else ``None``.

        Drivers type fast ("disapeared", "acount"); a query term the corpus never uses is matched
        to a corpus term within one edit (two for terms of 8+ characters). Short terms, numbers
        and codes are left alone: one edit changes their meaning.
        """
        if term in self._vocab:
            return term
        if len(term) < TYPO_MIN_LENGTH or not term.isalpha():
            return None
        cutoff = 2 if len(term) >= 8 else 1
        match = process.extractOne(term, self._vocab_terms, scorer=Levenshtein.distance, score_cutoff=cutoff)
        return str(match[0]) if match else None

    def positions(self, chunk_ids: Iterable[str]) -> np.ndarray[Any, np.dtype[np.int64]]:
        """The index's row of each chunk id (-1 for an id it does not hold)."""
        return np.asarray([self._position.get(cid, -1) for cid in chunk_ids], dtype=np.int64)

    def search(
        self, query: str, *, k: int, allowed: set[str] | None = None, mask: np.ndarray[Any, np.dtype[np.bool_]] | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` best chunks as (chunk id, BM25 score), optionally only within ``allowed``
        chunk ids or where ``mask`` (one entry per row of the index) is true; a caller that
        filters every query keeps a mask, which costs the same however many chunks are allowed."""
        terms = [c for t in self.tokenize([query])[0] if (c := self.correct(t)) is not None]
        if not terms or not self.chunk_ids:
            return []
        scores = np.asarray(self._model.get_scores(terms), dtype=np.float64)
        if allowed is not None:
            rows = self.positions(allowed)
            keep = np.zeros(len(self.chunk_ids), dtype=bool)
            keep[rows[rows >= 0]] = True
            mask = keep if mask is None else mask & keep
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        return [(self.chunk_ids[i], float(scores[i])) for i in top_rows(scores, k) if scores[i] > 0]
