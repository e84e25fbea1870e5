"""The OpenAI Chat Completions wire format: reading requests, writing replies and chunks."""

from __future__ import annotations

import math
import time
import zlib
from typing import Any

import orjson

from tokenbrake.tools.emulator.compose import END, LENGTH, STOP_SEQUENCE, TOOL, Answer, Ask, output_schema
from tokenbrake.tools.emulator.directives import last_user_texts
from tokenbrake.tools.emulator.errors import EmulatorError, invalid
from tokenbrake.tools.emulator.ids import SYSTEM_FINGERPRINT, new_id
from tokenbrake.tools.emulator.streaming import BODY, CONTENT, PREAMBLE, Frame

FINISH = {END: "stop", LENGTH: "length", STOP_SEQUENCE: "stop", TOOL: "tool_calls"}
ARGUMENT_FRAGMENT = 12  # characters of tool-call arguments per chunk
DONE = Frame(b"data: [DONE]\n\n")


def directive_texts(body: dict[str, Any]) -> list[str]:
    return last_user_texts(body.get("messages"))


def read_chat(body: dict[str, Any]) -> Ask:
    """Validate a chat completion request the way the API does and say what it asks for."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("you must provide a model parameter")
    messages = body.get("messages")
    if messages is None:
        raise invalid("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        message = "Invalid 'messages': expected a non-empty array of messages."
        raise invalid(message, "messages", "empty_array")
    tools = [_tool(t) for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    choice = body.get("tool_choice")
    function = choice.get("function") if isinstance(choice, dict) else None
    forced = function.get("name") if isinstance(function, dict) else None
    last_role = messages[-1].get("role") if isinstance(messages[-1], dict) else None
    return Ask(
        model=model,
        stream=_flag(body, "stream"),
        seed=zlib.crc32(orjson.dumps(messages)),
        max_tokens=_max_tokens(body),
        stops=_stops(body.get("stop")),
        tools=tools,
        forced_tool=forced,
        wants_tools=bool(tools) and choice != "none" and last_role == "user",
        n=_positive(body, "n", 1, 128) or 1,
        logprobs=_flag(body, "logprobs"),
        json_schema=_schema(body.get("response_format")),
    )


def _schema(response_format: Any) -> Any:
    if not isinstance(response_format, dict):
        return None
    return output_schema(response_format.get("type"), (response_format.get("json_schema") or {}).get("schema"))


def _tool(tool: dict[str, Any]) -> tuple[str, Any]:
    function = tool.get("function") or {}
    if not isinstance(function.get("name"), str):
        message = "Missing required parameter: 'tools[].function.name'."
        raise invalid(message, "tools", "missing_required_parameter")
    return function["name"], function.get("parameters") or {}


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if value is not None and not isinstance(value, bool):
        raise invalid(f"Invalid type for '{key}': expected a boolean.", key, "invalid_type")
    return bool(value)


def _max_tokens(body: dict[str, Any]) -> int | None:
    limit = _positive(body, "max_completion_tokens", 1, None)
    return limit if limit is not None else _positive(body, "max_tokens", 1, None)


def _positive(body: dict[str, Any], key: str, low: int, high: int | None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(f"Invalid type for '{key}': expected an integer.", key, "invalid_type")
    if value < low or (high is not None and value > high):
        raise invalid(f"Invalid '{key}': integer out of range.", key, "integer_out_of_range")
    return value


def _stops(stop: Any) -> list[str]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) for s in stops):
        raise invalid("Invalid 'stop': expected a string or an array of up to 4 strings.", "stop")
    return stops


def usage(input_tokens: int, output_tokens: int, cached_tokens: int = 0, reasoning_tokens: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion(ask: Ask, answers: list[Answer], input_tokens: int) -> dict[str, Any]:
    return {
        "id": new_id("chatcmpl-", 29),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": ask.model,
        "choices": [_choice(i, answer, ask) for i, answer in enumerate(answers)],
        "usage": _usage(ask, answers, input_tokens),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def _usage(ask: Ask, answers: list[Answer], input_tokens: int) -> dict[str, Any]:
    return usage(input_tokens, sum(a.output_tokens for a in answers), ask.cached_tokens,
                 sum(a.reasoning_tokens for a in answers))


def _choice(index: int, answer: Answer, ask: Ask) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
    if answer.thinking:  # as reasoning servers (vLLM, DeepSeek) return it
        message["reasoning_content"] = answer.thinking
    if answer.tool_calls:
        message["tool_calls"] = [_tool_call(call.name, call.arguments) for call in answer.tool_calls]
    else:
        message["content"] = answer.text
    logprobs = _logprobs(answer, ask.confidence) if ask.logprobs else None
    return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": FINISH[answer.finish]}


def _logprobs(answer: Answer, confidence: float) -> dict[str, Any]:
    """Every piece (one token) at the same log-probability: ln(confidence), deterministic."""
    value = math.log(min(max(confidence, 1e-9), 1.0))
    content = [{"token": piece, "logprob": value, "bytes": list(piece.encode()), "top_logprobs": []}
               for piece in answer.pieces]
    return {"content": content, "refusal": None}


def chunks(ask: Ask, answers: list[Answer], input_tokens: int, include_usage: bool) -> list[Frame]:
    """The whole stream as frames: role chunks, content or tool-call chunks, finish, usage, [DONE]."""
    head = orjson.dumps(
        {
            "id": new_id("chatcmpl-", 29),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": ask.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
    )
    tail = b',"usage":null}\n\n' if include_usage else b"}\n\n"
    prefix = b"data: " + head[:-1] + b',"choices":'

    def chunk(index: int, delta: dict, finish: str | None = None, kind: int = BODY, text: str = "") -> Frame:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return Frame(prefix + orjson.dumps([choice]) + tail, kind, text)

    frames = [chunk(i, _opening_delta(a), kind=PREAMBLE) for i, a in enumerate(answers)]
    for i, answer in enumerate(answers):
        if answer.thinking:
            frames.append(chunk(i, {"reasoning_content": answer.thinking}, kind=CONTENT, text=answer.thinking))
        frames.extend(chunk(i, {"content": piece}, kind=CONTENT, text=piece) for piece in answer.pieces)
        for n, call in enumerate(answer.tool_calls):
            frames.extend(_call_chunks(chunk, i, n, call.name, call.arguments))
    frames.extend(chunk(i, {}, FINISH[a.finish]) for i, a in enumerate(answers))
    if include_usage:
        total = _usage(ask, answers, input_tokens)
        frames.append(Frame(prefix + b'[],"usage":' + orjson.dumps(total) + b"}\n\n"))
    frames.append(DONE)
    return frames


def _tool_call(name: str, arguments: str) -> dict[str, Any]:
    return {"id": new_id("call_"), "type": "function", "function": {"name": name, "arguments": arguments}}


def _opening_delta(answer: Answer) -> dict[str, Any]:
    return {"role": "assistant", "content": None if answer.tool_calls else "", "refusal": None}


def _call_chunks(chunk, choice: int, index: int, name: str, args: str) -> list[Frame]:
    opening = {"index": index, **_tool_call(name, "")}
    frames = [chunk(choice, {"tool_calls": [opening]}, kind=CONTENT, text=name)]
    for start in range(0, len(args), ARGUMENT_FRAGMENT):
        fragment = args[start : start + ARGUMENT_FRAGMENT]
        delta = {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}
        frames.append(chunk(choice, delta, kind=CONTENT, text=fragment))
    return frames


def include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def check_key(headers: Any, key: str) -> None:
    supplied = headers.get("authorization", "")
    if not supplied:
        raise EmulatorError(401, "You didn't provide an API key. You need to provide your API key in an "
                            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                            code="invalid_api_key")  # fmt: skip
    if supplied != "Bearer " + key:
        raise EmulatorError(401, "Incorrect API key provided.", code="invalid_api_key")
