"""Shape checks on request bodies, before anything is spent on them.

They check what the gateway itself relies on (model, messages, stream, token limits) and
that types are right, with a message naming the field; everything else is the upstream's to
judge and is passed through untouched.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokenbrake.core import ErrorKind, GatewayError


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise GatewayError(ErrorKind.INVALID_REQUEST, "request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(ErrorKind.INVALID_REQUEST, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise GatewayError(ErrorKind.INVALID_REQUEST, "request body must be a JSON object")
    return body


def _invalid(param: str, message: str) -> GatewayError:
    return GatewayError(ErrorKind.INVALID_REQUEST, f"'{param}': {message}", param=param)


def _require(body: dict[str, Any], param: str, kind: type | tuple[type, ...], what: str) -> Any:
    if param not in body or body[param] is None:
        raise _invalid(param, "this field is required")
    return _typed(body, param, kind, what)


def _typed(body: dict[str, Any], param: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(param)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _invalid(param, f"expected {what}, got {type(value).__name__}")
    return value


def _positive_int(body: dict[str, Any], param: str) -> None:
    value = _typed(body, param, int, "an integer")
    if value is not None and (isinstance(value, bool) or value < 1):
        raise _invalid(param, f"must be at least 1, got {value}")


def _messages(body: dict[str, Any]) -> None:
    messages = _require(body, "messages", list, "an array of messages")
    if not messages:
        raise _invalid("messages", "must contain at least one message")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid(f"messages[{index}]", "expected an object")
        if not isinstance(message.get("role"), str):
            raise _invalid(f"messages[{index}].role", "this field is required and must be a string")


def _common(body: dict[str, Any]) -> None:
    model = _require(body, "model", str, "a string")
    if not model:
        raise _invalid("model", "must not be empty")
    _typed(body, "stream", bool, "a boolean")
    _typed(body, "tools", list, "an array")


def check_openai_chat(body: dict[str, Any]) -> None:
    _common(body)
    _messages(body)
    _positive_int(body, "max_tokens")
    _positive_int(body, "max_completion_tokens")
    _positive_int(body, "n")
    _typed(body, "stream_options", dict, "an object")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, (str, list)):
        raise _invalid("stop", f"expected a string or an array of strings, got {type(stop).__name__}")


def check_anthropic_messages(body: dict[str, Any]) -> None:
    _common(body)
    _messages(body)
    _require(body, "max_tokens", int, "an integer")
    _positive_int(body, "max_tokens")
    _typed(body, "stop_sequences", list, "an array of strings")
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        raise _invalid("system", f"expected a string or an array of text blocks, got {type(system).__name__}")


def check_anthropic_count_tokens(body: dict[str, Any]) -> None:
    _common(body)
    _messages(body)


def check_openai_embeddings(body: dict[str, Any]) -> None:
    _common(body)
    value = body.get("input")
    if value is None:
        raise _invalid("input", "this field is required")
    if not isinstance(value, (str, list)) or (isinstance(value, list) and not value):
        raise _invalid("input", "expected a string or a non-empty array")
