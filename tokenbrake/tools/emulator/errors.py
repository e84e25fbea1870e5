"""Error bodies shaped like the real providers', chosen by HTTP status.

The SDKs pick their exception class from the status alone; the body only has to parse.
"""

from __future__ import annotations

from typing import Any

from tokenbrake.core import Format

ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class EmulatorError(Exception):
    """A request the emulator answers with an error, as a real provider would."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}


def anthropic_type(status: int) -> str:
    return ANTHROPIC_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def openai_type(status: int) -> str:
    return OPENAI_TYPES.get(status) or ("server_error" if status >= 500 else "invalid_request_error")


def error_body(fmt: Format, error: EmulatorError) -> dict[str, Any]:
    if fmt is Format.ANTHROPIC:
        return {"type": "error", "error": {"type": anthropic_type(error.status), "message": error.message}}
    return {
        "error": {
            "message": error.message,
            "type": openai_type(error.status),
            "param": error.param,
            "code": error.code,
        }
    }


def invalid(message: str, param: str | None = None, code: str | None = None) -> EmulatorError:
    return EmulatorError(400, message, param=param, code=code)
