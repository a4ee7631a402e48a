"""Keyword retrieval with BM25 (``bm25s``), Snowball-stemmed, persisted beside the vector index."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

from assistant.errors import IndexNotReadyError

_IDS_FILE = "chunk_ids.json"
# Keep error codes such as "UPL-500" together as one token as well as their parts.
_CODE = re.compile(r"\b([A-Za-z]{2,5})-(\d{3})\b")


def _expand_codes(text: str) -> str:
    return _CODE.sub(lambda m: f"{m.group(0)} {m.group(1)}{m.group(2)}", text)


class Bm25Index:
    """A BM25 index over chunk texts, addressed by chunk id."""

    def __init__(self, model: bm25s.BM25, chunk_ids: list[str]) -> None:
        self._model = model
        self.chunk_ids = chunk_ids
        self._position = {cid: i for i, cid in enumerate(chunk_ids)}
        self._vocab: dict[str, int] = dict(model.vocab_dict)

    _stemmer = Stemmer.Stemmer("english")

    @classmethod
    def tokenize(cls, texts: list[str]) -> list[list[str]]:
        """Lower-cased, stop-worded, stemmed tokens, as bm25s makes them."""
        tokens = bm25s.tokenize(
            [_expand_codes(t) for t in texts],
            stopwords="en",
            stemmer=cls._stemmer.stemWords,
            return_ids=False,
            show_progress=False,
        )
        return [list(t) for t in tokens]  # type: ignore[union-attr]

    @classmethod
    def build(cls, chunk_ids: list[str], texts: list[str]) -> Bm25Index:
        """Index ``texts`` (one per chunk id)."""
        model = bm25s.BM25()
        model.index(cls.tokenize(texts), show_progress=False)
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

    def search(self, query: str, *, k: int, allowed: set[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` best chunks as (chunk id, BM25 score), optionally only within ``allowed``."""
        terms = [t for t in self.tokenize([query])[0] if t in self._vocab]
        if not terms or not self.chunk_ids:
            return []
        scores = np.asarray(self._model.get_scores(terms), dtype=np.float64)
        if allowed is not None:
            mask = np.zeros(len(self.chunk_ids), dtype=bool)
            for cid in allowed:
                pos = self._position.get(cid)
                if pos is not None:
                    mask[pos] = True
            scores = np.where(mask, scores, 0.0)
        top = np.argsort(-scores, kind="stable")[:k]
        return [(self.chunk_ids[i], float(scores[i])) for i in top if scores[i] > 0]
