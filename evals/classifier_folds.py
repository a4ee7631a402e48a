"""How the English guardrail classifier reads examples it was not trained on (k-fold).

    python evals/classifier_folds.py                      # the policy's thresholds
    python evals/classifier_folds.py --action-at 0.5 0.6 0.7 --pattern-at 0.05 0.1 0.2
    python evals/classifier_folds.py --authority-at 0.5 0.6 0.7 0.8
    python evals/classifier_folds.py --harmful-at 0.75 0.8 0.85 0.9 0.95
    python evals/classifier_folds.py --misuse-at 0.5 0.6 0.7 0.8 --misuse-words 0 1 2 4
    python evals/classifier_folds.py --safety-pattern-at 0.02 0.05 0.1 0.2
    python evals/classifier_folds.py --defect-at 0.05 0.1 0.2 0.3 0.5 0.7 0.9
    python evals/classifier_folds.py --danger-at 0.05 0.1 0.2 0.3 0.5 0.7 0.8 0.9

Training data only (``assistant/guardrails/examples.yaml`` with ``examples-redteam.yaml`` for the
screen, ``examples-action.yaml``, ``examples-authority.yaml``, ``examples-misuse.yaml`` and
``examples-misuse-lookalikes.yaml``),
never eval cases: the examples are cut into ``--folds`` stable
folds; each fold is read by a classifier
trained on the others, as the shipped one is (same embeddings, same regression). Reported:

* per label, the share of its held-out examples the policy's threshold flags (injection, harmful,
  safety) or leaves alone (driver, offtopic: no flag of any kind);
* the authority classifier (``examples-authority.yaml``: claims of authority to make the
  assistant act, against every other driver message): for each ``--authority-at``, the share
  of held-out claims read as claims, and of action requests and questions read so (a driver
  declined);
* the account-action classifier (``examples-action.yaml``: requests for support to act on the
  driver's own case, against look-alike questions and the screen's driver questions): the share
  of held-out action examples flagged at each ``--action-at``, the share of questions flagged
  there (questions about a policy read as requests), and, for the pattern gate
  (``account_action.pattern_probability``), how many pattern matches each ``--pattern-at`` keeps
  among action examples and drops among driver examples;
* the safety pattern gate (``safety.pattern_probability``): among held-out examples a safety
  pattern matches (and no look-alike phrase explains away), the share of emergencies kept and of
  other messages dropped at each ``--safety-pattern-at``, and the lowest emergency's probability;
* the misuse classifier (``examples-misuse.yaml``'s requests for help to cheat or harm and the
  screen's harmful examples, against their look-alikes, the honest look-alikes in cheating's
  words and every driver message): for each ``--misuse-words`` (the weight of the hashed words
  beside the sentence vector) and ``--misuse-at``, the share of each group read as misuse;
* the defect-report classifier (``examples-defect.yaml``: drivers reporting that the app is
  failing for them, against messages in the same words that report no failure): for each
  ``--defect-at``, among held-out examples a symptom pattern matches, the share of reports kept
  and of look-alikes dropped (``defects.pattern_probability``), and among those no pattern
  matches, the share of reports and of look-alikes read as reports;
* the present-danger classifier (``examples-safety.yaml`` and the screen's safety examples:
  drivers in a safety situation now, against messages about safety without a present danger
  and every other driver message it is trained on): for each ``--danger-at``, the share of each
  group read as a present danger, split by whether a safety pattern matches
  (``safety.danger_pattern_probability`` gates the matches, ``safety.danger_probability`` reads
  alone, over the sentence vector and, with ``--danger-words``, the hashed words); the share of
  each group the whole check (``detect_safety``: patterns, their gates and the classifier)
  escalates at each ``--danger-at`` as ``safety.danger_probability``, with two more groups made
  of held-out examples: each danger, and each message about safety, followed by an everyday
  question of the same fold (a driver often tells the danger, then asks about the errand); and
  for each ``--past-at``, the share it escalates with that ``safety.past_probability`` (the gate
  for a message that places its incident in the past).

This is how ``account_action.action_probability``, ``pattern_probability``,
``screen.authority_probability``, ``screen.misuse_probability``, ``safety.pattern_probability``,
``defects.pattern_probability``, ``safety.danger_pattern_probability``, ``safety.danger_probability``,
``safety.past_probability`` and ``MISUSE_WORDS`` are chosen.
"""

from __future__ import annotations

import argparse
import hashlib
from collections import defaultdict
from itertools import pairwise

import numpy as np
from langchain_core.embeddings import Embeddings
from rich.console import Console
from rich.table import Table

from assistant.config import Settings
from assistant.guardrails import checks
from assistant.guardrails.classifier import (
    ACCOUNT_EXAMPLES,
    ACTION_EXAMPLES,
    AUTHORITY_EXAMPLES,
    AUTHORITY_LOOKALIKES,
    AUTHORITY_WORDS,
    DANGER_GATE_WORDS,
    DEFAULT_EXAMPLES,
    DEFECT_EXAMPLES,
    MISUSE_EXAMPLES,
    MISUSE_LOOKALIKES,
    MISUSE_SCHEMES,
    MISUSE_WORDS,
    REDTEAM_EXAMPLES,
    SAFETY_EXAMPLES,
    english_classifiers,
    load_examples,
    word_features,
)
from assistant.guardrails.linear import fit_softmax, softmax
from assistant.guardrails.policy import GuardrailPolicy, load_policy
from assistant.retrieval.embeddings import make_embeddings

_EMBEDDED: dict[str, list[float]] = {}


def _vectors(embeddings: Embeddings, texts: list[str]) -> np.ndarray:
    """The texts' sentence vectors, each text embedded once per run (the tables share many)."""
    missing = list(dict.fromkeys(t for t in texts if t not in _EMBEDDED))
    if missing:
        _EMBEDDED.update(zip(missing, embeddings.embed_documents(missing), strict=True))
    return np.asarray([_EMBEDDED[t] for t in texts], dtype=np.float64)


def _fold(text: str, folds: int) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % folds


def _held_out(vectors: np.ndarray, targets: np.ndarray, texts: list[str], *, folds: int, c: float) -> np.ndarray:
    """Each example's label probabilities from a classifier trained on the other folds."""
    fold = np.asarray([_fold(t, folds) for t in texts])
    return _fold_readings(vectors, targets, fold, c=c)[0]


def _fold_readings(x: np.ndarray, targets: np.ndarray, fold: np.ndarray, *, c: float,
                   extra: np.ndarray | None = None, extra_fold: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each row's label probabilities from the classifier trained on the other folds; and those of
    each ``extra`` row (texts made from the examples of fold ``extra_fold``, never trained on),
    from the same fold's classifier."""
    n_labels = int(targets.max()) + 1
    probs = np.zeros((len(x), n_labels))
    extra_probs = np.zeros((0 if extra is None else len(extra), n_labels))
    for k in np.unique(fold):
        held = fold == k
        weights, bias = fit_softmax(x[~held], targets[~held], n_labels=n_labels, c=c)
        w, b = np.asarray(weights).T, np.asarray(bias)
        probs[held] = softmax(x[held] @ w + b)
        if extra is not None and extra_fold is not None and (rows := extra_fold == k).any():
            extra_probs[rows] = softmax(extra[rows] @ w + b)
    return probs, extra_probs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--c", type=float, default=8.0, help="the classifier's regularisation (as shipped: 8)")
    parser.add_argument("--action-at", type=float, nargs="+", default=None)
    parser.add_argument("--pattern-at", type=float, nargs="+", default=None)
    parser.add_argument("--authority-at", type=float, nargs="+", default=None)
    parser.add_argument("--harmful-at", type=float, nargs="+", default=None,
                        help="thresholds for the harmful reading that declines even where a policy covers the words")
    parser.add_argument("--misuse-at", type=float, nargs="+", default=None)
    parser.add_argument("--safety-pattern-at", type=float, nargs="+", default=None)
    parser.add_argument("--defect-at", type=float, nargs="+", default=None)
    parser.add_argument("--danger-at", type=float, nargs="+", default=None)
    parser.add_argument("--past-at", type=float, nargs="+", default=None,
                        help="safety.past_probability values (0: no gate for an incident in the past)")
    parser.add_argument("--defect-words", type=float, nargs="+", default=None,
                        help="weights of the hashed words beside the sentence vector (as shipped: 0)")
    parser.add_argument("--authority-words", type=float, nargs="+", default=None,
                        help="weights of the hashed words beside the sentence vector (as shipped: AUTHORITY_WORDS)")
    parser.add_argument("--danger-gate-at", type=float, nargs="+", default=None,
                        help="thresholds of the danger gate (safety.danger_gate_probability) for the whole check")
    parser.add_argument("--danger-words", type=float, nargs="+", default=None,
                        help="weights of the hashed words beside the sentence vector (as shipped: 0); "
                        "the whole-check tables read the first")
    parser.add_argument("--misuse-words", type=float, nargs="+", default=None,
                        help="weights of the hashed words beside the sentence vector (as shipped: MISUSE_WORDS)")
    args = parser.parse_args()
    policy = load_policy()
    examples = load_examples(DEFAULT_EXAMPLES)
    screen_examples = {label: [*items, *load_examples(REDTEAM_EXAMPLES).get(label, [])] for label, items in examples.items()}
    # as the screen trains: examples-account.yaml's requests about the driver's own account and
    # their look-alike questions read as driver
    account = load_examples(ACCOUNT_EXAMPLES)
    own_requests = account["action"]
    screen_examples["driver"] = [*screen_examples["driver"], *own_requests, *account["driver"]]
    labels = sorted(screen_examples)
    texts = [t for label in labels for t in screen_examples[label]]
    targets = np.asarray([labels.index(label) for label in labels for _ in screen_examples[label]])
    own_request_rows = np.isin(np.asarray(texts, dtype=object), np.asarray(own_requests, dtype=object))
    embeddings = make_embeddings(Settings())
    vectors = _vectors(embeddings, texts)
    probs = _held_out(vectors, targets, texts, folds=args.folds, c=args.c)
    screen = policy.screen
    flag_at = {"injection": screen.injection_probability, "harmful": screen.harmful_probability,
               "safety": screen.safety_probability, "offtopic": screen.offtopic_sure_probability}
    console = Console()
    table = Table(title=f"{args.folds}-fold, C={args.c}: held-out examples")
    for column in ("label", "examples", "flagged as their label", "flagged as anything"):
        table.add_column(column)
    for i, label in enumerate(labels):
        rows = targets == i
        own = float((probs[rows, i] >= flag_at.get(label, 1.01)).mean()) if label in flag_at else float("nan")
        anything = np.zeros(int(rows.sum()), dtype=bool)
        for other, at in flag_at.items():
            anything |= probs[rows, labels.index(other)] >= at
        table.add_row(label, str(int(rows.sum())), f"{own:.3f}", f"{anything.mean():.3f}")
    injection = labels.index("injection")
    table.add_row("(driver: own account requests)", str(int(own_request_rows.sum())),
                  f"injection {(probs[own_request_rows, injection] >= screen.injection_probability).mean():.3f}", "")
    console.print(table)
    sure = Table(title="harmful: share read as harmful at each threshold (harmful_sure_probability)")
    for column in ("harmful_at", "harmful examples", "driver messages", "off-topic examples"):
        sure.add_column(column)
    harmful, driver, offtopic = (labels.index(name) for name in ("harmful", "driver", "offtopic"))
    for at in args.harmful_at or [screen.harmful_sure_probability]:
        sure.add_row(f"{at:.2f}", *(f"{(probs[targets == row, harmful] >= at).mean():.3f}" for row in (harmful, driver, offtopic)))
    console.print(sure)
    console.print(_safety_gate(policy, texts, targets, labels, probs, args.safety_pattern_at))
    # the account-action classifier: examples-action.yaml and examples-account.yaml plus the
    # screen's driver questions
    extra = {label: [*items, *account.get(label, [])] for label, items in load_examples(ACTION_EXAMPLES).items()}
    texts = [*extra["action"], *extra["driver"], *examples["driver"]]
    targets = np.asarray([1] * len(extra["action"]) + [0] * (len(texts) - len(extra["action"])))
    vectors = _vectors(embeddings, texts)
    probs = _held_out(vectors, targets, texts, folds=args.folds, c=args.c)
    a = 1
    action_rows, driver_rows = targets == 1, targets == 0
    lookalikes = np.zeros(len(texts), dtype=bool)
    lookalikes[len(extra["action"]) : len(extra["action"]) + len(extra["driver"])] = True
    _authority(console, args, policy.screen.authority_probability, embeddings, extra, examples["driver"])
    _misuse(console, args, policy.screen.misuse_probability, embeddings, extra, examples)
    _defect(console, args, policy, embeddings)
    _danger(console, args, policy, embeddings)
    sweep = Table(title="action label: share flagged by the classifier alone")
    for column in ("action_probability", "action examples flagged", "look-alike questions flagged", "any driver question flagged"):
        sweep.add_column(column)
    for at in args.action_at or [policy.account_action.action_probability]:
        sweep.add_row(f"{at:.2f}", f"{(probs[action_rows, a] >= at).mean():.3f}", f"{(probs[lookalikes, a] >= at).mean():.3f}",
                      f"{(probs[driver_rows, a] >= at).mean():.3f}")
    console.print(sweep)
    # the patterns alone: no classifier trigger and no gate of any kind
    patterns_only = policy.model_copy(update={"account_action": policy.account_action.model_copy(
        update={"action_probability": 1.01, "pattern_probability": 0.0, "hypothetical_probability": 0.0}
    )})
    matched: dict[str, list[int]] = defaultdict(list)
    for index, text in enumerate(texts):
        if checks.detect_account_action(text, patterns_only, {"action": 0.0}):
            matched["action" if targets[index] == 1 else "driver"].append(index)
    gate = Table(title=f"pattern matches: {len(matched['action'])} action examples, {len(matched['driver'])} driver examples")
    for column in ("pattern_probability", "action matches kept", "driver matches dropped"):
        gate.add_column(column)
    for at in args.pattern_at or [policy.account_action.pattern_probability]:
        kept = np.mean([probs[i, a] >= at for i in matched["action"]]) if matched["action"] else float("nan")
        dropped = np.mean([probs[i, a] < at for i in matched["driver"]]) if matched["driver"] else float("nan")
        gate.add_row(f"{at:.2f}", f"{kept:.3f}", f"{dropped:.3f}")
    console.print(gate)
    # the whole check as configured (the classifier alone, the patterns and their gates)
    flagged = np.asarray([checks.detect_account_action(t, policy, {"action": float(p)}) is not None
                          for t, p in zip(texts, probs[:, a], strict=True)])
    console.print(f"detect_account_action as configured flags {flagged[action_rows].mean():.3f} of the held-out "
                  f"action requests, {flagged[lookalikes].mean():.3f} of their look-alike questions and "
                  f"{flagged[driver_rows & ~lookalikes].mean():.3f} of the other driver messages")


def _safety_gate(policy: GuardrailPolicy, texts: list[str], targets: np.ndarray, labels: list[str], probs: np.ndarray,
                 thresholds: list[float] | None) -> Table:
    """The safety pattern gate: the held-out examples a safety pattern matches (no look-alike
    phrase over the match), and for each threshold the share of emergencies kept and of the
    other messages dropped (their match read as a question, not an emergency)."""
    rules, safety = policy.safety, labels.index("safety")
    matched: dict[bool, list[float]] = {True: [], False: []}
    for index, text in enumerate(texts):
        if checks.danger_match(text, policy)[0] is not None:
            matched[bool(targets[index] == safety)].append(float(probs[index, safety]))
    lowest = min(matched[True], default=float("nan"))
    table = Table(title=f"safety pattern gate: {len(matched[True])} emergencies and {len(matched[False])} other messages "
                        f"a pattern matches; lowest emergency's probability {lowest:.3f}")
    for column in ("pattern_probability", "emergencies kept", "other messages dropped"):
        table.add_column(column)
    for at in thresholds or [rules.pattern_probability]:
        table.add_row(f"{at:.2f}", f"{np.mean([p >= at for p in matched[True]]):.3f}",
                      f"{np.mean([p < at for p in matched[False]]):.3f}")
    return table


def _authority(console: Console, args: argparse.Namespace, threshold: float, embeddings: Embeddings,
               action: dict[str, list[str]], questions: list[str]) -> None:
    """The authority classifier (``examples-authority.yaml`` against every other driver message):
    for each ``--authority-at``, the share of held-out claims read as claims, and of drivers' own
    requests for an action, the look-alikes and the other driver messages read so (declined)."""
    claims = load_examples(AUTHORITY_EXAMPLES)
    registers = load_examples(AUTHORITY_LOOKALIKES)["driver"]
    groups = {"authority examples": claims["authority"], "action requests (escalated, not declined)": action["action"],
              "action requests in claims' registers": registers,
              "look-alikes": [*claims["driver"], *action["driver"]], "any other driver message": questions}
    console.print(_sweep(
        "authority: share read as a claim of authority (declined) by the classifier alone", "authority_probability",
        groups, len(claims["authority"]), embeddings, args, words_list=args.authority_words or [AUTHORITY_WORDS],
        thresholds=args.authority_at or [threshold],
    ))


def _misuse(console: Console, args: argparse.Namespace, threshold: float, embeddings: Embeddings,
            action: dict[str, list[str]], examples: dict[str, list[str]]) -> None:
    """The misuse classifier (``examples-misuse.yaml``'s and ``examples-misuse-schemes.yaml``'s
    requests for help to cheat or harm and the screen's harmful examples, against their
    look-alikes and every driver message): for each
    ``--misuse-at``, the share of held-out requests read as misuse (declined), and of
    look-alikes, emergencies, drivers' own requests and other driver messages read so."""
    first, second = load_examples(MISUSE_EXAMPLES), load_examples(MISUSE_SCHEMES)
    # each file's requests and look-alikes apart: the second file's were written to be harder
    groups = {"misuse requests (examples-misuse)": first["harmful"], "misuse requests (-schemes)": second["harmful"],
              "harmful examples (examples.yaml)": examples["harmful"],
              "look-alikes (examples-misuse)": first["driver"], "look-alikes (-schemes)": second["driver"],
              "look-alikes in cheating's words": load_examples(MISUSE_LOOKALIKES)["driver"],
              "emergencies (escalated first)": examples["safety"], "action requests": action["action"],
              "any other driver message": [*examples["driver"], *action["driver"]]}
    console.print(_sweep(
        "misuse: share read as a request for help to cheat or harm (declined) by the classifier alone",
        "misuse_probability", groups, len(first["harmful"]) + len(second["harmful"]) + len(examples["harmful"]), embeddings, args,
        words_list=args.misuse_words or [MISUSE_WORDS], thresholds=args.misuse_at or [threshold],
    ))


def _defect(console: Console, args: argparse.Namespace, policy: GuardrailPolicy, embeddings: Embeddings) -> None:
    """The defect-report classifier (``examples-defect.yaml``), read held-out: among examples a
    symptom pattern matches, the share of reports kept and look-alikes dropped at each
    ``--defect-at`` (the pattern gate); among the others, the share of reports and look-alikes
    read as reports."""
    examples = load_examples(DEFECT_EXAMPLES)
    rules = policy.defects

    def matched(text: str) -> bool:
        return any(pattern.search(text) for pattern in rules.symptoms.values())

    reports, others = examples["defect"], examples["driver"]
    groups = {"reports, pattern matches": [t for t in reports if matched(t)],
              "reports, no pattern": [t for t in reports if not matched(t)],
              "look-alikes, pattern matches": [t for t in others if matched(t)],
              "look-alikes, no pattern": [t for t in others if not matched(t)]}
    thresholds = args.defect_at or [rules.pattern_probability]
    console.print(_sweep(
        "defect: share read as a report of a failure, by whether a symptom pattern matches "
        f"(as configured: pattern_probability {rules.pattern_probability})",
        "probability", groups, len(reports), embeddings, args, words_list=args.defect_words or [0.0], thresholds=thresholds,
    ))


def _danger(console: Console, args: argparse.Namespace, policy: GuardrailPolicy, embeddings: Embeddings) -> None:
    """The present-danger classifier, on the examples it is trained on (``examples-safety.yaml``
    and the other files it reads), read held-out: for each ``--danger-at``, the share of each
    group read as a present danger, by whether a safety pattern matches."""
    trained = english_classifiers(embeddings)[5]._examples()
    own = load_examples(SAFETY_EXAMPLES)["driver"]

    def matched(text: str) -> bool:
        return checks.danger_match(text, policy)[0] is not None

    dangers = trained["danger"]
    about = set(own)
    others = [t for t in trained["driver"] if t not in about]
    groups = {"dangers, pattern matches": [t for t in dangers if matched(t)],
              "dangers, no pattern": [t for t in dangers if not matched(t)],
              "about safety, pattern matches": [t for t in own if matched(t)],
              "about safety, no pattern": [t for t in own if not matched(t)],
              "other driver messages": others}
    console.print(f"safety patterns match {len(groups['dangers, pattern matches'])} of {len(dangers)} dangers, "
                  f"{len(groups['about safety, pattern matches'])} of {len(own)} messages about safety and "
                  f"{sum(map(matched, others))} of {len(others)} other driver messages")
    rules = policy.safety
    words_list = args.danger_words or [0.0]
    thresholds = args.danger_at or sorted({rules.danger_pattern_probability, min(rules.danger_probability, 1.0)})
    console.print(_sweep(
        "danger: share read as a present danger, by whether a safety pattern matches (as configured: "
        f"danger_pattern_probability {rules.danger_pattern_probability}, danger_probability {rules.danger_probability})",
        "probability", groups, len(dangers), embeddings, args, words_list=words_list, thresholds=thresholds,
    ))
    # the whole check, on held-out probabilities, for each gate of an incident in the past and
    # each threshold of the classifier alone
    texts = [*dangers, *own, *others]
    targets = np.asarray([1] * len(dangers) + [0] * (len(texts) - len(dangers)))

    def features(items: list[str]) -> np.ndarray:
        vectors = _vectors(embeddings, items)
        return np.hstack([vectors, word_features(items, words_list[0])]) if words_list[0] else vectors

    # a driver often tells the danger, then asks about the errand: each held-out danger (and
    # message about safety) followed by a held-out everyday question of the same fold
    fold = np.asarray([_fold(t, args.folds) for t in texts])
    questions = [i for i, t in enumerate(texts) if i >= len(dangers) + len(own) and t.endswith("?")]
    told: dict[str, list[tuple[str, int]]] = {"danger, then a question": [], "about safety, then a question": []}
    for k in range(args.folds):
        asked = [texts[i] for i in questions if fold[i] == k]
        for n, i in enumerate(i for i in range(len(dangers) + len(own)) if fold[i] == k and asked):
            group = "danger, then a question" if i < len(dangers) else "about safety, then a question"
            told[group].append((f"{texts[i].rstrip('.')}. {asked[n % len(asked)]}", k))
    extra = [text for group in told.values() for text, _ in group]
    extra_fold = np.asarray([k for group in told.values() for _, k in group], dtype=int)
    everything = [*texts, *extra]
    every_fold = np.concatenate([fold, extra_fold])
    # the sentence a pattern matches in, where a message has more than one (the engine's
    # ``danger_match`` and ``danger_gate`` read it too), read by the same fold's classifiers
    sentence_of: dict[int, int] = {}
    sentences: list[str] = []
    for i, text in enumerate(everything):
        if (match := checks.danger_match(text, policy)[0]) is not None:
            sentence = checks.sentence_of(text, match)
            if sentence and sentence != text.strip():
                sentence_of[i] = len(sentences)
                sentences.append(sentence)
    sentence_fold = np.asarray([every_fold[i] for i in sentence_of], dtype=int)
    probs, extra_probs = _fold_readings(features(texts), targets, fold, c=args.c, extra=features([*extra, *sentences]),
                                        extra_fold=np.concatenate([extra_fold, sentence_fold]))
    held = probs[:, 1]
    readings = np.concatenate([held, extra_probs[: len(extra), 1]])
    sentence_readings = extra_probs[len(extra):, 1]
    # the danger gate: trained on the examples a pattern matches, read with their words
    matched = np.asarray([checks.danger_match(t, policy)[0] is not None for t in texts])

    def gate_features(items: list[str]) -> np.ndarray:
        return np.hstack([_vectors(embeddings, items), word_features(items, DANGER_GATE_WORDS)])

    _, gate_probs = _fold_readings(gate_features([t for t, m in zip(texts, matched, strict=True) if m]), targets[matched],
                                   fold[matched], c=args.c, extra=gate_features([*everything, *sentences]),
                                   extra_fold=np.concatenate([every_fold, sentence_fold]))
    gate = gate_probs[: len(everything), 1]
    gate_sentence = gate_probs[len(everything):, 1]

    def reading(i: int, with_gate: bool) -> dict[str, float]:
        if not with_gate:
            return {"danger": float(readings[i])}
        s = sentence_of.get(i)
        return {"danger": float(readings[i]),
                "danger_match": float(max(readings[i], sentence_readings[s])) if s is not None else float(readings[i]),
                "danger_gate": float(max(gate[i], gate_sentence[s])) if s is not None else float(gate[i])}

    bounds = np.cumsum([0, len(dangers), len(own), len(others), *(len(group) for group in told.values())])
    whole = Table(title=f"share escalated by detect_safety (words {words_list[0]:g}, past_probability "
                  f"{rules.past_probability}; gate: the danger gate and the matched sentence's readings)")
    for column in ("danger_probability", "gate", "dangers", "about safety", "other driver messages", *told):
        whole.add_column(column)
    rows = [(at, rules.danger_gate_probability) for at in sorted({*(args.danger_at or []), rules.danger_probability})]
    rows += [(rules.danger_probability, g) for g in args.danger_gate_at or [] if g != rules.danger_gate_probability]
    for at, gate_at in [(rules.danger_probability, None), *rows]:
        gated = policy.model_copy(update={"safety": rules.model_copy(
            update={"danger_probability": at, "danger_gate_probability": gate_at})})
        escalated = np.asarray([checks.detect_safety(t, reading(i, gate_at is not None), gated) is not None
                                for i, t in enumerate(everything)])
        whole.add_row(f"{at:.2f}", "off" if gate_at is None else f"{gate_at:.2f}",
                      *(f"{escalated[a:b].mean():.3f}" for a, b in pairwise(bounds)))
    console.print(whole)
    past = Table(title=f"past: share escalated by detect_safety ({sum(bool(rules.past and rules.past.search(t)) for t in own)} "
                 f"messages about safety and {sum(bool(rules.past and rules.past.search(t)) for t in dangers)} dangers name a past time)")
    for column in ("past_probability", "dangers", "about safety", "other driver messages"):
        past.add_column(column)
    for at in args.past_at or [rules.past_probability]:
        gated = policy.model_copy(update={"safety": rules.model_copy(update={"past_probability": at})})
        escalated = np.asarray([checks.detect_safety(t, reading(i, True), gated) is not None for i, t in enumerate(texts)])
        past.add_row(f"{at:.2f}", *(f"{escalated[a:b].mean():.3f}" for a, b in pairwise(bounds[:4])))
    console.print(past)


def _sweep(title: str, threshold_name: str, groups: dict[str, list[str]], positive: int, embeddings: Embeddings,
           args: argparse.Namespace, *, words_list: list[float], thresholds: list[float]) -> Table:
    """A two-label classifier (the first ``positive`` texts of ``groups`` against the rest), read
    held-out over the sentence vector and, for each weight in ``words_list``, the hashed words: for
    each threshold, the share of each group read as positive."""
    texts = [t for group in groups.values() for t in group]
    targets = np.asarray([1] * positive + [0] * (len(texts) - positive))
    vectors = _vectors(embeddings, texts)
    table = Table(title=title)
    for column in ("words", threshold_name, *groups):
        table.add_column(column)
    for words in words_list:
        features = np.hstack([vectors, word_features(texts, words)]) if words else vectors
        probs = _held_out(features, targets, texts, folds=args.folds, c=args.c)[:, 1]
        for at in thresholds:
            shares, offset = [], 0
            for group in groups.values():
                shares.append(f"{(probs[offset : offset + len(group)] >= at).mean():.3f}")
                offset += len(group)
            table.add_row(f"{words:g}", f"{at:.2f}", *shares)
    return table


if __name__ == "__main__":
    main()
