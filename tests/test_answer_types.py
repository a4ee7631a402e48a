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


def test_distance_and_size_questions():
    assert "distance" in answer_types("how close to the pin do i gotta be")
    assert answer_types("how big is the update") == {"size"}
    assert answer_type_bonus("You must be within 150 m (about 500 feet) of the pin.", {"distance"}) == ANSWER_TYPE_BONUS
    assert answer_type_bonus("The update is about 150 MB.", {"size"}) == ANSWER_TYPE_BONUS
    assert answer_type_bonus("Walk closer to the pin and try again.", {"distance"}) == 0.0


def test_a_short_list_is_quoted_whole_with_its_lead_in():
    from assistant.generation.extractive import _Unit, _window

    def unit(text: str, score: float) -> _Unit:
        return _Unit(position=0, text=text, words=len(text.split()), similarity=score, score=score, adjustment=0.0)

    units = [
        unit("The acceptance rate only matters for Pro status.", 0.45),
        unit("To be Pro, you need:", 0.58),
        unit("- An acceptance rate of 70% or higher.", 0.45),
        unit("- A customer rating of 4.7 or higher.", 0.47),
        unit("- At least 100 deliveries per month.", 0.44),
        unit("Pro gives you priority scheduling.", 0.05),
    ]
    window = [u.text for u in _window(units, max_units=2)]
    assert window[:2] == ["The acceptance rate only matters for Pro status.", "To be Pro, you need:"]
    assert window[2:] == [u.text for u in units[2:5]], "all three items, though only two units are allowed"


def test_rates_that_are_not_pay_and_limits_below_a_number_are_not_misread():
    from assistant.generation.extractive import _META

    assert answer_types("can i drop it without killing my completion rate") == set()
    assert answer_types("whats the pay rate per hour") >= {"money"}
    assert _META.search("If the completion rate drops below 80%, you get a written warning.") is None
    assert _META.search("Check your permissions (see below).") is not None


def test_troubleshooting_sections_and_app_trouble_are_recognised():
    from assistant.generation.extractive import _APP_TROUBLE, _TROUBLESHOOTING

    assert _TROUBLESHOOTING.search("When the app misbehaves during a cancellation")
    assert _TROUBLESHOOTING.search("When the Tax Center doesn't work")
    assert not _TROUBLESHOOTING.search("Cancellation pay")
    assert _APP_TROUBLE.search("the arrived button wont work")
    assert _APP_TROUBLE.search("got PAY-409 when cashing out")
    assert not _APP_TROUBLE.search("cx cancelled on me while i was driving, do i get paid")
