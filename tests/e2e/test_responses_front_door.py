"""OpenAI's Responses API through the gateway, driven with the official SDK's `client.responses`,
against the three kinds of upstream: one that speaks Responses itself (`gpt-4o`, on an OpenAI
upstream), an OpenAI-compatible server that speaks only Chat Completions (`small`), and
Anthropic (`claude-fast`). Each gets what it speaks (the emulator's journal shows it), and the
client gets Response objects and event streams in OpenAI's shape and order."""

import json
import math

import httpx
import openai
import pytest

MODELS = ["gpt-4o", "small", "claude-fast"]
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
CITY = {"type": "object", "properties": {"city": {"type": "string"}, "celsius": {"type": "integer"}},
        "required": ["city", "celsius"], "additionalProperties": False}


def last_sent(emulator, marker: str) -> dict:
    return [r for r in httpx.get(emulator.url + "/_emulator/requests").json() if marker in str(r["body"])][-1]


@pytest.mark.parametrize("model", MODELS)
def test_a_text_answer_is_a_response_object_with_usage(openai_client, model):
    response = openai_client.responses.create(model=model, instructions="Be brief.",
                                              input=f"hello [[emulator: tokens=7 id=rsp-text-{model}]]")
    assert response.object == "response" and response.status == "completed" and response.id.startswith("resp_")
    assert response.output[0].type == "message" and response.output_text
    assert response.usage.output_tokens == 7 and response.usage.input_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + 7
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0


@pytest.mark.parametrize(("model", "path"), [("gpt-4o", "/v1/responses"), ("small", "/v1/chat/completions"),
                                             ("claude-fast", "/v1/messages")])
def test_each_upstream_gets_the_request_in_the_api_it_speaks(openai_client, emulator, model, path):
    openai_client.responses.create(model=model, instructions="Be brief.", max_output_tokens=64, temperature=0.5,
                                   input=[{"role": "user", "content": [
                                       {"type": "input_text", "text": f"hi [[emulator: id=rsp-path-{model}]]"}]}])
    sent = last_sent(emulator, f"rsp-path-{model}")
    assert sent["path"] == path
    body = sent["body"]
    if path == "/v1/responses":
        assert body["instructions"] == "Be brief." and body["max_output_tokens"] == 64
    elif path == "/v1/chat/completions":
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert body["max_tokens"] == 64 and body["temperature"] == 0.5
    else:
        assert body["system"] == "Be brief." and body["max_tokens"] == 64


@pytest.mark.parametrize("model", MODELS)
def test_a_stream_has_openai_s_events_in_order_numbered(openai_client, model):
    with openai_client.responses.stream(model=model, input=f"stream [[emulator: tokens=6 id=rsp-stream-{model}]]") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert kinds.count("response.output_text.delta") == len(kinds) - 8
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert deltas == final.output_text and final.usage.output_tokens == 6


@pytest.mark.parametrize("model", MODELS)
def test_a_function_call_and_its_output_make_a_second_turn(openai_client, emulator, model):
    first = openai_client.responses.create(model=model, tools=[WEATHER], input="weather in Paris?")
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and "city" in json.loads(call.arguments)
    second = openai_client.responses.create(model=model, tools=[WEATHER], input=[
        {"role": "user", "content": "weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": f"sunny [[emulator: id=rsp-tool-{model}]]"},
    ])
    assert second.status == "completed" and second.output_text
    if model == "small":
        sent = last_sent(emulator, f"rsp-tool-{model}")["body"]["messages"]
        assert sent[1]["tool_calls"][0]["id"] == call.call_id
        assert sent[2] == {"role": "tool", "tool_call_id": call.call_id, "content": f"sunny [[emulator: id=rsp-tool-{model}]]"}


@pytest.mark.parametrize("model", MODELS)
def test_a_streamed_function_call_arrives_with_its_arguments(openai_client, model):
    with openai_client.responses.stream(model=model, tools=[WEATHER], tool_choice="required",
                                        input="weather in Oslo?") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    call = next(item for item in final.output if item.type == "function_call")
    done = next(event for event in events if event.type == "response.function_call_arguments.done")
    assert done.arguments == call.arguments and "city" in json.loads(call.arguments)


@pytest.mark.parametrize("model", MODELS)
def test_structured_output_follows_the_json_schema(openai_client, emulator, model):
    response = openai_client.responses.create(
        model=model, input=f"a city [[emulator: id=rsp-schema-{model}]]",
        text={"format": {"type": "json_schema", "name": "city", "schema": CITY, "strict": True}},
    )
    value = json.loads(response.output_text)
    assert isinstance(value["city"], str) and isinstance(value["celsius"], int)
    if model == "small":
        sent = last_sent(emulator, f"rsp-schema-{model}")["body"]
        assert sent["response_format"] == {"type": "json_schema",
                                           "json_schema": {"name": "city", "schema": CITY, "strict": True}}


def test_an_answer_cut_by_max_output_tokens_is_incomplete(openai_client):
    response = openai_client.responses.create(model="small", max_output_tokens=16, input="long [[emulator: tokens=40]]")
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens == 16


def test_a_built_in_tool_is_refused_for_an_upstream_that_cannot_run_it(openai_client):
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client.responses.create(model="small", tools=[{"type": "web_search"}], input="news?")
    assert refused.value.body["param"] == "tools[0].type" and "responses_api" in refused.value.body["message"]


def test_a_built_in_tool_reaches_an_upstream_that_speaks_responses(openai_client, emulator):
    openai_client.responses.create(model="gpt-4o", tools=[{"type": "web_search"}], input="news? [[emulator: id=rsp-web]]")
    assert last_sent(emulator, "rsp-web")["body"]["tools"] == [{"type": "web_search"}]


def test_a_request_without_input_is_refused_naming_the_field(openai_client):
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client.responses.create(model="small", input=None)  # type: ignore[arg-type]
    assert refused.value.body["param"] == "input"


@pytest.mark.parametrize("model", ["small", "claude-fast"])
def test_a_stream_cut_by_the_upstream_ends_with_response_failed(openai_client, model):
    with openai_client.responses.stream(model=model, input="cut [[emulator: tokens=30 cut=3]]") as stream:
        events = list(stream)
    assert events[-1].type == "response.failed" and "the stream" in events[-1].response.error.message
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert sum(event.type == "response.output_text.delta" for event in events) == 3


def test_a_stream_cut_by_a_responses_upstream_ends_with_an_error_event(openai_client):
    with openai_client.responses.stream(model="gpt-4o", input="cut [[emulator: tokens=30 cut=3]]") as stream:
        events = list(stream)
    assert events[-1].type == "error" and events[-1].sequence_number == events[-2].sequence_number + 1
    assert "the stream" in events[-1].message


@pytest.mark.parametrize("model", MODELS)
def test_an_upstream_failure_is_an_openai_shaped_error(openai_client, model):
    with pytest.raises(openai.APIStatusError) as failed:
        openai_client.responses.create(model=model, input="fail [[emulator: status=400]]")
    assert failed.value.status_code == 400 and "Emulated failure" in failed.value.body["message"]


def test_reasoning_effort_and_text_settings_reach_a_chat_upstream(openai_client, emulator):
    openai_client.responses.create(model="small", reasoning={"effort": "low", "summary": "auto"},
                                   text={"format": {"type": "json_object"}, "verbosity": "low"},
                                   parallel_tool_calls=False, tools=[WEATHER], tool_choice={"type": "function",
                                                                                            "name": "get_weather"},
                                   input="json [[emulator: id=rsp-settings]]", safety_identifier="user-42")
    sent = last_sent(emulator, "rsp-settings")["body"]
    assert sent["reasoning_effort"] == "low" and sent["response_format"] == {"type": "json_object"}
    assert sent["verbosity"] == "low" and sent["parallel_tool_calls"] is False and sent["user"] == "user-42"
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_an_image_part_reaches_a_chat_upstream_as_an_image_url(openai_client, emulator):
    image = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    openai_client.responses.create(model="small", input=[{"role": "user", "content": [
        {"type": "input_text", "text": "what is it? [[emulator: id=rsp-image]]"},
        {"type": "input_image", "image_url": image, "detail": "low"}]}])
    part = last_sent(emulator, "rsp-image")["body"]["messages"][0]["content"][1]
    assert part == {"type": "image_url", "image_url": {"url": image, "detail": "low"}}


def test_an_output_cap_above_the_model_s_limit_reaches_the_upstream_clamped(openai_client, emulator):
    response = openai_client.responses.create(model="claude-fast", max_output_tokens=128000,
                                              input="hi [[emulator: id=rsp-clamp tokens=3]]")
    assert response.status == "completed"
    assert last_sent(emulator, "rsp-clamp")["body"]["max_tokens"] == 8192  # models.claude-fast.max_output_tokens


@pytest.mark.parametrize("model", MODELS)
def test_prompt_cache_reads_are_cached_tokens_in_the_responses_usage(openai_client, model):
    response = openai_client.responses.create(model=model, input="cached [[emulator: tokens=4 cached=8]]")
    assert response.usage.input_tokens_details.cached_tokens == 8 and response.usage.input_tokens >= 8
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens


@pytest.mark.parametrize("model", ["gpt-4o", "small"])
def test_reasoning_comes_back_as_a_reasoning_item_and_reasoning_tokens(openai_client, model):
    response = openai_client.responses.create(model=model, reasoning={"effort": "low"},
                                              input="think [[emulator: tokens=4 thinking=6]]")
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.usage.output_tokens_details.reasoning_tokens == 6 and response.usage.output_tokens == 10
    with openai_client.responses.stream(model=model, input="think [[emulator: tokens=4 thinking=6]]") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert final.output[0].type == "reasoning" and kinds[2] == "response.output_item.added"
    if model == "small":  # a reasoning server's reasoning_content, as reasoning text
        assert response.output[0].content[0].text and "response.reasoning_text.delta" in kinds


def test_anthropic_thinking_comes_back_as_a_reasoning_item_not_as_the_answer(openai_client):
    response = openai_client.responses.create(model="claude-fast", input="think [[emulator: tokens=4 thinking=6]]")
    assert [item.type for item in response.output] == ["reasoning", "message"] and response.usage.output_tokens == 10
    thought = response.output[0].content[0].text
    assert thought and thought not in response.output_text
    with openai_client.responses.stream(model="claude-fast", input="think [[emulator: tokens=4 thinking=6]]") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert [item.type for item in final.output] == ["reasoning", "message"] and "response.reasoning_text.delta" in kinds


def codex_turn(history: list[dict]) -> dict:
    """A request as Codex sends it (`wire_api = "responses"`): no stored state, the whole history
    each turn with reasoning items passed back encrypted, developer instructions."""
    return {"instructions": "You are a coding agent.", "input": history, "tools": [SHELL], "tool_choice": "auto",
            "parallel_tool_calls": False, "reasoning": {"effort": "medium", "summary": "auto"}, "store": False,
            "include": ["reasoning.encrypted_content"], "prompt_cache_key": "codex-session-1",
            "text": {"verbosity": "medium"}}


SHELL = {"type": "function", "name": "shell", "description": "Run a command.", "strict": False,
         "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}},
                        "required": ["command"]}}


@pytest.mark.parametrize("model", MODELS)
def test_a_codex_style_streamed_agent_turn_gets_a_complete_event_sequence(openai_client, model):
    history = [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be careful."}]},
               {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "List the files."}]}]
    with openai_client.responses.stream(model=model, **codex_turn(history)) as stream:
        first = stream.get_final_response()
    call = next(item for item in first.output if item.type == "function_call")
    history += [{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
                call.model_dump(exclude_none=True),
                {"type": "function_call_output", "call_id": call.call_id, "output": "README.md\nsrc/"}]
    with openai_client.responses.stream(model=model, **codex_turn(history)) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert kinds.count("response.output_item.added") == kinds.count("response.output_item.done")
    assert final.output_text and final.store is False and final.usage.output_tokens > 0


def test_logprobs_asked_for_with_include_come_back_on_the_output_text(openai_client, emulator):
    response = openai_client.responses.create(model="small", include=["message.output_text.logprobs"],
                                              input="sure? [[emulator: tokens=5 confidence=0.5 id=rsp-logprobs]]")
    logprobs = response.output[0].content[0].logprobs
    assert len(logprobs) == 5 and all(abs(lp.logprob - math.log(0.5)) < 1e-9 for lp in logprobs)
    assert "".join(lp.token for lp in logprobs) == response.output_text
    assert last_sent(emulator, "rsp-logprobs")["body"]["logprobs"] is True
