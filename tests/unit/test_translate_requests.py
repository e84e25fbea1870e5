from typing import Any

import pytest
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
from pydantic import TypeAdapter

from tokenbrake.core import ErrorKind, GatewayError
from tokenbrake.wire.translate.requests import (
    JSON_INSTRUCTION,
    anthropic_to_openai_request,
    openai_to_anthropic_request,
)

ANTHROPIC_REQUEST = TypeAdapter(MessageCreateParamsNonStreaming)
OPENAI_REQUEST = TypeAdapter(CompletionCreateParamsNonStreaming)
PNG = "iVBORw0KGgo="
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather now", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


def _drain(value: Any) -> None:
    # The SDK params nest lazily validated iterables; walking them runs the validation.
    if isinstance(value, dict):
        for item in value.values():
            _drain(item)
    elif not isinstance(value, (str, bytes, int, float, bool, type(None))):
        for item in value:
            _drain(item)


def to_anthropic(body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    out = openai_to_anthropic_request({**body}, "claude-up", **kwargs)
    _drain(ANTHROPIC_REQUEST.validate_python({**out, "stream": False}))
    return out


def to_openai(body: dict[str, Any]) -> dict[str, Any]:
    out = anthropic_to_openai_request({"max_tokens": 100, **body}, "local-up")
    _drain(OPENAI_REQUEST.validate_python({**out, "stream": False}))
    return out


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def refused(call: Any, param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        call()
    assert caught.value.kind is ErrorKind.INVALID_REQUEST
    assert caught.value.param == param
    assert param.split("[")[0] in caught.value.message or "cannot" in caught.value.message


# --- OpenAI -> Anthropic -------------------------------------------------------------------


def test_system_and_developer_messages_are_joined_into_the_system_prompt():
    body = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "developer", "content": [{"type": "text", "text": "Speak French."}]}, user("Hi")]}
    out = to_anthropic(body)
    assert out["system"] == "Be brief.\n\nSpeak French."
    assert out["messages"] == [{"role": "user", "content": "Hi"}]


def test_upstream_model_replaces_the_client_model():
    assert to_anthropic({"model": "gpt-4o", "messages": [user("Hi")]})["model"] == "claude-up"


def test_consecutive_user_messages_are_merged_into_one_turn():
    out = to_anthropic({"messages": [user("one"), user("two")]})
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}]


def test_data_url_image_becomes_a_base64_image_block():
    part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}}
    out = to_anthropic({"messages": [user([{"type": "text", "text": "What is it?"}, part])]})
    image = out["messages"][0]["content"][1]
    assert image == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}


def test_http_image_url_becomes_a_url_image_block():
    out = to_anthropic({"messages": [user([{"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}}])]})
    assert out["messages"][0]["content"] == [{"type": "image", "source": {"type": "url", "url": "https://x.test/cat.jpg"}}]


def test_non_base64_data_url_is_refused():
    body = {"messages": [user([{"type": "image_url", "image_url": {"url": "data:image/svg+xml,<svg/>"}}])]}
    refused(lambda: to_anthropic(body), "messages[0].content[0].image_url")


def test_inline_pdf_file_becomes_a_document_block():
    part = {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}}
    out = to_anthropic({"messages": [user([part])]})
    assert out["messages"][0]["content"] == [{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}, "title": "a.pdf"}]


def test_audio_input_part_is_refused():
    part = {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}
    refused(lambda: to_anthropic({"messages": [user([part])]}), "messages[0].content[0]")


def test_function_tools_become_anthropic_tools_with_input_schema():
    out = to_anthropic({"messages": [user("Weather?")], "tools": [WEATHER_TOOL]})
    assert out["tools"] == [{"name": "get_weather", "description": "Weather now", "input_schema": WEATHER_TOOL["function"]["parameters"]}]
    assert out["tool_choice"] == {"type": "auto"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    ],
)
def test_tool_choice_maps_to_its_anthropic_equivalent(choice, expected):
    out = to_anthropic({"messages": [user("Weather?")], "tools": [WEATHER_TOOL], "tool_choice": choice})
    assert out["tool_choice"] == expected


def test_parallel_tool_calls_false_disables_parallel_tool_use():
    out = to_anthropic({"messages": [user("Weather?")], "tools": [WEATHER_TOOL], "tool_choice": "required", "parallel_tool_calls": False})
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_assistant_tool_calls_with_null_content_become_tool_use_blocks_only():
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    body = {"messages": [user("Weather?"), {"role": "assistant", "content": None, "tool_calls": [call]}, {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]}
    out = to_anthropic(body)
    assert out["messages"][1] == {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}]}


def test_empty_tool_call_arguments_mean_an_empty_input():
    call = {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": ""}}
    out = to_anthropic({"messages": [user("Time?"), {"role": "assistant", "content": "", "tool_calls": [call]}]})
    assert out["messages"][1]["content"][0]["input"] == {}


def test_tool_call_arguments_that_are_not_a_json_object_are_refused():
    call = {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": "{not json"}}
    body = {"messages": [user("Time?"), {"role": "assistant", "tool_calls": [call]}]}
    refused(lambda: to_anthropic(body), "messages[1].tool_calls[0].function.arguments")


def test_consecutive_tool_results_and_a_following_user_text_share_one_user_turn():
    calls = [{"id": f"call_{i}", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}} for i in (1, 2)]
    body = {
        "messages": [
            user("Weather in two cities?"),
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
            user("Thanks, summarise."),
        ]
    }
    out = to_anthropic(body)
    assert len(out["messages"]) == 3
    assert out["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "rain"},
            {"type": "text", "text": "Thanks, summarise."},
        ],
    }


def test_tool_results_are_moved_before_user_text_in_the_same_turn():
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = {"messages": [user("Go"), {"role": "assistant", "tool_calls": [call]}, user("also this"), {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]}
    assert [b["type"] for b in to_anthropic(body)["messages"][2]["content"]] == ["tool_result", "text"]


def test_empty_assistant_message_is_dropped_and_its_neighbours_merged():
    out = to_anthropic({"messages": [user("a"), {"role": "assistant", "content": ""}, user("b")]})
    assert [m["role"] for m in out["messages"]] == ["user"]


def test_trailing_whitespace_is_stripped_from_a_final_assistant_prefill():
    out = to_anthropic({"messages": [user("Count"), {"role": "assistant", "content": "1, 2, "}]})
    assert out["messages"][-1] == {"role": "assistant", "content": "1, 2,"}


def test_max_completion_tokens_is_preferred_over_max_tokens():
    assert to_anthropic({"messages": [user("x")], "max_tokens": 50, "max_completion_tokens": 70})["max_tokens"] == 70


def test_missing_max_tokens_uses_the_default():
    assert to_anthropic({"messages": [user("x")]}, default_max_tokens=1234)["max_tokens"] == 1234


def test_stop_string_becomes_a_list_of_stop_sequences():
    assert to_anthropic({"messages": [user("x")], "stop": "END"})["stop_sequences"] == ["END"]
    assert to_anthropic({"messages": [user("x")], "stop": ["A", "B"]})["stop_sequences"] == ["A", "B"]


def test_temperature_above_one_is_clamped_to_one():
    assert to_anthropic({"messages": [user("x")], "temperature": 1.7})["temperature"] == 1.0


def test_user_becomes_metadata_user_id():
    assert to_anthropic({"messages": [user("x")], "user": "u-42"})["metadata"] == {"user_id": "u-42"}


def test_stream_is_requested_from_the_upstream():
    assert openai_to_anthropic_request({"messages": [user("x")], "stream": True, "stream_options": {"include_usage": True}}, "m")["stream"] is True


def test_json_schema_response_format_becomes_a_system_instruction():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    body = {"messages": [{"role": "system", "content": "Be exact."}, user("x")], "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}}
    system = to_anthropic(body)["system"]
    assert system.startswith("Be exact.\n\n" + JSON_INSTRUCTION)
    assert '{"type":"object","properties":{"n":{"type":"integer"}}}' in system


def test_json_object_response_format_becomes_the_whole_system_prompt_when_there_is_none():
    assert to_anthropic({"messages": [user("x")], "response_format": {"type": "json_object"}})["system"] == JSON_INSTRUCTION


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"n": 2}, "n"), ({"logprobs": True}, "logprobs"), ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"), ({"functions": [{"name": "f"}]}, "functions")],
)
def test_fields_an_anthropic_model_cannot_honour_are_refused_by_name(extra, param):
    refused(lambda: to_anthropic({"messages": [user("x")], **extra}), param)


def test_sampling_hints_without_an_anthropic_equivalent_are_dropped():
    out = to_anthropic({"messages": [user("x")], "seed": 7, "presence_penalty": 0.5, "n": 1, "store": False})
    assert set(out) == {"model", "max_tokens", "messages"}


# --- Anthropic -> OpenAI -------------------------------------------------------------------


def test_anthropic_system_blocks_become_a_leading_system_message():
    body = {"system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "Be kind."}], "messages": [user("Hi")]}
    assert to_openai(body)["messages"] == [{"role": "system", "content": "Be brief.\nBe kind."}, {"role": "user", "content": "Hi"}]


def test_system_role_messages_in_the_history_stay_in_place():
    out = to_openai({"messages": [user("Hi"), {"role": "system", "content": "Now be formal."}]})
    assert out["messages"][1] == {"role": "system", "content": "Now be formal."}


def test_tool_use_blocks_become_tool_calls_with_json_string_arguments():
    content = [{"type": "thinking", "thinking": "hmm", "signature": "sig"}, {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]
    out = to_openai({"messages": [user("Weather?"), {"role": "assistant", "content": content}]})
    assert out["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}],
    }


def test_tool_results_become_tool_messages_ahead_of_the_user_text():
    content = [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "rain"}]},
        {"type": "text", "text": "Summarise."},
    ]
    out = to_openai({"messages": [user(content)]})
    assert out["messages"] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "rain"},
        {"role": "user", "content": "Summarise."},
    ]


def test_failed_tool_result_says_so_in_the_tool_message():
    out = to_openai({"messages": [user([{"type": "tool_result", "tool_use_id": "t", "content": "no such city", "is_error": True}])]})
    assert out["messages"] == [{"role": "tool", "tool_call_id": "t", "content": "Error: no such city"}]


def test_image_in_a_tool_result_follows_in_a_user_message():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    out = to_openai({"messages": [user([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "shot"}, image]}])]})
    assert out["messages"] == [
        {"role": "tool", "tool_call_id": "t", "content": "shot"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
    ]


def test_anthropic_images_become_image_url_parts():
    base64_image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    url_image = {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}
    out = to_openai({"messages": [user([{"type": "text", "text": "Compare"}, base64_image, url_image])]})
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
    ]


def test_anthropic_tools_and_forced_tool_choice_become_openai_equivalents():
    tools = [{"name": "get_weather", "description": "Weather now", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}]
    out = to_openai({"messages": [user("x")], "tools": tools, "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}})
    assert out["tools"] == [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}, "description": "Weather now"}}]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert out["parallel_tool_calls"] is False


def test_tool_choice_any_becomes_required():
    assert to_openai({"messages": [user("x")], "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": "any"}})["tool_choice"] == "required"


def test_server_tools_are_refused():
    tools = [{"type": "web_search_20250305", "name": "web_search"}]
    refused(lambda: to_openai({"messages": [user("x")], "tools": tools}), "tools[0]")


def test_sampling_and_limit_fields_carry_over_and_anthropic_only_ones_are_dropped():
    body = {
        "messages": [user("x")],
        "max_tokens": 300,
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "metadata": {"user_id": "u-1"},
        "thinking": {"type": "enabled", "budget_tokens": 2000},
    }
    out = to_openai(body)
    assert {k: v for k, v in out.items() if k not in ("model", "messages")} == {"max_tokens": 300, "stop": ["END"], "temperature": 0.2, "top_p": 0.9, "user": "u-1"}


def test_streaming_request_asks_the_upstream_for_usage():
    out = anthropic_to_openai_request({"messages": [user("x")], "max_tokens": 5, "stream": True}, "m")
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}


def test_output_format_becomes_a_json_schema_response_format():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    out = to_openai({"messages": [user("x")], "output_config": {"format": {"type": "json_schema", "schema": schema}}})
    assert out["response_format"] == {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}


def test_tool_conversation_survives_a_round_trip():
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    messages = [
        {"role": "system", "content": "Be brief."},
        user("Weather?"),
        {"role": "assistant", "content": "Checking.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        user("And?"),
    ]
    anthropic = to_anthropic({"messages": messages, "max_tokens": 100})
    back = to_openai(anthropic)
    assert back["messages"] == [messages[0], messages[1], messages[2], messages[3], {"role": "user", "content": "And?"}]
