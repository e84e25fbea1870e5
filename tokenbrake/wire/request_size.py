"""How big a request is: its counted input tokens and its output cap, in either format.

Admission stages share these, so the input is counted once per request.
"""

from __future__ import annotations

from typing import Any

from tokenbrake.config import Config
from tokenbrake.core import Endpoint, Format, RequestContext
from tokenbrake.wire.media_tokens import image_rule
from tokenbrake.wire.tokens import count_request_input, count_text


def input_tokens(ctx: RequestContext) -> int:
    """The counted input of a chat request, or of an embeddings request's `input`. Images are
    counted at the most that any model the request may be sent to bills for them."""
    if ctx.input_tokens is None:
        if ctx.endpoint is Endpoint.EMBEDDINGS:
            ctx.input_tokens = embedding_input_tokens(ctx.body.get("input"))
        else:
            images = list(dict.fromkeys(image_rule(t.kind.value, t.upstream_model) for t in ctx.targets))
            ctx.input_tokens = count_request_input(ctx.format.value, ctx.body, images)
    return ctx.input_tokens


def embedding_input_tokens(value: Any) -> int:
    """Tokens in an embeddings `input`: a text, texts, or token arrays."""
    if isinstance(value, str):
        return count_text(value)
    if isinstance(value, list) and value and isinstance(value[0], int):
        return len(value)  # one input, already tokens
    if isinstance(value, list):
        return sum(embedding_input_tokens(item) for item in value)
    return 0


def _cap_field(ctx: RequestContext) -> str:
    """The field that holds the request's output cap. An OpenAI-format request that names
    none gets OpenAI's current one, which its reasoning models require (they refuse the
    older `max_tokens`) and its other models and vLLM read too."""
    if ctx.format is Format.OPENAI and ("max_completion_tokens" in ctx.body or "max_tokens" not in ctx.body):
        return "max_completion_tokens"
    return "max_tokens"


def asked_output(ctx: RequestContext) -> int | None:
    """The output cap the request sets itself, if it sets one."""
    asked = ctx.body.get(_cap_field(ctx))
    return asked if isinstance(asked, int) and asked > 0 else None


def choices(ctx: RequestContext) -> int:
    """How many answers the request asks for (OpenAI's `n`): each may use the whole output cap."""
    n = ctx.body.get("n") if ctx.format is Format.OPENAI else None
    return n if isinstance(n, int) and n > 1 else 1


def output_cap(ctx: RequestContext, config: Config) -> int:
    """The most output tokens the request may produce per answer: what it asked for, else the
    model's default_max_tokens; none for a request that is not a chat (embeddings)."""
    if ctx.endpoint is not Endpoint.CHAT:
        return 0
    if (asked := asked_output(ctx)) is not None:
        return asked
    target = ctx.targets[0].name if ctx.targets else ctx.requested_model
    model = config.models.get(target)
    return model.default_max_tokens if model else 4096


def clamp_output(ctx: RequestContext, tokens: int) -> None:
    """Lowers the request's output cap, in the field its format uses."""
    ctx.body[_cap_field(ctx)] = tokens
