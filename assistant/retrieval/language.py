"""Questions in other languages: detect the language, then search in English through a glossary.

The embedder (all-MiniLM-L6-v2) and the help centre are English. A question in Spanish, French
or Portuguese is detected (``py3langid``, offline) and rendered as English search words through
``glossary.yaml``: driver vocabulary per language, matched on whole words, longest phrase first,
without accents ("¿cuánto cobran por el pago rápido?" -> "how much fee charge fast pay instant
cash-out"). Retrieval and the extractive answer use that rendering; a chat model still reads the
driver's own words. When the rendering finds too little, the question is searched as written and
the usual confidence gate sends it to a person.

The answer stays in English (the help centre's language), opened by the glossary's one-line note
in the driver's language, so the driver knows why.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from py3langid.langid import MODEL_FILE, LanguageIdentifier
from pydantic import BaseModel, Field, ValidationError

from assistant.errors import ConfigurationError

GLOSSARY_FILE = Path(__file__).with_name("glossary.yaml")
#: Languages the detector chooses between: English, the glossary's languages, and others drivers
#: commonly write in (detected so they are not mistaken for English, then routed as unsupported).
CANDIDATE_LANGUAGES = ("en", "es", "fr", "pt", "de", "it", "zh", "vi", "ar", "ru", "ko", "hi", "tl", "ht", "pl", "ja")
#: The detector's normalised probability needed to call a message non-English.
MIN_PROBABILITY = 0.9
#: Fewer words than this are too little to tell a language from ("ok", "hola").
MIN_WORDS = 2
#: A rendering needs at least this many glossary matches to be searched instead of the message.
MIN_MATCHES = 2
_WORD = re.compile(r"[\w'$%.-]+")


class GlossaryLanguage(BaseModel):
    """One language of the glossary."""

    name: str
    note: str = Field(min_length=1, description="Opens an answer: it comes from the English help centre.")
    terms: dict[str, str] = Field(min_length=1, description="Phrase without accents -> English search words.")


class Glossary(BaseModel):
    """Language code -> its driver vocabulary."""

    languages: dict[str, GlossaryLanguage]


@dataclass(frozen=True)
class QueryLanguage:
    """What language a message is in and how it is searched."""

    code: str
    probability: float
    english: str | None = None  # the glossary rendering, when one was good enough
    note: str | None = None  # the line that opens an English answer to this driver

    @property
    def is_english(self) -> bool:
        """True for English (or too short to tell)."""
        return self.code == "en"


def fold(text: str) -> str:
    """Lowercase, without accents: "Rápido" -> "rapido"."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def load_glossary(path: Path = GLOSSARY_FILE) -> Glossary:
    """Read and validate a glossary file; a broken file fails with the file and the reason."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        glossary = Glossary.model_validate({"languages": raw})
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigurationError(f"{path}: cannot load the glossary: {exc}") from exc
    for code, language in glossary.languages.items():
        folded = {fold(k).strip(): v for k, v in language.terms.items()}
        glossary.languages[code] = language.model_copy(update={"terms": folded})
    return glossary


@cache
def _glossary() -> Glossary:
    return load_glossary()


@cache
def _identifier() -> LanguageIdentifier:
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(CANDIDATE_LANGUAGES))
    return identifier


def detect_language(text: str) -> tuple[str, float]:
    """``(code, probability)``; English unless the detector is sure (short texts count as English)."""
    words = _WORD.findall(text)
    if len(words) < MIN_WORDS:
        return "en", 1.0
    code, probability = _identifier().classify(text)
    if code != "en" and probability >= MIN_PROBABILITY:
        return str(code), float(probability)
    return "en", float(probability if code == "en" else 1.0 - probability)


def render_english(text: str, terms: dict[str, str]) -> tuple[str, int]:
    """English search words for ``text`` and how many glossary phrases matched.

    Phrases are matched on whole words, longest first. Words with digits (codes such as
    ``ORD-410``, amounts) are kept as they are; other unmatched words are dropped.
    """
    words = [w.strip(".-") for w in _WORD.findall(fold(text))]
    words = [w for w in words if w]
    longest = max((len(k.split()) for k in terms), default=1)
    out: list[str] = []
    matches = 0
    i = 0
    while i < len(words):
        for size in range(min(longest, len(words) - i), 0, -1):
            phrase = " ".join(words[i : i + size])
            if phrase in terms:
                out.append(terms[phrase])
                matches += 1
                i += size
                break
        else:
            if any(ch.isdigit() for ch in words[i]):
                out.append(words[i])
            i += 1
    return " ".join(dict.fromkeys(out)), matches


def query_language(text: str, glossary: Glossary | None = None) -> QueryLanguage:
    """Detect ``text``'s language and, for a glossary language, render it in English."""
    code, probability = detect_language(text)
    if code == "en":
        return QueryLanguage(code, probability)
    language = (glossary or _glossary()).languages.get(code)
    if language is None:
        return QueryLanguage(code, probability)
    english, matches = render_english(text, language.terms)
    if matches < MIN_MATCHES:
        return QueryLanguage(code, probability, note=language.note)
    return QueryLanguage(code, probability, english=english, note=language.note)
