"""PII redaction: find personal data in driver text and replace it with a ``[KIND]`` placeholder.

Runs before the text reaches retrieval, a model, a log, the review store or a handoff packet.
Checksummed identifiers are validated with maintained libraries (``python-stdnum`` for Luhn,
SSN and ABA routing numbers; Google's ``phonenumbers`` for phone numbers); the rest are patterns
that need a context word ("plate", "routing", "acct") where the bare shape is too common.
Presidio was considered: its analyzer needs a spaCy model downloaded at run time, which breaks
the offline promise, and its pattern recognisers cover the same ground as these.

Precision and recall per kind are measured on ``evals/redaction/pii.jsonl``
(``assistant eval redaction``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from enum import StrEnum

import phonenumbers
from pydantic import BaseModel, ConfigDict
from stdnum import luhn
from stdnum.us import rtn, ssn


class PiiKind(StrEnum):
    """The kinds of personal data the redactor finds."""

    EMAIL = "email"
    CARD = "card"
    SSN = "ssn"
    ROUTING_NUMBER = "routing_number"
    COORDINATES = "coordinates"
    PHONE = "phone"
    BANK_ACCOUNT = "bank_account"
    DRIVERS_LICENSE = "drivers_license"
    LICENSE_PLATE = "license_plate"
    STREET_ADDRESS = "street_address"


PLACEHOLDER = {
    PiiKind.EMAIL: "[EMAIL]",
    PiiKind.CARD: "[CARD]",
    PiiKind.SSN: "[SSN]",
    PiiKind.ROUTING_NUMBER: "[ROUTING_NUMBER]",
    PiiKind.COORDINATES: "[COORDINATES]",
    PiiKind.PHONE: "[PHONE]",
    PiiKind.BANK_ACCOUNT: "[BANK_ACCOUNT]",
    PiiKind.DRIVERS_LICENSE: "[DRIVERS_LICENSE]",
    PiiKind.LICENSE_PLATE: "[LICENSE_PLATE]",
    PiiKind.STREET_ADDRESS: "[ADDRESS]",
}


#: Plain words for each placeholder, for checks that read the message as prose (a bracketed
#: token looks like a fake system tag to an injection screen).
PLAIN_WORDS = {
    PiiKind.EMAIL: "an email address",
    PiiKind.CARD: "a card number",
    PiiKind.SSN: "an ssn",
    PiiKind.ROUTING_NUMBER: "a routing number",
    PiiKind.COORDINATES: "a location",
    PiiKind.PHONE: "a phone number",
    PiiKind.BANK_ACCOUNT: "an account number",
    PiiKind.DRIVERS_LICENSE: "a licence number",
    PiiKind.LICENSE_PLATE: "a plate number",
    PiiKind.STREET_ADDRESS: "an address",
}


def plain(text: str) -> str:
    """``text`` with each placeholder replaced by plain words."""
    for kind, placeholder in PLACEHOLDER.items():
        text = text.replace(placeholder, PLAIN_WORDS[kind])
    return text


class PiiSpan(BaseModel):
    """Where one piece of personal data sits in the original text."""

    model_config = ConfigDict(frozen=True)

    kind: PiiKind
    start: int
    end: int


class Redaction(BaseModel):
    """The redacted text and what was taken out (positions refer to the original text)."""

    model_config = ConfigDict(frozen=True)

    text: str
    spans: list[PiiSpan] = []

    @property
    def kinds(self) -> list[PiiKind]:
        """The kinds found, in a stable order."""
        return [k for k in PiiKind if any(s.kind is k for s in self.spans)]

    def summary(self) -> str:
        """e.g. ``"phone (1), email (1)"``."""
        counts = Counter(s.kind for s in self.spans)
        return ", ".join(f"{k.value} ({counts[k]})" for k in self.kinds)


Finder = Callable[[str], Iterator[tuple[int, int]]]

#: Each pattern starts only where a run of its characters starts (the look-behind) and repeats a
#: bounded number of times, so redaction stays linear in the text's length.
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+){0,8}\.[A-Za-z]{2,24}(?![A-Za-z])")
#: An address spelled out to dodge filters: "sam dot chen at gmail dot com".
_EMAIL_SPELLED = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+(?:\s+dot\s+[A-Za-z0-9_%+-]+){0,4}\s+(?:at|\[at\]|\(at\))\s+[A-Za-z0-9-]+"
    r"(?:\s+dot\s+[A-Za-z0-9-]+){0,4}\s+dot\s+(?:com|net|org|ca|io|co|us|edu)\b",
    re.I,
)
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_SSN_DASHED = re.compile(r"(?<![\d-])(\d{3})[- ](\d{2})[- ](\d{4})(?![\d-])")
_SIN = re.compile(r"(?<![\d-])\d{3}[ -]\d{3}[ -]\d{3}(?![\d-])")
_NINE = re.compile(r"(?<![\d-])\d{9}(?![\d-])")
_COORDS_HEMISPHERE = re.compile(r"(?<![\d.])\d{1,2}\.\d{3,}\s*°?\s*[NS],?\s*\d{1,3}\.\d{3,}\s*°?\s*[EW]\b", re.I)
_COORDS = re.compile(
    r"(?:lat(?:itude)?[:=\s]*)?(?<![\d.])-?\d{1,2}\.\d{3,}\s*(?:,|\s|/)\s*(?:lo?ng?(?:itude)?[:=\s]*)?-?\d{1,3}\.\d{3,}(?![\d.])",
    re.I,
)
_SHORT_NUMBER = re.compile(r"(?<![\d.$-])\d{3,}(?:-\d{3,})*(?![\d.])(?!\s?(?:%|am|pm|mi|km|miles|min|hrs?|hours|days|items|orders|stars)\b)", re.I)
_LICENSE_VALUE = re.compile(
    r"(?<![A-Za-z0-9-])(?:\d{3}[ -]\d{3}[ -]\d{3}|[A-Za-z]{0,5}\d[A-Za-z0-9]{3,}(?:[ -][A-Za-z0-9]{3,6}){0,3})(?![A-Za-z0-9])"
)
_PLATE_VALUE = re.compile(r"(?<![A-Za-z0-9-])[A-Za-z0-9]{1,4}[ -]?[A-Za-z0-9]{2,5}(?![A-Za-z0-9-])")
#: Words that start ordinary phrases shaped like a plate ("at 59th", "app v5").
_NOT_PLATE_START = frozenset(["at", "on", "in", "to", "is", "my", "the", "app", "v", "ver", "version", "of", "for", "and", "or", "by", "order", "zone", "store", "ste", "apt", "unit", "no"])
_CA_PLATE = re.compile(r"(?<![A-Za-z0-9])\d[A-Z]{3}\d{3}(?![A-Za-z0-9])")
_STREET_TYPES = (
    r"st|street|ave|avenue|rd|road|blvd|boulevard|dr|drive|ln|lane|way|ct|court|pl|place|ter|terrace|"
    r"pkwy|parkway|cir|circle|sq|square|trl|trail|cres|crescent|hwy|highway"
)
_NOT_STREET_WORDS = r"(?:mins?|minutes?|hours?|hrs?|mi|miles?|km|blocks?|items?|orders?|bags?|dollars?|stars?|times?|days?|on|at|to|from|near|by|of|in|and|or|the|for|away)"
_ADDRESS = re.compile(
    rf"(?<![\w$#.-])\d{{1,6}}(?:-\d{{1,4}})?[A-Za-z]?\s+(?!{_NOT_STREET_WORDS}\b)(?:[NSEW]\.?\s+)?"
    rf"(?:(?!{_NOT_STREET_WORDS}\b)[A-Za-z0-9.'-]+\s+){{0,3}}(?:{_STREET_TYPES})\b\.?"
    r"(?:\s+(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\b\.?)?"
    r"(?:,?\s*(?:apt|apartment|unit|suite|ste|#)\.?\s*#?\w+)?"
    # city, then a state or province code and/or a ZIP or postal code
    r"(?:,?\s*[A-Za-z][A-Za-z .]+?,?\s+(?:(?-i:[A-Z]{2})\b(?:\s+(?:\d{5}(?:-\d{4})?|[A-Z]\d[A-Z]\s?\d[A-Z]\d))?"
    r"|[A-Za-z]{2}\s+\d{5}(?:-\d{4})?|\d{5}(?:-\d{4})?|[A-Z]\d[A-Z]\s?\d[A-Z]\d))?",
    re.I,
)
#: Context words that must appear shortly before a value whose bare shape is too common.
_CONTEXT = {
    PiiKind.ROUTING_NUMBER: re.compile(r"\b(rout\w*|rtng|aba|rtn|transit)\b", re.I),
    PiiKind.BANK_ACCOUNT: re.compile(r"\b(account|acct|acc|a/c|checking|savings|bank|institution|transit)\b", re.I),
    PiiKind.SSN: re.compile(r"\b(ssn|social security|social|sin)\b", re.I),
    PiiKind.DRIVERS_LICENSE: re.compile(r"\b(li[cs]+en[cs]e|lic|dl|driver'?s?\s+lic\w*|permit)\b", re.I),
    PiiKind.LICENSE_PLATE: re.compile(r"\b(plates?|tags?|reg(istration)?)\b", re.I),
    PiiKind.PHONE: re.compile(r"\b(call|text|phone|cell|number|num|mobile|reach|contact|tel)\b", re.I),
}
#: How far before a value its context word may be (characters).
CONTEXT_WINDOW = 40


def _has_context(text: str, start: int, kind: PiiKind, *, window: int = 0) -> bool:
    return bool(_CONTEXT[kind].search(text[max(0, start - (window or CONTEXT_WINDOW)) : start]))


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _emails(text: str) -> Iterator[tuple[int, int]]:
    for m in _EMAIL.finditer(text):
        yield m.span()
    for m in _EMAIL_SPELLED.finditer(text):
        yield m.span()


def _cards(text: str) -> Iterator[tuple[int, int]]:
    for m in _CARD.finditer(text):
        digits = _digits(m.group())
        if 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn.is_valid(digits):
            yield m.span()


def _ssns(text: str) -> Iterator[tuple[int, int]]:
    for m in _SSN_DASHED.finditer(text):
        if ssn.is_valid(_digits(m.group())):
            yield m.span()
    for m in _NINE.finditer(text):
        if _has_context(text, m.start(), PiiKind.SSN) and not _has_context(text, m.start(), PiiKind.ROUTING_NUMBER):
            yield m.span()
    for m in _SIN.finditer(text):  # a Canadian social insurance number, 3-3-3, Luhn-valid
        if luhn.is_valid(_digits(m.group())) and _has_context(text, m.start(), PiiKind.SSN):
            yield m.span()


def _routing_numbers(text: str) -> Iterator[tuple[int, int]]:
    for m in _NINE.finditer(text):
        if rtn.is_valid(m.group()) and _has_context(text, m.start(), PiiKind.ROUTING_NUMBER):
            yield m.span()


def _coordinates(text: str) -> Iterator[tuple[int, int]]:
    for m in _COORDS_HEMISPHERE.finditer(text):
        yield m.span()
    for m in _COORDS.finditer(text):
        yield m.span()


def _phones(text: str) -> Iterator[tuple[int, int]]:
    if len(_digits(text)) < 10:  # a match needs 10 digits of its own: most messages have fewer
        return
    for match in phonenumbers.PhoneNumberMatcher(text, "US", leniency=phonenumbers.Leniency.POSSIBLE):
        raw = match.raw_string
        digits = _digits(raw)
        formatted = bool(re.search(r"[()+.\s-]", raw.strip())) and len(digits) >= 10
        plausible = phonenumbers.is_valid_number(match.number) or formatted or _has_context(text, match.start, PiiKind.PHONE)
        if plausible and len(digits) >= 10:
            yield match.start, match.end


def _accounts(text: str) -> Iterator[tuple[int, int]]:
    for m in _SHORT_NUMBER.finditer(text):
        digits = len(_digits(m.group()))
        # a long number may sit further from its "account" word; a short one (a Canadian
        # transit or institution number) must follow it closely
        window = 80 if digits >= 8 else (CONTEXT_WINDOW if digits >= 6 else 16)
        if _has_context(text, m.start(), PiiKind.BANK_ACCOUNT, window=window):
            yield m.span()


def _licenses(text: str) -> Iterator[tuple[int, int]]:
    for m in _LICENSE_VALUE.finditer(text):
        if len(_digits(m.group())) >= 5 and _has_context(text, m.start(), PiiKind.DRIVERS_LICENSE):
            yield m.span()


def _plates(text: str) -> Iterator[tuple[int, int]]:
    for m in _CA_PLATE.finditer(text):
        yield m.span()
    for m in _PLATE_VALUE.finditer(text):
        value = m.group()
        first = re.split(r"[ -]", value)[0].lower()
        if (
            re.search(r"\d", value)
            and re.search(r"[A-Za-z]", value)
            and first not in _NOT_PLATE_START
            and not re.fullmatch(r"\d+(st|nd|rd|th)", value, re.I)
            and _has_context(text, m.start(), PiiKind.LICENSE_PLATE)
        ):
            yield m.span()


def _addresses(text: str) -> Iterator[tuple[int, int]]:
    for m in _ADDRESS.finditer(text):
        start, end = m.span()
        yield start, len(text[:end].rstrip(" ,"))


#: Finders in priority order: an earlier kind wins a span two kinds both claim.
FINDERS: list[tuple[PiiKind, Finder]] = [
    (PiiKind.EMAIL, _emails),
    (PiiKind.CARD, _cards),
    (PiiKind.SSN, _ssns),
    (PiiKind.ROUTING_NUMBER, _routing_numbers),
    (PiiKind.COORDINATES, _coordinates),
    (PiiKind.STREET_ADDRESS, _addresses),
    (PiiKind.PHONE, _phones),
    (PiiKind.BANK_ACCOUNT, _accounts),
    (PiiKind.DRIVERS_LICENSE, _licenses),
    (PiiKind.LICENSE_PLATE, _plates),
]


def find_pii(text: str) -> list[PiiSpan]:
    """Non-overlapping PII spans in ``text``, in reading order."""
    taken: list[PiiSpan] = []
    for kind, finder in FINDERS:
        for start, end in finder(text):
            if end > start and not any(start < s.end and s.start < end for s in taken):
                taken.append(PiiSpan(kind=kind, start=start, end=end))
    return sorted(taken, key=lambda s: s.start)


def redact(text: str) -> Redaction:
    """``text`` with each PII span replaced by its placeholder."""
    spans = find_pii(text)
    if not spans:
        return Redaction(text=text)
    parts: list[str] = []
    position = 0
    for span in spans:
        parts.append(text[position : span.start])
        parts.append(PLACEHOLDER[span.kind])
        position = span.end
    parts.append(text[position:])
    return Redaction(text="".join(parts), spans=spans)
