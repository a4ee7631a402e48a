"""Training material stays apart from the eval cases: the corpus's driver questions and the
guardrail classifiers' examples restate no case, and pattern alternatives written for one eval
case are counted (and may only become fewer)."""

from pathlib import Path

import numpy as np
import pytest

from assistant import Settings
from assistant.evals.dataset import EvalCase, load_datasets
from assistant.evals.leakage import (
    TrainingText,
    alternatives,
    corpus_questions,
    find_leaks,
    guardrail_examples,
    pattern_findings,
    word_overlap,
)
from assistant.guardrails.classifier import (
    ACCOUNT_EXAMPLES,
    ACTION_EXAMPLES,
    APP_TROUBLE_EXAMPLES,
    AUTHORITY_EXAMPLES,
    AUTHORITY_LOOKALIKES,
    DEFAULT_EXAMPLES,
    DEFECT_EXAMPLES,
    MISUSE_EXAMPLES,
    MISUSE_LOOKALIKES,
    MISUSE_SCHEMES,
    REDTEAM_EXAMPLES,
    SAFETY_EXAMPLES,
)
from assistant.guardrails.multilingual import (
    MULTILINGUAL_ACTION_EXAMPLES,
    MULTILINGUAL_AUTHORITY_EXAMPLES,
    MULTILINGUAL_AUTHORITY_LOOKALIKES,
    MULTILINGUAL_EXAMPLES,
    MULTILINGUAL_MISUSE_EXAMPLES,
    MULTILINGUAL_SAFETY_EXAMPLES,
)
from assistant.guardrails.policy import DEFAULT_POLICY
from assistant.ingestion.documents import load_corpus
from assistant.retrieval.embeddings import make_embeddings
from assistant.retrieval.multilingual import default_encoder

REPO = Path(__file__).resolve().parent.parent
#: Pattern alternatives that match exactly one eval case and no training text, when this was
#: last measured. The count may only go down (the guardrails issue removes them). 29 before the
#: account-action examples joined the training texts and the repeat markers joined the check;
#: one of the 27 is new ("never got back to me", a repeat contact); 21 when ratcheted with
#: corpus/gaps.yaml (which matches none of them: 21 without it too); 16 since five injection
#: and harmful alternatives among them, whose removal changes no eval route and whose kind the
#: classifiers still read in other words, were removed (see CHANGELOG); 17 since safety.jsonl and
#: actions.jsonl joined: 13 of the older sets' (three fewer, since the defect and present-danger
#: examples joined the training texts and match them) and 4 alternatives, older than those sets,
#: that match one of their cases and nothing else; 16 since a harmful alternative ("outrun the
#: cops") went, whose removal changes no eval route (the screen's classifier reads the request).
MAX_PATTERN_FINDINGS = 16


def test_word_overlap() -> None:
    assert word_overlap("When do I get PAID?", "when do i get paid") == 1.0
    assert word_overlap("when do i get paid", "is my car insured") == 0.0
    assert word_overlap("", "anything") == 0.0


def test_a_text_that_restates_a_case_is_found() -> None:
    texts = [TrainingText(source="corpus:doc", text="how far ahead can i book my shifts"),
             TrainingText(source="examples:driver", text="what does the shield icon do")]
    cases = [
        EvalCase(id="c1", message="how far ahead can i book shifts", dataset="answers"),
        EvalCase(id="c2", message="my car broke down mid delivery", dataset="answers"),
    ]
    leaks = find_leaks(texts, cases)
    assert [(leak.source, leak.text, leak.case) for leak in leaks] == [
        ("corpus:doc", "how far ahead can i book my shifts", "answers/c1")
    ]
    assert find_leaks(texts, cases, max_overlap=1.01) == []


def test_alternatives_split_only_at_the_top_level() -> None:
    assert alternatives(r"\b(a|b)\b|c[|]d|e\|f") == [r"\b(a|b)\b", "c[|]d", r"e\|f"]
    assert alternatives("plain") == ["plain"]


def test_a_pattern_alternative_that_matches_one_case_and_no_training_text_is_a_finding(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("screen:\n  injection_patterns:\n    - 'purple monkey|ignore (all )?rules'\n", encoding="utf-8")
    cases = [
        EvalCase(id="c1", message="the purple monkey told me to", dataset="adversarial"),
        EvalCase(id="c2", message="ignore all rules now", dataset="adversarial"),
    ]
    training = [TrainingText(source="examples:injection", text="please ignore rules")]
    findings = pattern_findings(policy, cases, training)
    assert [(f.alternative, f.case) for f in findings] == [("purple monkey", "adversarial/c1")]


def _shipped() -> tuple[list[TrainingText], list[TrainingText], list[EvalCase]]:
    corpus = load_corpus(REPO / "corpus")
    loaded = load_datasets([REPO / "evals" / "datasets"])
    return corpus_questions(corpus.documents, corpus.gap_questions, [x.text for x in corpus.situations]), guardrail_examples(), loaded.cases


def test_shipped_training_texts_share_few_words_with_any_eval_case() -> None:
    questions, examples, cases = _shipped()
    assert len(questions) >= 300 and len(examples) >= 300
    leaks = find_leaks([*questions, *examples], cases)
    assert leaks == [], "\n".join(f"{x.source}: {x.text!r} ~ {x.case} {x.message!r}" for x in leaks)


def test_pattern_alternatives_written_for_one_eval_case_only_become_fewer() -> None:
    questions, examples, cases = _shipped()
    findings = pattern_findings(DEFAULT_POLICY, cases, [*questions, *examples])
    assert len(findings) <= MAX_PATTERN_FINDINGS, "\n".join(f"{f.key}: {f.alternative} ~ {f.case}" for f in findings)


@pytest.mark.integration
def test_shipped_training_texts_are_not_paraphrases_of_any_eval_case(tmp_path: Path) -> None:
    questions, _, cases = _shipped()
    # the English model reads English: any two sentences in one other script sit near each other
    # under it, so the multilingual examples are compared by the multilingual model (below)
    examples = guardrail_examples(
        [DEFAULT_EXAMPLES, ACTION_EXAMPLES, ACCOUNT_EXAMPLES, AUTHORITY_LOOKALIKES, AUTHORITY_EXAMPLES, MISUSE_EXAMPLES, MISUSE_LOOKALIKES,
         MISUSE_SCHEMES, REDTEAM_EXAMPLES, DEFECT_EXAMPLES, SAFETY_EXAMPLES, APP_TROUBLE_EXAMPLES]
    )
    embeddings = make_embeddings(Settings(data_dir=tmp_path))
    leaks = find_leaks([*questions, *examples], cases, embeddings=embeddings)
    assert leaks == [], "\n".join(f"{x.source}: {x.text!r} ~ {x.case} {x.message!r} ({x.cosine})" for x in leaks)


#: The multilingual model's cosines are compressed (an example's nearest eval case sits at 0.88
#: in the median); the closest cross-language paraphrases found when this was written were 0.944.
MULTILINGUAL_PARAPHRASE = 0.94


@pytest.mark.integration
def test_multilingual_examples_are_not_paraphrases_of_any_eval_case_in_any_language() -> None:
    examples = guardrail_examples([MULTILINGUAL_EXAMPLES, MULTILINGUAL_AUTHORITY_EXAMPLES, MULTILINGUAL_AUTHORITY_LOOKALIKES,
                                   MULTILINGUAL_MISUSE_EXAMPLES, MULTILINGUAL_ACTION_EXAMPLES, MULTILINGUAL_SAFETY_EXAMPLES])
    cases = load_datasets([REPO / "evals" / "datasets"]).cases
    encoder = default_encoder()
    similarity = encoder.encode([x.text for x in examples]) @ encoder.encode([c.message for c in cases]).T
    close = [(examples[i].text, cases[j].id, float(similarity[i, j]))
             for i, j in zip(*np.nonzero(similarity >= MULTILINGUAL_PARAPHRASE), strict=True)]
    assert len(examples) >= 300
    assert close == [], close
