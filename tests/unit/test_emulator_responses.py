"""The emulator's Responses endpoint and the directives that test structured output, reasoning
and prompt caching offline, driven in-process and read with the official SDKs' own types."""

from __future__ import annotations

import anthropic
import httpx
import jsonschema
import orjson
from openai.types.chat import ChatCompletion
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tokenbrake.tools.emulator import EmulatorSettings, build_app
from tokenbrake.wire.sse import SSEParser

CITY = {"type": "object", "properties": {"city": {"type": "string"}, "celsius": {"type": "integer"}},
        "required": ["city", "celsius"]}
EVENT = TypeAdapter(ResponseStreamEvent)


def client() -> httpx.AsyncClient:
    app = build_app(EmulatorSettings())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator")


async def test_a_responses_request_is_answered_with_a_response_object():
    async with client() as c:
        reply = await c.post("/v1/responses", json={"model": "gpt-4o", "input": "hi [[emulator: tokens=5]]"})
    response = Response.model_validate(reply.json())
    assert response.status == "completed" and response.usage.output_tokens == 5 and response.output_text


async def test_a_responses_stream_is_numbered_events_the_sdk_reads():
    async with client() as c:
        reply = await c.post("/v1/responses", json={"model": "gpt-4o", "stream": True, "input": "[[emulator: tokens=3]]"})
    events = [EVENT.validate_python(orjson.loads(e.data)) for e in SSEParser().feed(reply.content)]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == events[-1].response.output_text


async def test_directives_and_faults_apply_to_the_responses_endpoint():
    async with client() as c:
        failed = await c.post("/v1/responses", json={"model": "gpt-4o", "input": "[[emulator: status=429]]"})
        short = await c.post("/v1/responses", json={"model": "gpt-4o", "max_output_tokens": 16,
                                                    "input": "[[emulator: tokens=40]]"})
    assert failed.status_code == 429 and failed.json()["error"]["code"] == "emulated"
    assert short.json()["status"] == "incomplete" and short.json()["usage"]["output_tokens"] == 16


async def test_structured_output_is_json_valid_for_the_schema_in_every_wire():
    async with client() as c:
        chat = await c.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [
            {"role": "user", "content": "a city"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": CITY}}})
        responses = await c.post("/v1/responses", json={"model": "gpt-4o", "input": "a city",
                                                        "text": {"format": {"type": "json_schema", "name": "c", "schema": CITY}}})
        messages = await c.post("/v1/messages", headers={"anthropic-version": "2023-06-01"}, json={
            "model": "claude-haiku-4-5", "max_tokens": 200, "messages": [{"role": "user", "content": "a city"}],
            "output_config": {"format": {"type": "json_schema", "schema": CITY}}})
    for text in (chat.json()["choices"][0]["message"]["content"], Response.model_validate(responses.json()).output_text,
                 messages.json()["content"][0]["text"]):
        jsonschema.validate(orjson.loads(text), CITY)


async def test_thinking_and_cached_directives_reach_each_wire_s_usage():
    directive = "[[emulator: tokens=4 thinking=6 cached=3]]"
    async with client() as c:
        chat = await c.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [
            {"role": "user", "content": directive}]})
        responses = await c.post("/v1/responses", json={"model": "gpt-4o", "input": directive})
        messages = await c.post("/v1/messages", headers={"anthropic-version": "2023-06-01"}, json={
            "model": "claude-haiku-4-5", "max_tokens": 200, "messages": [{"role": "user", "content": directive}]})
    completion = ChatCompletion.model_validate(chat.json())
    assert completion.usage.completion_tokens_details.reasoning_tokens == 6
    assert completion.usage.prompt_tokens_details.cached_tokens == 3 and completion.usage.completion_tokens == 10
    response = Response.model_validate(responses.json())
    assert response.output[0].type == "reasoning" and response.usage.output_tokens_details.reasoning_tokens == 6
    message = anthropic.types.Message.model_validate(messages.json())
    assert message.content[0].type == "thinking" and message.usage.cache_read_input_tokens == 3


async def test_directives_are_read_after_a_tool_turn():
    async with client() as c:
        reply = await c.post("/v1/messages", headers={"anthropic-version": "2023-06-01"}, json={
            "model": "claude-haiku-4-5", "max_tokens": 200, "messages": [
                {"role": "user", "content": "weather? [[emulator: tokens=7]]"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sun"}]}]})
    assert reply.json()["usage"]["output_tokens"] == 7
