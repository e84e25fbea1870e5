"""The probe's judgement of an answer's shape, without a network."""

from tokenbrake.tools.probe import _expect_weather, _failure, _raises


def test_a_tool_call_passes_only_with_the_tool_and_json_arguments_naming_a_city():
    assert _failure(lambda: _expect_weather("get_weather", '{"city": "Paris"}')) is None
    assert "not JSON" in _failure(lambda: _expect_weather("get_weather", "{city: Paris"))
    assert "not get_weather" in _failure(lambda: _expect_weather("lookup", '{"city": "Paris"}'))
    assert "no city" in _failure(lambda: _expect_weather("get_weather", '{"town": "Paris"}'))


def test_an_error_check_fails_when_the_call_succeeds_or_raises_something_else():
    assert _failure(lambda: _raises(KeyError, lambda: {}["x"])) is None
    assert _failure(lambda: _raises(KeyError, lambda: None)).startswith("ProbeFailed: expected builtins.KeyError")
    assert _failure(lambda: _raises(KeyError, lambda: 1 / 0)).startswith("ZeroDivisionError")
