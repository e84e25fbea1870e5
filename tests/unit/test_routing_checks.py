"""A cascade's checks on an answer: JSON schema, regex, mean logprob, and a grader's verdict."""

import math

from tokenbrake.routing.checks import (
    grader_verdict,
    json_schema_check,
    logprob_check,
    mean_logprob,
    regex_check,
)

SCHEMA = {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}


def with_logprobs(*values: float) -> dict:
    content = [{"token": "x", "logprob": v, "bytes": [120], "top_logprobs": []} for v in values]
    return {"choices": [{"index": 0, "message": {"content": "x"}, "logprobs": {"content": content}}]}


def test_json_that_fits_the_schema_passes_also_inside_a_code_fence():
    assert json_schema_check(SCHEMA, '{"city": "Paris"}').passed
    assert json_schema_check(SCHEMA, '```json\n{"city": "Paris"}\n```').passed


def test_json_that_misses_a_required_field_fails_and_says_why():
    verdict = json_schema_check(SCHEMA, '{"town": "Paris"}')
    assert not verdict.passed and "'city' is a required property" in verdict.reason


def test_text_that_is_not_json_fails():
    assert json_schema_check(SCHEMA, "Paris, I think").reason == "json_schema: the answer is not JSON"


def test_regex_searches_the_answer():
    assert regex_check(r"\d{4}", "It was in 1889.").passed
    assert not regex_check(r"^\d{4}$", "It was in 1889.").passed


def test_mean_logprob_averages_the_first_choices_tokens():
    assert math.isclose(mean_logprob(with_logprobs(-0.1, -0.3)), -0.2)
    assert mean_logprob({"choices": [{"logprobs": None}]}) is None
    assert mean_logprob({"content": [{"type": "text", "text": "an Anthropic answer"}]}) is None


def test_logprob_check_keeps_confident_answers_and_fails_without_logprobs():
    assert logprob_check(-0.5, with_logprobs(-0.1, -0.2)).passed
    assert not logprob_check(-0.5, with_logprobs(-1.0, -2.0)).passed
    assert logprob_check(-0.5, {"choices": [{"logprobs": None}]}).reason.endswith("returned no logprobs")


def test_grader_accepts_only_a_leading_yes():
    assert grader_verdict("judge", "Yes.").passed
    assert grader_verdict("judge", " yes, it does").passed
    assert not grader_verdict("judge", "No").passed
    assert not grader_verdict("judge", "yesterday it would have").passed
    assert not grader_verdict("judge", "").passed
