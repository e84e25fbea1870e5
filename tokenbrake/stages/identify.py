"""Who the request is for: its virtual key and team, end user, agent session and tags.

A key created with `--require-user` refuses a request that names no end user (400): per-user
budgets and limits count only requests that say whose they are."""

from __future__ import annotations

from typing import Any, TypeVar

from tokenbrake.admission.auth import KeyCache, authenticate
from tokenbrake.core import Attribution, Endpoint, ErrorKind, Format, GatewayError, RequestContext

USER_HEADER = "x-tokenbrake-user"
SESSION_HEADER = "x-tokenbrake-session"
TAGS_HEADER = "x-tokenbrake-tags"
OptionalStr = TypeVar("OptionalStr", bound=str | None)
MAX_TAGS = 20
MAX_ATTRIBUTE_LENGTH = 256


class Identify:
    def __init__(self, keys: KeyCache | None) -> None:
        self.keys = keys  # None: keys are not required, every request is anonymous

    async def before(self, ctx: RequestContext) -> None:
        if self.keys is not None:
            who = await authenticate(ctx.headers, self.keys)
            assert who.key_name is not None  # a key authenticated is named
            ctx.key_standing = self.keys.standing(who.key_name)  # read by a stream between chunks
        else:
            who = Attribution()
        who.user = _bounded("user", ctx.headers.get(USER_HEADER) or body_user(ctx.body))
        in_body = body_session(ctx)  # taken out of the body even when the header names the session
        who.session = _bounded("session", ctx.headers.get(SESSION_HEADER) or in_body)
        who.tags = parse_tags(ctx.headers.get(TAGS_HEADER))
        ctx.who = who
        if who.require_user and not who.user and ctx.endpoint is not Endpoint.COUNT_TOKENS:  # counting costs nothing
            raise user_required(ctx, who)


def user_required(ctx: RequestContext, who: Attribution) -> GatewayError:
    """The 400 for a request without an end user on a key that requires one, saying how to
    send it in the client's own format."""
    field = "metadata.user_id" if ctx.format is Format.ANTHROPIC else "user"
    return GatewayError(ErrorKind.INVALID_REQUEST,
                        f"API key '{who.key_name}' requires an end user on every request, and this one names none: "
                        f"send the end user's id in the request's `{field}` field or in the X-Tokenbrake-User header.",
                        param=field, code="end_user_required")


def body_user(body: dict[str, Any]) -> str | None:
    """OpenAI's `user` field, or Anthropic's `metadata.user_id`."""
    user = body.get("user")
    if user is None and isinstance(body.get("metadata"), dict):
        user = body["metadata"].get("user_id")
    return str(user) if user is not None else None


def body_session(ctx: RequestContext) -> str | None:
    """Anthropic's `metadata.session_id`, taken out of the body: the session is the gateway's
    business, and Anthropic refuses metadata fields other than `user_id`."""
    metadata = ctx.body.get("metadata")
    if ctx.format is not Format.ANTHROPIC or not isinstance(metadata, dict) or "session_id" not in metadata:
        return None
    session = metadata.pop("session_id")
    if not metadata:
        del ctx.body["metadata"]
    return str(session) if session is not None else None


def parse_tags(header: str | None) -> dict[str, str]:
    """`feature=search,env=prod` → {"feature": "search", "env": "prod"}."""
    if not header:
        return {}
    tags: dict[str, str] = {}
    for item in header.split(","):
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise GatewayError(ErrorKind.INVALID_REQUEST,
                               f"X-Tokenbrake-Tags: expected name=value pairs separated by commas, got {item.strip()!r}")
        tags[_bounded("tag name", name)] = _bounded("tag value", value)
    if len(tags) > MAX_TAGS:
        raise GatewayError(ErrorKind.INVALID_REQUEST, f"X-Tokenbrake-Tags: at most {MAX_TAGS} tags, got {len(tags)}")
    return tags


def _bounded(what: str, value: OptionalStr) -> OptionalStr:
    if value is not None and len(value) > MAX_ATTRIBUTE_LENGTH:
        raise GatewayError(ErrorKind.INVALID_REQUEST, f"{what} is longer than {MAX_ATTRIBUTE_LENGTH} characters")
    return value
