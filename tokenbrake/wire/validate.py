"""Request bodies checked against the providers' published shapes before anything is spent on
them (openai_shapes.py, anthropic_shapes.py): a field of the wrong type or out of its range is
refused with a 400 naming its path (`messages[0].content[1].image_url.url`) and what it should
be, so it never reaches an upstream, is never retried, and never trips the gateway's own code.
Fields the shapes do not know pass through untouched, for the upstream to judge.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from tokenbrake.core import ErrorKind, GatewayError
from tokenbrake.wire import anthropic_shapes, openai_shapes
from tokenbrake.wire.request_shapes import first_error


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


def _check(adapter: TypeAdapter, body: dict[str, Any]) -> None:
    try:
        adapter.validate_python(body)
    except ValidationError as exc:
        param, problem = first_error(exc)
        raise GatewayError(ErrorKind.INVALID_REQUEST, f"'{param}': {problem}", param=param) from None


def check_openai_chat(body: dict[str, Any]) -> None:
    _check(openai_shapes.chat_request, body)


def check_openai_embeddings(body: dict[str, Any]) -> None:
    _check(openai_shapes.embeddings_request, body)


def check_anthropic_messages(body: dict[str, Any]) -> None:
    _check(anthropic_shapes.messages_request, body)


def check_anthropic_count_tokens(body: dict[str, Any]) -> None:
    _check(anthropic_shapes.count_tokens_request, body)
