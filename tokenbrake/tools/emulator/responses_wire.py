"""OpenAI's Responses wire format (`/v1/responses`): reading requests, writing Response objects
and the numbered event stream, as OpenAI's API does."""

from __future__ import annotations

import time
import zlib
from typing import Any

import orjson

from tokenbrake.tools.emulator.compose import LENGTH, Answer, Ask, output_schema
from tokenbrake.tools.emulator.directives import last_user_texts
from tokenbrake.tools.emulator.errors import invalid
from tokenbrake.tools.emulator.ids import new_id
from tokenbrake.tools.emulator.streaming import BODY, CONTENT, PREAMBLE, Frame
from tokenbrake.wire.sse import encode
from tokenbrake.wire.tokens import count_text

ARGUMENT_FRAGMENT = 12  # characters of function-call arguments per delta


def _items(body: dict[str, Any]) -> list[Any]:
    value = body.get("input")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return value if isinstance(value, list) else []


def _as_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The input's messages, their parts' text read the way `last_user_texts` reads chat's."""
    out = []
    for item in _items(body):
        if isinstance(item, dict) and item.get("type", "message") == "message":
            content = item.get("content")
            if isinstance(content, list):
                content = [{"text": p.get("text")} for p in content if isinstance(p, dict)]
            out.append({"role": item.get("role"), "content": content})
    return out


def directive_texts(body: dict[str, Any]) -> list[str]:
    return last_user_texts(_as_messages(body))


def count_input(body: dict[str, Any]) -> int:
    return count_text(orjson.dumps([body.get("instructions"), body.get("input"), body.get("tools")]).decode())


def read_responses(body: dict[str, Any]) -> Ask:
    """Validate a Responses request the way the API does and say what it asks for."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    if not isinstance(body.get("input"), str | list):
        raise invalid("Invalid 'input': expected a string or an array of input items.", "input")
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or limit < 16):
        raise invalid(f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, "
                      f"but got {limit} instead.", "max_output_tokens", "integer_below_min_value")
    tools = [(t["name"], t.get("parameters") or {}) for t in body.get("tools") or []
             if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("name"), str)]
    choice = body.get("tool_choice")
    forced = choice.get("name") if isinstance(choice, dict) and choice.get("type") == "function" else None
    items = _items(body)
    last = items[-1] if items and isinstance(items[-1], dict) else {}
    form = (body.get("text") or {}).get("format") or {}
    return Ask(
        model=model,
        stream=body.get("stream") is True,
        seed=zlib.crc32(orjson.dumps(body.get("input"))),
        max_tokens=limit,
        tools=tools,
        forced_tool=forced,
        wants_tools=bool(tools) and choice != "none" and last.get("role") == "user",
        json_schema=output_schema(form.get("type"), form.get("schema")),
    )


def usage(ask: Ask, answer: Answer, input_tokens: int) -> dict[str, Any]:
    output_tokens = answer.output_tokens
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": ask.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": answer.reasoning_tokens},
        "total_tokens": input_tokens + output_tokens,
    }


def _output(answer: Answer) -> list[dict[str, Any]]:
    # OpenAI shows no reasoning text unless a summary is asked for: the item, and its tokens in usage.
    reasoning = [{"id": new_id("rs_"), "type": "reasoning", "summary": []}] if answer.thinking else []
    return reasoning + _answer_items(answer)


def _answer_items(answer: Answer) -> list[dict[str, Any]]:
    if answer.tool_calls:
        return [{"id": new_id("fc_"), "type": "function_call", "status": "completed", "call_id": new_id("call_"),
                 "name": call.name, "arguments": call.arguments} for call in answer.tool_calls]
    return [{"id": new_id("msg_"), "type": "message", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": answer.text, "annotations": [], "logprobs": []}]}]


def _response(body: dict[str, Any], response_id: str, status: str, output: list, usage_: Any) -> dict[str, Any]:
    incomplete = status == "incomplete"
    return {
        "id": response_id, "object": "response", "created_at": int(time.time()), "status": status,
        "error": None, "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"], "output": output, "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"), "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0), "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0), "truncation": body.get("truncation", "disabled"), "usage": usage_,
        "metadata": body.get("metadata") or {},
    }


def _status(answer: Answer) -> str:
    return "incomplete" if answer.finish == LENGTH else "completed"


def reply(body: dict[str, Any], ask: Ask, answer: Answer, input_tokens: int) -> dict[str, Any]:
    return _response(body, new_id("resp_", 32), _status(answer), _output(answer), usage(ask, answer, input_tokens))


def events(body: dict[str, Any], ask: Ask, answer: Answer, input_tokens: int) -> list[Frame]:
    """The whole stream as frames, each event numbered in order."""
    response_id, output = new_id("resp_", 32), _output(answer)
    frames: list[Frame] = []

    def emit(kind: str, role: int = BODY, sent: str = "", **data: Any) -> None:
        """One event; `role` and `sent` are its frame's (see Frame), the rest its data."""
        frames.append(Frame(encode({"type": kind, "sequence_number": len(frames), **data}, kind), role, sent))

    shell = _response(body, response_id, "in_progress", [], None)
    emit("response.created", PREAMBLE, response=shell)
    emit("response.in_progress", PREAMBLE, response=shell)
    for index, item in enumerate(output):
        at = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            emit("response.output_item.added", output_index=index, item={**item, "status": "in_progress", "content": []})
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            emit("response.content_part.added", **at, content_index=0, part=part)
            for piece in answer.pieces:
                emit("response.output_text.delta", CONTENT, piece, **at, content_index=0, delta=piece, logprobs=[])
            emit("response.output_text.done", **at, content_index=0, text=answer.text, logprobs=[])
            emit("response.content_part.done", **at, content_index=0, part=item["content"][0])
        elif item["type"] == "reasoning":
            emit("response.output_item.added", output_index=index, item=item)
        else:
            emit("response.output_item.added", output_index=index, item={**item, "status": "in_progress", "arguments": ""})
            arguments = item["arguments"]
            for start in range(0, len(arguments), ARGUMENT_FRAGMENT):
                fragment = arguments[start:start + ARGUMENT_FRAGMENT]
                emit("response.function_call_arguments.delta", CONTENT, fragment, **at, delta=fragment)
            emit("response.function_call_arguments.done", **at, arguments=arguments)
        emit("response.output_item.done", output_index=index, item=item)
    final = _response(body, response_id, _status(answer), output, usage(ask, answer, input_tokens))
    emit(f"response.{final['status']}", response=final)
    return frames
