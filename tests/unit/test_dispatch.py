"""Retries and fallbacks, against upstreams that are small aiohttp servers on loopback."""

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from loopback import serve_app

from tokenbrake.config import RetryConfig, UpstreamConfig
from tokenbrake.core import Endpoint, ErrorKind, Format, GatewayError, RequestContext, Target
from tokenbrake.upstream.dispatch import Dispatcher
from tokenbrake.upstream.providers.openai import OpenAIProvider

OK = {"id": "chatcmpl-1", "choices": []}
HANG = "hang"  # an answer that comes later than the provider waits
TIMEOUT_S = 0.2


def answer(status: int, json: object = None, *, body: bytes | None = None, headers: dict | None = None):
    """A response to give, made afresh each time (aiohttp sends a response object once)."""
    if body is not None:
        return lambda: web.Response(status=status, body=body, headers=headers)
    return lambda: web.json_response(json if json is not None else {}, status=status, headers=headers)


@pytest.fixture
async def upstreams() -> AsyncIterator:
    """Starts an upstream that answers each call with the next item (a response, or HANG);
    `closed()` is an address where nothing listens."""
    runners: list[web.AppRunner] = []
    providers: list[OpenAIProvider] = []

    async def serve(name: str, answers: list) -> OpenAIProvider:
        calls = iter(answers)

        async def handle(request: web.Request) -> web.StreamResponse:
            item = next(calls)
            if item == HANG:
                await asyncio.sleep(TIMEOUT_S * 5)
                return answer(200, OK)()
            return item()

        app = web.Application()
        app.router.add_post("/v1/chat/completions", handle)
        runner, port = await serve_app(app)
        runners.append(runner)
        return provider(name, f"http://127.0.0.1:{port}/v1")

    def closed(name: str) -> OpenAIProvider:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return provider(name, f"http://127.0.0.1:{port}/v1")

    def provider(name: str, base_url: str) -> OpenAIProvider:
        made = OpenAIProvider(name, UpstreamConfig(kind="openai", base_url=base_url, timeout_s=TIMEOUT_S))
        providers.append(made)
        return made

    serve.closed = closed
    yield serve
    for made in providers:
        await made.aclose()
    for runner in runners:
        await runner.cleanup()


def context(*upstreams: str) -> RequestContext:
    ctx = RequestContext(format=Format.OPENAI, endpoint=Endpoint.CHAT, body={}, headers={})
    ctx.targets = [Target(f"m-{u}", u, Format.OPENAI, "m") for u in upstreams]
    return ctx


class Sleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def dispatcher(providers: dict, sleeps: Sleeps, attempts: int = 2) -> Dispatcher:
    policy = RetryConfig(attempts=attempts, backoff_initial_s=0.1, backoff_max_s=1.0)
    return Dispatcher(providers, lambda name: policy, sleep=sleeps)


async def call(d: Dispatcher, ctx: RequestContext) -> dict:
    return await d.first_answer(ctx, lambda p, t: p.request_json(Endpoint.CHAT, {"model": "m"}))


async def test_a_503_is_retried_and_then_succeeds(upstreams):
    sleeps = Sleeps()
    d = dispatcher({"a": await upstreams("a", [answer(503), answer(200, OK)])}, sleeps)
    ctx = context("a")
    assert await call(d, ctx) == OK
    assert [a.status for a in ctx.attempts] == [503, 200]
    assert len(sleeps) == 1 and 0.05 <= sleeps[0] <= 0.1


async def test_retry_after_from_the_upstream_sets_the_wait(upstreams):
    sleeps = Sleeps()
    answers = [answer(429, headers={"retry-after": "0.5"}), answer(200, OK)]
    await call(dispatcher({"a": await upstreams("a", answers)}, sleeps), context("a"))
    assert sleeps == [0.5]


async def test_a_400_is_not_retried_and_keeps_its_status_and_message(upstreams):
    body = {"error": {"message": "messages[0].content is required", "type": "invalid_request_error"}}
    d = dispatcher({"a": await upstreams("a", [answer(400, body)])}, Sleeps())
    with pytest.raises(GatewayError) as raised:
        await call(d, context("a"))
    assert raised.value.status == 400 and "messages[0].content is required" in raised.value.message


async def test_exhausted_retries_move_on_to_the_fallback(upstreams):
    d = dispatcher({"a": upstreams.closed("a"), "b": await upstreams("b", [answer(200, OK)])}, Sleeps())
    ctx = context("a", "b")
    assert await call(d, ctx) == OK
    assert ctx.served.upstream == "b" and len(ctx.attempts) == 4


async def test_a_timeout_goes_to_the_fallback_without_retrying(upstreams):
    d = dispatcher({"a": await upstreams("a", [HANG]), "b": await upstreams("b", [answer(200, OK)])}, Sleeps())
    ctx = context("a", "b")
    await call(d, ctx)
    assert [a.target.upstream for a in ctx.attempts] == ["a", "b"]


async def test_a_timeout_with_no_fallback_is_a_504(upstreams):
    d = dispatcher({"a": await upstreams("a", [HANG])}, Sleeps())
    with pytest.raises(GatewayError) as raised:
        await call(d, context("a"))
    assert raised.value.kind is ErrorKind.TIMEOUT and raised.value.status == 504


async def test_upstream_5xx_after_retries_is_a_502_naming_the_upstream(upstreams):
    d = dispatcher({"a": await upstreams("a", [answer(500, {"error": {"message": "boom"}})] * 3)}, Sleeps())
    with pytest.raises(GatewayError) as raised:
        await call(d, context("a"))
    assert raised.value.status == 502 and "upstream a answered 500: boom" in raised.value.message


async def test_upstream_rejecting_the_gateways_key_is_not_blamed_on_the_client(upstreams):
    d = dispatcher({"a": await upstreams("a", [answer(401, {"error": {"message": "bad key"}})])}, Sleeps())
    with pytest.raises(GatewayError) as raised:
        await call(d, context("a"))
    assert raised.value.status == 502


async def test_a_non_json_body_is_an_upstream_error(upstreams):
    d = dispatcher({"a": await upstreams("a", [answer(200, body=b"<html>oops")])}, Sleeps())
    with pytest.raises(GatewayError) as raised:
        await call(d, context("a"))
    assert raised.value.status == 502 and "not JSON" in raised.value.message
