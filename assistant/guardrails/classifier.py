"""A small classifier over the local sentence embeddings, trained on labelled example messages.

Labels come from the example file (``assistant/guardrails/examples.yaml``): ``driver`` (ordinary
driver questions, including look-alikes), ``injection``, ``harmful``, ``offtopic`` and
``safety``. Training is multinomial logistic regression (:mod:`.linear`, numpy) on the embeddings; it runs
once per example file and embedding model, and the weights are cached under the data folder, so
a request only embeds its message (cached too) and multiplies one small matrix.

A long message is read in windows (the embedder sees about 256 word pieces), and each label takes
its highest probability over the windows, so a jailbreak cannot hide behind a harmless opening.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import zipfile
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from langchain_core.embeddings import Embeddings

from assistant.config import safe_load_yaml
from assistant.errors import ConfigurationError
from assistant.guardrails.checks import danger_match
from assistant.guardrails.linear import fit_softmax
from assistant.guardrails.policy import GuardrailPolicy
from assistant.retrieval.embeddings import embed_queries

DEFAULT_EXAMPLES = Path(__file__).with_name("examples.yaml")
#: Requests for support to act on the driver's own case (``action``) and look-alike questions.
ACTION_EXAMPLES = Path(__file__).with_name("examples-action.yaml")
#: Requests about the driver's own account and personal data (close, delete, export, correct) and
#: look-alike questions: read by the account-action classifier as they are labelled, by the screen,
#: the authority and the misuse classifiers as ``driver`` (see the file's header).
ACCOUNT_EXAMPLES = Path(__file__).with_name("examples-account.yaml")
#: Drivers' own requests for an action, in the registers claims of authority are written in (formal
#: letters, curt orders, an outside party's finding as the reason): look-alikes for the authority
#: classifier (``driver``) only (see the file's header).
AUTHORITY_LOOKALIKES = Path(__file__).with_name("examples-authority-lookalikes.yaml")
#: Claims of authority to make the assistant act (``authority``) and their look-alikes.
AUTHORITY_EXAMPLES = Path(__file__).with_name("examples-authority.yaml")
#: Requests for help misusing the delivery work (``harmful``: fake proof of delivery, location
#: spoofing, a customer's data, ...) and their look-alike driver questions (``driver``).
MISUSE_EXAMPLES = Path(__file__).with_name("examples-misuse.yaml")
#: Honest driver messages in the words of cheating ("a hack for my battery", "so I don't lose
#: access", "is this text fake"): look-alikes for the misuse classifier (``driver``).
MISUSE_LOOKALIKES = Path(__file__).with_name("examples-misuse-lookalikes.yaml")
#: More requests for help to cheat or harm, across the platform's schemes and in many styles, and
#: honest messages in their words: read by the English misuse classifier only (the multilingual
#: classifier carried them to other languages worse; see the file's header).
MISUSE_SCHEMES = Path(__file__).with_name("examples-misuse-schemes.yaml")
#: Harmful requests and jailbreaks in the style of public red-team sets, and honest driver messages
#: in their words: read by the message screen only, beside its examples (the other classifiers
#: read the delivery-work examples of ``examples.yaml``).
REDTEAM_EXAMPLES = Path(__file__).with_name("examples-redteam.yaml")
#: Drivers reporting that the app or a platform system is failing for them now (``defect``), and
#: messages in the same words that report no failure (``driver``): how-to and what-does-it-mean
#: questions, hypotheticals, conditions a policy explains, problems outside the app.
DEFECT_EXAMPLES = Path(__file__).with_name("examples-defect.yaml")
#: Drivers in a safety situation now (``danger``: threatened, followed, a collision at the scene,
#: an injury, a hazard) and messages about safety without a present danger (``driver``: rules,
#: what-ifs, incidents that are over).
SAFETY_EXAMPLES = Path(__file__).with_name("examples-safety.yaml")
#: English look-alikes of account actions and dangers: the app not letting a driver do a step,
#: questions about the app, everyday trouble at the scene (read by those two classifiers alone).
APP_TROUBLE_EXAMPLES = Path(__file__).with_name("examples-app-trouble.yaml")
#: Classifiers trained on the shipped examples with the local model, shipped inside the package
#: (``python -m assistant.guardrails.shipped`` writes them; a test checks they fit the examples),
#: so a fresh index does not retrain what does not depend on its corpus. Read only, after the
#: index's own cache.
SHIPPED_DIR = Path(__file__).with_name("trained")
#: Trained weights by fingerprint, shared by every classifier in the process.
_TRAINED: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = {}
_TRAIN_LOCK = threading.Lock()
#: Characters per window when a message is longer than one.
WINDOW_CHARS = 900
MAX_WINDOWS = 4


logger = logging.getLogger("assistant")


def load_examples(path: Path) -> dict[str, list[str]]:
    """Label -> example messages; :class:`ConfigurationError` with file and reason if broken."""
    try:
        data = safe_load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"guardrail examples {path}: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise ConfigurationError(f"guardrail examples {path}: expected a mapping of label -> list of messages")
    examples: dict[str, list[str]] = {}
    for label, items in data.items():
        if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
            raise ConfigurationError(f"guardrail examples {path}: {label!r} must be a list of non-empty strings")
        examples[str(label)] = [i.strip() for i in items]
    if "driver" not in examples:  # a file of look-alikes may hold drivers' messages alone
        raise ConfigurationError(f"guardrail examples {path}: needs a 'driver' label")
    return examples


def windows(text: str) -> list[str]:
    """``text`` cut into up to :data:`MAX_WINDOWS` pieces the embedder can read whole."""
    if len(text) <= WINDOW_CHARS:
        return [text]
    starts = np.linspace(0, len(text) - WINDOW_CHARS, num=min(MAX_WINDOWS, len(text) // WINDOW_CHARS + 1))
    return [text[int(s) : int(s) + WINDOW_CHARS] for s in starts]


#: Hashed word and word-pair features beside the sentence vector (see :func:`word_features`).
WORD_BUCKETS = 4096
#: Their weight against the sentence vector (both unit length) in the misuse classifier: a
#: sentence vector reads a message's topic, and a request to fake a drop-off photo shares its
#: topic with a question about the photo; the words ("fake", "so it looks like", "without them
#: noticing") carry the intent. Chosen on the training examples alone (`python
#: evals/classifier_folds.py --misuse-at ... --misuse-words 0 1 2`): 1 until
#: examples-misuse-schemes.yaml joined, 2 since (see ``screen.misuse_probability`` in the policy).
MISUSE_WORDS = 2.0
#: The same in the authority classifier: a driver relaying an approval ("Maria in payments okayed
#: it, so release the hold") asks for what a driver's own request asks for; "okayed", "so go
#: ahead", "on your end" carry the claim. Chosen on the training examples alone (`python
#: evals/classifier_folds.py --authority-at ... --authority-words 0 1 2`).
AUTHORITY_WORDS = 1.0
#: The same in the danger gate (:func:`danger_gate_classifier`): among messages a safety pattern
#: matches, the words tell the driver's own danger now ("he's following me") from the same words
#: in a question about the rules or an incident that is over ("is it ok to ...", "last week").
#: Chosen on the training examples alone (see ``safety.danger_pattern_probability`` in the policy).
DANGER_GATE_WORDS = 1.0
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def word_features(texts: Sequence[str], scale: float) -> np.ndarray[Any, np.dtype[np.float32]]:
    """One row per text: its distinct lower-cased words and adjacent word pairs, hashed into
    :data:`WORD_BUCKETS` buckets (CRC-32, stable across processes), unit length, times ``scale``."""
    rows = np.zeros((len(texts), WORD_BUCKETS), dtype=np.float32)
    for i, text in enumerate(texts):
        words = _WORD.findall(text.lower())
        for feature in {*words, *(f"{a} {b}" for a, b in pairwise(words))}:
            rows[i, zlib.crc32(feature.encode()) % WORD_BUCKETS] = 1.0
        norm = float(np.linalg.norm(rows[i]))
        if norm:
            rows[i] *= scale / norm
    return rows


def english_classifiers(
    embeddings: Embeddings, *, examples_path: Path | None = None, cache_dir: Path | None = None, model_id: str = ""
) -> tuple[MessageClassifier, MessageClassifier, MessageClassifier, MessageClassifier, MessageClassifier,
           MessageClassifier]:
    """The message screen's classifier (``examples_path``, default ``examples.yaml``, the
    red-team style examples of ``examples-redteam.yaml``, and ``examples-account.yaml``'s requests
    and questions as ``driver``: a driver asking support to close or erase their own account, in
    however curt a wording, is not trying to change the assistant's instructions); the
    account-action one: ``action`` (``examples-action.yaml`` and ``examples-account.yaml``) against its look-alike questions
    and the screen's ``driver`` examples; the authority one: ``authority``
    (``examples-authority.yaml``: a claim of a staff role, a staff member's approval or an
    override code to make the assistant act) against its look-alikes and every other driver
    message, the account-action requests included (a driver's own request is no claim, in whatever
    register it is written: ``examples-authority-lookalikes.yaml``); and the
    misuse one: ``misuse``, every request for harmful help (``examples-misuse.yaml``'s and
    ``examples-misuse-schemes.yaml``'s requests to cheat, defraud or harm within the delivery work
    and the screen's ``harmful`` examples)
    against their look-alikes (``examples-misuse-lookalikes.yaml`` too) and every driver
    message, emergencies and account actions included (a driver reporting harm, or asking for
    their own case, is not asking to do it); and the defect one: ``defect``, a driver reporting
    that the app or a platform system is failing for them (``examples-defect.yaml``), against the
    messages in its words that report no failure; and the danger one: ``danger``, a driver in a
    safety situation now (``examples-safety.yaml``, and the screen's ``safety`` examples), against
    messages about safety without a present danger, every other driver message of the example
    files (everyday trouble at a door or a store, app failures, requests for an action) and every
    request for harmful help (a request to harm is declined, not a driver in danger)."""
    screen = MessageClassifier(
        embeddings, examples_path=examples_path, also=[REDTEAM_EXAMPLES, ACCOUNT_EXAMPLES], relabel={"action": "driver"},
        cache_dir=cache_dir, model_id=model_id,
    )
    action = MessageClassifier(
        embeddings, examples_path=ACTION_EXAMPLES, also=[ACCOUNT_EXAMPLES, APP_TROUBLE_EXAMPLES, examples_path or DEFAULT_EXAMPLES],
        labels=("action", "driver"), cache_dir=cache_dir, model_id=model_id, name="action",
    )
    authority = MessageClassifier(
        embeddings, examples_path=AUTHORITY_EXAMPLES,
        also=[ACTION_EXAMPLES, ACCOUNT_EXAMPLES, AUTHORITY_LOOKALIKES, examples_path or DEFAULT_EXAMPLES],
        labels=("authority", "driver"), relabel={"action": "driver"}, cache_dir=cache_dir, model_id=model_id,
        name="authority", words=AUTHORITY_WORDS,
    )
    misuse = MessageClassifier(
        embeddings, examples_path=MISUSE_EXAMPLES,
        also=[MISUSE_SCHEMES, MISUSE_LOOKALIKES, ACTION_EXAMPLES, ACCOUNT_EXAMPLES, examples_path or DEFAULT_EXAMPLES],
        labels=("misuse", "driver"), relabel={"harmful": "misuse", "action": "driver", "safety": "driver"},
        cache_dir=cache_dir, model_id=model_id, name="misuse", words=MISUSE_WORDS,
    )
    defect = MessageClassifier(
        embeddings, examples_path=DEFECT_EXAMPLES, labels=("defect", "driver"), cache_dir=cache_dir,
        model_id=model_id, name="defect",
    )
    danger = MessageClassifier(
        embeddings, examples_path=SAFETY_EXAMPLES, also=_danger_also(examples_path), labels=DANGER_LABELS,
        relabel=DANGER_RELABEL, cache_dir=cache_dir, model_id=model_id, name="danger",
    )
    return screen, action, authority, misuse, defect, danger


#: The present-danger classifiers' labels and how the example files' labels map to them.
DANGER_LABELS = ("danger", "driver")
DANGER_RELABEL = {"safety": "danger", "harmful": "driver", "defect": "driver", "action": "driver"}


def _danger_also(examples_path: Path | None) -> list[Path]:
    """The files the present-danger classifiers read beside ``examples-safety.yaml``."""
    return [examples_path or DEFAULT_EXAMPLES, REDTEAM_EXAMPLES, DEFECT_EXAMPLES, ACTION_EXAMPLES, MISUSE_LOOKALIKES, APP_TROUBLE_EXAMPLES]


def danger_gate_classifier(
    embeddings: Embeddings, policy: GuardrailPolicy, *, examples_path: Path | None = None,
    cache_dir: Path | None = None, model_id: str = "",
) -> MessageClassifier:
    """The present-danger classifier's examples that a safety pattern of ``policy`` matches, alone: a driver
    in danger now against messages in the same words that are not (questions about the rules,
    what-ifs, incidents that are over), read with their words. It gates a pattern match
    (``safety.danger_pattern_probability``): trained on everything, the present-danger classifier
    learns mostly how a danger differs from an everyday question, and reads a question about
    safety in danger words half-way; trained on the matches, it learns the difference that
    matters there. The examples it keeps follow the policy's patterns (and the cache's
    fingerprint with them)."""
    def matches(text: str) -> bool:
        return danger_match(text, policy)[0] is not None

    return MessageClassifier(
        embeddings, examples_path=SAFETY_EXAMPLES, also=_danger_also(examples_path), labels=DANGER_LABELS,
        relabel=DANGER_RELABEL, cache_dir=cache_dir, model_id=model_id, name="danger-gate", words=DANGER_GATE_WORDS,
        select=matches,
    )


class MessageClassifier:
    """Label probabilities for a driver message."""

    def __init__(self, embeddings: Embeddings, *, examples_path: Path | None = None, cache_dir: Path | None = None,
                 model_id: str = "", also: Sequence[Path] = (), labels: Collection[str] | None = None,
                 relabel: Mapping[str, str] | None = None, name: str = "screen", words: float = 0.0,
                 select: Callable[[str], bool] | None = None) -> None:
        """``examples_path`` (default: ``examples.yaml``) and the files in ``also`` are read
        together, each label's examples joined; ``relabel`` renames labels first (``{"action":
        "driver"}``), then ``labels`` keeps only those labels. The trained weights are cached as
        ``<name>-<fingerprint>.npz`` in ``cache_dir``. ``words``: the weight of the message's
        hashed words and word pairs beside its sentence vector (0: the vector alone). ``select``:
        the examples to keep (all when ``None``)."""
        self.embeddings = embeddings
        self.examples_path = Path(examples_path or DEFAULT_EXAMPLES)
        self.also = [Path(p) for p in also]
        self.keep = frozenset(labels) if labels is not None else None
        self.relabel = dict(relabel or {})
        self.cache_dir = cache_dir
        self.name = name
        self.words = words
        self.select = select
        self.model_id = model_id
        self.labels: list[str] = []
        self._weights: np.ndarray | None = None
        self._bias: np.ndarray | None = None

    def _fingerprint(self, examples: dict[str, list[str]]) -> str:
        digest = hashlib.sha256(self.model_id.encode())
        if self.words:
            digest.update(f"words {self.words} {WORD_BUCKETS}".encode())
        for label in sorted(examples):
            digest.update(label.encode())
            for item in examples[label]:
                digest.update(item.encode())
        return digest.hexdigest()[:16]

    def _ensure(self) -> None:
        if self._weights is not None:
            return
        with _TRAIN_LOCK:
            if self._weights is not None:
                return
            examples = self._examples()
            fingerprint = self._fingerprint(examples)
            cache = self.cache_dir / self.cache_name(fingerprint) if self.cache_dir else None
            shipped = SHIPPED_DIR / self.cache_name(fingerprint)
            if fingerprint in _TRAINED:
                self.labels, self._weights, self._bias = _TRAINED[fingerprint]
            elif not any(path is not None and path.exists() and self._load(path) for path in (cache, shipped)):
                self._train(examples, cache)  # neither the index's cache nor the package's fits
            if self._weights is not None and self._bias is not None:
                _TRAINED[fingerprint] = (self.labels, self._weights, self._bias)

    def cache_name(self, fingerprint: str | None = None) -> str:
        """The file name of this classifier's trained weights (its examples' fingerprint)."""
        return f"{self.name}-{fingerprint or self._fingerprint(self._examples())}.npz"

    def ready(self) -> None:
        """Load the trained weights, or train (and cache) them now, not on the first message."""
        self._ensure()

    def _examples(self) -> dict[str, list[str]]:
        merged: dict[str, list[str]] = {}
        for path in (self.examples_path, *self.also):
            for label, items in load_examples(path).items():
                label = self.relabel.get(label, label)
                if self.keep is None or label in self.keep:
                    merged.setdefault(label, []).extend(i for i in items if self.select is None or self.select(i))
        if len(merged) < 2:
            raise ConfigurationError(f"guardrail examples {self.examples_path}: fewer than two labels to tell apart")
        return merged

    def _features(self, texts: Sequence[str], vectors: np.ndarray[Any, np.dtype[np.float32]]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The model's input: the sentence vectors, and the hashed words when ``words`` is set."""
        if not self.words:
            return vectors
        return np.hstack([vectors, word_features(texts, self.words)])

    def _load(self, cache: Path) -> bool:
        """Read a trained screen from ``cache``; a damaged cache is retrained, with a warning."""
        try:
            with np.load(cache, allow_pickle=False) as stored:
                labels = [str(x) for x in stored["labels"]]
                bias, weights = np.asarray(stored["bias"]), np.asarray(stored["weights"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            logger.warning("guardrail classifier cache %s is damaged (%s); retraining it", cache, type(exc).__name__)
            return False
        if weights.ndim != 2 or weights.shape[0] != bias.shape[0] or not labels:
            logger.warning("guardrail classifier cache %s does not fit; retraining it", cache)
            return False
        self.labels, self._bias, self._weights = labels, bias, weights
        return True

    def _train(self, examples: dict[str, list[str]], cache: Path | None) -> None:
        labels = sorted(examples)
        texts: list[str] = []
        targets: list[int] = []
        for index, label in enumerate(labels):
            for item in examples[label]:
                for window in windows(item):
                    texts.append(window)
                    targets.append(index)
        vectors = self._features(texts, np.asarray(self.embeddings.embed_documents(texts), dtype=np.float32))
        coef, intercept = fit_softmax(vectors, np.asarray(targets), n_labels=len(labels), c=8.0)
        weights = np.asarray(coef, dtype=np.float32)
        bias = np.asarray(intercept, dtype=np.float32)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, labels=np.asarray(labels), weights=weights, bias=bias)
            tmp.replace(cache)
        self.labels, self._weights, self._bias = labels, weights, bias

    def probabilities(self, text: str) -> dict[str, float]:
        """Label -> probability; for a long message, each label's highest over its windows."""
        parts = windows(text)
        return self.read(parts, np.asarray(embed_queries(self.embeddings, parts), dtype=np.float32))

    def read(self, parts: Sequence[str], vectors: np.ndarray[Any, np.dtype[np.float32]]) -> dict[str, float]:
        """:meth:`probabilities` for a message's windows (:func:`windows`) and their sentence
        vectors, so that several classifiers read one message from one lookup of its vectors."""
        self._ensure()
        assert self._weights is not None and self._bias is not None
        vectors = self._features(parts, vectors)
        logits = vectors @ self._weights.T + self._bias
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        best = probs.max(axis=0)
        return {label: float(best[i]) for i, label in enumerate(self.labels)}
