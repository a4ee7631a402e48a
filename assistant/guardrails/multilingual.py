"""The message classifier for messages in other languages, through the multilingual model.

The English classifier (:mod:`assistant.guardrails.classifier`) reads English only. A message in
another language is classified instead by the same kind of model over the multilingual model of
:mod:`assistant.retrieval.multilingual`: a balanced softmax regression (:mod:`.linear`) trained on
the same labelled examples (``examples.yaml``, mostly English, with the misuse classifier's
requests to cheat or harm as ``harmful`` and their look-alikes as ``driver``) plus
``examples-multilingual.yaml`` and ``examples-misuse-multilingual.yaml`` (the same labels written
in other languages). The model maps a sentence and its translation to
nearby vectors, so what is learnt from the examples in one language carries to the others. Its
probabilities take the English classifier's place in the message screen, under the same policy
thresholds: one mechanism, in any language. A second one (:func:`authority_classifier`) reads a
claim of authority to make the assistant act, as the English authority classifier does, and a
third (:func:`action_classifier`) a driver asking support to act on their own case, as the
English account-action classifier does.

The examples' vectors are computed once (at ingest) and cached in the guardrails cache folder,
keyed by the examples' content; training on them takes a fraction of a second.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.guardrails.classifier import (
    ACTION_EXAMPLES,
    AUTHORITY_EXAMPLES,
    DEFAULT_EXAMPLES,
    MISUSE_EXAMPLES,
    MISUSE_LOOKALIKES,
    SHIPPED_DIR,
    load_examples,
    windows,
)
from assistant.guardrails.linear import fit_softmax, softmax
from assistant.retrieval.multilingual import DIMENSION, MultilingualEncoder, default_encoder

logger = logging.getLogger("assistant.guardrails")

#: The same labels written in other languages (training data, like ``examples.yaml``).
MULTILINGUAL_EXAMPLES = Path(__file__).with_name("examples-multilingual.yaml")
#: Claims of authority to make the assistant act, and their look-alikes, in other languages.
MULTILINGUAL_AUTHORITY_EXAMPLES = Path(__file__).with_name("examples-authority-multilingual.yaml")
#: Drivers' own requests for an action in the registers claims of authority are written in (formal
#: letters, polite business-like requests), in other languages: look-alikes for the authority
#: classifier (``driver``).
MULTILINGUAL_AUTHORITY_LOOKALIKES = Path(__file__).with_name("examples-authority-lookalikes-multilingual.yaml")
#: Drivers asking support to act on their own case, and look-alike questions, in other languages.
MULTILINGUAL_ACTION_EXAMPLES = Path(__file__).with_name("examples-action-multilingual.yaml")
#: Drivers in a safety situation now, and look-alikes in the same words, in other languages.
MULTILINGUAL_SAFETY_EXAMPLES = Path(__file__).with_name("examples-safety-multilingual.yaml")
#: Requests for help to cheat or harm in the delivery work, and look-alikes, in other languages.
MULTILINGUAL_MISUSE_EXAMPLES = Path(__file__).with_name("examples-misuse-multilingual.yaml")
#: The screen's examples in English (the labelled examples, and the misuse requests as ``harmful``
#: with their look-alikes), then in other languages.
ENGLISH_EXAMPLES = (DEFAULT_EXAMPLES, MISUSE_EXAMPLES, MISUSE_LOOKALIKES)
OTHER_LANGUAGE_EXAMPLES = (MULTILINGUAL_EXAMPLES, MULTILINGUAL_MISUSE_EXAMPLES, MULTILINGUAL_SAFETY_EXAMPLES)
#: Inverse regularisation strength, chosen by leave-one-language-out validation on the examples
#: (``python evals/classifier_languages.py``), never on eval cases.
C = 16.0

Matrix = np.ndarray[Any, np.dtype[Any]]


class MultilingualClassifier:
    """Label probabilities for a message in any language."""

    def __init__(
        self, *, examples_paths: Sequence[Path] = (*ENGLISH_EXAMPLES, *OTHER_LANGUAGE_EXAMPLES),
        cache_dir: Path | None = None, encoder: MultilingualEncoder | None = None, c: float = C,
        relabel: Mapping[str, str] | None = None, name: str = "multilingual",
    ) -> None:
        """``relabel`` renames labels of the example files (``{"action": "driver"}``); the
        examples' vectors are cached as ``<name>-<fingerprint>.npy``."""
        texts: list[str] = []
        labels: list[str] = []
        for path in examples_paths:
            examples = load_examples(path)
            for label in sorted(examples):
                texts.extend(examples[label])
                labels.extend([(relabel or {}).get(label, label)] * len(examples[label]))
        self.name = name
        self.texts = texts
        self.example_labels = labels
        self.labels = sorted(set(labels))
        self.encoder = encoder or default_encoder()
        self.cache_dir = cache_dir
        self.c = c
        self._vectors: Matrix | None = None
        self._model: tuple[Matrix, Matrix] | None = None
        self._lock = threading.Lock()

    def cache_name(self) -> str:
        """The file name of the examples' vectors (their labels' and texts' fingerprint)."""
        rows = (f"{label}\t{text}" for label, text in zip(self.example_labels, self.texts, strict=True))
        digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        return f"{self.name}-{digest[:16]}.npy"

    def _cache_path(self) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / self.cache_name()

    def vectors(self) -> Matrix:
        """The examples' vectors, from the cache or computed (and cached) now."""
        with self._lock:
            return self._vectors_locked()

    def _vectors_locked(self) -> Matrix:
        if self._vectors is None:
            cache = self._cache_path()
            # the index's cache, else the vectors shipped in the package (read only)
            for path in (cache, SHIPPED_DIR / self.cache_name()):
                if path is not None and path.exists() and (vectors := self._read(path)) is not None:
                    self._vectors = vectors
                    break
            if self._vectors is None:
                self._vectors = self.encoder.encode(self.texts)
                if cache is not None:
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    tmp = cache.with_suffix(".tmp.npy")
                    np.save(tmp, self._vectors.astype(np.float16))
                    os.replace(tmp, cache)
        return self._vectors

    def _read(self, path: Path) -> Matrix | None:
        """The vectors in ``path``; None (with a warning: they are computed again) when damaged."""
        try:
            cached = np.load(path).astype(np.float32)
        except (OSError, ValueError, EOFError):
            logger.warning("rebuilding the damaged multilingual classifier cache %s", path)
            return None
        return cached if cached.shape == (len(self.texts), DIMENSION) else None

    def _trained(self) -> tuple[Matrix, Matrix]:
        with self._lock:
            if self._model is None:
                targets = np.asarray([self.labels.index(label) for label in self.example_labels])
                self._model = fit_softmax(self._vectors_locked(), targets, n_labels=len(self.labels), c=self.c)
            return self._model

    def probabilities(self, text: str) -> dict[str, float]:
        """Label -> probability; for a long message, each label's highest over its windows.
        Raises :class:`~assistant.errors.BackendError` when the model is unavailable."""
        return self.read(self.encoder.encode(windows(text)))

    def read(self, vectors: Matrix) -> dict[str, float]:
        """Label -> probability for a message's window vectors (``encoder.encode(windows(text))``),
        each label's highest over the windows: classifiers over one encoder share one encoding."""
        weights, bias = self._trained()
        best = softmax(vectors.astype(np.float64) @ weights.T + bias).max(axis=0)
        return {label: float(best[i]) for i, label in enumerate(self.labels)}


def authority_classifier(*, cache_dir: Path | None = None, encoder: MultilingualEncoder | None = None) -> MultilingualClassifier:
    """The claim-of-authority reading in any language: ``authority`` (``examples-authority.yaml``
    and ``examples-authority-multilingual.yaml``) against their look-alikes, the drivers' own
    requests for an action (``examples-action.yaml``, and in the registers of claims in 14
    languages, ``examples-authority-lookalikes-multilingual.yaml``) and every message of
    ``examples-multilingual.yaml`` (all read as ``driver``), over the multilingual model, as the
    English authority classifier reads English."""
    others = {label: "driver" for label in ("action", "safety", "injection", "harmful", "offtopic")}
    return MultilingualClassifier(
        examples_paths=(AUTHORITY_EXAMPLES, MULTILINGUAL_AUTHORITY_EXAMPLES, ACTION_EXAMPLES,
                        MULTILINGUAL_AUTHORITY_LOOKALIKES, MULTILINGUAL_EXAMPLES),
        cache_dir=cache_dir, encoder=encoder, relabel=others, name="multilingual-authority",
    )


def action_classifier(*, cache_dir: Path | None = None, encoder: MultilingualEncoder | None = None) -> MultilingualClassifier:
    """The account-action reading in any language: ``action``, a driver asking support to act on
    their own case (``examples-action.yaml`` and ``examples-action-multilingual.yaml``), against
    their look-alike questions and every message of ``examples-multilingual.yaml`` (all read as
    ``driver``), over the multilingual model. The English classifier reads English messages; the
    account-action patterns are English, so in another language this reading is the check."""
    others = {label: "driver" for label in ("safety", "injection", "harmful", "offtopic")}
    return MultilingualClassifier(
        examples_paths=(ACTION_EXAMPLES, MULTILINGUAL_ACTION_EXAMPLES, MULTILINGUAL_EXAMPLES),
        cache_dir=cache_dir, encoder=encoder, relabel=others, name="multilingual-action",
    )


def multilingual_classifiers(cache_dir: Path | None) -> tuple[MultilingualClassifier, ...]:
    """The message screen's, the authority and the account-action classifiers in any language."""
    return MultilingualClassifier(cache_dir=cache_dir), authority_classifier(cache_dir=cache_dir), action_classifier(cache_dir=cache_dir)
