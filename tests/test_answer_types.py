"""Expected answer types: the composer prefers sentences holding the kind of fact asked for."""

from assistant.generation.extractive import ANSWER_TYPE_BONUS, answer_type_bonus, answer_types


def test_questions_are_typed_by_what_they_ask_for():
    assert answer_types("how much does fast pay cost") == {"money"}
    assert "time" in answer_types("how long do i wait at the door")
    assert answer_types("how old do u have to be for beer orders") == {"age"}
    assert answer_types("can i bring my dog") == set()


def test_sentences_holding_that_kind_of_fact_get_the_bonus():
    money = {"money"}
    assert answer_type_bonus("Fee: $0.99 per cash-out.", money) == ANSWER_TYPE_BONUS
    assert answer_type_bonus("The fee is CA$1.29 in Ontario.", money) == ANSWER_TYPE_BONUS
    assert answer_type_bonus("You need an eligible debit card.", money) == 0.0
    assert answer_type_bonus("Wait 10 minutes, then tap Customer unavailable.", {"time"}) == ANSWER_TYPE_BONUS
    assert answer_type_bonus("You must be 21 or older.", {"age"}) == ANSWER_TYPE_BONUS
    assert answer_type_bonus("Fee: $0.99", set()) == 0.0
