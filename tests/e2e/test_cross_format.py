"""Either SDK, either upstream: requests, tools, streams and usage translated both ways."""

import json

import httpx

WEATHER_OPENAI = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
}
WEATHER_ANTHROPIC = {"name": "get_weather", "input_schema": WEATHER_OPENAI["function"]["parameters"]}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def last_sent(emulator, marker: str) -> dict:
    return [r for r in httpx.get(emulator.url + "/_emulator/requests").json() if marker in str(r["body"])][-1]


# Anthropic SDK → OpenAI-compatible upstream (a local model)

def test_anthropic_request_reaches_an_openai_upstream_in_openai_format(anthropic_client, emulator):
    message = anthropic_client.messages.create(
        model="small", max_tokens=50, system="Be brief.", stop_sequences=["##"],
        messages=user("hello [[emulator: id=a2o-basic tokens=5]]"),
    )
    sent = last_sent(emulator, "a2o-basic")
    assert sent["path"].endswith("/chat/completions")
    assert sent["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["body"]["max_tokens"] == 50 and sent["body"]["stop"] == ["##"]
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 5


def test_each_openai_compatible_upstream_gets_the_output_cap_in_the_field_it_reads(anthropic_client, openai_client, emulator):
    anthropic_client.messages.create(model="gpt-4o", max_tokens=40, messages=user("[[emulator: id=cap-a2openai]]"))
    sent = last_sent(emulator, "cap-a2openai")["body"]
    assert sent["max_completion_tokens"] == 40 and "max_tokens" not in sent  # OpenAI's reasoning models refuse it
    openai_client.chat.completions.create(model="small", max_completion_tokens=40, messages=user("[[emulator: id=cap-o2local]]"))
    sent = last_sent(emulator, "cap-o2local")["body"]
    assert sent["max_tokens"] == 40 and "max_completion_tokens" not in sent  # older llama.cpp and Ollama read no other


def test_anthropic_stream_from_an_openai_upstream(anthropic_client):
    with anthropic_client.messages.stream(model="small", max_tokens=100, messages=user("stream [[emulator: tokens=9]]")) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.usage.output_tokens == 9 and final.content[0].text


def test_anthropic_tools_served_by_an_openai_upstream_streamed(anthropic_client):
    with anthropic_client.messages.stream(
        model="small", max_tokens=200, tools=[WEATHER_ANTHROPIC], messages=user("weather?")
    ) as stream:
        message = stream.get_final_message()
    tool_use = next(block for block in message.content if block.type == "tool_use")
    assert message.stop_reason == "tool_use" and "city" in tool_use.input
    follow_up = user("weather?") + [
        {"role": "assistant", "content": [block.model_dump() for block in message.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny [[emulator: id=a2o-tool]]"}]},
    ]
    final = anthropic_client.messages.create(model="small", max_tokens=100, tools=[WEATHER_ANTHROPIC], messages=follow_up)
    assert final.stop_reason == "end_turn"


def test_anthropic_max_tokens_from_an_openai_upstream(anthropic_client):
    message = anthropic_client.messages.create(model="small", max_tokens=4, messages=user("long [[emulator: tokens=40]]"))
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 4


# OpenAI SDK → Anthropic upstream

def test_openai_request_reaches_an_anthropic_upstream_in_anthropic_format(openai_client, emulator):
    reply = openai_client.chat.completions.create(
        model="claude-fast", max_tokens=60,
        messages=[{"role": "system", "content": "Be brief."}] + user("hello [[emulator: id=o2a-basic tokens=6]]"),
    )
    sent = last_sent(emulator, "o2a-basic")
    assert sent["path"] == "/v1/messages" and sent["body"]["system"] == "Be brief."
    assert sent["body"]["max_tokens"] == 60 and sent["body"]["model"] == "claude-3-5-haiku-latest"
    assert reply.choices[0].finish_reason == "stop" and reply.usage.completion_tokens == 6


def test_openai_stream_from_an_anthropic_upstream_with_usage(openai_client):
    chunks = list(openai_client.chat.completions.create(
        model="claude-fast", messages=user("stream [[emulator: tokens=8]]"), stream=True, stream_options={"include_usage": True}
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage.completion_tokens == 8


def test_openai_parallel_tool_calls_from_an_anthropic_upstream_streamed(openai_client):
    second = {"type": "function", "function": {**WEATHER_OPENAI["function"], "name": "get_time"}}
    chunks = list(openai_client.chat.completions.create(
        model="claude-fast", messages=user("both [[emulator: tools=2]]"), tools=[WEATHER_OPENAI, second], stream=True
    ))
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            call["name"] += delta.function.name or ""
            call["arguments"] += delta.function.arguments or ""
    assert [c["name"] for c in calls.values()] == ["get_weather", "get_time"]
    assert all(json.loads(c["arguments"]) for c in calls.values())
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_openai_tool_result_reaches_an_anthropic_upstream_as_tool_result(openai_client, emulator):
    first = openai_client.chat.completions.create(model="claude-fast", messages=user("weather?"), tools=[WEATHER_OPENAI])
    call = first.choices[0].message.tool_calls[0]
    messages = user("weather?") + [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "rain [[emulator: id=o2a-tool]]"},
    ]
    final = openai_client.chat.completions.create(model="claude-fast", messages=messages, tools=[WEATHER_OPENAI])
    sent = last_sent(emulator, "o2a-tool")["body"]["messages"]
    assert sent[1]["content"][0]["type"] == "tool_use" and sent[2]["content"][0]["type"] == "tool_result"
    assert sent[2]["content"][0]["tool_use_id"] == call.id
    assert final.choices[0].finish_reason == "stop"


def test_openai_stop_sequence_against_an_anthropic_upstream(openai_client):
    reply = openai_client.chat.completions.create(
        model="claude-fast", stop=["END"], messages=user('x [[emulator: text="alpha END beta"]]')
    )
    assert reply.choices[0].finish_reason == "stop" and "beta" not in reply.choices[0].message.content


def test_openai_image_part_reaches_an_anthropic_upstream_as_image_block(openai_client, emulator):
    pixel = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    openai_client.chat.completions.create(model="claude-fast", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this? [[emulator: id=o2a-image]]"},
        {"type": "image_url", "image_url": {"url": pixel}},
    ]}])
    blocks = last_sent(emulator, "o2a-image")["body"]["messages"][0]["content"]
    image = next(b for b in blocks if b["type"] == "image")
    assert image["source"]["type"] == "base64" and image["source"]["media_type"] == "image/png"


def test_openai_n_above_one_to_anthropic_is_a_clear_error(openai_client):
    import openai
    import pytest

    with pytest.raises(openai.BadRequestError, match="n"):
        openai_client.chat.completions.create(model="claude-fast", messages=user("two"), n=2)
