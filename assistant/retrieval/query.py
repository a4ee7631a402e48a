"""The text retrieval searches with: the driver's message, made standalone using the history.

Texting shorthand ("cx", "acct", "pic", "deact") is spelled out beside the word, so both keyword
and dense search see the words the help articles use (:data:`SHORTHAND`).

Drivers ask follow-ups that only make sense after the previous question ("what about in
ontario?", "and if they still dont answer?"). A follow-up is searched together with the driver's
previous question, current message first (so a place it names wins, see
:func:`assistant.retrieval.journey.market_named_in`). A message that stands on its own is searched
as it is, so an unrelated new question is not diluted by the old one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.request import Turn

#: Texting and driver shorthand -> the words help articles use. Whole words only.
SHORTHAND: dict[str, str] = {
    "acct": "account", "acc": "account", "addy": "address", "amt": "amount", "app'd": "approved",
    "bal": "balance", "batt": "battery", "booze": "alcohol", "cc": "credit card", "cust": "customer",
    "cx": "customer", "deac": "deactivated", "deact": "deactivated", "deacted": "deactivated",
    "dep": "deposit", "eta": "arrival time", "hr": "hour", "hrs": "hours", "ins": "insurance",
    "lic": "licence", "meds": "medication", "mins": "minutes", "msg": "message",
    "nav": "navigation", "notif": "notification", "notifs": "notifications", "oos": "out of stock",
    "otw": "on the way", "pic": "photo", "pics": "photos", "pmt": "payment", "pw": "password",
    "pwd": "password", "pymt": "payment", "resto": "restaurant", "rx": "prescription",
    "sub": "substitute", "subs": "substitutions", "tmr": "tomorrow", "tmrw": "tomorrow",
    "txt": "text", "veh": "vehicle", "wk": "week", "yr": "year", "2fa": "verification code",
}
_SHORTHAND_WORD = re.compile(r"(?<![\w'])(" + "|".join(re.escape(k) for k in SHORTHAND) + r")(?![\w'])", re.I)

#: Openings that mark a message as continuing the previous question.
FOLLOW_UP_OPENINGS = (
    "what about", "how about", "what if", "and ", "also", "same ", "but ", "ok but", "okay but",
    "so ", "then ", "even if", "and if", "or ", "y si", "y en", "et si", "et pour",
)
#: Words that point back at something said before.
REFERRING_WORDS = frozenset(
    ["it", "that", "this", "there", "them", "those", "these", "same", "one", "else", "instead", "again", "they", "he", "she"]
)
#: A message this short (in words) is always read as a follow-up when there is a history.
ALWAYS_FOLLOW_UP_WORDS = 3
#: A message up to this many words that uses a referring word is read as a follow-up.
SHORT_MESSAGE_WORDS = 9


def is_follow_up(message: str) -> bool:
    """True when ``message`` reads as continuing an earlier question."""
    lowered = message.strip().lower()
    words = re.findall(r"[\w']+", lowered)
    if len(words) <= ALWAYS_FOLLOW_UP_WORDS or lowered.startswith(FOLLOW_UP_OPENINGS):
        return True
    return len(words) <= SHORT_MESSAGE_WORDS and any(w in REFERRING_WORDS for w in words)


def spell_out(text: str) -> str:
    """``text`` with each shorthand word followed by its spelled-out form in parentheses."""
    return _SHORTHAND_WORD.sub(lambda m: f"{m.group(0)} ({SHORTHAND[m.group(0).lower()]})", text)


def retrieval_query(message: str, history: Sequence[Turn]) -> str:
    """``message`` (shorthand spelled out), then the previous driver turn when it is a follow-up."""
    previous = next((turn.text for turn in reversed(history) if turn.role == "driver" and turn.text.strip()), None)
    if previous is None or not is_follow_up(message):
        return spell_out(message)
    return f"{spell_out(message)}\n{spell_out(previous)}"
