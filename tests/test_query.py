"""The retrieval query: shorthand spelled out, follow-ups joined to the previous question."""

from assistant.request import Turn
from assistant.retrieval.query import is_follow_up, retrieval_query, spell_out


def test_shorthand_is_spelled_out_beside_the_word():
    assert spell_out("cx not home, took a pic") == "cx (customer) not home, took a pic (photo)"
    assert spell_out("ACCT locked") == "ACCT (account) locked"
    # only whole words: "pics" inside "epics" or "cxl" are left alone
    assert spell_out("epics cxl") == "epics cxl"


def test_follow_ups_are_recognised():
    assert is_follow_up("what about in ontario?")
    assert is_follow_up("and if they still dont answer")
    assert is_follow_up("ok")
    assert is_follow_up("is that allowed")
    assert not is_follow_up("how long do i wait at the restaurant before i can leave")


def test_a_follow_up_is_searched_with_the_previous_driver_question_after_it():
    history = [
        Turn(role="driver", text="when do payouts land in california"),
        Turn(role="assistant", text="Weekly on Monday."),
    ]
    assert retrieval_query("what about in ontario?", history) == (
        "what about in ontario?\nwhen do payouts land in california"
    )


def test_a_standalone_question_ignores_the_history():
    history = [Turn(role="driver", text="when do payouts land")]
    message = "how long do i wait at the restaurant before i can leave"
    assert retrieval_query(message, history) == message
    assert retrieval_query("what about in ontario?", []) == "what about in ontario?"
