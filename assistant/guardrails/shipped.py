"""Write the guardrail classifiers trained on the shipped examples into the package.

The English classifiers' weights and the multilingual classifier's example vectors depend on the
example files and the model, not on a platform's corpus, so they ship inside the package
(``assistant/guardrails/trained/``) and a fresh index does not spend half a minute recomputing
them. After editing an example file, run::

    python -m assistant.guardrails.shipped

``tests/test_shipped_classifiers.py`` fails while the shipped files do not fit the examples.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings, FakeEmbeddings

from assistant.guardrails.classifier import (
    SHIPPED_DIR,
    MessageClassifier,
    danger_gate_classifier,
    english_classifiers,
)
from assistant.guardrails.multilingual import multilingual_classifiers
from assistant.guardrails.policy import load_policy
from assistant.retrieval.embeddings import DIMENSION, LOCAL_MODEL_ID, LocalMiniLMEmbeddings


def _english(embeddings: Embeddings, cache_dir: Path | None = None) -> list[MessageClassifier]:
    """The English classifiers, with the danger gate of the shipped policy's patterns."""
    gate = danger_gate_classifier(embeddings, load_policy(), cache_dir=cache_dir, model_id=LOCAL_MODEL_ID)
    return [*english_classifiers(embeddings, cache_dir=cache_dir, model_id=LOCAL_MODEL_ID), gate]


def expected_files() -> set[str]:
    """The file names the shipped examples call for (no model is loaded)."""
    names_only = FakeEmbeddings(size=DIMENSION)  # the names come from the examples and the model id
    names = {c.cache_name() for c in _english(names_only)}
    return names | {c.cache_name() for c in multilingual_classifiers(None)}


def write_shipped(folder: Path = SHIPPED_DIR) -> list[str]:
    """Train (or encode) each classifier into ``folder``, removing files no example calls for."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:  # train into a scratch cache, never from the shipped files
        scratch = Path(tmp)
        embeddings = LocalMiniLMEmbeddings()
        for classifier in _english(embeddings, cache_dir=scratch):
            classifier._train(classifier._examples(), scratch / classifier.cache_name())
        for multilingual in multilingual_classifiers(scratch):
            vectors = multilingual.encoder.encode(multilingual.texts)  # computed, not read from the package
            np.save(scratch / multilingual.cache_name(), vectors.astype(np.float16))
        wanted = expected_files()
        for stale in folder.iterdir():
            if stale.name not in wanted:
                stale.unlink()
        for name in sorted(wanted):
            (folder / name).write_bytes((scratch / name).read_bytes())
    return sorted(wanted)


if __name__ == "__main__":
    for written in write_shipped():
        print(f"wrote {SHIPPED_DIR / written}")
