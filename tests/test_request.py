import pytest

from assistant import HelpRequest, InputError, JourneyContext, Stage
from assistant.request import History


def test_journey_json_contract_fields_parse():
    journey = JourneyContext.from_json(
        '{"stage": "at_dropoff", "market": "US-CA", "app_version": "5.4.1", "platform": "ios",'
        ' "account_status": "active", "order": {"id": "1", "type": "alcohol", "items": ["beer"], "flags": ["Batched"]},'
        ' "events": [{"ts": "2026-01-01T10:00:00Z", "type": "error", "name": "x", "code": "LOC-203", "detail": "d"}]}'
    )
    assert journey.stage is Stage.AT_DROPOFF
    assert journey.market == "us-ca"
    assert journey.order_flags == {"alcohol", "batched"}
    assert journey.events[0].code == "LOC-203"


def test_unknown_top_level_journey_field_is_rejected_with_its_name():
    with pytest.raises(InputError, match="unknown field 'stag'"):
        JourneyContext.from_json('{"stag": "at_dropoff"}')


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object"), ('{"stage": "flying"}', "stage")],
)
def test_bad_journey_json_names_the_problem(text, message):
    with pytest.raises(InputError, match=message):
        JourneyContext.from_json(text)


def test_every_journey_field_is_optional():
    assert JourneyContext.from_json("{}") == JourneyContext()


def test_history_parses_and_rejects_bad_roles():
    turns = History.from_json('[{"role": "driver", "text": "hi"}, {"role": "assistant", "text": "hello"}]')
    assert [t.role for t in turns] == ["driver", "assistant"]
    with pytest.raises(InputError, match="role"):
        History.from_json('[{"role": "boss", "text": "hi"}]')
    with pytest.raises(InputError, match="list"):
        History.from_json('{"role": "driver"}')


def test_help_request_defaults():
    request = HelpRequest(message="hi")
    assert request.history == [] and request.locale == "en-US" and request.driver_id is None
