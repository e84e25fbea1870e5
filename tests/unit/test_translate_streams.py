from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk
from pydantic import TypeAdapter

from tokenbrake.core import ErrorKind, GatewayError, Usage
from tokenbrake.wire.translate.streams import AnthropicToOpenAIStream, OpenAIToAnthropicStream

ANTHROPIC_EVENT = TypeAdapter(RawMessageStreamEvent)
OPENAI_USAGE = {"prompt_tokens": 1000, "completion_tokens": 12, "total_tokens": 1012, "prompt_tokens_details": {"cached_tokens": 900}}


# --- OpenAI -> Anthropic -------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    choices = [] if delta is None and finish is None else [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}]
    return {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1, "model": "llama", "choices": choices, "usage": usage}


def call(index: int, arguments: str, call_id: str | None = None, name: str | None = None) -> dict[str, Any]:
    fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id:
        fragment.update(id=call_id, type="function")
        fragment["function"]["name"] = name
    return {"tool_calls": [fragment]}


def run_openai(chunks: list[dict[str, Any]], finish: bool = True) -> tuple[list[tuple[str, dict[str, Any]]], OpenAIToAnthropicStream]:
    stream = OpenAIToAnthropicStream("client-model")
    events = [event for c in chunks for event in stream.feed(c)]
    if finish:
        events += stream.finish()
    return events, stream


def accumulate(events: list[tuple[str, dict[str, Any]]]) -> Any:
    """The message the Anthropic SDK builds from these events, each validated on the way."""
    snapshot, buffers = None, {}
    for name, data in events:
        assert name == data["type"]
        if name == "ping":
            continue
        ANTHROPIC_EVENT.validate_python(data)
        snapshot = accumulate_event(event=data, current_snapshot=snapshot, json_bufs=buffers)
    return snapshot


def blocks_are_sequential(events: list[tuple[str, dict[str, Any]]]) -> bool:
    open_index = None
    for name, data in events:
        if name == "content_block_start":
            if open_index is not None:
                return False
            open_index = data["index"]
        elif name == "content_block_delta" and data["index"] != open_index:
            return False
        elif name == "content_block_stop":
            open_index = None
    return open_index is None


def test_anthropic_stream_opens_with_message_start_then_ping():
    events, _ = run_openai([chunk({"role": "assistant", "content": ""})])
    assert [name for name, _ in events[:2]] == ["message_start", "ping"]
    assert events[0][1]["message"]["id"] == "msg_s1"


def test_text_deltas_build_one_text_block():
    events, _ = run_openai([chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo"}), chunk({}, "stop"), chunk(usage=OPENAI_USAGE)])
    message = accumulate(events)
    assert [b.to_dict() for b in message.content] == [{"type": "text", "text": "Hello"}]
    assert message.stop_reason == "end_turn"


def test_tool_call_split_across_chunks_becomes_one_tool_use_block():
    chunks = [
        chunk({"role": "assistant", "content": None, **call(0, "", "call_1", "get_weather")}),
        chunk(call(0, '{"ci')),
        chunk(call(0, 'ty": "Par')),
        chunk(call(0, 'is"}')),
        chunk({}, "tool_calls"),
        chunk(usage=OPENAI_USAGE),
    ]
    events, _ = run_openai(chunks)
    message = accumulate(events)
    assert [(b.type, b.id, b.name, b.input) for b in message.content] == [("tool_use", "call_1", "get_weather", {"city": "Paris"})]
    assert message.stop_reason == "tool_use"
    assert blocks_are_sequential(events)


def test_text_then_parallel_tool_calls_each_get_their_own_block_in_order():
    chunks = [
        chunk({"content": "Checking both."}),
        chunk(call(0, "", "call_1", "get_weather")),
        chunk(call(0, '{"city": "Paris"}')),
        chunk(call(1, "", "call_2", "get_weather")),
        chunk(call(1, '{"city": "Oslo"}')),
        chunk({}, "tool_calls"),
    ]
    events, _ = run_openai(chunks)
    message = accumulate(events)
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert [b.input for b in message.content[1:]] == [{"city": "Paris"}, {"city": "Oslo"}]
    assert blocks_are_sequential(events)


def test_interleaved_parallel_tool_calls_each_keep_their_own_arguments():
    chunks = [
        chunk(call(0, '{"city": ', "call_1", "get_weather")),
        chunk(call(1, '{"city": ', "call_2", "get_weather")),
        chunk(call(0, '"Paris"}')),
        chunk(call(1, '"Oslo"}')),
        chunk({}, "tool_calls"),
    ]
    events, _ = run_openai(chunks)
    message = accumulate(events)
    assert {b.id: b.input for b in message.content} == {"call_1": {"city": "Paris"}, "call_2": {"city": "Oslo"}}
    assert blocks_are_sequential(events)


def test_calls_sharing_an_index_but_not_an_id_stay_separate():
    events, _ = run_openai([chunk(call(0, '{"city": "Paris"}', "call_1", "get_weather")), chunk(call(0, '{"city": "Oslo"}', "call_2", "get_weather")), chunk({}, "stop")])
    message = accumulate(events)
    assert [(b.id, b.input) for b in message.content] == [("call_1", {"city": "Paris"}), ("call_2", {"city": "Oslo"})]
    assert message.stop_reason == "tool_use"


def test_message_delta_waits_for_the_usage_chunk_and_carries_its_counts():
    stream = OpenAIToAnthropicStream("client-model")
    stream.feed(chunk({"content": "Hi"}))
    at_finish_reason = [name for name, _ in stream.feed(chunk({}, "stop"))]
    at_usage = stream.feed(chunk(usage=OPENAI_USAGE))
    assert "message_delta" not in at_finish_reason
    assert [name for name, _ in at_usage] == ["message_delta", "message_stop"]
    assert at_usage[0][1]["usage"] == {"input_tokens": 100, "output_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 900}
    assert stream.usage == Usage(input_tokens=100, output_tokens=12, cached_input_tokens=900) and stream.usage_reported


def test_usage_on_the_finish_chunk_ends_the_message_at_once():
    stream = OpenAIToAnthropicStream("client-model")
    names = [name for name, _ in stream.feed(chunk({"content": "Hi"}, "stop", OPENAI_USAGE))]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert stream.finish() == []


def test_stream_broken_off_without_finish_reason_is_closed_by_finish():
    events, stream = run_openai([chunk({"content": "Partial"}), chunk(call(0, '{"a": 1}', "call_1", "f"))])
    message = accumulate(events)
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.stop_reason == "tool_use"
    assert events[-1][0] == "message_stop"
    assert not stream.usage_reported and stream.usage == Usage()


def test_finish_is_idempotent_and_later_chunks_add_nothing():
    stream = OpenAIToAnthropicStream("client-model")
    stream.feed(chunk({"content": "Hi"}, "stop"))
    assert [name for name, _ in stream.finish()] == ["message_delta", "message_stop"]
    assert stream.finish() == []
    assert stream.feed(chunk({"content": "late"})) == []


def test_length_finish_reason_becomes_max_tokens():
    events, _ = run_openai([chunk({"content": "a b c"}), chunk({}, "length")])
    assert accumulate(events).stop_reason == "max_tokens"


def test_refusal_delta_becomes_refusal_text_and_stop_reason():
    events, _ = run_openai([chunk({"refusal": "I can't help with that."}), chunk({}, "stop")])
    message = accumulate(events)
    assert message.content[0].text == "I can't help with that." and message.stop_reason == "refusal"


def test_delivered_text_and_tool_arguments_are_kept_for_counting():
    _, stream = run_openai([chunk({"content": "Hi "}), chunk(call(0, '{"a":', "call_1", "f")), chunk(call(0, "1}"))])
    assert stream.output_text_parts == ["Hi ", '{"a":', "1}"]


def test_openai_error_chunk_raises_an_upstream_error():
    with pytest.raises(GatewayError) as caught:
        OpenAIToAnthropicStream("m").feed({"error": {"message": "model crashed"}})
    assert caught.value.kind is ErrorKind.UPSTREAM and "model crashed" in caught.value.message


# --- Anthropic -> OpenAI -------------------------------------------------------------------


def anthropic_events(*content: tuple[dict[str, Any], list[dict[str, Any]]], stop_reason: str = "end_turn") -> list[tuple[str, dict[str, Any]]]:
    usage = {"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 500, "cache_creation_input_tokens": 0}
    message = {"id": "msg_01A", "type": "message", "role": "assistant", "model": "claude", "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}
    events = [("message_start", {"type": "message_start", "message": message}), ("ping", {"type": "ping"})]
    for index, (block, deltas) in enumerate(content):
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}))
        events += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": {"output_tokens": 25}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


TEXT = ({"type": "text", "text": ""}, [{"type": "text_delta", "text": "Hel"}, {"type": "text_delta", "text": "lo"}])
THINKING = ({"type": "thinking", "thinking": "", "signature": ""}, [{"type": "thinking_delta", "thinking": "hmm"}, {"type": "signature_delta", "signature": "sig"}])


def tool(tool_id: str, *fragments: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    block = {"type": "tool_use", "id": tool_id, "name": "get_weather", "input": {}}
    return block, [{"type": "input_json_delta", "partial_json": f} for f in ("", *fragments)]


def run_anthropic(events: list[tuple[str, dict[str, Any]]], include_usage: bool = True) -> tuple[list[dict[str, Any]], AnthropicToOpenAIStream]:
    stream = AnthropicToOpenAIStream("client-model", include_usage)
    chunks = [c for name, data in events for c in stream.feed(name, data)]
    return chunks + stream.finish(), stream


def completion_from(chunks: list[dict[str, Any]]) -> Any:
    """The completion the OpenAI SDK builds from these chunks, each validated on the way."""
    state = ChatCompletionStreamState()
    for c in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(c))
    return state.get_final_completion()


def test_openai_stream_opens_with_an_assistant_role_chunk():
    chunks, _ = run_anthropic(anthropic_events(TEXT))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[0]["id"] == "chatcmpl-01A" and chunks[0]["object"] == "chat.completion.chunk"


def test_text_deltas_become_content_deltas():
    chunks, _ = run_anthropic(anthropic_events(TEXT))
    result = completion_from(chunks)
    assert result.choices[0].message.content == "Hello"
    assert result.choices[0].finish_reason == "stop"


def test_tool_use_blocks_become_indexed_tool_call_deltas():
    events = anthropic_events(TEXT, tool("toolu_1", '{"city": ', '"Paris"}'), tool("toolu_2", '{"city": "Oslo"}'), stop_reason="tool_use")
    chunks, _ = run_anthropic(events)
    first_call_delta = next(c for c in chunks if c["choices"] and "tool_calls" in c["choices"][0]["delta"])
    assert first_call_delta["choices"][0]["delta"]["tool_calls"] == [
        {"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    ]
    message = completion_from(chunks).choices[0].message
    assert [(c.index, c.id, c.function.arguments) for c in message.tool_calls] == [(0, "toolu_1", '{"city": "Paris"}'), (1, "toolu_2", '{"city": "Oslo"}')]
    assert completion_from(chunks).choices[0].finish_reason == "tool_calls"


def test_thinking_deltas_are_dropped():
    chunks, _ = run_anthropic(anthropic_events(THINKING, TEXT))
    assert completion_from(chunks).choices[0].message.content == "Hello"
    assert all("hmm" not in str(c) for c in chunks)


def test_usage_chunk_comes_last_with_no_choices_when_the_client_asked_for_usage():
    chunks, _ = run_anthropic(anthropic_events(TEXT), include_usage=True)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 510 and chunks[-1]["usage"]["completion_tokens"] == 25
    assert all(c["usage"] is None for c in chunks[:-1])


def test_chunks_carry_no_usage_field_when_the_client_did_not_ask():
    chunks, _ = run_anthropic(anthropic_events(TEXT), include_usage=False)
    assert all("usage" not in c and c["choices"] for c in chunks)


def test_usage_combines_message_start_input_with_message_delta_output():
    _, stream = run_anthropic(anthropic_events(TEXT))
    assert stream.usage == Usage(input_tokens=10, output_tokens=25, cached_input_tokens=500)
    assert stream.usage_reported


def test_message_stop_then_finish_sends_nothing_twice():
    stream = AnthropicToOpenAIStream("client-model", True)
    chunks = [c for name, data in anthropic_events(TEXT) for c in stream.feed(name, data)]
    assert stream.finish() == []
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]) == 1


def test_stream_broken_off_before_message_delta_is_closed_by_finish():
    events = anthropic_events(tool("toolu_1", '{"a": 1}'))[:-2]
    chunks, stream = run_anthropic(events)
    assert completion_from(chunks).choices[0].finish_reason == "tool_calls"
    assert chunks[-1]["usage"]["prompt_tokens"] == 510
    assert not stream.usage_reported


def test_delivered_text_and_arguments_are_kept_for_counting():
    _, stream = run_anthropic(anthropic_events(TEXT, tool("toolu_1", '{"a": 1}')))
    assert stream.output_text_parts == ["Hel", "lo", '{"a": 1}']


@pytest.mark.parametrize(("error_type", "kind"), [("overloaded_error", ErrorKind.OVERLOADED), ("api_error", ErrorKind.UPSTREAM)])
def test_error_event_raises_with_the_upstream_message(error_type, kind):
    stream = AnthropicToOpenAIStream("client-model", False)
    with pytest.raises(GatewayError) as caught:
        stream.feed("error", {"type": "error", "error": {"type": error_type, "message": "Overloaded"}})
    assert caught.value.kind is kind and caught.value.message == "Overloaded"
