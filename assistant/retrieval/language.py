"""Which language a message is in, and the line that opens an English answer to it.

``py3langid`` (offline) tells English from the languages drivers commonly write in. A message in
another language is searched in the English help centre through the multilingual model (see
:mod:`assistant.retrieval.multilingual`); the offline answer quotes the English help centre and
opens with one line in the driver's language (:data:`NOTES`) saying so. A chat model answers in
the driver's language.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache

from py3langid.langid import MODEL_FILE, LanguageIdentifier

#: Languages the detector chooses between: English and others drivers commonly write in.
CANDIDATE_LANGUAGES = ("en", "es", "fr", "pt", "de", "it", "zh", "vi", "ar", "ru", "ko", "hi", "tl", "ht", "pl", "ja")
#: The detector's normalised probability needed to call a message non-English.
MIN_PROBABILITY = 0.9
#: Fewer words than this are too little to tell a language from ("ok", "hola").
MIN_WORDS = 2
_WORD = re.compile(r"[\w'$%.-]+")
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
#: The share of a message's letters outside the Latin script from which it is not English,
#: whatever the detector says: a message in Gurmukhi, Arabic or Devanagari letters is no English,
#: even with app words ("wait pay", "Courio Card") in it, and in a language outside
#: :data:`CANDIDATE_LANGUAGES` (Punjabi, Urdu, Farsi, Bengali, ...) the detector is never sure of
#: any candidate.
NON_LATIN_SHARE = 0.5
#: The code of a message that is not English in a language the detector cannot place: a script
#: the unrestricted detector does not know, or Latin letters that spell no English (Hindi or
#: Vietnamese typed without their own letters).
UNDETERMINED = "und"
#: Latin-letter text is not English, whatever the detector thinks most likely, when the detector
#: gives English less than this and at least :data:`MIN_FOREIGN_WORDS` of its words, and
#: :data:`FOREIGN_WORD_SHARE` of them, are no English word (the vocabulary of the English
#: embedder's tokenizer). Hinglish ("bhai mera tip kaha gaya") reads to the detector as English or
#: Tagalog at 0.1-0.9 and was searched, screened and answered as English. Driver English scores
#: 0.9 or more, or uses English words: on the English questions and training examples of the
#: corpus and the guardrails, the rule flags only encoded text (base64, ROT13, leetspeak) and an
#: injection that quotes another language.
UNSURE_ENGLISH = 0.9
FOREIGN_WORD_SHARE = 0.3
#: Fewer words that are no English word than this are a name, a brand or slang, not a language.
MIN_FOREIGN_WORDS = 3
_LETTERS = re.compile(r"[^\W\d_]{2,}")
#: The line that opens an offline (English) answer, in the driver's language.
NOTES: dict[str, str] = {
    "es": "Esta respuesta viene de nuestro centro de ayuda en inglés.",
    "fr": "Cette réponse provient de notre centre d'aide en anglais.",
    "pt": "Esta resposta vem do nosso centro de ajuda em inglês.",
    "de": "Diese Antwort stammt aus unserem englischsprachigen Hilfe-Center.",
    "it": "Questa risposta proviene dal nostro centro assistenza in inglese.",
    "zh": "此回答来自我们的英文帮助中心。",
    "vi": "Câu trả lời này lấy từ trung tâm trợ giúp tiếng Anh của chúng tôi.",
    "ar": "هذه الإجابة من مركز المساعدة لدينا باللغة الإنجليزية.",
    "ru": "Этот ответ взят из нашего справочного центра на английском языке.",
    "ko": "이 답변은 영어로 된 도움말 센터에서 가져온 것입니다.",
    "hi": "यह उत्तर हमारे अंग्रेज़ी सहायता केंद्र से लिया गया है।",
    "tl": "Ang sagot na ito ay mula sa aming Help Center na nasa Ingles.",
    "ht": "Repons sa a soti nan sant èd nou an ki an anglè.",
    "pl": "Ta odpowiedź pochodzi z naszego centrum pomocy w języku angielskim.",
    "ja": "この回答は英語のヘルプセンターからのものです。",
}


@dataclass(frozen=True)
class QueryLanguage:
    """What language a message is in and how it is searched."""

    code: str
    probability: float
    english: str | None = None  # the English text searched for it (multilingual pivots), when found
    note: str | None = None  # the line that opens an English answer to this driver

    @property
    def is_english(self) -> bool:
        """True for English (or too short to tell)."""
        return self.code == "en"


_IDENTIFIER_LOCK = threading.Lock()


def _identifier() -> LanguageIdentifier:
    """The language identifier, loaded once per process (about 0.4 s: its model is LZMA-packed);
    a caller that arrives while another thread loads it waits for that load."""
    with _IDENTIFIER_LOCK:
        return _load_identifier()


def load_identifier() -> None:
    """Load the identifier and the English vocabulary its Latin-letter rule reads now (otherwise
    the first message that needs them loads them)."""
    _identifier()
    english_words()


@cache
def _load_identifier() -> LanguageIdentifier:
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(CANDIDATE_LANGUAGES))
    return identifier


def _any_language_identifier() -> LanguageIdentifier:
    """The detector over all of its languages (for a message in a script English is not written
    in), loaded once per process like :func:`_identifier`."""
    with _IDENTIFIER_LOCK:
        return _load_any_language_identifier()


@cache
def _load_any_language_identifier() -> LanguageIdentifier:
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@cache
def english_words() -> frozenset[str]:
    """Whole lower-case words of the English embedder's tokenizer vocabulary (about 22,500: the
    common words of English text, which an English message is mostly made of), read once from
    the ``tokenizer.json`` the package ships."""
    from assistant.retrieval.embeddings import TOKENIZER_FILE

    vocabulary: dict[str, int] = json.loads(TOKENIZER_FILE.read_text(encoding="utf-8"))["model"]["vocab"]
    return frozenset(word for word in vocabulary if word.isalpha() and word.islower())


def foreign_words(text: str) -> tuple[int, int]:
    """How many of ``text``'s words of two letters or more are no English word
    (:func:`english_words`), and how many such words it has in all."""
    words = [w.lower() for w in _LETTERS.findall(text)]
    known = english_words()
    return sum(w not in known for w in words), len(words)


def non_latin_share(text: str) -> float:
    """The share of ``text``'s letters (their vowel signs and other marks included) that are not
    Latin (0.0 without letters)."""
    letters = [ch for ch in text if unicodedata.category(ch)[0] in "LM"]
    if not letters:
        return 0.0
    return sum(not unicodedata.name(ch, "").startswith("LATIN") for ch in letters) / len(letters)


@lru_cache(maxsize=1024)
def detect_language(text: str) -> tuple[str, float]:
    """``(code, probability)``; English unless the detector is sure (short texts count as English),
    most of the letters are not Latin (then the language the detector finds among all of its
    languages, :data:`UNDETERMINED` if it finds English), or the detector is unsure of English
    and many of the words are no English word (:data:`UNDETERMINED`). Memoised: one request asks it of the
    same message at the screen, the search and the reply."""
    words = len(_WORD.findall(text)) + len(_UNSPACED.findall(text))  # Chinese and Japanese use no spaces
    if words < MIN_WORDS:
        return "en", 1.0
    code, probability = _identifier().classify(text)
    if code != "en" and probability >= MIN_PROBABILITY:
        return str(code), float(probability)
    if non_latin_share(text) >= NON_LATIN_SHARE:
        code, probability = _any_language_identifier().classify(text)
        return (UNDETERMINED if code in ("en", "zxx") else str(code)), float(probability)
    english = float(probability if code == "en" else 1.0 - probability)
    if english < UNSURE_ENGLISH:
        foreign, count = foreign_words(text)
        if foreign >= MIN_FOREIGN_WORDS and foreign >= FOREIGN_WORD_SHARE * count:
            return UNDETERMINED, 1.0 - english
    return "en", english


def query_language(text: str) -> QueryLanguage:
    """Detect ``text``'s language (the English text to search for it is filled in by the pipeline)."""
    code, probability = detect_language(text)
    if code == "en":
        return QueryLanguage(code, probability)
    return QueryLanguage(code, probability, note=NOTES.get(code))
