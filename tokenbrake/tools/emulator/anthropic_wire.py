"""The Anthropic Messages wire format: reading requests, writing replies and stream events."""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from tokenbrake.tools.emulator.compose import END, LENGTH, STOP_SEQUENCE, TOOL, Answer, Ask, output_schema
from tokenbrake.tools.emulator.directives import last_user_texts
from tokenbrake.tools.emulator.errors import EmulatorError, invalid
from tokenbrake.tools.emulator.ids import new_id
from tokenbrake.tools.emulator.streaming import BODY, CONTENT, PREAMBLE, Frame
from tokenbrake.wire.sse import encode

STOP_REASON = {END: "end_turn", LENGTH: "max_tokens", STOP_SEQUENCE: "stop_sequence", TOOL: "tool_use"}
ARGUMENT_FRAGMENT = 12  # characters of tool input JSON per input_json_delta
PING = Frame(encode({"type": "ping"}, "ping"), PREAMBLE)
MESSAGE_STOP = Frame(encode({"type": "message_stop"}, "message_stop"))


def directive_texts(body: dict[str, Any]) -> list[str]:
    return last_user_texts(body.get("messages"))


def read_counting(body: dict[str, Any]) -> str:
    """Validate what count_tokens needs (model, messages); return the model."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise invalid("messages: Field required")
    if not messages:
        raise invalid("messages: at least one message is required")
    return model


def read_chat(body: dict[str, Any]) -> Ask:
    """Validate a Messages request the way the API does and say what it asks for."""
    model = read_counting(body)
    limit = body.get("max_tokens")
    if limit is None:
        raise invalid("max_tokens: Field required")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise invalid("max_tokens: Input should be an integer greater than or equal to 1")
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise invalid("stream: Input should be a valid boolean")
    tools = [(t["name"], t.get("input_schema") or {}) for t in body.get("tools") or [] if _custom_tool(t)]
    choice = given if isinstance(given := body.get("tool_choice"), dict) else {}
    last = body["messages"][-1]
    return Ask(
        model=model,
        stream=bool(stream),
        seed=zlib.crc32(orjson.dumps(body["messages"])),
        max_tokens=limit,
        stops=_stops(body.get("stop_sequences")),
        tools=tools,
        forced_tool=choice.get("name") if choice.get("type") == "tool" else None,
        wants_tools=bool(tools) and choice.get("type") != "none" and _user_turn(last),
        json_schema=_asked_schema(body),
    )


def _asked_schema(body: dict[str, Any]) -> Any:
    """The schema the answer must follow: Anthropic's structured outputs (`output_config.format`),
    or, as a model that follows its instructions would, a system prompt that asks for JSON
    conforming to a schema it spells out (what the gateway sends for OpenAI's response_format)."""
    form = (body.get("output_config") or {}).get("format") or {}
    if form.get("type") == "json_schema":
        return output_schema("json_schema", form.get("schema"))
    system = body.get("system")
    text = system if isinstance(system, str) else " ".join(b.get("text", "") for b in system or [] if isinstance(b, dict))
    if "single valid JSON object" not in text:
        return None
    _, found, spelled = text.partition("JSON schema:\n")
    try:
        return output_schema("json_schema", orjson.loads(spelled)) if found else output_schema("json_object", None)
    except orjson.JSONDecodeError:
        return output_schema("json_object", None)


def _custom_tool(tool: Any) -> bool:
    return isinstance(tool, dict) and isinstance(tool.get("name"), str) and "input_schema" in tool


def _user_turn(message: Any) -> bool:
    """A user message that is not (only) returning tool results."""
    if not isinstance(message, dict) or message.get("role") != "user":
        return False
    content = message.get("content")
    if isinstance(content, list):
        return not any(isinstance(p, dict) and p.get("type") == "tool_result" for p in content)
    return True


def _stops(stops: Any) -> list[str]:
    if stops is None:
        return []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise invalid("stop_sequences: Input should be a valid list of strings")
    return stops


def usage(input_tokens: int, output_tokens: int, cached_tokens: int = 0, written_tokens: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens - cached_tokens - written_tokens,
        "cache_creation_input_tokens": written_tokens,
        "cache_read_input_tokens": cached_tokens,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def message(ask: Ask, answer: Answer, input_tokens: int) -> dict[str, Any]:
    if answer.tool_calls:
        content = [_tool_use(call.name, call.input) for call in answer.tool_calls]
    else:
        content = [{"type": "text", "text": answer.text}]
    if answer.thinking:
        content.insert(0, _thinking(answer.thinking))
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": ask.model,
        "content": content,
        "stop_reason": STOP_REASON[answer.finish],
        "stop_sequence": answer.stop_sequence,
        "usage": usage(input_tokens, answer.output_tokens, ask.cached_tokens, ask.cache_write_tokens),
    }


def _thinking(text: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": text, "signature": "emulated-" + new_id("", 16)}


def _tool_use(name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": new_id("toolu_"), "name": name, "input": value}


def events(ask: Ask, answer: Answer, input_tokens: int) -> list[Frame]:
    """The whole stream as frames, from message_start to message_stop."""
    start = {**message(ask, answer, input_tokens), "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = usage(input_tokens, 1, ask.cached_tokens, ask.cache_write_tokens)
    frames = [Frame(encode({"type": "message_start", "message": start}, "message_start"), PREAMBLE)]
    first = 0
    if answer.thinking:
        block = _thinking(answer.thinking)
        frames += [_block_start(0, {**block, "thinking": "", "signature": ""}, PREAMBLE), PING,
                   _delta(0, {"type": "thinking_delta", "thinking": answer.thinking}, answer.thinking),
                   _delta(0, {"type": "signature_delta", "signature": block["signature"]}, ""), _block_stop(0)]
        first = 1
    if answer.tool_calls:
        for number, call in enumerate(answer.tool_calls):
            index = first + number
            block = _tool_use(call.name, {})
            frames.append(_block_start(index, block, PREAMBLE if index == 0 else BODY))
            if index == 0:
                frames.append(PING)
            frames.extend(_delta(index, {"type": "input_json_delta", "partial_json": part}, part)
                          for part in _fragments(call.arguments))  # fmt: skip
            frames.append(_block_stop(index))
    else:
        frames.append(_block_start(first, {"type": "text", "text": ""}, PREAMBLE if first == 0 else BODY))
        if first == 0:
            frames.append(PING)
        frames.extend(_delta(first, {"type": "text_delta", "text": piece}, piece) for piece in answer.pieces)
        frames.append(_block_stop(first))
    delta = {"stop_reason": STOP_REASON[answer.finish], "stop_sequence": answer.stop_sequence}
    ending = {"type": "message_delta", "delta": delta, "usage": {"output_tokens": answer.output_tokens}}
    frames += [Frame(encode(ending, "message_delta")), MESSAGE_STOP]
    return frames


def _block_start(index: int, block: dict[str, Any], kind: int) -> Frame:
    event = {"type": "content_block_start", "index": index, "content_block": block}
    return Frame(encode(event, "content_block_start"), kind)


def _delta(index: int, delta: dict[str, Any], text: str) -> Frame:
    event = {"type": "content_block_delta", "index": index, "delta": delta}
    return Frame(encode(event, "content_block_delta"), CONTENT, text)


def _block_stop(index: int) -> Frame:
    return Frame(encode({"type": "content_block_stop", "index": index}, "content_block_stop"))


def _fragments(text: str) -> list[str]:
    return [text[i : i + ARGUMENT_FRAGMENT] for i in range(0, len(text), ARGUMENT_FRAGMENT)] or [""]


def check_key(headers: Any, key: str) -> None:
    # The API takes `x-api-key`; the 2.x SDK sends the same key as a Bearer token instead.
    if headers.get("x-api-key") != key and headers.get("authorization") != "Bearer " + key:
        raise EmulatorError(401, "invalid x-api-key")
