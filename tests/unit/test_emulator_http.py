"""The emulator's HTTP behaviour, driven in-process over ASGI."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from tokenbrake.core import Format
from tokenbrake.tools.emulator import EmulatorSettings, build_app
from tokenbrake.wire.sse import SSEParser
from tokenbrake.wire.tokens import count_request_input, count_text

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": name, "parameters": WEATHER}} for name in ("weather", "time")
]
ANTHROPIC_TOOLS = [{"name": "weather", "input_schema": WEATHER}]


def client(**settings) -> httpx.AsyncClient:
    app = build_app(EmulatorSettings(**settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator")


def chat(text: str = "hello", **extra) -> dict:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], **extra}


def messages(text: str = "hello", **extra) -> dict:
    message = {"role": "user", "content": text}
    return {"model": "claude-haiku-4-5", "max_tokens": 1000, "messages": [message], **extra}


def events(response: httpx.Response) -> list:
    return SSEParser().feed(response.content)


async def test_openai_completion_carries_realistic_envelope_fields():
    async with client() as c:
        reply = (await c.post("/v1/chat/completions", json=chat())).json()
    assert reply["id"].startswith("chatcmpl-") and reply["object"] == "chat.completion"
    assert reply["system_fingerprint"].startswith("fp_") and isinstance(reply["created"], int)


async def test_openai_usage_has_prompt_and_completion_details():
    async with client(output_tokens=5) as c:
        usage = (await c.post("/v1/chat/completions", json=chat())).json()["usage"]
    assert usage["prompt_tokens"] == count_request_input("openai", chat())
    assert (usage["completion_tokens"], usage["total_tokens"]) == (5, usage["prompt_tokens"] + 5)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


async def test_same_request_gets_the_same_reply():
    async with client() as c:
        first, second = [(await c.post("/v1/chat/completions", json=chat("q"))).json() for _ in range(2)]
    assert first["choices"][0]["message"]["content"] == second["choices"][0]["message"]["content"]


async def test_openai_n_returns_that_many_choices_and_sums_usage():
    async with client(output_tokens=4) as c:
        reply = (await c.post("/v1/chat/completions", json=chat(n=3))).json()
    assert [choice["index"] for choice in reply["choices"]] == [0, 1, 2]
    assert reply["usage"]["completion_tokens"] == 12


async def test_max_tokens_caps_the_reply_with_finish_reason_length():
    async with client(output_tokens=50) as c:
        reply = (await c.post("/v1/chat/completions", json=chat(max_completion_tokens=7))).json()
    assert (reply["usage"]["completion_tokens"], reply["choices"][0]["finish_reason"]) == (7, "length")


async def test_anthropic_max_tokens_cap_stops_with_max_tokens():
    async with client(output_tokens=50) as c:
        reply = (await c.post("/v1/messages", json=messages(max_tokens=3))).json()
    assert (reply["usage"]["output_tokens"], reply["stop_reason"]) == (3, "max_tokens")


async def test_openai_stop_sequence_cuts_the_reply_before_it():
    async with client() as c:
        body = chat('[[emulator: text="one two three"]]', stop=[" t"])
        reply = (await c.post("/v1/chat/completions", json=body)).json()
    choice = reply["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("one", "stop")
    assert reply["usage"]["completion_tokens"] == 1


async def test_anthropic_stop_sequence_is_reported():
    async with client() as c:
        body = messages('[[emulator: text="red, green, blue"]]', stop_sequences=["blue", "green"])
        reply = (await c.post("/v1/messages", json=body)).json()
    assert reply["content"][0]["text"] == "red, "
    assert (reply["stop_reason"], reply["stop_sequence"]) == ("stop_sequence", "green")


async def test_text_directive_replies_with_that_text_and_counts_it():
    async with client() as c:
        body = messages('[[emulator: text="Exactly this, please."]]')
        reply = (await c.post("/v1/messages", json=body)).json()
    assert reply["content"][0]["text"] == "Exactly this, please."
    assert reply["usage"]["output_tokens"] == count_text("Exactly this, please.")


async def test_header_directive_applies_to_the_request():
    async with client() as c:
        reply = (await c.post("/v1/chat/completions", json=chat(), headers={"x-emulator": "tokens=3"})).json()
    assert reply["usage"]["completion_tokens"] == 3


async def test_unknown_directive_is_a_400_naming_it():
    async with client() as c:
        response = await c.post("/v1/chat/completions", json=chat("[[emulator: volume=11]]"))
    assert response.status_code == 400 and "'volume'" in response.json()["error"]["message"]


async def test_malformed_json_is_a_400_in_openai_format():
    async with client() as c:
        response = await c.post("/v1/chat/completions", content=b"{not json")
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


async def test_missing_messages_is_a_400_naming_the_param():
    async with client() as c:
        response = await c.post("/v1/chat/completions", json={"model": "gpt-4o"})
    assert (response.status_code, response.json()["error"]["param"]) == (400, "messages")


async def test_missing_model_is_a_400():
    async with client() as c:
        response = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 400


async def test_anthropic_missing_max_tokens_is_a_400_in_anthropic_format():
    async with client() as c:
        body = messages()
        del body["max_tokens"]
        response = await c.post("/v1/messages", json=body)
    assert response.status_code == 400
    error = {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    assert response.json() == {"type": "error", "error": error}


async def test_openai_path_without_the_key_is_a_401():
    async with client(api_key="secret") as c:
        response = await c.post("/v1/chat/completions", json=chat())
    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_api_key")


async def test_anthropic_path_with_a_wrong_key_is_a_401_authentication_error():
    async with client(api_key="secret") as c:
        response = await c.post("/v1/messages", json=messages(), headers={"x-api-key": "nope"})
    assert (response.status_code, response.json()["error"]["type"]) == (401, "authentication_error")


async def test_anthropic_path_accepts_the_right_x_api_key():
    async with client(api_key="secret") as c:
        response = await c.post("/v1/messages", json=messages(), headers={"x-api-key": "secret"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
     (404, "not_found_error"), (413, "request_too_large"), (429, "rate_limit_error"),
     (500, "api_error"), (529, "overloaded_error")],
)  # fmt: skip
async def test_status_directive_answers_the_anthropic_error_type(status, kind):
    async with client() as c:
        response = await c.post("/v1/messages", json=messages(f"[[emulator: status={status}]]"))
    assert (response.status_code, response.json()["error"]["type"]) == (status, kind)


async def test_status_directive_answers_an_openai_error_body():
    async with client() as c:
        response = await c.post("/v1/chat/completions", json=chat("[[emulator: status=500]]"))
    assert (response.status_code, response.json()["error"]["type"]) == (500, "server_error")


async def test_retry_after_directive_sets_the_header():
    async with client() as c:
        response = await c.post("/v1/chat/completions", json=chat("[[emulator: status=429 retry_after=2]]"))
    assert response.headers["retry-after"] == "2"


async def test_non_error_status_directive_is_rejected():
    async with client() as c:
        response = await c.post("/v1/chat/completions", json=chat("[[emulator: status=200]]"))
    assert response.status_code == 400


async def test_fail_first_counts_each_id_separately():
    async with client() as c:
        bodies = [chat(f"[[emulator: status=502 fail_first=1 id={name}]]") for name in ("a", "b", "a", "b")]
        statuses = [(await c.post("/v1/chat/completions", json=body)).status_code for body in bodies]
    assert statuses == [502, 502, 200, 200]


async def test_reset_clears_the_fail_counters():
    async with client() as c:
        body = chat("[[emulator: status=500 fail_first=1 id=x]]")
        await c.post("/v1/chat/completions", json=body)
        await c.post("/_emulator/reset")
        assert (await c.post("/v1/chat/completions", json=body)).status_code == 500


async def test_journal_records_what_was_asked_and_answered():
    async with client(output_tokens=6) as c:
        body = messages(stream=False)
        await c.post("/v1/messages", json=body, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})
        (record,) = (await c.get("/_emulator/requests")).json()
    assert (record["path"], record["model"]) == ("/v1/messages", body["model"])
    assert (record["stream"], record["status"], record["outcome"]) == (False, 200, "complete")
    assert record["headers"] == {"authorization": None, "x-api-key": "k", "anthropic-version": "2023-06-01",
                                 "anthropic-beta": None}
    assert record["body"] == body
    assert record["usage"] == {"input_tokens": count_request_input("anthropic", body), "output_tokens": 6}


async def test_journal_records_errors_with_their_status():
    async with client() as c:
        await c.post("/v1/chat/completions", json=chat("[[emulator: status=429]]"))
        (record,) = (await c.get("/_emulator/requests")).json()
    assert (record["status"], record["usage"]) == (429, None)


async def test_journal_keeps_only_the_most_recent_requests():
    async with client(journal_size=2) as c:
        for text in ("a", "b", "c"):
            await c.post("/v1/chat/completions", json=chat(text))
        records = (await c.get("/_emulator/requests")).json()
    assert [r["body"]["messages"][0]["content"] for r in records] == ["b", "c"]


async def test_reset_clears_the_journal():
    async with client() as c:
        await c.post("/v1/chat/completions", json=chat())
        await c.post("/_emulator/reset")
        assert (await c.get("/_emulator/requests")).json() == []


async def test_openai_stream_starts_with_role_and_ends_with_done():
    async with client(output_tokens=3) as c:
        response = await c.post("/v1/chat/completions", json=chat(stream=True))
    found = events(response)
    first_delta = orjson.loads(found[0].data)["choices"][0]["delta"]
    assert first_delta == {"role": "assistant", "content": "", "refusal": None}
    assert orjson.loads(found[-2].data)["choices"][0]["finish_reason"] == "stop"
    assert found[-1].data == "[DONE]" and len(found) == 6


async def test_openai_stream_without_include_usage_has_no_usage_field():
    async with client(output_tokens=2) as c:
        response = await c.post("/v1/chat/completions", json=chat(stream=True))
    assert all("usage" not in orjson.loads(e.data) for e in events(response)[:-1])


async def test_openai_stream_with_include_usage_ends_with_a_usage_chunk():
    async with client(output_tokens=2) as c:
        body = chat(stream=True, stream_options={"include_usage": True})
        response = await c.post("/v1/chat/completions", json=body)
    chunks = [orjson.loads(e.data) for e in events(response)[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2
    assert all(chunk["usage"] is None for chunk in chunks[:-1])


async def test_openai_tool_call_stream_opens_each_call_then_sends_argument_fragments():
    async with client() as c:
        response = await c.post("/v1/chat/completions", json=chat(stream=True, tools=OPENAI_TOOLS))
    deltas = [orjson.loads(e.data)["choices"][0]["delta"] for e in events(response)[1:-2]]
    calls = [d["tool_calls"][0] for d in deltas]
    assert calls[0]["id"].startswith("call_") and calls[0]["function"] == {"name": "weather", "arguments": ""}
    assert len(calls) > 2 and all(set(call) == {"index", "function"} for call in calls[1:])
    assert set(orjson.loads("".join(call["function"]["arguments"] for call in calls))) == {"city"}


async def test_forced_tool_choice_calls_that_tool():
    async with client() as c:
        body = chat(tools=OPENAI_TOOLS, tool_choice={"type": "function", "function": {"name": "time"}})
        reply = (await c.post("/v1/chat/completions", json=body)).json()
    assert [call["function"]["name"] for call in reply["choices"][0]["message"]["tool_calls"]] == ["time"]


async def test_tool_choice_none_answers_with_text():
    async with client() as c:
        body = chat(tools=OPENAI_TOOLS, tool_choice="none")
        reply = (await c.post("/v1/chat/completions", json=body)).json()
    assert reply["choices"][0]["finish_reason"] == "stop" and reply["choices"][0]["message"]["content"]


async def test_openai_answers_a_tool_result_with_text():
    body = chat(tools=OPENAI_TOOLS)
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    body["messages"] += [
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    async with client() as c:
        reply = (await c.post("/v1/chat/completions", json=body)).json()
    assert reply["choices"][0]["finish_reason"] == "stop"


async def test_anthropic_answers_a_tool_result_with_text():
    body = messages(tools=ANTHROPIC_TOOLS)
    body["messages"] += [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]
    async with client() as c:
        reply = (await c.post("/v1/messages", json=body)).json()
    assert (reply["stop_reason"], reply["content"][0]["type"]) == ("end_turn", "text")


async def test_anthropic_tool_use_reply_counts_name_and_input_as_output():
    async with client() as c:
        reply = (await c.post("/v1/messages", json=messages(tools=ANTHROPIC_TOOLS))).json()
    block = reply["content"][0]
    assert block["id"].startswith("toolu_") and reply["stop_reason"] == "tool_use"
    sent = block["name"] + orjson.dumps(block["input"]).decode()
    assert reply["usage"]["output_tokens"] == count_text(sent)


async def test_anthropic_stream_sends_events_in_the_documented_order():
    async with client(output_tokens=2) as c:
        response = await c.post("/v1/messages", json=messages(stream=True))
    names = [e.event for e in events(response)]
    assert names == [
        "message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip


async def test_anthropic_stream_reports_input_at_start_and_output_at_the_end():
    async with client(output_tokens=4) as c:
        response = await c.post("/v1/messages", json=messages(stream=True))
    found = [orjson.loads(e.data) for e in events(response)]
    assert found[0]["message"]["usage"]["input_tokens"] == count_request_input("anthropic", messages())
    assert found[0]["message"]["usage"]["output_tokens"] == 1
    assert found[-2]["usage"] == {"output_tokens": 4}


async def test_cut_stream_records_only_the_tokens_sent():
    async with client(output_tokens=10) as c:
        with pytest.raises(Exception):  # noqa: B017 — in-process, the unfinished response surfaces as an error
            await c.post("/v1/messages", json=messages("[[emulator: cut=4]]", stream=True))
        (record,) = (await c.get("/_emulator/requests")).json()
    assert (record["outcome"], record["usage"]["output_tokens"]) == ("cut", 4)


async def test_garbage_non_stream_reply_is_a_200_that_is_not_json():
    async with client() as c:
        response = await c.post("/v1/chat/completions", json=chat("[[emulator: garbage=0]]"))
    assert response.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)


async def test_tps_directive_paces_a_stream():
    async with client() as c:
        started = time.perf_counter()
        await c.post("/v1/chat/completions", json=chat("[[emulator: tokens=6 tps=50]]", stream=True))
    assert time.perf_counter() - started >= 0.1


async def test_ttft_setting_delays_a_non_streamed_reply():
    async with client(ttft_ms=120) as c:
        started = time.perf_counter()
        await c.post("/v1/chat/completions", json=chat())
    assert time.perf_counter() - started >= 0.11


async def test_embeddings_are_deterministic_unit_vectors_of_the_requested_size():
    async with client() as c:
        body = {"model": "text-embedding-3-small", "input": ["a", "b"], "dimensions": 32}
        first, second = [(await c.post("/v1/embeddings", json=body)).json() for _ in range(2)]
    vectors = [item["embedding"] for item in first["data"]]
    assert first == second and [len(v) for v in vectors] == [32, 32] and vectors[0] != vectors[1]
    assert sum(x * x for x in vectors[0]) == pytest.approx(1.0, abs=1e-5)


async def test_embeddings_default_to_the_configured_dimensions_and_count_tokens():
    async with client(embedding_dimensions=8) as c:
        reply = (await c.post("/v1/embeddings", json={"model": "m", "input": "hello world"})).json()
    assert len(reply["data"][0]["embedding"]) == 8
    tokens = count_text("hello world")
    assert reply["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


async def test_embeddings_accept_token_arrays_and_count_them():
    async with client() as c:
        reply = (await c.post("/v1/embeddings", json={"model": "m", "input": [[1, 2, 3], [4]]})).json()
    assert len(reply["data"]) == 2 and reply["usage"]["prompt_tokens"] == 4


async def test_embeddings_without_input_are_a_400():
    async with client() as c:
        response = await c.post("/v1/embeddings", json={"model": "m"})
    assert (response.status_code, response.json()["error"]["param"]) == (400, "input")


async def test_count_tokens_matches_the_input_usage_of_a_message():
    async with client() as c:
        body = {"model": "c", "messages": messages()["messages"]}
        counted = (await c.post("/v1/messages/count_tokens", json=body)).json()
    assert counted == {"input_tokens": count_request_input(Format.ANTHROPIC, messages())}


async def test_models_lists_the_configured_models_in_openai_shape():
    async with client(models=["gpt-x", "claude-y"]) as c:
        listing = (await c.get("/v1/models")).json()
    assert [m["id"] for m in listing["data"]] == ["gpt-x", "claude-y"] and listing["object"] == "list"


async def test_models_answers_anthropic_clients_in_anthropic_shape():
    async with client(models=["gpt-x", "claude-y"]) as c:
        listing = (await c.get("/v1/models", headers={"anthropic-version": "2023-06-01"})).json()
    assert [m["id"] for m in listing["data"]] == ["claude-y"] and listing["has_more"] is False


async def test_healthz_answers_ok():
    async with client() as c:
        assert (await c.get("/healthz")).json() == {"status": "ok"}


async def test_unknown_path_is_a_json_404():
    async with client() as c:
        response = await c.post("/v1/completions", json={})
    assert response.status_code == 404 and "error" in response.json()
