"""How the multilingual guardrail classifier carries to a language it has not seen examples in.

    python evals/classifier_languages.py            # leave-one-language-out table
    python evals/classifier_languages.py --c 4 16   # compare regularisation strengths
    python evals/classifier_languages.py --c 16 --harmful-at 0.9

Training data only (``assistant/guardrails/examples*.yaml``), never eval cases: for each language
of the multilingual examples (``examples-multilingual.yaml``, and ``examples-misuse-multilingual.yaml``
and ``examples-safety-multilingual.yaml`` reported apart as "(misuse file)" and "(safety file)"), the classifier is trained on every example except that language's,
and reads that language's examples. Per label, at the policy's thresholds for another language:
the share of safety, harmful and injection examples flagged as such, and the share of driver and
off-topic examples not flagged at all. This is how the classifier's ``C`` and those thresholds are
chosen. Then the claim-of-authority classifier (:func:`~assistant.guardrails.multilingual.authority_classifier`),
one language of ``examples-authority-multilingual.yaml`` left out at a time, at each
``--authority-at``: how ``screen.other_language_authority_probability`` is chosen; and the
account-action classifier (:func:`~assistant.guardrails.multilingual.action_classifier`), one
language of ``examples-action-multilingual.yaml`` and ``examples-multilingual.yaml`` left out at a
time, at each ``--action-at``: how ``account_action.other_language_action_probability`` is
chosen. Last, the
held-out languages' messages a danger pattern matches, at each ``--pattern-at``: how many
emergencies the multilingual classifier's safety reading keeps and how many other messages it
drops (``safety.other_language_pattern_probability``).
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from assistant.guardrails import checks
from assistant.guardrails.classifier import (
    ACTION_EXAMPLES,
    AUTHORITY_EXAMPLES,
    load_examples,
)
from assistant.guardrails.linear import fit_softmax, softmax
from assistant.guardrails.multilingual import (
    ENGLISH_EXAMPLES,
    MULTILINGUAL_ACTION_EXAMPLES,
    MULTILINGUAL_AUTHORITY_EXAMPLES,
    MULTILINGUAL_AUTHORITY_LOOKALIKES,
    MULTILINGUAL_EXAMPLES,
    MULTILINGUAL_MISUSE_EXAMPLES,
    MULTILINGUAL_SAFETY_EXAMPLES,
    OTHER_LANGUAGE_EXAMPLES,
    MultilingualClassifier,
    action_classifier,
    authority_classifier,
)
from assistant.guardrails.policy import load_policy
from assistant.retrieval.language import query_language


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--c", type=float, nargs="+", default=[4.0, 8.0, 16.0])
    parser.add_argument("--safety-at", type=float, default=None, help="default: the policy's safety_probability")
    parser.add_argument("--harmful-at", type=float, default=None,
                        help="default: the policy's other_language_harmful_probability")
    parser.add_argument("--cache", type=Path, default=Path(".assistant") / "guardrails")
    parser.add_argument("--authority-at", type=float, nargs="+", default=None,
                        help="thresholds for the claim-of-authority table (default: the policy's)")
    parser.add_argument("--action-at", type=float, nargs="+", default=None,
                        help="thresholds for the account-action table (default: the policy's)")
    parser.add_argument("--pattern-at", type=float, nargs="+", default=None,
                        help="gates for a danger pattern's match in another language (default: the policy's "
                        "safety.other_language_pattern_probability)")
    args = parser.parse_args()
    classifier = MultilingualClassifier(cache_dir=args.cache)
    vectors = classifier.vectors().astype(np.float64)
    labels = classifier.labels
    targets = np.asarray([labels.index(label) for label in classifier.example_labels])
    english_rows = sum(_rows(path) for path in ENGLISH_EXAMPLES)
    other = sum(_rows(path) for path in OTHER_LANGUAGE_EXAMPLES)
    assert other == len(targets) - english_rows
    language = np.asarray(["(english file)"] * english_rows
                          + [query_language(text).code for text in classifier.texts[english_rows:]])
    # which other-language file each row comes from (OTHER_LANGUAGE_EXAMPLES' order): the misuse
    # requests and look-alikes, and the emergencies and their look-alikes, apart
    misuse = english_rows + _rows(MULTILINGUAL_EXAMPLES)
    safety = misuse + _rows(MULTILINGUAL_MISUSE_EXAMPLES)
    source = np.asarray([""] * len(targets), dtype=object)
    source[misuse:safety] = " (misuse file)"
    source[safety : safety + _rows(MULTILINGUAL_SAFETY_EXAMPLES)] = " (safety file)"
    groups = [code for code, n in Counter(language[english_rows:]).most_common() if n >= 5]
    screen = load_policy().screen
    needed = {
        "safety": args.safety_at or screen.other_language_safety_probability,
        "harmful": args.harmful_at or screen.other_language_harmful_probability,
        "injection": screen.injection_probability,
    }
    console = Console()
    console.print(f"{len(targets) - english_rows} examples in other languages, groups (detected): "
                  + ", ".join(f"{g} {int((language == g).sum())}" for g in groups))
    for c in args.c:
        hits: dict[str, list[bool]] = defaultdict(list)
        for group in groups:
            held = language == group
            weights, bias = fit_softmax(vectors[~held], targets[~held], n_labels=len(labels), c=c)
            rows = softmax(vectors[held] @ weights.T + bias)
            for row, target, suffix in zip(rows, targets[held], source[held], strict=True):
                flagged = {label for label, at in needed.items() if row[labels.index(label)] >= at}
                label = labels[target]
                hits[f"{label}{suffix}"].append(
                    label in flagged if label in needed else not flagged)
        table = Table(title=f"C = {c:g}, leave one language out; thresholds {needed}")
        table.add_column("label")
        table.add_column("examples", justify="right")
        table.add_column("flagged as itself (not flagged, for driver and offtopic)", justify="right")
        for label in sorted(hits):
            table.add_row(label, str(len(hits[label])), f"{np.mean(hits[label]):.3f}")
        console.print(table)
    _authority(console, args.authority_at or [screen.other_language_authority_probability], args.c[-1])
    _action(console, args.action_at or [min(load_policy().account_action.other_language_action_probability, 1.0)], args.c[-1])
    _pattern_gate(console, vectors, targets, labels, classifier.texts, language, groups, args)


def _pattern_gate(console: Console, vectors: np.ndarray, targets: np.ndarray, labels: list[str], texts: list[str],
                  language: np.ndarray, groups: list[str], args: argparse.Namespace) -> None:
    """The held-out languages' messages a danger pattern matches: how many emergencies each
    ``--pattern-at`` keeps (the multilingual classifier's safety reading at least that) and how
    many other messages (claims, past incidents, harmful requests in danger words) it drops."""
    policy = load_policy()
    safety = labels.index("safety")
    emergencies: list[float] = []
    others: list[float] = []
    for group in groups:
        held = language == group
        weights, bias = fit_softmax(vectors[~held], targets[~held], n_labels=len(labels), c=args.c[-1])
        rows = softmax(vectors[held] @ weights.T + bias)
        for text, target, row in zip(np.asarray(texts, dtype=object)[held], targets[held], rows, strict=True):
            if checks.danger_match(str(text), policy)[0] is not None:
                (emergencies if target == safety else others).append(float(row[safety]))
    table = Table(title=f"danger patterns in a held-out language, C = {args.c[-1]:g}: {len(emergencies)} emergencies "
                  f"and {len(others)} other messages match (lowest emergency reading {min(emergencies, default=0):.3f})")
    for column in ("other_language_pattern_probability", "emergencies kept", "other matches dropped"):
        table.add_column(column)
    for at in args.pattern_at or [policy.safety.other_language_pattern_probability]:
        table.add_row(f"{at:.2f}", f"{np.mean([p >= at for p in emergencies]):.3f}", f"{np.mean([p < at for p in others]):.3f}")
    console.print(table)


def _rows(path: Path) -> int:
    """How many examples an example file holds, all labels together."""
    return sum(len(items) for items in load_examples(path).values())


def _authority(console: Console, thresholds: list[float], c: float) -> None:
    """The claim-of-authority classifier, leaving one language of its multilingual examples out
    (with that language's other examples: its formal own requests of
    ``examples-authority-lookalikes-multilingual.yaml`` and its messages of
    ``examples-multilingual.yaml``): the share of that language's claims read as claims, of its
    formal own requests read so (declined instead of handed to a person), and of its look-alikes
    and other messages read so."""
    classifier = authority_classifier(cache_dir=None)
    vectors = classifier.vectors().astype(np.float64)
    targets = np.asarray([int(label == "authority") for label in classifier.example_labels])
    # rows in file order (see authority_classifier): English claims and look-alikes, the other
    # languages' claims and look-alikes, the English action requests and look-alikes, the formal
    # own requests in other languages, then examples-multilingual.yaml
    start = _rows(AUTHORITY_EXAMPLES)
    end = start + _rows(MULTILINGUAL_AUTHORITY_EXAMPLES)
    tail = len(classifier.texts) - _rows(MULTILINGUAL_EXAMPLES)
    formal = tail - _rows(MULTILINGUAL_AUTHORITY_LOOKALIKES)
    own = np.zeros(len(classifier.texts), dtype=bool)
    own[formal:tail] = True
    language = np.asarray(["(english)"] * len(classifier.texts), dtype=object)
    for first, last in ((start, end), (formal, len(classifier.texts))):
        language[first:last] = [query_language(text).code for text in classifier.texts[first:last]]
    groups = [code for code, n in Counter(language[start:end]).most_common() if n >= 5]
    claims: dict[float, list[bool]] = defaultdict(list)
    requests: dict[float, list[bool]] = defaultdict(list)
    lookalikes: dict[float, list[bool]] = defaultdict(list)
    for group in groups:
        held = language == group
        weights, bias = fit_softmax(vectors[~held], targets[~held], n_labels=2, c=c)
        probs = softmax(vectors[held] @ weights.T + bias)[:, 1]
        for at in thresholds:
            claims[at].extend(probs[targets[held] == 1] >= at)
            requests[at].extend(probs[own[held]] >= at)
            lookalikes[at].extend(probs[(targets[held] == 0) & ~own[held]] >= at)
    table = Table(title=f"authority, C = {c:g}, leave one language out ({', '.join(groups)})")
    for column in ("other_language_authority_probability", "claims read as claims",
                   "formal own requests read as claims", "look-alikes and other messages read as claims"):
        table.add_column(column)
    for at in thresholds:
        table.add_row(f"{at:.2f}", f"{np.mean(claims[at]):.3f} of {len(claims[at])}",
                      f"{np.mean(requests[at]):.3f} of {len(requests[at])}" if requests[at] else "-",
                      f"{np.mean(lookalikes[at]):.3f} of {len(lookalikes[at])}")
    console.print(table)


def _action(console: Console, thresholds: list[float], c: float) -> None:
    """The account-action classifier, leaving one language out (its requests and look-alikes of
    ``examples-action-multilingual.yaml`` and its messages of ``examples-multilingual.yaml``): the
    share of that language's requests read as requests, of its look-alike questions, and of its
    other messages."""
    classifier = action_classifier(cache_dir=None)
    vectors = classifier.vectors().astype(np.float64)
    targets = np.asarray([int(label == "action") for label in classifier.example_labels])
    start = _rows(ACTION_EXAMPLES)  # rows in file order: English, then the two other-language files
    middle = start + _rows(MULTILINGUAL_ACTION_EXAMPLES)
    language = np.asarray(["(english)"] * start + [query_language(t).code for t in classifier.texts[start:]], dtype=object)
    groups = [code for code, n in Counter(language[start:middle]).most_common() if n >= 5]
    found: dict[str, dict[float, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for group in groups:
        held = language == group
        weights, bias = fit_softmax(vectors[~held], targets[~held], n_labels=2, c=c)
        probs = softmax(vectors[held] @ weights.T + bias)[:, 1]
        index = np.flatnonzero(held)
        kinds = np.where(targets[held] == 1, "requests", np.where(index < middle, "look-alike questions", "other messages"))
        for at in thresholds:
            for kind in ("requests", "look-alike questions", "other messages"):
                found[kind][at].extend(probs[kinds == kind] >= at)
    table = Table(title=f"account action, C = {c:g}, leave one language out ({', '.join(groups)})")
    for column in ("other_language_action_probability", "requests read as requests", "look-alike questions read so",
                   "other messages read so"):
        table.add_column(column)
    for at in thresholds:
        table.add_row(f"{at:.2f}", *(f"{np.mean(found[k][at]):.3f} of {len(found[k][at])}"
                                     for k in ("requests", "look-alike questions", "other messages")))
    console.print(table)


if __name__ == "__main__":
    main()
