"""PII redaction: each kind, hard negatives, and the labelled set in evals/redaction/."""

from pathlib import Path

import pytest

from assistant.evals.redaction import load_pii_cases, score_redaction
from assistant.guardrails.pii import PiiKind, find_pii, plain, redact

LABELLED = Path(__file__).resolve().parent.parent / "evals" / "redaction" / "pii.jsonl"


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("call me at (415) 555-0132 pls", PiiKind.PHONE, "(415) 555-0132"),
        ("text 416.555.0199 when here", PiiKind.PHONE, "416.555.0199"),
        ("my email is jo.smith+courio@gmail.com", PiiKind.EMAIL, "jo.smith+courio@gmail.com"),
        ("its sam dot chen at gmail dot com", PiiKind.EMAIL, "sam dot chen at gmail dot com"),
        ("ssn 123-45-6789 for the check", PiiKind.SSN, "123-45-6789"),
        ("card 4111 1111 1111 1111 got declined", PiiKind.CARD, "4111 1111 1111 1111"),
        ("routing 021000021 acct 000123456789", PiiKind.ROUTING_NUMBER, "021000021"),
        ("routing 021000021 acct 000123456789", PiiKind.BANK_ACCOUNT, "000123456789"),
        ("dl number D1234567 expired", PiiKind.DRIVERS_LICENSE, "D1234567"),
        ("plate 7ABC123 hit me", PiiKind.LICENSE_PLATE, "7ABC123"),
        ("cx at 1842 W Maple Ave Apt 3B, keeps calling", PiiKind.STREET_ADDRESS, "1842 W Maple Ave Apt 3B"),
        ("pin at 37.7749, -122.4194 is wrong", PiiKind.COORDINATES, "37.7749, -122.4194"),
    ],
)
def test_each_kind_is_found_and_replaced(text: str, kind: PiiKind, value: str):
    spans = [s for s in find_pii(text) if s.kind is kind]
    assert [text[s.start : s.end] for s in spans] == [value]
    redacted = redact(text)
    assert value not in redacted.text and kind in redacted.kinds
    assert kind.value in redacted.summary()


@pytest.mark.parametrize(
    "text",
    [
        "order #8821934 says NET-408",
        "paid $1,299.50 this week, 12,400 miles",
        "card ending 4242 is fine",
        "restaurant on 5th ave, 2 mins away on Main St",
        "app v5.4.2 at 11:30pm on 2025-10-09",
        "code 4821 for the building",
    ],
)
def test_numbers_that_are_not_pii_are_left_alone(text: str):
    assert find_pii(text) == []
    assert redact(text).text == text


def test_a_card_number_that_fails_luhn_is_not_a_card():
    assert not [s for s in find_pii("number 4111 1111 1111 1112") if s.kind is PiiKind.CARD]


def test_placeholders_read_as_plain_words_for_the_screen():
    assert plain(redact("call 415-555-0132").text) == "call a phone number"


def test_labelled_set_precision_and_recall_per_kind():
    report = score_redaction(load_pii_cases(LABELLED))
    assert report.cases >= 200
    assert report.protected >= 0.95, report.misses
    for kind, score in report.kinds.items():
        assert score.labelled >= 10, kind
        assert score.recall is not None and score.recall >= 0.8, (kind, score)
        assert score.precision is not None and score.precision >= 0.9, (kind, score)
    assert report.false_positive_cases <= 3, report.false_positives
