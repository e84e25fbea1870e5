"""Responses requests as chat completion requests, chat answers and streams as Response objects
and events (wire/responses_api), checked against the official SDK's own types."""

import re

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tokenbrake.core import ErrorKind, GatewayError, Usage
from tokenbrake.wire.responses_api.answers import from_chat, responses_usage, usage_from_responses
from tokenbrake.wire.responses_api.events import ChatToResponsesStream
from tokenbrake.wire.responses_api.requests import new_exchange, refuse_native_only, to_chat

EVENT = TypeAdapter(ResponseStreamEvent)


def chat_of(body: dict) -> tuple[dict, list[str]]:
    ex = new_exchange(body)
    return to_chat(ex), ex.native_only


def test_a_string_input_is_one_user_message_after_the_instructions():
    chat, native = chat_of({"model": "m", "input": "hi", "instructions": "Be brief.", "max_output_tokens": 50})
    assert chat["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert chat["max_completion_tokens"] == 50 and native == []


def test_function_calls_join_the_assistant_turn_and_outputs_become_tool_messages():
    chat, _ = chat_of({"model": "m", "input": [
        {"role": "user", "content": "weather?"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{\"city\":\"A\"}"},
        {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{\"city\":\"B\"}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sun"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "rain"}]},
    ]})
    assistant = chat["messages"][1]
    assert assistant["content"] == "Checking." and [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert chat["messages"][2:] == [{"role": "tool", "tool_call_id": "c1", "content": "sun"},
                                    {"role": "tool", "tool_call_id": "c2", "content": "rain"}]


def test_what_only_a_responses_upstream_serves_is_listed_and_refused_elsewhere():
    ex = new_exchange({"model": "m", "input": "x", "tools": [{"type": "web_search"}], "background": True})
    chat = to_chat(ex)
    assert "tools" not in chat and ex.native_only == ["background", "tools[0].type"]
    with pytest.raises(GatewayError) as refused:
        refuse_native_only(ex, "local")
    assert refused.value.param == "background" and "upstream local" in refused.value.message


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "m"}, "input"),
    ({"input": "x"}, "model"),
    ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "m", "input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ({"model": "m", "input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id"),
])
def test_a_malformed_request_is_refused_naming_the_field(body, param):
    with pytest.raises(GatewayError) as refused:
        to_chat(new_exchange(body))
    assert refused.value.param == param and refused.value.status == 400


def test_usage_in_the_responses_shape_counts_cached_input_and_reasoning():
    usage = Usage(input_tokens=10, cached_input_tokens=5, output_tokens=7, reasoning_tokens=3)
    shaped = responses_usage(usage)
    assert shaped["input_tokens"] == 15 and shaped["input_tokens_details"]["cached_tokens"] == 5
    assert shaped["output_tokens_details"]["reasoning_tokens"] == 3 and shaped["total_tokens"] == 22
    assert usage_from_responses(shaped) == usage


def test_a_chat_answer_cut_by_its_cap_is_an_incomplete_response():
    ex = new_exchange({"model": "m", "input": "x"})
    answer = {"choices": [{"message": {"role": "assistant", "content": "partial", "reasoning_content": "hmm"},
                           "finish_reason": "length"}]}
    response = Response.model_validate(from_chat(ex, answer, Usage(input_tokens=3, output_tokens=2)))
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert [item.type for item in response.output] == ["reasoning", "message"] and response.output_text == "partial"


def chunk(delta: dict, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_a_chat_stream_becomes_openai_s_event_sequence():
    stream = ChatToResponsesStream(new_exchange({"model": "m", "input": "x"}))
    events = []
    for each in [chunk({"role": "assistant", "reasoning_content": "think"}), chunk({"content": "Hel"}),
                 chunk({"content": "lo"}),
                 chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{\"a\""}}]}),
                 chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
                 chunk({"tool_calls": [{"index": 1, "id": "c2", "function": {"name": "g", "arguments": "{}"}}]}),
                 chunk({}, "tool_calls")]:
        events += stream.feed(each)
    events += stream.finish(Usage(input_tokens=4, output_tokens=9))
    parsed = [EVENT.validate_python(data) for _, data in events]
    assert [name for name, _ in events] == [event.type for event in parsed]
    assert [event.sequence_number for event in parsed] == list(range(len(parsed)))
    assert [event.type for event in parsed] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed"]
    final = parsed[-1].response
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call", "function_call"]
    assert final.output[2].arguments == "{\"a\":1}" and final.usage.total_tokens == 13


def test_a_failed_stream_still_opens_with_response_created():
    stream = ChatToResponsesStream(new_exchange({"model": "m", "input": "x"}))
    events = [EVENT.validate_python(data) for _, data in stream.fail(GatewayError(ErrorKind.UPSTREAM, "gone", status=502))]
    assert [e.type for e in events] == ["response.created", "response.in_progress", "response.failed"]
    assert events[-1].response.error.message == "gone"


def test_tool_call_ids_anthropic_refuses_are_rewritten_the_same_way_in_call_and_result():
    from tokenbrake.wire.translate.requests import openai_to_anthropic_request

    chat = to_chat(new_exchange({"model": "m", "input": [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "functions.get_weather:0", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call", "call_id": "functions.get_weather:1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "functions.get_weather:0", "output": "sun"},
        {"type": "function_call_output", "call_id": "functions.get_weather:1", "output": "rain"},
    ]}))
    messages = openai_to_anthropic_request(chat, "claude")["messages"]
    uses = [block["id"] for block in messages[1]["content"]]
    results = [block["tool_use_id"] for block in messages[2]["content"]]
    assert uses == results and len(set(uses)) == 2
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]+", each) for each in uses)
    kept = to_chat(new_exchange({"model": "m", "input": [
        {"type": "function_call", "call_id": "toolu_01A-b", "name": "f", "arguments": "{}"}]}))
    assert openai_to_anthropic_request(kept, "claude")["messages"][0]["content"][0]["id"] == "toolu_01A-b"


def test_a_responses_stream_cut_short_is_metered_from_the_counted_input_and_the_text_delivered():
    from tokenbrake.core import Format
    from tokenbrake.upstream.relay import StreamMeter

    meter = StreamMeter(Format.OPENAI, {"model": "m", "input": "x"}, counted_input=42)
    meter.observe("response.output_text.delta", {"type": "response.output_text.delta", "delta": "hello there",
                                                 "sequence_number": 4})
    assert meter.usage() == Usage(input_tokens=42, output_tokens=2) and meter.sequence == 4
    completed = {"type": "response.completed", "sequence_number": 5, "response": {"usage": responses_usage(
        Usage(input_tokens=40, cached_input_tokens=2, output_tokens=9))}}
    meter.observe("response.completed", completed)
    assert meter.usage() == Usage(input_tokens=40, cached_input_tokens=2, output_tokens=9)
