"""The guardrails as one object the pipeline calls twice: on the way in, and with the context.

* :meth:`Guardrails.check_input` redacts PII and screens the message (injection, harmful or
  off-topic requests, safety, a request for a person) before retrieval sees it.
* :meth:`Guardrails.check_context` weighs what needs the journey and history: known incidents,
  defect versus misunderstanding, account actions and repeat contacts.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field

from assistant.errors import AssistantError
from assistant.guardrails import checks
from assistant.guardrails.checks import Finding
from assistant.guardrails.classifier import danger_gate_classifier, english_classifiers, windows
from assistant.guardrails.defects import (
    DefectAssessment,
    DefectVerdict,
    EvidenceLine,
    EvidenceSource,
    IncidentLookup,
    JourneyEvidence,
    LiveIncident,
    assess_defect,
    incident_keys,
    known_incident,
)
from assistant.guardrails.hygiene import readable
from assistant.guardrails.multilingual import MultilingualClassifier
from assistant.guardrails.multilingual import action_classifier as multilingual_action
from assistant.guardrails.multilingual import authority_classifier as multilingual_authority
from assistant.guardrails.pii import Redaction, plain, redact
from assistant.guardrails.policy import GuardrailPolicy, load_policy
from assistant.request import HelpRequest, JourneyContext, Turn
from assistant.response import ReasonCode
from assistant.retrieval.bm25 import Bm25Index
from assistant.retrieval.embeddings import embed_queries, prefetch
from assistant.retrieval.language import query_language

logger = logging.getLogger("assistant.guardrails")


class InputCheck(BaseModel):
    """What the input checks found."""

    model_config = ConfigDict(frozen=True)

    redaction: Redaction
    findings: list[Finding] = Field(default_factory=list)
    probabilities: dict[str, float] = Field(default_factory=dict)

    def first(self, code: ReasonCode) -> Finding | None:
        """The finding with ``code``, if any."""
        return next((f for f in self.findings if f.code is code), None)


class ContextCheck(BaseModel):
    """What the journey, evidence and history say."""

    model_config = ConfigDict(frozen=True)

    findings: list[Finding] = Field(default_factory=list)
    defect: DefectAssessment | None = None
    evidence: list[EvidenceLine] = Field(default_factory=list)
    explanation_sought: bool = Field(False, description="The message asks what something means or how to do it.")
    incident: LiveIncident | None = Field(None, description="The open detected incident this contact belongs to.")

    def first(self, code: ReasonCode) -> Finding | None:
        """The finding with ``code``, if any."""
        return next((f for f in self.findings if f.code is code), None)


def redact_history(history: Sequence[Turn]) -> list[Turn]:
    """The conversation's turns with their text redacted."""
    return [Turn(role=t.role, text=redact(t.text).text) for t in history]


def redact_request(request: HelpRequest, message: str, *, history: list[Turn] | None = None) -> HelpRequest:
    """``request`` with ``message`` and every other free text redacted: history, the journey's
    event names, codes and details, the order's items, the account status. ``history``: the
    request's history already redacted (:func:`redact_history`), to redact it once."""
    history = redact_history(request.history) if history is None else history
    journey: JourneyContext | None = request.journey
    if journey is not None:
        update: dict[str, object] = {}
        if journey.events:
            update["events"] = [
                e.model_copy(update={
                    "detail": _redacted(e.detail), "name": _redacted(e.name), "code": _redacted(e.code),
                })
                for e in journey.events
            ]
        if journey.order is not None and journey.order.items:
            update["order"] = journey.order.model_copy(update={"items": [_redact_item(i) for i in journey.order.items]})
        if journey.account_status:
            update["account_status"] = _redacted(journey.account_status)
        if update:
            journey = journey.model_copy(update=update)
    return request.model_copy(update={"message": message, "history": history, "journey": journey})


def _redacted(text: str | None) -> str | None:
    return redact(text).text if text else text


def _redact_item(item: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(item, str):
        return redact(item).text
    return {key: redact(value).text if isinstance(value, str) else value for key, value in item.items()}


class Guardrails:
    """Policy, classifier and evidence source, loaded once per :class:`~assistant.Assistant`."""

    def __init__(
        self,
        embeddings: Embeddings,
        *,
        policy: GuardrailPolicy | None = None,
        evidence: EvidenceSource | None = None,
        cache_dir: Path | None = None,
        model_id: str = "",
        examples_path: Path | None = None,
        multilingual: bool = False,
    ) -> None:
        self.embeddings = embeddings
        self.policy = policy or load_policy()
        self.evidence: EvidenceSource = evidence or JourneyEvidence()
        #: Open incidents detected from contacts (set by the assistant when it records to a store).
        self.incidents: IncidentLookup | None = None
        #: The screen's classifier, one that tells a request for an action on the driver's own
        #: case from a question about the policy, one that reads a claim of authority to make
        #: the assistant act, and one that reads a request for help misusing the work (English
        #: messages).
        #: The fifth reads a driver reporting that the app is failing for them (the defect check),
        #: the sixth a driver in a safety situation now (the safety check).
        (self.classifier, self.action_classifier, self.authority_classifier, self.misuse_classifier,
         self.defect_classifier, self.danger_classifier) = english_classifiers(
            embeddings, examples_path=examples_path, cache_dir=cache_dir, model_id=model_id
        )
        #: Reads, among messages a safety pattern matches, a driver in danger now (the pattern's gate).
        self.danger_gate = danger_gate_classifier(
            embeddings, self.policy, examples_path=examples_path, cache_dir=cache_dir, model_id=model_id
        )
        #: Reads messages in other languages (off: the English classifier reads every message);
        #: built on the first such message.
        self.multilingual_on = multilingual
        self._multilingual: MultilingualClassifier | None = None
        self._multilingual_authority: MultilingualClassifier | None = None
        self._multilingual_action: MultilingualClassifier | None = None
        self._cache_dir = cache_dir
        self._lock = threading.Lock()

    @property
    def multilingual(self) -> MultilingualClassifier | None:
        """The classifier for messages in other languages (``None`` when it is off)."""
        if not self.multilingual_on:
            return None
        with self._lock:
            if self._multilingual is None:
                self._multilingual = MultilingualClassifier(cache_dir=self._cache_dir)
                self._multilingual_authority = multilingual_authority(cache_dir=self._cache_dir)
                self._multilingual_action = multilingual_action(cache_dir=self._cache_dir)
            return self._multilingual

    def probabilities(self, message: str, *, english: bool | None = None) -> tuple[dict[str, float], bool]:
        """The classifier's label probabilities, and whether the multilingual classifier gave them:
        it reads a message in another language (when it is on), the English one every other. If
        the multilingual model fails, the English classifier's verdict stands (the patterns still
        screen the message). ``english``: whether the message is English, when the caller knows."""
        if english is None and self.multilingual_on:
            english = query_language(message).is_english
        if self.multilingual_on and not english and (classifier := self.multilingual):
            try:
                vectors = classifier.encoder.encode(windows(message))  # one encoding, read by both classifiers
                probs = classifier.read(vectors)
                if self._multilingual_authority is not None:
                    probs["authority"] = self._multilingual_authority.read(vectors)["authority"]
                if self._multilingual_action is not None:  # the account-action check's reading
                    probs["other_language_action"] = self._multilingual_action.read(vectors)["action"]
                return probs, True
            except AssistantError as exc:
                logger.warning("multilingual classifier unavailable, the English one reads the message: %s", exc)
        return self.classifier.probabilities(message), False

    def check_input(
        self, text: str, *, original_chars: int = 0, also_embed: Callable[[str], Sequence[str]] | None = None
    ) -> InputCheck:
        """Redact PII, then screen the redacted message. ``also_embed``: given the redacted
        message, the texts the request embeds next (the retriever's queries); an English
        message's classifier windows and these go to the embedder in one model call."""
        redaction = redact(text)
        message = plain(redaction.text)  # placeholders as words: "[PHONE]" is not a fake tag
        english = query_language(message).is_english
        if english and also_embed is not None:
            prefetch(self.embeddings, [*windows(message), *also_embed(redaction.text)])
        probs, other_language = self.probabilities(message, english=english)
        danger = checks.danger_match(message, self.policy)  # read once, by the sentence check and the safety check
        if english:  # the account-action, authority and misuse readings; the message's embedding is cached
            probs = {**probs, **self._case_readings(message)}
            probs |= self._danger_sentence(message, probs, danger[0])
        if (decoded := readable(message)) is not None:  # obfuscated text is screened as it reads, too
            decoded = plain(redact(decoded).text)  # what was encoded is redacted like the rest
            probs = self._read_decoded(decoded, probs)
        findings = checks.screen(message, original_chars, probs, self.policy, other_language=other_language)
        if decoded is not None:
            plain_findings = [f for f in checks.screen(decoded, original_chars, probs, self.policy, other_language=other_language)
                              if not f.by_classifier]
            found = {f.code for f in plain_findings}
            findings = [*plain_findings, *(f for f in findings if f.code not in found)]
        if safety := checks.detect_safety(message, probs, self.policy, other_language=other_language, danger=danger):
            findings.append(safety)
        if person := checks.detect_driver_request(message, self.policy):
            findings.append(person)
        return InputCheck(redaction=redaction, findings=findings, probabilities=probs)

    def _read_decoded(self, decoded: str, probs: dict[str, float]) -> dict[str, float]:
        """``probs`` with each reading of a request to refuse (injection, harmful, authority,
        misuse) raised to what the English classifiers read in the de-obfuscated ``decoded``
        (leetspeak, base64, ROT13 and reversed text decode to English): a request hidden by its
        encoding is read as the request it is; and the present-danger reading is the decoded
        text's alone (the letters of a reversed or encoded request read like anything, a pipe bomb
        spelt backwards like a driver in danger). Only an obfuscated message pays for this."""
        decoded_probs = {**self.classifier.probabilities(decoded), **self._case_readings(decoded)}
        danger: dict[str, float] = {
            label: decoded_probs[label] for label in ("danger", "danger_gate") if label in probs and label in decoded_probs
        }
        if "danger_match" in probs and "danger" in decoded_probs:
            danger["danger_match"] = decoded_probs["danger"]
        return {**probs, **danger, **{label: max(probs.get(label, 0.0), decoded_probs.get(label, 0.0))
                                      for label in ("injection", "harmful", "authority", "misuse")}}

    def _case_readings(self, text: str) -> dict[str, float]:
        """The English account-action, authority, misuse, defect-report and present-danger
        classifiers' and the danger gate's readings of ``text`` (its windows and their vectors
        looked up once, for all six)."""
        parts = windows(text)
        vectors = np.asarray(embed_queries(self.embeddings, parts), dtype=np.float32)
        return {"action": self.action_classifier.read(parts, vectors)["action"],
                "authority": self.authority_classifier.read(parts, vectors)["authority"],
                "misuse": self.misuse_classifier.read(parts, vectors)["misuse"],
                "defect": self.defect_classifier.read(parts, vectors)["defect"],
                "danger": self.danger_classifier.read(parts, vectors)["danger"],
                "danger_gate": self.danger_gate.read(parts, vectors)["danger"]}

    def _danger_sentence(self, message: str, probs: dict[str, float], match: re.Match[str] | None) -> dict[str, float]:
        """Where a safety pattern matches in one sentence of a longer message, the present-danger
        classifier's and the danger gate's readings of the message or of that sentence, whichever
        is higher (``danger_match``, ``danger_gate``): a driver often tells the danger, then asks
        about the errand, and the question's words pull the whole message's reading down. Only
        the pattern's gate reads them; the classifier alone reads the whole message. ``match``:
        the danger pattern's match in ``message`` (:func:`checks.danger_match`)."""
        if match is None or "danger" not in probs:
            return {}
        sentence = checks.sentence_of(message, match)
        if not sentence or sentence == message.strip():
            return {}
        parts = windows(sentence)
        vectors = np.asarray(embed_queries(self.embeddings, parts), dtype=np.float32)
        readings = {"danger_match": max(probs["danger"], self.danger_classifier.read(parts, vectors)["danger"])}
        if "danger_gate" in probs:
            readings["danger_gate"] = max(probs["danger_gate"], self.danger_gate.read(parts, vectors)["danger"])
        return readings

    def _similarity(self, a: str, b: str) -> float:
        va = np.asarray(self.embeddings.embed_query(a), dtype=np.float32)
        vb = np.asarray(self.embeddings.embed_query(b), dtype=np.float32)
        norm = float(np.linalg.norm(va) * np.linalg.norm(vb))
        return float(va @ vb) / norm if norm and not math.isnan(norm) else 0.0

    def check_context(
        self, message: str, request: HelpRequest, history: Sequence[Turn], *, probabilities: dict[str, float] | None = None
    ) -> ContextCheck:
        """Known incident, defect, account action and repeat contact for a (redacted) message;
        ``probabilities`` are the message classifier's, from :meth:`check_input`."""
        evidence = self.evidence.fetch(request)
        findings: list[Finding] = []
        if incident := known_incident(message, evidence, self.policy.known_incidents):
            findings.append(Finding(code=ReasonCode.KNOWN_INCIDENT, detail=incident))
        defect = assess_defect(message, evidence, self.policy.defects,
                               reported=(probabilities or {}).get("defect"))
        live = None
        if not findings and self.incidents is not None:
            codes, endpoints = incident_keys(evidence, list(defect.failures))
            live = self.incidents.match(codes=codes, endpoints=endpoints, message=message)
            if live is not None:
                findings.append(Finding(
                    code=ReasonCode.KNOWN_INCIDENT, detail=f"matches open incident #{live.id} ({live.group}) detected from contacts",
                ))
        if defect.verdict is DefectVerdict.CONFIRMED:
            findings.append(Finding(
                code=ReasonCode.DEFECT_CONFIRMED, detail=defect.detail(), evidence=[e.render() for e in defect.failures]
            ))
        elif defect.verdict is DefectVerdict.SUSPECTED:
            findings.append(Finding(code=ReasonCode.DEFECT_SUSPECTED, detail=defect.detail()))
        if action := checks.detect_account_action(message, self.policy, probabilities):
            findings.append(action)
        repeat = checks.detect_repeat(
            message, history, self.policy, terms=lambda t: set(Bm25Index.term_set(t)), similarity=self._similarity
        )
        if repeat:
            findings.append(repeat)
        explanation = bool(self.policy.defects.explanation_question.search(message))
        return ContextCheck(findings=findings, defect=defect, evidence=evidence, explanation_sought=explanation,
                            incident=live)
