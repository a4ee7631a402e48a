"""The safety screen for messages in other languages, through the multilingual model.

The message screen's classifier and patterns read English best. A message in another language
is also compared, by the multilingual model of :mod:`assistant.retrieval.multilingual`, with the
classifier's own labelled examples (``examples.yaml``, every label, in whatever languages they
are written): when most of its nearest examples are emergencies, it is flagged as one (a
classifier-strength finding: an explicit request for a person still wins). The same examples
teach the English classifier, so no new list is kept; a new example helps every language.

The examples' vectors are computed on the first message that needs them and cached in the
guardrails cache folder, keyed by the examples' content.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import AssistantError
from assistant.guardrails.checks import Finding
from assistant.guardrails.classifier import DEFAULT_EXAMPLES, load_examples
from assistant.response import ReasonCode
from assistant.retrieval.multilingual import MultilingualEncoder, default_encoder

logger = logging.getLogger("assistant.guardrails")

#: How many nearest examples vote.
NEIGHBOURS = 7
#: Share of the votes (similarity-weighted) the safety label needs.
SAFETY_SHARE = 0.5

Matrix = np.ndarray[Any, np.dtype[Any]]


class MultilingualScreen:
    """Nearest labelled examples of a message, in any language."""

    def __init__(
        self, *, examples_path: Path = DEFAULT_EXAMPLES, cache_dir: Path | None = None,
        encoder: MultilingualEncoder | None = None,
    ) -> None:
        examples = load_examples(examples_path)
        self.texts = [text for label in sorted(examples) for text in examples[label]]
        self.labels = np.asarray([label for label in sorted(examples) for _ in examples[label]], dtype=object)
        self.encoder = encoder or default_encoder()
        self.cache_dir = cache_dir
        self._vectors: Matrix | None = None
        self._lock = threading.Lock()

    def _cache_path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        rows = (f"{label}\t{text}" for label, text in zip(self.labels, self.texts, strict=True))
        digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        return self.cache_dir / f"multilingual-{digest[:16]}.npy"

    def vectors(self) -> Matrix:
        with self._lock:
            if self._vectors is None:
                path = self._cache_path()
                if path is not None and path.exists():
                    try:
                        cached = np.load(path).astype(np.float32)
                        if cached.shape[0] == len(self.texts):
                            self._vectors = cached
                    except (OSError, ValueError, EOFError):  # a damaged cache is rebuilt
                        logger.warning("rebuilding the damaged multilingual screen cache %s", path)
                if self._vectors is None:
                    self._vectors = self.encoder.encode(self.texts)
                    if path is not None:
                        path.parent.mkdir(parents=True, exist_ok=True)
                        tmp = path.with_suffix(".tmp.npy")
                        np.save(tmp, self._vectors.astype(np.float16))
                        os.replace(tmp, path)
            return self._vectors

    def votes(self, message: str) -> dict[str, float]:
        """Each label's similarity-weighted share of the message's nearest examples."""
        [vector] = self.encoder.encode([message])
        similarity = self.vectors() @ vector
        nearest = np.argsort(-similarity)[:NEIGHBOURS]
        weights = np.clip(similarity[nearest], 0.0, None)
        total = float(weights.sum()) or 1.0
        out: dict[str, float] = {}
        for index, weight in zip(nearest, weights, strict=True):
            out[str(self.labels[index])] = out.get(str(self.labels[index]), 0.0) + float(weight) / total
        return out

    def safety(self, message: str) -> Finding | None:
        """A safety finding when most of the message's nearest examples are emergencies; None
        otherwise, or when the model is unavailable (the English screen's verdict stands)."""
        try:
            votes = self.votes(message)
        except AssistantError as exc:
            logger.warning("multilingual safety screen unavailable: %s", exc)
            return None
        share = votes.get("safety", 0.0)
        if share < SAFETY_SHARE:
            return None
        return Finding(
            code=ReasonCode.SAFETY,
            detail=f"the message reads like a safety emergency (nearest examples, any language: {share:.2f})",
            evidence=[f"multilingual safety share {share:.2f}"],
            by_classifier=True,
        )
