"""The pipeline's last step: the call itself, through the dispatcher's retries and fallbacks."""

from __future__ import annotations

from typing import Any

from tokenbrake.core import Endpoint, ErrorKind, GatewayError, Reply, RequestContext, Target
from tokenbrake.upstream.bodies import (
    answer_text,
    answer_usage,
    client_body,
    require_support,
    upstream_body,
    upstream_headers,
)
from tokenbrake.upstream.dispatch import Dispatcher
from tokenbrake.upstream.prompt_caching import for_upstream
from tokenbrake.upstream.providers import Provider
from tokenbrake.upstream.relay import StreamRelay
from tokenbrake.wire.tokens import count_request_input


def speaks_responses(ctx: RequestContext, provider: Provider) -> bool:
    """A Responses request to an upstream that serves the Responses API itself."""
    return ctx.responses is not None and provider.responses_api


class UpstreamCall:
    def __init__(self, dispatcher: Dispatcher, keep_completions: bool = False) -> None:
        self.dispatcher = dispatcher
        self.keep_completions = keep_completions  # the ledger stores completion text

    async def __call__(self, ctx: RequestContext) -> Reply:
        if ctx.endpoint is Endpoint.COUNT_TOKENS:
            return await self._count_tokens(ctx)
        if ctx.stream:
            return await self._stream(ctx)
        return (await self.complete(ctx))[1]

    async def complete(self, ctx: RequestContext) -> tuple[dict[str, Any], Reply]:
        """A non-streamed call: the upstream's own answer (a cascade reads its logprobs) and
        the client's reply."""
        async def send(provider: Provider, target: Target) -> tuple[Target, bool, dict[str, Any], dict[str, Any]]:
            require_support(target, ctx.endpoint, provider.supports(ctx.endpoint))
            native = speaks_responses(ctx, provider)
            body = for_upstream(ctx, provider.config, upstream_body(ctx, target, native))
            endpoint = Endpoint.RESPONSES if native else ctx.endpoint
            return target, native, body, await provider.request_json(endpoint, body, upstream_headers(ctx, target))

        target, native, body, answer = await self.dispatcher.first_answer(ctx, send)
        try:
            ctx.usage = answer_usage(ctx, target, body, answer, native)
            if self.keep_completions:
                ctx.completion_text = answer_text(target.kind, answer, native)
            return answer, Reply(body=client_body(ctx, target, answer, native))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise GatewayError(
                ErrorKind.UPSTREAM, f"upstream {target.upstream} answered in an unexpected shape ({exc!r})"
            ) from None

    async def _stream(self, ctx: RequestContext) -> Reply:
        async def send(provider: Provider, target: Target) -> StreamRelay:
            require_support(target, ctx.endpoint, provider.supports(ctx.endpoint))
            native = speaks_responses(ctx, provider)
            body = for_upstream(ctx, provider.config, upstream_body(ctx, target, native))
            endpoint = Endpoint.RESPONSES if native else ctx.endpoint
            upstream = await provider.open_stream(endpoint, body, upstream_headers(ctx, target))
            return StreamRelay(ctx, target, upstream, body, native)

        return Reply(stream=await self.dispatcher.first_answer(ctx, send))

    async def _count_tokens(self, ctx: RequestContext) -> Reply:
        """Anthropic upstreams count for us; for others the exact tokenizer estimates."""
        target = ctx.targets[0]
        provider = self.dispatcher.providers[target.upstream]
        if provider.supports(Endpoint.COUNT_TOKENS):
            ctx.targets = [target]
            return Reply(body=await self.dispatcher.first_answer(
                ctx, lambda p, t: p.request_json(Endpoint.COUNT_TOKENS, upstream_body(ctx, t), upstream_headers(ctx, t))
            ))
        ctx.served = target
        return Reply(body={"input_tokens": count_request_input("anthropic", ctx.body)})
