"""Bodies on the way out and back: the client's request as its target's upstream expects it,
and the upstream's answer as the client's SDK expects it.

Same format both sides: the body passes through with only the model name changed (and, for
an OpenAI-compatible stream, a request for usage). Different formats: `translate` does it.
A Responses request (`ctx.responses`) is a chat completion request to the stages: an upstream
that speaks Responses gets the client's own body instead, with the model, the output cap the
stages set and the conversation the gateway keeps; any other gets the chat request, and its
answer goes back as a Response object (`wire/responses_api`).
"""

from __future__ import annotations

from typing import Any

from tokenbrake.core import Endpoint, ErrorKind, Format, GatewayError, RequestContext, Target, Usage
from tokenbrake.wire import request_size
from tokenbrake.wire.responses_api import Exchange
from tokenbrake.wire.responses_api.answers import from_chat, output_text, usage_from_responses, with_thinking
from tokenbrake.wire.responses_api.requests import refuse_native_only
from tokenbrake.wire.tokens import count_request_input, count_text
from tokenbrake.wire.translate.requests import anthropic_to_openai_request, openai_to_anthropic_request
from tokenbrake.wire.translate.responses import anthropic_to_openai_response, openai_to_anthropic_response
from tokenbrake.wire.translate.usage import usage_from_anthropic, usage_from_openai


def upstream_body(ctx: RequestContext, target: Target, native: bool = False) -> dict[str, Any]:
    """`native`: the upstream speaks the Responses API and the request came through it."""
    body = ctx.body
    if ctx.responses is not None:
        if native:
            return native_body(ctx.responses, body, target)
        refuse_native_only(ctx.responses, target.upstream)
    if ctx.endpoint is Endpoint.CHAT and ctx.format is not target.kind:
        if ctx.format is Format.OPENAI:
            out = openai_to_anthropic_request(body, target.upstream_model)
        else:
            out = anthropic_to_openai_request(body, target.upstream_model)
    else:
        out = {**body, "model": target.upstream_model}
        if ctx.stream and target.kind is Format.OPENAI:
            out["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    if ctx.upstream_extra and target.kind is Format.OPENAI:  # a cascade asking for logprobs
        out.update(ctx.upstream_extra)
    return out


def native_body(ex: Exchange, chat: dict[str, Any], target: Target) -> dict[str, Any]:
    """The client's Responses body for an upstream that speaks it: the model it knows, the
    output cap the stages may have lowered, and the conversation the gateway keeps in `input`."""
    out = {**ex.body, "model": target.upstream_model}
    if chat.get("max_completion_tokens") is not None:
        out["max_output_tokens"] = chat["max_completion_tokens"]
    if ex.continues is not None:
        out["input"] = [*ex.history, *ex.input_items]
        out.pop("previous_response_id", None)
    return out


def upstream_headers(ctx: RequestContext, target: Target) -> dict[str, str] | None:
    """The client's headers the upstream is to see: an Anthropic client's `anthropic-beta`
    (the beta features it opted into), when an Anthropic upstream serves it. The upstream's
    key and `anthropic-version` are the gateway's own (its config)."""
    if target.kind is Format.ANTHROPIC and ctx.format is Format.ANTHROPIC:
        betas = ctx.headers.get("anthropic-beta")
        if betas:
            return {"anthropic-beta": betas}
    return None


def client_body(ctx: RequestContext, target: Target, answer: dict[str, Any], native: bool = False) -> dict[str, Any]:
    if (ex := ctx.responses) is not None:
        if not native:
            chat = answer if target.kind is Format.OPENAI else with_thinking(
                anthropic_to_openai_response(answer, target.upstream_model), answer)
            answer = from_chat(ex, chat, ctx.usage or Usage())
        elif ex.continues is not None:  # the upstream was sent the conversation, not the id
            answer["previous_response_id"] = ex.continues
        ex.final = answer
        return answer
    if ctx.endpoint is not Endpoint.CHAT or ctx.format is target.kind:
        return answer
    if ctx.format is Format.OPENAI:
        return anthropic_to_openai_response(answer, target.upstream_model)
    return openai_to_anthropic_response(answer, target.upstream_model)


def answer_usage(ctx: RequestContext, target: Target, upstream: dict[str, Any], answer: dict[str, Any],
                 native: bool = False) -> Usage:
    """Usage the upstream reported; an exact-tokenizer count where it reported none."""
    reported = answer.get("usage")
    if native:
        if isinstance(reported, dict):
            return usage_from_responses(reported)
        return Usage(input_tokens=request_size.input_tokens(ctx), output_tokens=count_text(output_text(answer)))
    if isinstance(reported, dict):
        return usage_from_anthropic(reported) if target.kind is Format.ANTHROPIC else usage_from_openai(reported)
    if ctx.endpoint is Endpoint.EMBEDDINGS:
        return Usage(input_tokens=request_size.input_tokens(ctx))  # counted once, maybe already
    return Usage(
        input_tokens=count_request_input(target.kind.value, upstream),
        output_tokens=count_text(answer_text(target.kind, answer)),
    )


def answer_text(kind: Format, answer: dict[str, Any], native: bool = False) -> str:
    if native:
        return output_text(answer)
    if kind is Format.ANTHROPIC:
        return "".join(block.get("text", "") for block in answer.get("content") or [] if isinstance(block, dict))
    parts = []
    for choice in answer.get("choices") or []:
        message = choice.get("message") or {}
        parts.append(message.get("content") or "")
        for call in message.get("tool_calls") or []:
            parts.append((call.get("function") or {}).get("arguments") or "")
    return "".join(parts)


def require_support(target: Target, endpoint: Endpoint, supported: bool) -> None:
    if not supported:
        raise GatewayError(
            ErrorKind.INVALID_REQUEST,
            f"model '{target.name}' is served by a {target.kind.value} upstream, which has no {endpoint.value} endpoint",
            param="model",
        )
