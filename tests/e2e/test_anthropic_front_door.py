"""The Anthropic SDK against the gateway, in front of an Anthropic upstream."""

import httpx

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_message_passes_through_with_system_prompt(anthropic_client, emulator):
    message = anthropic_client.messages.create(
        model="claude-fast", max_tokens=100, system="Be brief.", messages=user("hello [[emulator: id=anth-sys]]")
    )
    assert message.type == "message" and message.stop_reason == "end_turn"
    assert message.content[0].text and message.usage.input_tokens > 0
    sent = [r for r in httpx.get(emulator.url + "/_emulator/requests").json() if "anth-sys" in str(r["body"])][-1]
    assert sent["body"]["model"] == "claude-3-5-haiku-latest" and sent["body"]["system"] == "Be brief."
    assert sent["headers"]["x-api-key"] == "sk-ant-upstream"


def test_max_tokens_stop_reason(anthropic_client):
    message = anthropic_client.messages.create(model="claude-fast", max_tokens=3, messages=user("long [[emulator: tokens=50]]"))
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3


def test_stop_sequence_is_reported(anthropic_client):
    message = anthropic_client.messages.create(
        model="claude-fast", max_tokens=100, stop_sequences=["END"],
        messages=user('stop [[emulator: text="one two END three"]]'),
    )
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "END"
    assert "three" not in message.content[0].text


def test_stream_has_the_full_event_sequence(anthropic_client):
    with anthropic_client.messages.stream(model="claude-fast", max_tokens=100, messages=user("stream")) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= set(kinds)
    assert final.content[0].text and final.usage.output_tokens > 0


def test_tool_use_round_trip_streamed(anthropic_client):
    with anthropic_client.messages.stream(
        model="claude-fast", max_tokens=200, tools=[WEATHER_TOOL], messages=user("weather in Oslo?")
    ) as stream:
        message = stream.get_final_message()
    tool_use = next(block for block in message.content if block.type == "tool_use")
    assert message.stop_reason == "tool_use" and isinstance(tool_use.input, dict) and "city" in tool_use.input
    follow_up = user("weather in Oslo?") + [
        {"role": "assistant", "content": [block.model_dump() for block in message.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "12°C"}]},
    ]
    final = anthropic_client.messages.create(model="claude-fast", max_tokens=200, tools=[WEATHER_TOOL], messages=follow_up)
    assert final.stop_reason == "end_turn"


async def test_async_client_stream(async_anthropic_client):
    async with async_anthropic_client.messages.stream(model="claude-fast", max_tokens=50, messages=user("async")) as stream:
        text = "".join([chunk async for chunk in stream.text_stream])
    assert text


def test_count_tokens_is_answered_by_the_anthropic_upstream(anthropic_client):
    counted = anthropic_client.messages.count_tokens(model="claude-fast", messages=user("count these tokens please"))
    assert counted.input_tokens > 0


def test_count_tokens_for_an_openai_upstream_uses_the_local_tokenizer(anthropic_client):
    short = anthropic_client.messages.count_tokens(model="small", messages=user("hi"))
    long = anthropic_client.messages.count_tokens(model="small", messages=user("hi " * 200))
    assert 0 < short.input_tokens < long.input_tokens


def test_models_list_in_anthropic_format(anthropic_client):
    names = {m.id for m in anthropic_client.models.list()}
    assert "claude-fast" in names


def sent_with(emulator, marker: str) -> dict:
    return [r for r in httpx.get(emulator.url + "/_emulator/requests").json() if marker in str(r["body"])][-1]


def test_the_beta_features_a_client_opts_into_reach_an_anthropic_upstream(anthropic_client, emulator):
    betas = ["token-efficient-tools-2025-02-19", "context-1m-2025-08-07"]
    message = anthropic_client.beta.messages.create(model="claude-fast", max_tokens=20, betas=betas[:1],
                                                    messages=user("[[emulator: id=beta-one tokens=5]]"))
    assert message.stop_reason == "end_turn"
    assert sent_with(emulator, "beta-one")["headers"]["anthropic-beta"] == betas[0]
    with anthropic_client.beta.messages.stream(model="claude-fast", max_tokens=20, betas=betas,
                                               messages=user("[[emulator: id=beta-stream]]")) as stream:
        assert stream.get_final_message().content[0].text
    assert sent_with(emulator, "beta-stream")["headers"]["anthropic-beta"] == ",".join(betas)
    counted = anthropic_client.beta.messages.count_tokens(model="claude-fast", betas=betas[:1],
                                                          messages=user("count [[emulator: id=beta-count]]"))
    assert counted.input_tokens > 0
    sent = sent_with(emulator, "beta-count")
    assert sent["path"].endswith("/count_tokens")
    assert betas[0] in sent["headers"]["anthropic-beta"].split(",")  # beside the SDK's own token-counting beta


def test_beta_headers_stay_away_from_other_upstreams_and_other_clients(anthropic_client, emulator):
    anthropic_client.beta.messages.create(model="small", max_tokens=20, betas=["token-efficient-tools-2025-02-19"],
                                          messages=user("[[emulator: id=beta-local]]"))
    assert sent_with(emulator, "beta-local")["headers"]["anthropic-beta"] is None  # an OpenAI-compatible server
    anthropic_client.messages.create(model="claude-fast", max_tokens=20, messages=user("[[emulator: id=beta-none]]"))
    assert sent_with(emulator, "beta-none")["headers"]["anthropic-beta"] is None
