"""Input hygiene: Unicode normalisation, control characters, whitespace and size."""

from __future__ import annotations

import base64
import binascii
import codecs
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


#: Base64 runs long enough to carry a sentence ("aWdub3JlIHlvdXIgcnVsZXM=").
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
#: The commonest English words: a sentence has several, a scrambled one (ROT13, reversed) none.
_COMMON = frozenset({
    "a", "an", "the", "to", "of", "and", "or", "in", "on", "at", "for", "with", "from", "by", "is",
    "are", "was", "be", "been", "do", "does", "did", "i", "you", "he", "she", "it", "we", "they",
    "me", "my", "your", "his", "her", "its", "our", "their", "this", "that", "what", "how", "why",
    "when", "where", "who", "can", "could", "would", "will", "should", "not", "no", "if", "so",
    "but", "as", "about", "into", "out", "up", "get", "make", "tell", "give", "all", "any", "some",
})
_WORDS = re.compile(r"[A-Za-z']+")
#: A sentence or line: what a scrambled instruction is decoded by.
_SEGMENT = re.compile(r"[^.!?:\n]+[.!?:]?")
#: A segment of at least ``SCRAMBLED_WORDS`` words is read as scrambled when at least this share
#: of its words are common English after the transform, and more than twice the share before it
#: (plus a tenth).
SCRAMBLED_SHARE = 0.3
SCRAMBLED_WORDS = 4


def _common_share(text: str) -> tuple[float, int, int]:
    """The share of ``text``'s words that are common English, its words, and how many distinct
    common words of three letters or more it has (short ones arise by chance: Tagalog "na"
    reversed is "an")."""
    words = [w.lower() for w in _WORDS.findall(text)]
    common = [w for w in words if w in _COMMON]
    return (len(common) / len(words) if words else 0.0), len(words), len({w for w in common if len(w) >= 3})


def _printable(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    letters = sum(ch.isalpha() or ch.isspace() for ch in text)
    return text if text and letters >= 0.7 * len(text) and " " in text else None


def _unbase64(text: str) -> str:
    def decode(match: re.Match[str]) -> str:
        block = match.group(0)
        try:
            raw = base64.b64decode(block + "=" * (-len(block) % 4), validate=True)
        except (binascii.Error, ValueError):
            return block
        return _printable(raw) or block

    return _BASE64.sub(decode, text)


def _unscramble(text: str) -> str:
    """Each sentence or line of ``text`` that reads as English only ROT13-decoded or reversed,
    decoded in place; the rest as it is."""

    def decode(match: re.Match[str]) -> str:
        segment = match.group(0)
        before, words, _ = _common_share(segment)
        if words < SCRAMBLED_WORDS or sum(ch.isascii() for ch in segment) < 0.95 * len(segment):
            return segment
        core = segment.strip()
        lead, tail = segment[: len(segment) - len(segment.lstrip())], segment[len(segment.rstrip()):]
        for candidate in (codecs.decode(segment, "rot13"), lead + core[::-1] + tail):
            after, _, distinct = _common_share(candidate)
            if after >= SCRAMBLED_SHARE and after >= 2 * before + 0.1 and distinct >= 2:
                return candidate
        return segment

    return _SEGMENT.sub(decode, text)


def readable(text: str) -> str | None:
    """``text`` as it reads once de-obfuscated: leetspeak digits read as letters, base64 runs
    decoded, sentences in ROT13 or written backwards turned back; ``None`` when nothing was
    obfuscated (ordinary text, codes, amounts), so only an obfuscated message costs a second
    reading."""
    plain = unleet(text) or text
    plain = _unscramble(_unbase64(plain))
    return plain if plain != text else None
