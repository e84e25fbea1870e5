"""Request bodies against the providers' published shapes (validate.py): each wrong-typed known
field is refused as INVALID_REQUEST naming its path and what it should be; the shapes the
official SDKs send (checked against the SDKs' own request types) and fields unknown to the
gateway pass."""

from typing import Any

import pytest
from anthropic.types import Message as AnthropicReply
from anthropic.types.message_count_tokens_params import MessageCountTokensParams
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from openai.types import EmbeddingCreateParams
from openai.types.chat import ChatCompletion
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
from pydantic import TypeAdapter

from tokenbrake.core import ErrorKind, GatewayError
from tokenbrake.wire import validate

PNG = "iVBORw0KGgo="
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}
ANTHROPIC_TOOL = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {}}}
SDK_SHAPES = {
    validate.check_openai_chat: TypeAdapter(CompletionCreateParamsNonStreaming),
    validate.check_openai_embeddings: TypeAdapter(EmbeddingCreateParams),
    validate.check_anthropic_messages: TypeAdapter(MessageCreateParamsNonStreaming),
    validate.check_anthropic_count_tokens: TypeAdapter(MessageCountTokensParams),
}


def chat(*messages: dict, **fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": list(messages) or [{"role": "user", "content": "hi"}], **fields}


def messages(*turns: dict, **fields: Any) -> dict[str, Any]:
    return {"model": "claude", "max_tokens": 100, "messages": list(turns) or [{"role": "user", "content": "hi"}], **fields}


def user(*parts: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


def refusal(check, body: dict[str, Any]) -> GatewayError:
    with pytest.raises(GatewayError) as raised:
        check(body)
    assert raised.value.kind is ErrorKind.INVALID_REQUEST
    return raised.value


REFUSED_OPENAI = [
    (chat({"role": "user", "content": 5}), "messages[0].content", "a string or an array of content parts, got number"),
    (chat(user({"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": 5}})),
     "messages[0].content[1].image_url.url", "expected a string, got number"),
    (chat(user({"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "max"}})),
     "messages[0].content[0].image_url.detail", "one of 'auto', 'low' or 'high'"),
    (chat(user({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "ogg"}})),
     "messages[0].content[0].input_audio.format", "one of 'wav' or 'mp3'"),
    (chat(user({"type": "file", "file": {"file_data": 7}})), "messages[0].content[0].file.file_data", "a string"),
    (chat(user({"type": "video_url", "video_url": {"url": "https://x/v.mp4"}})),
     "messages[0].content[0]", "text, image_url, input_audio or file, got an object of type 'video_url'"),
    (chat(user("a bare string")), "messages[0].content[0]", "got string"),
    (chat({"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}),
     "messages[0].content[0]", "a content part of type text"),
    (chat({"role": "assistant", "tool_calls": "get_weather"}), "messages[0].tool_calls", "expected an array, got string"),
    (chat({"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": {}}}]}),
     "messages[0].tool_calls[0].function.arguments", "expected a string, got object"),
    (chat({"role": "tool", "content": "12C"}), "messages[0].tool_call_id", "this field is required"),
    (chat({"content": "no role"}), "messages[0]", "a message object with a string role"),
    (chat(temperature="hot"), "temperature", "expected a number, got string"),
    (chat(temperature=2.5), "temperature", "must be at most 2"),
    (chat(top_p=True), "top_p", "expected a number, got boolean"),
    (chat(tools=[1]), "tools[0]", "a tool of type function or custom, got number"),
    (chat(tools=[{"type": "function", "function": {"name": 3}}]), "tools[0].function.name", "a string"),
    (chat(tool_choice="always"), "tool_choice", "one of 'none', 'auto' or 'required'"),
    (chat(tool_choice={"type": "function", "function": {}}), "tool_choice.function.name", "this field is required"),
    (chat(max_tokens=0), "max_tokens", "must be at least 1"),
    (chat(max_completion_tokens="100"), "max_completion_tokens", "an integer, got string"),
    (chat(n=1.5), "n", "an integer, got number"),
    (chat(stop=3), "stop", "a string or an array of strings"),
    (chat(stop=["a", 1]), "stop[1]", "a string"),
    (chat(logit_bias={"50256": "ban"}), "logit_bias.50256", "an integer"),
    (chat(logit_bias={"50256": -101}), "logit_bias.50256", "at least -100"),
    (chat(stream="yes"), "stream", "a boolean"),
    (chat(stream_options={"include_usage": 1}), "stream_options.include_usage", "a boolean"),
    (chat(metadata={"team": 5}), "metadata.team", "a string"),
    (chat(response_format={"type": "xml"}), "response_format", "text, json_object or json_schema"),
    (chat(response_format={"type": "json_schema", "json_schema": {"schema": {}}}), "response_format.json_schema.name",
     "this field is required"),
    (chat(messages=None), "messages", "this field is required"),
    (chat(messages=[]), "messages", "must not be empty"),
    ({"messages": [{"role": "user", "content": "x"}]}, "model", "this field is required"),
]


@pytest.mark.parametrize(("body", "param", "problem"), REFUSED_OPENAI)
def test_openai_chat_refuses_a_wrong_typed_field_naming_its_path(body, param, problem):
    error = refusal(validate.check_openai_chat, body)
    assert error.param == param
    assert error.message.startswith(f"'{param}': ") and problem in error.message


REFUSED_ANTHROPIC = [
    (messages(max_tokens="ten"), "max_tokens", "expected an integer, got string"),
    (messages(max_tokens=None), "max_tokens", "this field is required"),
    (messages(system=5), "system", "a string or an array of text blocks, got number"),
    (messages(system=[{"type": "image", "source": {}}]), "system[0]", "a text block"),
    (messages({"role": "user", "content": 5}), "messages[0].content", "a string or an array of content blocks"),
    (messages(user({"type": "text", "text": ["a"]})), "messages[0].content[0].text", "a string, got array"),
    (messages(user({"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": PNG}})),
     "messages[0].content[0].source.media_type", "'image/png'"),
    (messages(user({"type": "image", "source": {"type": "path", "path": "/etc"}})),
     "messages[0].content[0].source", "base64, url or file"),
    (messages(user({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": 1}})),
     "messages[0].content[0].source.data", "a string"),
    (messages({"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": "{}"}]}),
     "messages[0].content[0].input", "an object, got string"),
    (messages(user({"type": "tool_result", "tool_use_id": "t1", "content": 5})),
     "messages[0].content[0].content", "a string or an array of content blocks"),
    (messages(user({"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "image", "source": 3}]})),
     "messages[0].content[0].content[0].source", "an image source"),
    (messages(user({"text": "no type"})), "messages[0].content[0]", "a content block object with a string type"),
    (messages(temperature=1.5), "temperature", "must be at most 1"),
    (messages(top_k=-1), "top_k", "must be at least 0"),
    (messages(stop_sequences="END"), "stop_sequences", "an array, got string"),
    (messages(tools=[1]), "tools[0]", "a tool object, got number"),
    (messages(tools=[{"name": "f"}]), "tools[0].input_schema", "this field is required"),
    (messages(tool_choice={"type": "tool"}), "tool_choice.name", "this field is required"),
    (messages(tool_choice="auto"), "tool_choice", "auto, any, none or tool, got string"),
    (messages(metadata={"user_id": 7}), "metadata.user_id", "a string"),
    (messages(thinking={"type": "enabled", "budget_tokens": "lots"}), "thinking.budget_tokens", "an integer"),
    (messages(stream=1), "stream", "a boolean"),
]


@pytest.mark.parametrize(("body", "param", "problem"), REFUSED_ANTHROPIC)
def test_anthropic_messages_refuses_a_wrong_typed_field_naming_its_path(body, param, problem):
    error = refusal(validate.check_anthropic_messages, body)
    assert error.param == param
    assert error.message.startswith(f"'{param}': ") and problem in error.message


def test_count_tokens_needs_no_max_tokens_but_checks_the_rest():
    validate.check_anthropic_count_tokens({"model": "claude", "messages": [{"role": "user", "content": "hi"}]})
    error = refusal(validate.check_anthropic_count_tokens, {"model": "claude", "system": 5, "messages": [user()]})
    assert error.param == "system"


@pytest.mark.parametrize(("value", "param", "problem"), [
    (None, "input", "this field is required"),
    ([], "input", "must not be empty"),
    (5, "input", "a string, an array of strings, or token arrays"),
    (["a", 1], "input[1]", "a string"),
    ([1, "a"], "input[1]", "an integer"),
    ([[1], []], "input[1]", "must not be empty"),
])
def test_embeddings_input_of_the_wrong_shape_is_refused(value, param, problem):
    error = refusal(validate.check_openai_embeddings, {"model": "text-embedding-3-small", "input": value})
    assert error.param == param and problem in error.message


def test_embeddings_dimensions_must_be_a_positive_integer():
    error = refusal(validate.check_openai_embeddings, {"model": "e", "input": "x", "dimensions": 0})
    assert error.param == "dimensions"


def sdk_reply_turn() -> dict[str, Any]:
    """An assistant turn as the OpenAI SDK user sends it back: the reply's message dumped."""
    reply = ChatCompletion.model_validate({
        "id": "c", "object": "chat.completion", "created": 0, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None, "refusal": None, "annotations": [],
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}}],
    })
    return reply.choices[0].message.model_dump(exclude_none=True)


def anthropic_reply_turn() -> dict[str, Any]:
    """An assistant turn as the Anthropic SDK user sends it back: the reply's content dumped."""
    reply = AnthropicReply.model_validate({
        "id": "m", "type": "message", "role": "assistant", "model": "claude", "stop_reason": "tool_use",
        "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1},
        "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "Let me look.", "citations": None},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}],
    })
    return {"role": "assistant", "content": [block.model_dump() for block in reply.content]}


ACCEPTED = [
    (validate.check_openai_chat, chat()),
    (validate.check_openai_chat, chat(
        {"role": "developer", "content": "Be brief."}, {"role": "system", "content": [{"type": "text", "text": "Really."}]},
        user({"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}},
             {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
             {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
             {"type": "file", "file": {"file_id": "file-abc"}}),
        sdk_reply_turn(), {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "12C"}]},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
        tools=[WEATHER, {"type": "custom", "custom": {"name": "grep"}}],
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, parallel_tool_calls=False,
        temperature=0, top_p=1, frequency_penalty=-2, presence_penalty=2.0, n=2, seed=7, stop="\n",
        logit_bias={"50256": -100}, logprobs=True, top_logprobs=3, max_completion_tokens=50, user="u1",
        metadata={"feature": "chat"}, store=False, service_tier="auto", reasoning_effort="low",
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}, "strict": True}},
    )),
    (validate.check_openai_chat, chat(response_format={"type": "json_object"}, tool_choice="required", stop=None,
                                      temperature=None, max_tokens=10, prediction={"type": "content", "content": "x"})),
    (validate.check_openai_embeddings, {"model": "e", "input": "one"}),
    (validate.check_openai_embeddings, {"model": "e", "input": ["one", "two"], "dimensions": 256, "encoding_format": "base64"}),
    (validate.check_openai_embeddings, {"model": "e", "input": [[1, 2], [3]]}),
    (validate.check_openai_embeddings, {"model": "e", "input": [1, 2, 3]}),
    (validate.check_anthropic_messages, messages()),
    (validate.check_anthropic_messages, messages(
        user({"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
             {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
             {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
             {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}, "title": "a"},
             {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}},
             {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "chunk"}]}}),
        anthropic_reply_turn(),
        user({"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "12C"}], "is_error": False}),
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        tools=[ANTHROPIC_TOOL, {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True}, temperature=1, top_p=0.9, top_k=5,
        stop_sequences=["END"], metadata={"user_id": "u1"}, thinking={"type": "enabled", "budget_tokens": 1024},
        stream=False, service_tier="auto",
    )),
    (validate.check_anthropic_count_tokens, {"model": "claude", "system": "s", "messages": [user({"type": "text", "text": "x"})],
                                             "tools": [ANTHROPIC_TOOL]}),
]


@pytest.mark.parametrize(("check", "body"), ACCEPTED)
def test_shapes_the_official_sdks_send_are_accepted(check, body):
    SDK_SHAPES[check].validate_python(body)  # the body is one the SDK's own types describe
    check(body)


@pytest.mark.parametrize(("check", "body"), [
    (validate.check_openai_chat, chat(user({"type": "text", "text": "x", "new_flag": 1}), brand_new_field={"any": [1]})),
    (validate.check_anthropic_messages, messages(
        {"role": "assistant", "content": [{"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {}},
                                          {"type": "web_search_tool_result", "tool_use_id": "s1", "content": []}]},
        context_management={"edits": []})),
])
def test_fields_and_blocks_unknown_to_the_gateway_pass_through(check, body):
    check(body)


def test_validation_leaves_the_body_as_it_was():
    body = chat(temperature=1, max_tokens=10)
    validate.check_openai_chat(body)
    assert body["temperature"] == 1 and isinstance(body["temperature"], int)
