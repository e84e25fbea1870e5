"""Non-streaming answers between the formats: a `chat.completion` <-> an Anthropic `message`.

`model` is the name reported to the client. Ids keep the upstream's identity behind the other
format's prefix (`chatcmpl-abc` <-> `msg_abc`). Anthropic thinking blocks and OpenAI-compatible
`reasoning_content` are not carried over: neither side's SDK can send them back to the other.
Tool arguments that are not a JSON object cannot become Anthropic `input` and fail the answer
as an UPSTREAM error, as the Anthropic SDK itself fails on such arguments in a stream.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from tokenbrake.core import ErrorKind, GatewayError
from tokenbrake.wire.translate.messages import dump_json, parse_arguments
from tokenbrake.wire.translate.usage import anthropic_usage, openai_usage, usage_from_anthropic, usage_from_openai

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def anthropic_stop_reason(finish_reason: str | None, called_tools: bool) -> str:
    # Some OpenAI-compatible servers (Ollama among them) say "stop" after tool calls.
    if called_tools and finish_reason in (None, "stop", "tool_calls", "function_call"):
        return "tool_use"
    return _STOP_REASONS.get(finish_reason or "stop", "end_turn")


def openai_finish_reason(stop_reason: str | None) -> str:
    return _FINISH_REASONS.get(stop_reason or "end_turn", "stop")


def message_id(openai_id: str | None) -> str:
    return "msg_" + (openai_id.removeprefix("chatcmpl-") if openai_id else uuid.uuid4().hex)


def completion_id(anthropic_id: str | None) -> str:
    return "chatcmpl-" + (anthropic_id.removeprefix("msg_") if anthropic_id else uuid.uuid4().hex)


def tool_use_id(call_id: str | None) -> str:
    return call_id or "toolu_" + uuid.uuid4().hex[:24]


def openai_to_anthropic_response(resp: dict[str, Any], model: str) -> dict[str, Any]:
    choices = resp.get("choices")
    if not choices or not isinstance(choices[0], dict):
        raise GatewayError(ErrorKind.UPSTREAM, "the upstream answer has no choices")
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = _openai_text(message.get("content")) or message.get("refusal")
    if text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls") or []
    for k, call in enumerate(calls):
        function = call.get("function") or {}
        param = f"choices[0].message.tool_calls[{k}].function.arguments"
        arguments = parse_arguments(function.get("arguments"), param, ErrorKind.UPSTREAM)
        name = function.get("name") or ""
        content.append({"type": "tool_use", "id": tool_use_id(call.get("id")), "name": name, "input": arguments})
    stop_reason = anthropic_stop_reason(choice.get("finish_reason"), bool(calls))
    if message.get("refusal") and not message.get("content"):
        stop_reason = "refusal"
    return {
        "id": message_id(resp.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": anthropic_usage(usage_from_openai(resp.get("usage"))),
    }


def _openai_text(content: Any) -> str:
    if isinstance(content, list):  # a few compatible servers answer with parts
        return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def anthropic_to_openai_response(resp: dict[str, Any], model: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in resp.get("content") or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            function = {"name": block.get("name") or "", "arguments": dump_json(block.get("input") or {})}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
    text = "".join(texts)
    content = text or (None if calls else "")
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if calls:
        message["tool_calls"] = calls
    finish_reason = openai_finish_reason(resp.get("stop_reason"))
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
    return {
        "id": completion_id(resp.get("id")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": openai_usage(usage_from_anthropic(resp.get("usage"))),
    }
