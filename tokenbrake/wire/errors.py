"""The one place a `GatewayError` becomes an error body in the client's own wire format.

The status code decides which exception class each SDK raises (401 → AuthenticationError,
429 → RateLimitError, ...); the body's message is what the user reads.
"""

from __future__ import annotations

from typing import Any

from tokenbrake.core import ErrorKind, Format, GatewayError

OPENAI_TYPES = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.REQUEST_TOO_LARGE: "invalid_request_error",
    ErrorKind.RATE_LIMIT: "rate_limit_error",
    ErrorKind.UPSTREAM: "upstream_error",
    ErrorKind.TIMEOUT: "timeout_error",
    ErrorKind.OVERLOADED: "server_error",
    ErrorKind.INTERNAL: "server_error",
}

ANTHROPIC_TYPES = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.REQUEST_TOO_LARGE: "request_too_large",
    ErrorKind.RATE_LIMIT: "rate_limit_error",
    ErrorKind.UPSTREAM: "api_error",
    ErrorKind.TIMEOUT: "timeout_error",
    ErrorKind.OVERLOADED: "overloaded_error",
    ErrorKind.INTERNAL: "api_error",
}


def error_body(fmt: Format, error: GatewayError) -> dict[str, Any]:
    if fmt is Format.ANTHROPIC:
        return {"type": "error", "error": {"type": ANTHROPIC_TYPES[error.kind], "message": error.message}}
    return {
        "error": {
            "message": error.message,
            "type": OPENAI_TYPES[error.kind],
            "param": error.param,
            "code": error.code or error.limit,
        }
    }


def stream_error_event(fmt: Format, error: GatewayError) -> tuple[str | None, dict[str, Any]]:
    """An error that happens after a stream has begun: SSE (event name, data).

    The OpenAI SDK raises APIError on a data line carrying `error`; the Anthropic SDK on an
    `error` event.
    """
    return ("error" if fmt is Format.ANTHROPIC else None), error_body(fmt, error)


def kind_for_status(status: int) -> ErrorKind:
    """The kind of error an upstream's HTTP status reports."""
    return {
        400: ErrorKind.INVALID_REQUEST,
        401: ErrorKind.AUTHENTICATION,
        403: ErrorKind.PERMISSION,
        404: ErrorKind.NOT_FOUND,
        408: ErrorKind.TIMEOUT,
        413: ErrorKind.REQUEST_TOO_LARGE,
        422: ErrorKind.INVALID_REQUEST,
        429: ErrorKind.RATE_LIMIT,
        504: ErrorKind.TIMEOUT,
        529: ErrorKind.OVERLOADED,
    }.get(status, ErrorKind.UPSTREAM if status >= 500 else ErrorKind.INVALID_REQUEST)


def upstream_error_message(body: Any) -> str | None:
    """The human message inside an OpenAI- or Anthropic-shaped error body, if any."""
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(inner, str):
            return inner
        if isinstance(body.get("message"), str):
            return body["message"]
    return None
