"""Response objects: a chat completion's answer in the Responses shape, and the usage both ways.

The object echoes the request's settings as OpenAI's does (the SDKs read `tools`,
`tool_choice`, `text` and `parallel_tool_calls` back), and its `status` says how the answer
ended: `completed`, or `incomplete` with the reason when the output cap cut it.
"""

from __future__ import annotations

import time
from typing import Any

from tokenbrake.core import Usage
from tokenbrake.wire.responses_api import Exchange, new_item_id

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def responses_usage(u: Usage) -> dict[str, Any]:
    """`Usage` in the Responses shape: input counts cached and cache-written tokens too."""
    input_tokens = u.input_tokens + u.cached_input_tokens + u.cache_write_tokens
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_input_tokens, "cache_write_tokens": u.cache_write_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": input_tokens + u.output_tokens,
    }


def usage_from_responses(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("input_tokens_details") or {}
    cached, written = int(details.get("cached_tokens") or 0), int(details.get("cache_write_tokens") or 0)
    return Usage(
        input_tokens=max(int(usage.get("input_tokens") or 0) - cached - written, 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        cached_input_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=int((usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0),
    )


def response_object(ex: Exchange, status: str, output: list[dict[str, Any]], usage: Usage | None,
                    finish_reason: str | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
    body = ex.body
    reason = INCOMPLETE.get(finish_reason or "")
    if status == "completed" and reason is not None:
        status = "incomplete"
    reasoning = body.get("reasoning") or {}
    return {
        "id": ex.response_id,
        "object": "response",
        "created_at": ex.created_at,
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": {"reason": reason} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": ex.store,
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": responses_usage(usage) if usage is not None else None,
        "user": body.get("user"),
        "safety_identifier": body.get("safety_identifier"),
        "metadata": body.get("metadata") or {},
    }


def message_item(text: str, status: str = "completed", item_id: str | None = None) -> dict[str, Any]:
    content = [text_part(text)] if status != "in_progress" else []
    return {"id": item_id or new_item_id("msg"), "type": "message", "status": status, "role": "assistant",
            "content": content}


def text_part(text: str, logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def token_logprobs(choice: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat choice's token log-probabilities, as a Responses text part holds them (asked for
    with `include: ["message.output_text.logprobs"]` or `top_logprobs`)."""
    content = (choice.get("logprobs") or {}).get("content") or []
    return [{"token": t.get("token", ""), "bytes": t.get("bytes") or list(str(t.get("token", "")).encode()),
             "logprob": t.get("logprob", 0.0), "top_logprobs": t.get("top_logprobs") or []} for t in content]


def call_item(call_id: str, name: str, arguments: str, status: str = "completed",
              item_id: str | None = None) -> dict[str, Any]:
    return {"id": item_id or new_item_id("fc"), "type": "function_call", "status": status, "call_id": call_id,
            "name": name, "arguments": arguments}


def reasoning_item(text: str, item_id: str | None = None) -> dict[str, Any]:
    return {"id": item_id or new_item_id("rs"), "type": "reasoning", "summary": [],
            "content": [{"type": "reasoning_text", "text": text}]}


def from_chat(ex: Exchange, answer: dict[str, Any], usage: Usage) -> dict[str, Any]:
    """A chat completion's first choice as the Response object `ex` is answered with."""
    choice = (answer.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    output = []
    thought = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(thought, str) and thought:
        output.append(reasoning_item(thought))
    if message.get("content"):
        item = message_item(message["content"])
        item["content"] = [text_part(message["content"], token_logprobs(choice))]
        output.append(item)
    elif message.get("refusal"):
        item = message_item("")
        item["content"] = [{"type": "refusal", "refusal": message["refusal"]}]
        output.append(item)
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(call_item(call.get("id") or new_item_id("call"), function.get("name") or "",
                                function.get("arguments") or ""))
    return response_object(ex, "completed", output, usage, choice.get("finish_reason"))


def with_thinking(chat: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    """A chat completion translated from an Anthropic `message`, with its thinking as the
    `reasoning_content` a reasoning server would send (the Response's reasoning item): the chat
    translation drops it, a Responses client has a place for it."""
    thought = "".join(b.get("thinking") or "" for b in message.get("content") or [] if b.get("type") == "thinking")
    if thought and chat.get("choices"):
        chat["choices"][0]["message"]["reasoning_content"] = thought
    return chat


def thinking_chunks(event: str | None, data: dict[str, Any]) -> list[dict[str, Any]]:
    """`with_thinking` for a stream: an Anthropic thinking delta as a chat chunk's reasoning_content."""
    delta = data.get("delta") or {}
    if event != "content_block_delta" or delta.get("type") != "thinking_delta" or not delta.get("thinking"):
        return []
    return [{"choices": [{"index": 0, "delta": {"reasoning_content": delta["thinking"]}}]}]


def output_text(response: dict[str, Any]) -> str:
    """The text and call arguments a Response object's output holds (for counting and storing)."""
    parts: list[str] = []
    for item in response.get("output") or []:
        if item.get("type") == "message":
            parts.extend(part.get("text") or "" for part in item.get("content") or [])
        elif item.get("type") == "function_call":
            parts.append(item.get("arguments") or "")
    return "".join(parts)
