"""Input hygiene: Unicode normalisation, control characters, whitespace and size."""

from __future__ import annotations

import re
import unicodedata

from pydantic import BaseModel, ConfigDict

_CONTROL = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_SPACES = re.compile(r"[ \t]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class CleanMessage(BaseModel):
    """The message as the rest of the pipeline sees it."""

    model_config = ConfigDict(frozen=True)

    text: str
    truncated: bool = False
    original_chars: int = 0

    @property
    def is_empty(self) -> bool:
        """True when nothing readable is left."""
        return not any(ch.isalnum() for ch in self.text)


def clean_message(text: str, *, max_chars: int) -> CleanMessage:
    """NFKC-normalise, drop control and bidi-override characters, squeeze spaces, cap the size."""
    normalised = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    normalised = _CONTROL.sub("", normalised)
    normalised = _BLANK_LINES.sub("\n\n", _SPACES.sub(" ", normalised)).strip()
    truncated = len(normalised) > max_chars
    return CleanMessage(
        text=normalised[:max_chars].rstrip() if truncated else normalised,
        truncated=truncated,
        original_chars=len(text),
    )


#: Digits that stand for letters in "leetspeak" ("1gn0r3 4ll" = "ignore all").
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_MIXED = re.compile(r"\b(?=\w*[a-z])(?=\w*[013457])[a-z013457]{3,}\b", re.IGNORECASE)
#: A message needs this many words that mix letters and look-alike digits to be read as leetspeak.
LEET_WORDS = 3


def unleet(text: str) -> str | None:
    """``text`` with look-alike digits read as letters, when it is written in leetspeak (several
    words mixing both, as obfuscated instructions are); ``None`` for ordinary text ("5 mins",
    "UPL-500", "$3.50")."""
    if len(_MIXED.findall(text)) < LEET_WORDS:
        return None
    return _MIXED.sub(lambda m: m.group(0).translate(_LEET), text)
