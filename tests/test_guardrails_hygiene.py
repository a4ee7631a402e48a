from assistant.guardrails.hygiene import clean_message


def test_normalises_unicode_and_strips_control_characters():
    cleaned = clean_message("ｗｈｅｎ do i get\u200b paid\x00\x07?\u202e", max_chars=100)
    assert cleaned.text == "when do i get paid?"
    assert not cleaned.truncated


def test_caps_size_and_reports_truncation():
    cleaned = clean_message("pay " * 1000, max_chars=100)
    assert len(cleaned.text) <= 100 and cleaned.truncated and cleaned.original_chars == 4000


def test_empty_and_symbol_only_messages_are_empty():
    assert clean_message("   \n\t ", max_chars=100).is_empty
    assert clean_message("?!...", max_chars=100).is_empty
    assert not clean_message("¿pago?", max_chars=100).is_empty
