"""A complete answer replayed as a stream: the events each SDK expects, carrying the answer."""

import json

import orjson

from tokenbrake.core import Format
from tokenbrake.routing.replay import replay

COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "small",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None, "message": {
        "role": "assistant", "content": "Looking it up for you now.",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]}}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21},
}
MESSAGE = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "small", "stop_reason": "tool_use",
    "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": 12},
    "content": [{"type": "text", "text": "Looking it up."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}],
}


async def events(fmt: Format, body: dict, include_usage: bool = False) -> list[tuple[str | None, object]]:
    stream = replay(fmt, body, include_usage)
    data = b"".join([chunk async for chunk in stream])
    assert stream.finished
    out = []
    for block in data.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines.get("event"), lines["data"] if lines["data"] == "[DONE]" else orjson.loads(lines["data"])))
    return out


async def test_openai_chunks_carry_the_text_the_tool_call_the_finish_and_asked_for_usage():
    chunks = [data for _, data in await events(Format.OPENAI, COMPLETION, include_usage=True)]
    assert chunks[-1] == "[DONE]"
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1] if c["choices"]]
    assert deltas[0]["role"] == "assistant"
    assert "".join(d.get("content") or "" for d in deltas) == "Looking it up for you now."
    calls = [call for d in deltas for call in d.get("tool_calls") or []]
    assert calls[0]["function"]["name"] == "weather" and calls[0]["id"] == "call_1"
    assert "".join(c["function"]["arguments"] for c in calls) == '{"city":"Oslo"}'
    assert chunks[-3]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["completion_tokens"] == 12
    assert {c["object"] for c in chunks[:-1]} == {"chat.completion.chunk"}


async def test_openai_usage_only_when_asked():
    chunks = [data for _, data in await events(Format.OPENAI, COMPLETION)]
    assert all(c == "[DONE]" or c["choices"] for c in chunks)


async def test_anthropic_events_in_order_with_text_and_tool_input():
    sequence = await events(Format.ANTHROPIC, MESSAGE)
    names = [name for name, _ in sequence]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == 2 == names.count("content_block_stop")
    deltas = [data["delta"] for name, data in sequence if name == "content_block_delta"]
    assert "".join(d.get("text", "") for d in deltas) == "Looking it up."
    assert json.loads("".join(d.get("partial_json", "") for d in deltas)) == {"city": "Oslo"}
    start, delta = sequence[0][1], sequence[-2][1]
    assert start["message"]["content"] == [] and start["message"]["usage"]["input_tokens"] == 9
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] == 12
