import anthropic
import httpx
import openai
import pytest

from tokenbrake.core import ErrorKind, Format, GatewayError
from tokenbrake.wire.errors import error_body


def sdk_error(sdk_client, status: int, body: dict):
    """What the SDK raises for this status and body (its own status → exception mapping)."""
    response = httpx.Response(status, json=body, request=httpx.Request("POST", "http://gateway/v1/x"))
    return sdk_client._make_status_error_from_response(response)


@pytest.mark.parametrize(
    ("kind", "openai_class", "anthropic_class"),
    [
        (ErrorKind.INVALID_REQUEST, openai.BadRequestError, anthropic.BadRequestError),
        (ErrorKind.AUTHENTICATION, openai.AuthenticationError, anthropic.AuthenticationError),
        (ErrorKind.PERMISSION, openai.PermissionDeniedError, anthropic.PermissionDeniedError),
        (ErrorKind.NOT_FOUND, openai.NotFoundError, anthropic.NotFoundError),
        (ErrorKind.RATE_LIMIT, openai.RateLimitError, anthropic.RateLimitError),
        (ErrorKind.UPSTREAM, openai.InternalServerError, anthropic.InternalServerError),
        (ErrorKind.OVERLOADED, openai.InternalServerError, anthropic.InternalServerError),
    ],
)
def test_each_kind_becomes_the_sdks_usual_exception_with_our_message(kind, openai_class, anthropic_class):
    error = GatewayError(kind, "budget team:search is spent")
    oa = sdk_error(openai.OpenAI(api_key="x", base_url="http://gateway/v1"), error.status, error_body(Format.OPENAI, error))
    an = sdk_error(anthropic.Anthropic(api_key="x", base_url="http://gateway"), error.status, error_body(Format.ANTHROPIC, error))
    assert isinstance(oa, openai_class) and "budget team:search is spent" in str(oa)
    assert isinstance(an, anthropic_class) and "budget team:search is spent" in str(an)


def test_openai_body_has_message_type_param_and_code():
    body = error_body(Format.OPENAI, GatewayError(ErrorKind.NOT_FOUND, "no such model", param="model", code="model_not_found"))
    assert body == {"error": {"message": "no such model", "type": "not_found_error", "param": "model", "code": "model_not_found"}}


def test_anthropic_body_has_type_error_and_inner_type():
    body = error_body(Format.ANTHROPIC, GatewayError(ErrorKind.REQUEST_TOO_LARGE, "too big"))
    assert body == {"type": "error", "error": {"type": "request_too_large", "message": "too big"}}
