from typing import Any

import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion

from tokenbrake.core import ErrorKind, GatewayError
from tokenbrake.wire.translate.responses import anthropic_to_openai_response, openai_to_anthropic_response

OPENAI_USAGE = {"prompt_tokens": 1000, "completion_tokens": 40, "total_tokens": 1040, "prompt_tokens_details": {"cached_tokens": 900}}


def completion(message: dict[str, Any], finish_reason: str = "stop", usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "llama-3",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage or OPENAI_USAGE,
    }


def anthropic_message(content: list[dict[str, Any]], stop_reason: str = "end_turn", usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "msg_01XYZ",
        "type": "message",
        "role": "assistant",
        "model": "claude-up",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 10, "output_tokens": 5},
    }


def to_anthropic(resp: dict[str, Any]) -> dict[str, Any]:
    out = openai_to_anthropic_response(resp, "client-model")
    Message.model_validate(out)
    return out


def to_openai(resp: dict[str, Any]) -> dict[str, Any]:
    out = anthropic_to_openai_response(resp, "client-model")
    ChatCompletion.model_validate(out)
    return out


# --- OpenAI -> Anthropic -------------------------------------------------------------------


def test_openai_text_answer_becomes_an_anthropic_message():
    out = to_anthropic(completion({"content": "Hello!"}))
    assert out["content"] == [{"type": "text", "text": "Hello!"}]
    assert (out["id"], out["model"], out["stop_reason"], out["stop_sequence"]) == ("msg_abc123", "client-model", "end_turn", None)


def test_openai_tool_calls_become_tool_use_blocks_with_parsed_input():
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}},
    ]
    out = to_anthropic(completion({"content": None, "tool_calls": calls}, "tool_calls"))
    assert out["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "now", "input": {}},
    ]
    assert out["stop_reason"] == "tool_use"


def test_tool_calls_with_finish_reason_stop_still_end_in_tool_use():
    call = {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": "{}"}}
    assert to_anthropic(completion({"content": "", "tool_calls": [call]}, "stop"))["stop_reason"] == "tool_use"


def test_tool_call_arguments_that_are_not_json_fail_as_an_upstream_error():
    call = {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": '{"a": '}}
    with pytest.raises(GatewayError) as caught:
        openai_to_anthropic_response(completion({"tool_calls": [call]}, "tool_calls"), "m")
    assert caught.value.kind is ErrorKind.UPSTREAM


def test_empty_openai_answer_becomes_a_message_with_no_content():
    assert to_anthropic(completion({"content": ""}))["content"] == []


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")],
)
def test_finish_reason_maps_to_stop_reason(finish_reason, stop_reason):
    assert to_anthropic(completion({"content": "x"}, finish_reason))["stop_reason"] == stop_reason


def test_openai_refusal_becomes_refusal_text_and_stop_reason():
    out = to_anthropic(completion({"content": None, "refusal": "I can't help with that."}))
    assert out["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert out["stop_reason"] == "refusal"


def test_openai_cached_tokens_become_cache_read_input_tokens():
    usage = to_anthropic(completion({"content": "x"}))["usage"]
    assert usage == {"input_tokens": 100, "output_tokens": 40, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 900}


def test_openai_answer_without_choices_is_an_upstream_error():
    with pytest.raises(GatewayError) as caught:
        openai_to_anthropic_response({"id": "x", "choices": []}, "m")
    assert caught.value.kind is ErrorKind.UPSTREAM


# --- Anthropic -> OpenAI -------------------------------------------------------------------


def test_anthropic_text_blocks_are_concatenated_into_one_message():
    out = to_openai(anthropic_message([{"type": "text", "text": "Hello "}, {"type": "text", "text": "there."}]))
    choice = out["choices"][0]
    assert choice["message"]["content"] == "Hello there."
    assert (out["id"], out["object"], out["model"], choice["finish_reason"]) == ("chatcmpl-01XYZ", "chat.completion", "client-model", "stop")


def test_anthropic_tool_use_becomes_tool_calls_with_null_content():
    content = [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]
    message = to_openai(anthropic_message(content, "tool_use"))["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [{"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]


def test_thinking_blocks_are_dropped_from_the_openai_answer():
    content = [{"type": "thinking", "thinking": "Let me see", "signature": "sig"}, {"type": "text", "text": "42"}]
    assert to_openai(anthropic_message(content))["choices"][0]["message"]["content"] == "42"


def test_empty_anthropic_answer_has_empty_string_content():
    message = to_openai(anthropic_message([]))["choices"][0]["message"]
    assert message["content"] == "" and "tool_calls" not in message


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reason_maps_to_finish_reason(stop_reason, finish_reason):
    assert to_openai(anthropic_message([{"type": "text", "text": "x"}], stop_reason))["choices"][0]["finish_reason"] == finish_reason


def test_anthropic_cache_reads_and_writes_are_counted_inside_prompt_tokens():
    usage = {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 800, "cache_creation_input_tokens": 200}
    out = to_openai(anthropic_message([{"type": "text", "text": "x"}], usage=usage))["usage"]
    assert (out["prompt_tokens"], out["completion_tokens"], out["total_tokens"]) == (1010, 5, 1015)
    assert out["prompt_tokens_details"] == {"cached_tokens": 800, "cache_write_tokens": 200}
