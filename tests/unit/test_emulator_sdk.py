"""The official SDKs, over a real loopback socket, cannot tell the emulator from the real APIs."""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
import time

import anthropic
import httpx
import httpx2
import openai
import pytest
import uvicorn

from tokenbrake.tools.emulator import EmulatorSettings, build_app
from tokenbrake.wire.tokens import count_text

KEY = "sk-emulator-test"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city", "days"],
}


@pytest.fixture(scope="module")
def base_url():
    app = build_app(EmulatorSettings(api_key=KEY))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, loop="uvloop", http="httptools", log_level="critical", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def oai(base_url):
    with openai.OpenAI(base_url=base_url + "/v1", api_key=KEY, max_retries=0, timeout=10) as client:
        yield client


@pytest.fixture
def claude(base_url):
    with anthropic.Anthropic(base_url=base_url, api_key=KEY, max_retries=0, timeout=10) as client:
        yield client


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_openai_sdk_parses_a_completion_with_exact_usage(oai):
    reply = oai.chat.completions.create(model="gpt-4o", messages=user("hello [[emulator: tokens=17]]"))
    assert reply.model == "gpt-4o"
    assert reply.usage.completion_tokens == count_text(reply.choices[0].message.content) == 17


def test_openai_sdk_streams_content_and_a_usage_chunk(oai):
    stream = oai.chat.completions.create(
        model="gpt-4o-mini", messages=user("hi"), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage.completion_tokens == count_text(text) == 32
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_openai_sdk_accumulates_streamed_parallel_tool_calls(oai):
    tools = [{"type": "function", "function": {"name": n, "parameters": WEATHER}} for n in ("weather", "forecast")]
    with oai.chat.completions.stream(
        model="gpt-4o", messages=user("weather? [[emulator: tools=3]]"), tools=tools
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["weather", "forecast", "weather"]
    assert final.choices[0].finish_reason == "tool_calls"
    assert all(set(json.loads(c.function.arguments)) == {"city", "days"} for c in calls)


def test_openai_sdk_decodes_base64_embeddings(oai):
    reply = oai.embeddings.create(model="text-embedding-3-small", input=["one", "two"], dimensions=64)
    vectors = [item.embedding for item in reply.data]
    assert [len(v) for v in vectors] == [64, 64]
    assert sum(x * x for x in vectors[0]) == pytest.approx(1.0, abs=1e-5)


def test_openai_base64_embedding_matches_the_float_one(base_url):
    body = {"model": "text-embedding-3-small", "input": "same"}
    headers = {"authorization": "Bearer " + KEY}
    as_float = httpx.post(base_url + "/v1/embeddings", json=body, headers=headers).json()
    body_b64 = {**body, "encoding_format": "base64"}
    as_b64 = httpx.post(base_url + "/v1/embeddings", json=body_b64, headers=headers).json()
    raw = base64.b64decode(as_b64["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == as_float["data"][0]["embedding"]


def test_openai_sdk_raises_rate_limit_error_for_status_429(oai):
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="gpt-4o", messages=user("[[emulator: status=429 retry_after=1]]"))


def test_openai_sdk_raises_authentication_error_for_a_wrong_key(base_url):
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-4o", messages=user("hi"))


def test_openai_sdk_errors_while_iterating_a_cut_stream(oai):
    stream = oai.chat.completions.create(model="gpt-4o", messages=user("[[emulator: cut=3]]"), stream=True)
    received = []
    with pytest.raises(openai.APIConnectionError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert "incomplete" in str(caught.value.__cause__)
    assert len(received) == 4  # the role chunk and three content chunks


def test_openai_sdk_fails_to_decode_a_garbage_stream_line(oai):
    stream = oai.chat.completions.create(model="gpt-4o", messages=user("[[emulator: garbage=2]]"), stream=True)
    with pytest.raises(json.JSONDecodeError):
        list(stream)


def test_anthropic_sdk_fails_to_decode_a_garbage_stream_event(claude):
    with pytest.raises(json.JSONDecodeError):
        with claude.messages.stream(model="c", max_tokens=5, messages=user("[[emulator: garbage=2]]")) as s:
            s.get_final_message()


def test_openai_sdk_fails_to_decode_a_garbage_body(oai):
    with pytest.raises(json.JSONDecodeError):
        oai.chat.completions.create(model="gpt-4o", messages=user("[[emulator: garbage=0]]"))


def test_openai_sdk_times_out_on_a_hanging_request(base_url):
    client = openai.OpenAI(base_url=base_url + "/v1", api_key=KEY, max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-4o", messages=user("[[emulator: hang=2]]"))


def test_anthropic_sdk_parses_a_message_with_exact_usage(claude):
    reply = claude.messages.create(model="claude-haiku-4-5", max_tokens=99, messages=user("[[emulator: tokens=9]]"))
    assert reply.stop_reason == "end_turn"
    assert reply.usage.output_tokens == count_text(reply.content[0].text) == 9


def test_anthropic_sdk_stream_helper_builds_the_final_message(claude):
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=20, messages=user("hello")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.content[0].text == text
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 20


def test_anthropic_sdk_stream_reports_the_matched_stop_sequence(claude):
    with claude.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=50,
        stop_sequences=["o"],
        messages=user('[[emulator: text="Go now"]]'),
    ) as stream:
        final = stream.get_final_message()
    assert (final.content[0].text, final.stop_reason, final.stop_sequence) == ("G", "stop_sequence", "o")


def test_anthropic_sdk_stream_accumulates_tool_use_input(claude):
    tools = [{"name": "weather", "input_schema": WEATHER}]
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=200, tools=tools, messages=user("hi")) as s:
        final = s.get_final_message()
    block = final.content[0]
    assert (block.type, block.name, final.stop_reason) == ("tool_use", "weather", "tool_use")
    assert set(block.input) == {"city", "days"} and block.input["days"] >= 1


def test_anthropic_sdk_counts_tokens(claude):
    counted = claude.messages.count_tokens(model="claude-haiku-4-5", messages=user("hello there"))
    reply = claude.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=user("hello there"))
    assert counted.input_tokens == reply.usage.input_tokens


def test_anthropic_sdk_raises_overloaded_error_for_status_529(claude):
    with pytest.raises(anthropic.OverloadedError):
        claude.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=user("[[emulator: status=529]]"))


def test_anthropic_sdk_raises_bad_request_without_max_tokens(base_url):
    response = httpx.post(
        base_url + "/v1/messages", json={"model": "c", "messages": user("hi")}, headers={"x-api-key": KEY}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_anthropic_sdk_errors_while_iterating_a_cut_stream(claude):
    # Older SDK versions let the transport's error through while iterating a stream; newer ones
    # (2.17 on) wrap it as a connection error. Either way the cut stream is an error, not an end.
    with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError), match="incomplete"):
        with claude.messages.stream(model="c", max_tokens=50, messages=user("[[emulator: cut=2]]")) as stream:
            for _ in stream:
                pass


def test_fail_first_fails_then_succeeds_for_one_id(oai):
    message = user("[[emulator: status=503 fail_first=2 id=sdk-retry]]")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            oai.chat.completions.create(model="gpt-4o", messages=message)
    assert oai.chat.completions.create(model="gpt-4o", messages=message).choices[0].message.content


def test_ttft_delays_the_first_token_of_a_stream(oai):
    started = time.perf_counter()
    message = user("[[emulator: ttft_ms=300 tokens=2]]")
    stream = oai.chat.completions.create(model="gpt-4o", messages=message, stream=True)
    first_content = next(c for c in stream if c.choices and c.choices[0].delta.content)
    assert first_content and time.perf_counter() - started >= 0.29


def test_journal_records_the_tokens_sent_before_a_client_goes_away(base_url):
    httpx.post(base_url + "/_emulator/reset")
    body = {"model": "gpt-4o", "stream": True, "messages": user("[[emulator: tokens=200 tps=100]]")}
    headers = {"authorization": "Bearer " + KEY}
    with httpx.stream("POST", base_url + "/v1/chat/completions", json=body, headers=headers) as response:
        lines = response.iter_lines()
        content_lines = [line for line, _ in zip((ln for ln in lines if '"content":"' in ln), range(3))]
    assert len(content_lines) == 3
    deadline = time.monotonic() + 5
    while (record := httpx.get(base_url + "/_emulator/requests").json()[-1])["outcome"] == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert record["outcome"] == "disconnected"
    assert 2 <= record["usage"]["output_tokens"] < 50
