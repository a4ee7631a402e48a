"""Questions in other languages: detection, glossary rendering, and the answer a driver gets."""

from pathlib import Path

import pytest

from assistant import Assistant, HelpRequest, JourneyContext
from assistant.errors import ConfigurationError
from assistant.response import Route
from assistant.retrieval.language import (
    GLOSSARY_FILE,
    detect_language,
    fold,
    load_glossary,
    query_language,
    render_english,
)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("¿cuánto tiempo tengo para aceptar una oferta?", "es"),
        ("Quand est-ce que je reçois mon paiement?", "fr"),
        ("posso deixar o pedido na porta do cliente?", "pt"),
        ("customer not answering, how long do i wait", "en"),
        ("cx gave me 1 star cuz resto was slow smh", "en"),
        ("ok", "en"),  # too short to tell: treated as English
    ],
)
def test_detects_the_language_of_driver_messages(text: str, code: str):
    assert detect_language(text)[0] == code


def test_fold_removes_accents_and_case():
    assert fold("Rápido ÇA Não") == "rapido ca nao"


def test_rendering_matches_longest_phrase_first_and_keeps_codes():
    terms = {"pago": "payment", "pago rapido": "fast pay", "error": "error"}
    english, matches = render_english("¿Cuánto cuesta el pago rápido? sale error ORD-410", terms)
    assert english == "fast pay error ord-410"
    assert matches == 2


def test_shipped_glossary_loads_with_notes_for_each_language():
    glossary = load_glossary()
    assert {"es", "fr", "pt"} <= set(glossary.languages)
    for language in glossary.languages.values():
        assert language.note and len(language.terms) >= 100
        assert all(key == fold(key) for key in language.terms)  # keys are matched without accents


def test_a_broken_glossary_fails_with_file_and_reason(tmp_path: Path):
    bad = tmp_path / "glossary.yaml"
    bad.write_text("es:\n  name: Spanish\n  terms: {}\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"glossary\.yaml"):
        load_glossary(bad)
    assert GLOSSARY_FILE.exists()


def test_a_glossary_language_is_rendered_in_english_and_others_are_not():
    spanish = query_language("¿me quedo con todas las propinas del cliente?")
    assert spanish.code == "es" and spanish.english and "tip" in spanish.english
    assert spanish.note
    german = query_language("Wann bekomme ich mein Trinkgeld ausgezahlt?")
    assert german.code == "de" and german.english is None
    english = query_language("when do tips show up")
    assert english.is_english and english.english is None and english.note is None


@pytest.mark.integration
@pytest.mark.parametrize(
    ("message", "stage", "doc_ids", "fact"),
    [
        ("¿cuánto tiempo tengo para aceptar una oferta?", "offer_received", {"offers-acceptance-declines"}, "second"),
        ("posso deixar o pedido da farmácia na porta?", "at_dropoff", {"pharmacy-orders", "contactless-delivery"}, "never left"),
    ],
)
def test_a_question_in_spanish_or_portuguese_is_answered_from_the_right_article(
    shipped_assistant: Assistant, message: str, stage: str, doc_ids: set[str], fact: str
):
    response = shipped_assistant.answer(
        HelpRequest(message=message, journey=JourneyContext(stage=stage, market="us-ca"))
    )
    assert response.route is Route.ANSWER, response.reasons
    assert doc_ids & {c.doc_id for c in response.citations}
    assert fact in response.answer
    note = load_glossary().languages[query_language(message).code].note
    assert response.answer.startswith(note)


@pytest.mark.integration
def test_a_language_without_a_glossary_goes_to_a_person(shipped_assistant: Assistant):
    response = shipped_assistant.answer("Wie lange muss ich warten, wenn der Kunde die Tür nicht öffnet?")
    assert response.route is Route.ESCALATE
    assert response.handoff is not None


@pytest.mark.integration
def test_a_long_question_in_another_language_is_not_mistaken_for_a_jailbreak_or_an_emergency(
    shipped_assistant: Assistant,
):
    message = (
        "Bonjour, je livre pour Courio depuis quelques semaines et j'ai une question sur le paiement rapide. "
        "J'ai vu qu'il y a des frais mais je ne sais pas combien exactement, et je voudrais aussi savoir combien "
        "de fois par jour je peux retirer mon argent et si mes pourboires sont inclus dans le montant disponible. "
        "Merci beaucoup pour votre aide, et gracias por la ayuda aussi, mon collègue parle espagnol. Bonne journée à toute l'équipe!"
    )
    assert len(message) > 400
    response = shipped_assistant.answer(message)
    assert response.route is Route.ANSWER, response.reasons
