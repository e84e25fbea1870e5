"""Malformed Responses requests, whole or streamed, are refused before anything is spent with a
4xx in OpenAI's error format naming the field at fault, as the SDK raises it."""

import httpx
import openai
import pytest

BAD = [  # (body, the param the error names)
    ({"model": "small"}, "input"),
    ({"model": 5, "input": "x"}, "model"),
    ({"model": "small", "input": 5}, "input"),
    ({"model": "small", "input": [5]}, "input[0]"),
    ({"model": "small", "input": [{"role": "wizard", "content": "x"}]}, "input[0].role"),
    ({"model": "small", "input": [{"role": "user", "content": 5}]}, "input[0].content"),
    ({"model": "small", "input": [{"role": "user", "content": [{"type": "input_text"}]}]}, "input[0].content[0].text"),
    ({"model": "small", "input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "x"}]}]},
     "input[0].content[0].type"),
    ({"model": "small", "input": [{"type": "function_call", "call_id": "c"}]}, "input[0].name"),
    ({"model": "small", "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"model": "small", "input": [{"type": "function_call_output", "call_id": "c", "output": 5}]}, "input[0].output"),
    ({"model": "small", "input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
    ({"model": "small", "input": "x", "tools": "no"}, "tools"),
    ({"model": "small", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
    ({"model": "small", "input": "x", "text": "json"}, "text"),
    ({"model": "small", "input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type"),
    ({"model": "small", "input": "x", "reasoning": "high"}, "reasoning"),
    ({"model": "small", "input": "x", "max_output_tokens": "5"}, "max_output_tokens"),
    ({"model": "small", "input": "x", "instructions": 5}, "instructions"),
    ({"model": "small", "input": "x", "temperature": "hot"}, "temperature"),
    ({"model": "small", "input": "x", "stream": "yes"}, "stream"),
    ({"model": "small", "input": "x", "tool_choice": 5}, "tool_choice"),
    ({"model": "small", "input": "x", "background": True}, "background"),
    ({"model": "claude-fast", "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{x"}]},
     "messages[0].tool_calls[0].function.arguments"),
]


@pytest.mark.parametrize(("body", "param"), BAD, ids=[param for _, param in BAD])
def test_a_malformed_request_is_refused_naming_the_field(gateway, api_key, body, param):
    for stream in (False, True):
        sent = {**body, "stream": True} if stream and "stream" not in body else body
        reply = httpx.post(gateway.url + "/v1/responses", json=sent, headers={"authorization": f"Bearer {api_key}"},
                           timeout=30)
        assert reply.status_code == 400 and reply.headers["content-type"] == "application/json", reply.text
        error = reply.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


def test_the_sdk_raises_bad_request_with_the_message(openai_client):
    with pytest.raises(openai.BadRequestError, match="'temperature'"):
        openai_client.responses.create(model="small", input="x", temperature="hot")  # type: ignore[arg-type]
