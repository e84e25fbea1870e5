"""A Responses request as a chat completion request.

`input` items become chat messages (function calls an assistant message's `tool_calls`, their
outputs `tool` messages); `instructions` a system message first; `text.format` the
`response_format`; `reasoning.effort` the `reasoning_effort`; `max_output_tokens` the output cap.
Reasoning items passed back are dropped: a chat completion has no place for them, and the model
reasons afresh. Anything that would change what the model does but has no chat counterpart
(built-in tools, stored prompts, files by id, background mode) is listed on the exchange as
native-only: a Responses upstream gets it, any other upstream refuses it, naming the field.
"""

from __future__ import annotations

from typing import Any

from tokenbrake.core import ErrorKind, GatewayError
from tokenbrake.wire.responses_api import Exchange

PASSED_AS_IS = ("temperature", "top_p", "parallel_tool_calls", "user", "safety_identifier", "prompt_cache_key",
                "service_tier", "stream", "top_logprobs")
# Read here, or with no effect on the answer a chat completion gives (storage, echoing, detail
# the chat answer cannot carry): accepted for every upstream.
READ = frozenset({"model", "input", "instructions", "tools", "tool_choice", "text", "reasoning", "max_output_tokens",
                  "metadata", "store", "truncation", "include", "previous_response_id", "stream_options",
                  *PASSED_AS_IS})
ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
TEXT_PARTS = ("input_text", "output_text", "text")
# The scalar fields whose type is checked here, as the API checks them (a bool is no number).
TYPED: dict[str, type | tuple[type, ...]] = {"temperature": (int, float), "top_p": (int, float), "stream": bool, "store": bool,
         "parallel_tool_calls": bool, "top_logprobs": int, "user": str, "safety_identifier": str,
         "prompt_cache_key": str, "service_tier": str, "truncation": str}
TYPE_NAMES: dict[type | tuple[type, ...], str] = {bool: "a boolean", int: "an integer", str: "a string"}


def invalid(message: str, param: str) -> GatewayError:
    return GatewayError(ErrorKind.INVALID_REQUEST, message, param=param)


def check_responses(body: dict[str, Any]) -> None:
    """The shape every Responses request must have, whatever serves it."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("Missing required parameter: 'model': name the model to use, e.g. \"model\": \"gpt-4o\".", "model")
    value = body.get("input")
    if not isinstance(value, str | list):
        raise invalid("Invalid 'input': expected a string or an array of input items (messages, function_call, "
                      "function_call_output...).", "input")
    for key in ("instructions", "previous_response_id"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise invalid(f"Invalid type for '{key}': expected a string.", key)
    cap = body.get("max_output_tokens")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        raise invalid(f"Invalid 'max_output_tokens': expected a positive integer, got {cap!r}.", "max_output_tokens")
    for key in ("tools", "include"):
        if body.get(key) is not None and not isinstance(body[key], list):
            raise invalid(f"Invalid type for '{key}': expected an array.", key)
    for key in ("text", "reasoning", "metadata"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            raise invalid(f"Invalid type for '{key}': expected an object.", key)
    for key, kind in TYPED.items():
        value = body.get(key)
        if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
            expected = TYPE_NAMES.get(kind, "a number")
            raise invalid(f"Invalid type for '{key}': expected {expected}, got {value!r}.", key)
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, str | dict):
        raise invalid("Invalid 'tool_choice': expected \"auto\", \"none\", \"required\" or an object naming a tool.",
                      "tool_choice")


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """`input` as a list of items: a string is one user message."""
    value = body["input"]
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise invalid(f"Invalid 'input[{index}]': expected an object (an input item).", f"input[{index}]")
    return list(value)


def new_exchange(body: dict[str, Any]) -> Exchange:
    check_responses(body)
    return Exchange(body=body, input_items=input_items(body))


def to_chat(ex: Exchange) -> dict[str, Any]:
    """The chat completion request `ex` amounts to, its history included. Lists the fields only
    a Responses upstream can serve on `ex.native_only`."""
    body = ex.body
    native: list[str] = [key for key in body if key not in READ and body[key] is not None]
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        messages.append({"role": "system", "content": body["instructions"]})
    offset = len(ex.history)
    for index, item in enumerate([*ex.history, *ex.input_items]):
        where = f"input[{index - offset}]" if index >= offset else f"previous_response_id (item {index})"
        _add_item(item, where, messages, native)
    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    out.update({key: body[key] for key in PASSED_AS_IS if body.get(key) is not None})
    if "top_logprobs" in out:
        out["logprobs"] = True
    if "message.output_text.logprobs" in (body.get("include") or ()):
        out["logprobs"] = True
    if body.get("max_output_tokens") is not None:
        out["max_completion_tokens"] = body["max_output_tokens"]
    if body.get("user") is None and body.get("safety_identifier") is not None:
        out["user"] = body["safety_identifier"]  # the end user the gateway attributes the call to
    _add_tools(body, out, native)
    _add_text(body.get("text") or {}, out, native)
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        out["reasoning_effort"] = effort
    ex.native_only = native
    return out


def _add_item(item: dict[str, Any], where: str, messages: list[dict[str, Any]], native: list[str]) -> None:
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        messages.append(_message(item, where, native))
    elif kind == "function_call":
        call = {"id": _text(item, "call_id", where), "type": "function",
                "function": {"name": _text(item, "name", where), "arguments": item.get("arguments") or "{}"}}
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)  # one assistant turn: its text, then its calls
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item.get("output")
        content = output if isinstance(output, str) else _joined_text(output, f"{where}.output")
        messages.append({"role": "tool", "tool_call_id": _text(item, "call_id", where), "content": content})
    elif kind == "reasoning":
        pass  # a chat completion cannot be given the model's earlier reasoning; it reasons afresh
    else:
        native.append(f"{where}.type")


def _message(item: dict[str, Any], where: str, native: list[str]) -> dict[str, Any]:
    role = item.get("role")
    if role not in ROLES:
        raise invalid(f"Invalid '{where}.role': {role!r}; expected one of user, assistant, system, developer.",
                      f"{where}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": ROLES[role], "content": content}
    if not isinstance(content, list):
        raise invalid(f"Invalid '{where}.content': expected a string or an array of content parts.", f"{where}.content")
    if role != "user":
        return {"role": ROLES[role], "content": _joined_text(content, f"{where}.content")}
    return {"role": "user", "content": [_user_part(part, f"{where}.content[{n}]", native) for n, part in enumerate(content)]}


def _user_part(part: Any, where: str, native: list[str]) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in TEXT_PARTS:
        return {"type": "text", "text": _text(part, "text", where)}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        return {"type": "image_url", "image_url": {"url": part["image_url"], "detail": part.get("detail") or "auto"}}
    if kind == "input_file" and isinstance(part.get("file_data"), str):
        return {"type": "file", "file": {"file_data": part["file_data"], "filename": part.get("filename") or "file"}}
    native.append(f"{where}.type" if kind not in ("input_image", "input_file") else f"{where}.file_id")
    return {"type": "text", "text": ""}


def _joined_text(parts: Any, where: str) -> str:
    if not isinstance(parts, list):
        raise invalid(f"Invalid '{where}': expected a string or an array of text parts.", where)
    texts = []
    for n, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "refusal":
            texts.append(str(part.get("refusal") or ""))
        elif kind in TEXT_PARTS:
            texts.append(_text(part, "text", f"{where}[{n}]"))
        else:
            raise invalid(f"Invalid '{where}[{n}].type': {kind!r}; only text parts (input_text, output_text) can be "
                          f"sent here.", f"{where}[{n}].type")
    return "".join(texts)


def _text(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise invalid(f"Missing required parameter: '{where}.{key}' (a string).", f"{where}.{key}")
    return value


def _add_tools(body: dict[str, Any], out: dict[str, Any], native: list[str]) -> None:
    tools = []
    for index, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            native.append(f"tools[{index}].type")  # built-in tools (web search, file search...)
            continue
        function = {"name": _text(tool, "name", f"tools[{index}]"), "parameters": tool.get("parameters") or {}}
        for key in ("description", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        tools.append({"type": "function", "function": function})
    if tools:
        out["tools"] = tools
    choice = body.get("tool_choice")
    if choice is None or not tools:
        out.pop("parallel_tool_calls", None)  # chat refuses it without tools
        return
    if choice in ("auto", "none", "required"):
        out["tool_choice"] = choice
    elif isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        native.append("tool_choice")


def _add_text(text: dict[str, Any], out: dict[str, Any], native: list[str]) -> None:
    form = text.get("format")
    kind = form.get("type") if isinstance(form, dict) else None
    if kind == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif kind == "json_schema" and isinstance(form, dict):
        schema = {key: form[key] for key in ("name", "schema", "strict", "description") if form.get(key) is not None}
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif form is not None and kind != "text":
        native.append("text.format.type")
    if text.get("verbosity") is not None:
        out["verbosity"] = text["verbosity"]


def refuse_native_only(ex: Exchange, upstream: str) -> None:
    """The 400 for a request with a field that only a Responses upstream serves, sent elsewhere."""
    if ex.native_only:
        field = ex.native_only[0]
        raise invalid(f"'{field}' has no counterpart in the Chat Completions or Messages API that upstream "
                      f"{upstream} speaks, so it cannot be served there: leave it out, or use a model served by "
                      f"an upstream that speaks the Responses API (upstreams.<name>.responses_api: true).", field)
