"""Checks on the driver's message: injection, harmful or off-topic requests, safety, a request for
a person, account actions and repeat contacts. Each returns a :class:`Finding` (or ``None``)
whose detail names its evidence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from assistant.guardrails.policy import GuardrailPolicy
from assistant.request import Turn
from assistant.response import ReasonCode
from assistant.retrieval.language import detect_language


class Finding(BaseModel):
    """One guardrail finding: the reason code, a detail naming the evidence, the evidence itself."""

    model_config = ConfigDict(frozen=True)

    code: ReasonCode
    detail: str
    evidence: list[str] = Field(default_factory=list)
    #: True when the finding rests on the message's structure (a long prompt-like set-up).
    structural: bool = False
    #: True when only the classifier found it (no pattern, no structure): weaker evidence.
    by_classifier: bool = False
    #: True when it decides the route even where a policy covers the message (a claim of
    #: authority names the policy of the action it wants done).
    decisive: bool = False
    #: True for a danger to the driver themselves (thoughts of ending their life): they are told
    #: the crisis line, not the safety article's steps.
    self_harm: bool = False


def _quote(match: re.Match[str] | None, limit: int = 60) -> str:
    if match is None:
        return ""
    text = " ".join(match.group(0).split())
    return text[:limit] + ("…" if len(text) > limit else "")


def screen(
    text: str, original_chars: int, probs: dict[str, float], policy: GuardrailPolicy, *, other_language: bool = False
) -> list[Finding]:
    """Injection and harmful-request findings for ``text`` (see ``screen`` in the policy);
    ``other_language``: the probabilities are the multilingual classifier's."""
    rules = policy.screen
    harmful_needed = rules.other_language_harmful_probability if other_language else rules.harmful_probability
    findings: list[Finding] = []
    structure = rules.structure_signals.count(text)
    length = max(len(text), original_chars)
    injection_p = probs.get("injection", 0.0)
    # a prompt-like set-up: long with some structure, or any length with a lot of it
    structured = (length > rules.long_message_chars and structure >= rules.long_message_structure) or (
        structure >= rules.long_message_structure + 1
    )
    if match := rules.injection_patterns.search(text):
        findings.append(Finding(
            code=ReasonCode.PROMPT_INJECTION,
            detail=f"the message tries to change the assistant's instructions or reach other data: \"{_quote(match)}\"",
            evidence=[_quote(match)],
            structural=structured or length > rules.long_message_chars,  # a long set-up, not a question
        ))
    elif structured:
        findings.append(Finding(
            code=ReasonCode.PROMPT_INJECTION,
            detail=f"a {length}-character message with {structure} prompt-like structures (role set-ups, rule "
            "lists, fake turns); a driver's question is short and about their work",
            evidence=[f"length {length}", f"structure signals {structure}"],
            structural=True,
        ))
    elif (
        length > rules.long_message_chars
        and injection_p >= rules.long_injection_probability
        and detect_language(text)[0] == "en"  # the classifier learnt English: elsewhere only patterns count
    ):
        findings.append(Finding(
            code=ReasonCode.PROMPT_INJECTION,
            detail=f"a {length}-character message that reads like a prompt set-up (classifier {injection_p:.2f}); "
            "a driver's question is short and about their work",
            evidence=[f"length {length}", f"classifier injection {injection_p:.2f}"],
            structural=True,
        ))
    elif injection_p >= rules.injection_probability:
        findings.append(Finding(
            code=ReasonCode.PROMPT_INJECTION,
            detail=f"the message reads like a prompt-injection attempt (classifier {injection_p:.2f})",
            evidence=[f"classifier injection {injection_p:.2f}"],
            structural=length > rules.long_message_chars,
            by_classifier=length <= rules.long_message_chars,
        ))
    authority_p = probs.get("authority", 0.0)
    authority_needed = rules.other_language_authority_probability if other_language else rules.authority_probability
    if authority_p >= authority_needed:
        _decide(findings, ReasonCode.PROMPT_INJECTION, "authority", authority_p,
                "claims authority (a staff role, an approval or an override) to have the assistant act on an account "
                f"(classifier {authority_p:.2f}); the assistant takes no account actions, and staff use their own tools")
    harmful_p = probs.get("harmful", 0.0)
    if match := rules.harmful_patterns.search(text):
        findings.append(Finding(
            code=ReasonCode.OUT_OF_SCOPE,
            detail=f"a request for harmful help unrelated to delivery work: \"{_quote(match)}\"",
            evidence=[_quote(match)],
        ))
    elif match := rules.offtopic_patterns.search(text):
        findings.append(Finding(
            code=ReasonCode.OUT_OF_SCOPE,
            detail=f"asks for work unrelated to delivering: \"{_quote(match)}\"",
            evidence=[_quote(match)],
        ))
    elif harmful_p >= harmful_needed:
        findings.append(Finding(
            code=ReasonCode.OUT_OF_SCOPE,
            detail=f"a request for harmful help unrelated to delivery work (classifier {harmful_p:.2f})",
            evidence=[f"classifier harmful {harmful_p:.2f}"],
            by_classifier=True,
        ))
    if not other_language and harmful_p >= rules.harmful_sure_probability:  # declined even when a policy shares its words
        _decide(findings, ReasonCode.OUT_OF_SCOPE, "harmful", harmful_p,
                f"a request for harmful help unrelated to delivery work (classifier {harmful_p:.2f})")
    misuse_p = probs.get("misuse", 0.0)
    if misuse_p >= rules.misuse_probability:  # help to cheat or harm: declined even when a policy covers the topic
        _decide(findings, ReasonCode.OUT_OF_SCOPE, "misuse", misuse_p,
                f"asks for help to cheat, deceive or harm someone in the delivery work (classifier {misuse_p:.2f}); "
                "the assistant explains the rules, it does not help to get around them")
    return findings


def _decide(findings: list[Finding], code: ReasonCode, reading: str, probability: float, detail: str) -> None:
    """A classifier reading that decides even where a policy covers the message: the finding of
    ``code`` already there becomes decisive (one finding, its evidence joined), else a decisive
    finding with ``detail`` is added."""
    evidence = f"classifier {reading} {probability:.2f}"
    found = next((i for i, f in enumerate(findings) if f.code is code), None)
    if found is not None:
        joined = list(dict.fromkeys([*findings[found].evidence, evidence]))
        findings[found] = findings[found].model_copy(update={"decisive": True, "evidence": joined})
    else:
        findings.append(Finding(code=code, detail=detail, evidence=[evidence], by_classifier=True, decisive=True))


def detect_safety(
    text: str, probs: dict[str, float], policy: GuardrailPolicy, *, other_language: bool = False,
    danger: tuple[re.Match[str] | None, bool] | None = None,
) -> Finding | None:
    """A present danger to the driver or others; errs towards recall (a miss is a bug).

    A pattern match counts unless a look-alike phrase explains it away, or the message asks about
    the policy or an incident that is over: an English message the present-danger classifier
    (``probs["danger"]``) reads under ``safety.danger_pattern_probability`` (where the danger gate,
    trained on the messages the patterns match, read it: ``probs["danger_gate"]`` under
    ``safety.danger_gate_probability``), or, without a sign of
    a present emergency, a hypothetical ("if i ever get in a crash"), an incident the message places
    in the past ("last week") that the present-danger classifier reads under
    ``safety.past_probability``, or, when that classifier did not read it, a message the screen's
    safety label reads under ``safety.pattern_probability`` (a message in another language: the
    multilingual classifier's, under ``safety.other_language_pattern_probability``).
    The present-danger classifier also flags a danger on its own from ``safety.danger_probability``.
    ``other_language``: the probabilities are the multilingual classifier's, which reads the
    message alone (the patterns and look-alike phrases are English). ``danger``: what
    :func:`danger_match` returned for ``text``, where the caller has it already."""
    rules = policy.safety
    if rules.self_harm is not None and (harm := rules.self_harm.search(text)):
        return Finding(
            code=ReasonCode.SAFETY,
            detail=f"the driver speaks of ending their life: \"{_quote(harm)}\"",
            evidence=[_quote(harm)],
            self_harm=True,
        )
    match, lookalike = danger if danger is not None else danger_match(text, policy)
    safety_p = probs.get("safety", 0.0)
    danger_p = probs.get("danger") if not other_language else None  # the present-danger classifier's (English)
    # where the engine read it, the sentence the pattern matched in counts too (a danger told
    # before a question about the errand: "cx pulled a knife. do i still take the beer back?")
    match_p = probs.get("danger_match", danger_p) if danger_p is not None else None
    gate_p = probs.get("danger_gate") if danger_p is not None else None
    gate_at = rules.danger_gate_probability
    if match and match_p is not None and (
        match_p < rules.danger_pattern_probability or (gate_p is not None and gate_at is not None and gate_p < gate_at)
    ):
        match = None  # a danger word in a message the present-danger classifier or the gate reads as no danger now
    elif match and not rules.present_emergency.search(text):
        if rules.hypothetical.search(text):
            match = None  # "if i ever get in a crash, ..." asks about the policy, not for help now
        elif danger_p is not None and rules.past is not None and rules.past.search(text) and danger_p < rules.past_probability:
            match = None  # "reported an assault 2 days ago, who do i follow up with": an incident that is over
        elif danger_p is None and not other_language and "safety" in probs and safety_p < rules.pattern_probability:
            match = None  # the screen's safety label reads it as nothing like an emergency
        elif other_language and "safety" in probs and safety_p < rules.other_language_pattern_probability:
            match = None  # "车祸理赔被拒了" (a claim denied): the multilingual classifier reads no emergency
    if match:
        return Finding(
            code=ReasonCode.SAFETY,
            detail=f"the driver reports a danger: \"{_quote(match)}\"",
            evidence=[_quote(match)],
        )
    if danger_p is not None and danger_p >= rules.danger_probability:
        return Finding(
            code=ReasonCode.SAFETY,
            detail=f"the message reads like a driver in danger now (classifier {danger_p:.2f})",
            evidence=[f"classifier danger {danger_p:.2f}"],
            by_classifier=True,
        )
    needed = rules.classifier_weight_with_lookalike if lookalike else policy.screen.safety_probability
    if other_language:
        needed = policy.screen.other_language_safety_probability
    if safety_p >= needed:
        return Finding(
            code=ReasonCode.SAFETY,
            detail=f"the message reads like a safety emergency (classifier {safety_p:.2f})",
            evidence=[f"classifier safety {safety_p:.2f}"],
            by_classifier=True,
        )
    return None


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def sentence_of(text: str, match: re.Match[str]) -> str:
    """The sentence of ``text`` that ``match`` starts in (the whole text when it has one)."""
    start = 0
    for end in _SENTENCE_END.finditer(text):
        if end.start() >= match.start():
            return text[start : end.start()].strip()
        start = end.end()
    return text[start:].strip()


def danger_match(text: str, policy: GuardrailPolicy) -> tuple[re.Match[str] | None, bool]:
    """The first match of a danger pattern that no look-alike phrase explains away ("app crashed"
    explains the "crashed", not the "following me" after it), and whether any look-alike phrase
    matched at all."""
    rules = policy.safety
    lookalikes = list(rules.not_safety.matches(text))
    match = next((m for m in rules.patterns.matches(text) if not any(_within(alike, m) for alike in lookalikes)), None)
    return match, bool(lookalikes)


def _within(outer: re.Match[str], inner: re.Match[str]) -> bool:
    """True when the look-alike phrase overlaps the pattern match (so it explains it away)."""
    return outer.start() < inner.end() and inner.start() < outer.end()


def detect_driver_request(text: str, policy: GuardrailPolicy) -> Finding | None:
    """The driver asks for a person."""
    if match := policy.driver_requested.patterns.search(text):
        return Finding(
            code=ReasonCode.DRIVER_REQUESTED,
            detail=f"the driver asked for a person: \"{_quote(match)}\"",
            evidence=[_quote(match)],
        )
    return None


def detect_account_action(text: str, policy: GuardrailPolicy, probs: Mapping[str, float] | None = None) -> Finding | None:
    """An appeal, dispute, legal matter or request about the driver's own case that a person must
    act on. With the account-action classifier's probability (``probs["action"]``, English
    messages; ``probs["other_language_action"]``, the multilingual classifier's, from
    ``other_language_action_probability``): from ``action_probability`` a message is one in any
    wording (off by default), and
    a pattern match under ``pattern_probability`` reads as a question about how the policy works
    and is not (the policy then answers)."""
    rules = policy.account_action
    readings = (("action", rules.action_probability, "classifier"),
                ("other_language_action", rules.other_language_action_probability, "multilingual classifier"))
    for key, at, reader in readings:
        reading = probs.get(key) if probs is not None else None
        if reading is not None and reading >= at:
            return Finding(
                code=ReasonCode.ACCOUNT_ACTION,
                detail=f"asks support to act on the driver's own case ({reader} {reading:.2f})",
                by_classifier=True,
            )
    action_p = probs.get("action") if probs is not None else None
    if action_p is not None:
        hypothetical = rules.hypothetical is not None and rules.hypothetical.search(text)
        if action_p < max(rules.pattern_probability, rules.hypothetical_probability if hypothetical else 0.0):
            return None
    if match := rules.patterns.search(text):
        return Finding(
            code=ReasonCode.ACCOUNT_ACTION,
            detail=f"needs an account action by support: \"{_quote(match)}\"",
            evidence=[_quote(match)],
        )
    for combination in rules.combinations:
        topic = combination.topic.search(text)
        stance = combination.stance.search(text)
        if topic and stance:
            return Finding(
                code=ReasonCode.ACCOUNT_ACTION,
                detail=f"needs an account action by support: \"{_quote(topic)}\" with \"{_quote(stance)}\"",
                evidence=[_quote(topic), _quote(stance)],
            )
    return None


def earlier_turns(history: Sequence[Turn]) -> list[str]:
    """The driver's earlier turns, which :func:`detect_repeat` compares with the message (a
    caller embeds them with the message, in one model call)."""
    return [t.text for t in history if t.role == "driver" and t.text.strip()]


def detect_repeat(
    text: str,
    history: Sequence[Turn],
    policy: GuardrailPolicy,
    *,
    terms: Callable[[str], set[str]],
    similarity: Callable[[str, str], float],
) -> Finding | None:
    """The same unresolved issue raised again: the message says the driver contacted support
    about it before (enough alone: the earlier contact may have been on another channel), or a
    repeat marker plus an earlier driver turn on the same topic (shared content words or similar
    meaning)."""
    rules = policy.repeat_contact
    if claimed := rules.contact_markers.search(text):
        return Finding(
            code=ReasonCode.REPEAT_CONTACT,
            detail=f"the driver says they contacted support about this before (\"{_quote(claimed)}\")",
            evidence=[_quote(claimed)],
        )
    earlier = earlier_turns(history)
    if not earlier:
        return None
    if strong := rules.strong_markers.search(text):
        return Finding(
            code=ReasonCode.REPEAT_CONTACT,
            detail=f"the driver says they raised this before (\"{_quote(strong)}\"; earlier: \"{earlier[-1][:80]}\")",
            evidence=[earlier[-1][:200]],
        )
    marker = rules.markers.search(text)
    mine = terms(text)
    for turn in reversed(earlier):
        shared = mine & terms(turn)
        close = len(shared) >= rules.min_shared_terms
        score = similarity(text, turn)
        if (marker and (close or score >= rules.min_similarity)) or score >= 0.85:
            why = f"\"{_quote(marker)}\"" if marker else "the same question again"
            return Finding(
                code=ReasonCode.REPEAT_CONTACT,
                detail=f"the driver raised this before in the conversation ({why}; earlier: \"{turn[:80]}\")",
                evidence=[turn[:200]],
            )
    return None


_WORDS = re.compile(r"[a-z']+")


def is_small_talk(message: str, policy: GuardrailPolicy) -> bool:
    """True for a thanks, an acknowledgement or a greeting on its own ("ok thanks", "cool ty 👍"):
    no question, no digits, and every word from the policy's small-talk words."""
    rules = policy.conversation
    text = message.lower()
    if "?" in text or any(ch.isdigit() for ch in text):
        return False
    words = [w.strip("'") for w in _WORDS.findall(text)]
    words = [w for w in words if w]
    return 0 < len(words) <= rules.max_words and all(w in rules.small_talk_words for w in words)
