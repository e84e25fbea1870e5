"""The OpenAI SDK against the gateway, in front of an OpenAI-compatible upstream."""

import httpx

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_chat_completion_passes_through(openai_client):
    reply = openai_client.chat.completions.create(model="gpt-4o", messages=user("hi [[emulator: tokens=7]]"))
    assert reply.object == "chat.completion"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == 7 and reply.usage.prompt_tokens > 0
    assert reply.choices[0].message.content


def test_alias_is_sent_upstream_under_its_upstream_name(openai_client, emulator):
    openai_client.chat.completions.create(model="small", messages=user("which model? [[emulator: id=alias-check]]"))
    seen = [r for r in httpx.get(emulator.url + "/_emulator/requests").json() if "alias-check" in str(r["body"])]
    assert seen[-1]["body"]["model"] == "qwen2.5-3b-instruct"


def test_gateway_sends_the_upstreams_key_not_the_clients(openai_client, emulator):
    openai_client.chat.completions.create(model="gpt-4o", messages=user("key check [[emulator: id=key-check]]"))
    seen = [r for r in httpx.get(emulator.url + "/_emulator/requests").json() if "key-check" in str(r["body"])]
    assert seen[-1]["headers"]["authorization"] == "Bearer sk-upstream-openai"


def test_sampling_parameters_pass_through_untouched(openai_client, emulator):
    openai_client.chat.completions.create(
        model="gpt-4o", messages=user("params [[emulator: id=params]]"), temperature=0.3, seed=7, n=2,
        stop=["\n\n"], response_format={"type": "json_object"}, tool_choice="none", tools=[WEATHER_TOOL],
    )
    sent = [r for r in httpx.get(emulator.url + "/_emulator/requests").json() if "id=params" in str(r["body"])][-1]["body"]
    assert (sent["temperature"], sent["seed"], sent["n"], sent["stop"]) == (0.3, 7, 2, ["\n\n"])
    assert sent["response_format"] == {"type": "json_object"} and sent["tool_choice"] == "none"


def test_n_choices_come_back(openai_client):
    reply = openai_client.chat.completions.create(model="gpt-4o", messages=user("two please"), n=2)
    assert [c.index for c in reply.choices] == [0, 1]


def test_stream_delivers_text_and_usage_when_asked(openai_client):
    chunks = list(openai_client.chat.completions.create(
        model="gpt-4o", messages=user("stream [[emulator: tokens=12]]"), stream=True, stream_options={"include_usage": True}
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage.completion_tokens == 12
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_stream_hides_the_usage_chunk_the_client_did_not_ask_for(openai_client):
    chunks = list(openai_client.chat.completions.create(model="gpt-4o", messages=user("no usage"), stream=True))
    assert all(c.choices for c in chunks)


def test_tool_call_round_trip(openai_client):
    reply = openai_client.chat.completions.create(model="gpt-4o", messages=user("weather in Oslo?"), tools=[WEATHER_TOOL])
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    follow_up = user("weather in Oslo?") + [
        reply.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "12°C, rain"},
    ]
    final = openai_client.chat.completions.create(model="gpt-4o", messages=follow_up, tools=[WEATHER_TOOL])
    assert final.choices[0].finish_reason == "stop" and final.choices[0].message.content


def test_streamed_parallel_tool_calls_reassemble(openai_client):
    second = {"type": "function", "function": {**WEATHER_TOOL["function"], "name": "get_time"}}
    chunks = list(openai_client.chat.completions.create(
        model="gpt-4o", messages=user("both [[emulator: tools=2]]"), tools=[WEATHER_TOOL, second], stream=True
    ))
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(delta.index, {"name": "", "arguments": ""})
            call["name"] += delta.function.name or ""
            call["arguments"] += delta.function.arguments or ""
    assert [c["name"] for c in calls.values()] == ["get_weather", "get_time"]
    assert all(c["arguments"].startswith("{") and c["arguments"].endswith("}") for c in calls.values())


async def test_async_client_chat_and_stream(async_openai_client):
    reply = await async_openai_client.chat.completions.create(model="small", messages=user("async"))
    assert reply.choices[0].message.content
    stream = await async_openai_client.chat.completions.create(model="small", messages=user("async stream"), stream=True)
    pieces = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    assert pieces


def test_embeddings_decode_through_the_sdk(openai_client):
    result = openai_client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    assert len(result.data) == 2 and len(result.data[0].embedding) > 0
    assert result.usage.prompt_tokens > 0


def test_models_lists_the_configured_models(openai_client):
    names = {m.id for m in openai_client.models.list()}
    assert {"gpt-4o", "claude-fast", "small"} <= names
